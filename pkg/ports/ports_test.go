package ports_test

import (
	"net"
	"os"
	"strconv"
	"strings"
	"testing"

	"github.com/huifang/huifang/pkg/ports"
)

// The ports are distinct, free (a listener can take each), and below the
// kernel's ephemeral range, where no listener on port 0 lands.
func TestFreePortsAreFreeDistinctAndNotEphemeral(t *testing.T) {
	got, err := ports.Free(20)
	if err != nil {
		t.Fatal(err)
	}
	seen := map[int]bool{}
	for _, p := range got {
		if seen[p] {
			t.Fatalf("port %d handed out twice: %v", p, got)
		}
		seen[p] = true
		if p < ports.Lowest {
			t.Fatalf("port %d below %d", p, ports.Lowest)
		}
		l, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(p))
		if err != nil {
			t.Fatalf("port %d is not free: %v", p, err)
		}
		_ = l.Close()
	}
	b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range")
	if err != nil {
		t.Fatal(err) // Linux: CI and make test run here
	}
	start, err := strconv.Atoi(strings.Fields(string(b))[0])
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range got {
		if p >= start {
			t.Fatalf("port %d is in the kernel's ephemeral range (from %d)", p, start)
		}
	}
}
