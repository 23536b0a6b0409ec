// Package ports hands out free loopback TCP ports for the processes tests
// and the development tools start (services, NATS and Postgres servers),
// which must be told their port before they listen.
//
// A port the kernel picks for a listener on port 0 comes from its ephemeral
// range, and so does the port of every other listener on port 0 and every
// outgoing connection: a port picked that way and released until a process
// listens on it can be taken meanwhile (it happened on a busy CI machine:
// the test's token issuer got the HTTP port just chosen for a service).
// Free picks ports at random below the ephemeral range instead, where the
// kernel never assigns one by itself.
package ports

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"strconv"
	"strings"
)

// Lowest is the lowest port Free hands out.
const Lowest = 10000

// defaultEphemeral is the start of Linux's default ephemeral range, used
// when the kernel's cannot be read.
const defaultEphemeral = 32768

// Free returns n distinct loopback TCP ports that are free now, chosen at
// random between Lowest and the start of the kernel's ephemeral range.
func Free(n int) ([]int, error) {
	top := ephemeralStart()
	if top-Lowest < 100*n {
		return nil, fmt.Errorf("ports: only %d ports below the ephemeral range (from %d): too few to pick %d", max(0, top-Lowest), top, n)
	}
	var ls []net.Listener
	defer func() {
		for _, l := range ls {
			_ = l.Close()
		}
	}()
	out := make([]int, 0, n)
	tried := map[int]bool{}
	for len(out) < n && len(tried) < 1000*n {
		p := Lowest + rand.IntN(top-Lowest)
		if tried[p] {
			continue
		}
		tried[p] = true
		l, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(p))
		if err != nil {
			continue // in use
		}
		ls = append(ls, l)
		out = append(out, p)
	}
	if len(out) < n {
		return nil, errors.New("ports: no free loopback port found")
	}
	return out, nil
}

// ephemeralStart is the first port of the kernel's ephemeral range.
func ephemeralStart() int {
	b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range")
	if err != nil {
		return defaultEphemeral
	}
	f := strings.Fields(string(b))
	if len(f) == 0 {
		return defaultEphemeral
	}
	p, err := strconv.Atoi(f[0])
	if err != nil || p <= Lowest {
		return defaultEphemeral
	}
	return p
}
