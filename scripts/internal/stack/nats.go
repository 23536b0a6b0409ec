package stack

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"time"

	"github.com/nats-io/nats-server/v2/server"
)

// StartNATS runs an embedded NATS server with JetStream on 127.0.0.1:port
// (server.RANDOM_PORT picks a free one), its store in dir. Every write is
// synced to disk (sync_interval: always), as the architecture demands, so
// that an acknowledged message survives a crash of the machine. The caller
// shuts it down with Shutdown and WaitForShutdown.
func StartNATS(dir string, port int) (*server.Server, error) {
	s, err := server.NewServer(&server.Options{
		ServerName: "huifang-dev",
		Host:       "127.0.0.1",
		Port:       port,
		JetStream:  true,
		StoreDir:   dir,
		SyncAlways: true,
		NoLog:      true,
		NoSigs:     true,
	})
	if err != nil {
		return nil, fmt.Errorf("stack: nats: %w", err)
	}
	go s.Start()
	if !s.ReadyForConnections(10 * time.Second) {
		s.Shutdown()
		return nil, errors.New("stack: nats not ready within 10 s (is the port taken?)")
	}
	if !s.JetStreamEnabled() {
		s.Shutdown()
		return nil, errors.New("stack: nats started without JetStream")
	}
	return s, nil
}

// NATSProcess is a NATS server run as a separate process (huifang-nats).
type NATSProcess struct {
	URL  string
	cmd  *exec.Cmd
	done chan struct{}
}

// RunNATS starts the huifang-nats binary with its store in dir on a free
// port and returns once it accepts connections.
func RunNATS(ctx context.Context, bin, dir string) (*NATSProcess, error) {
	cmd := exec.Command(bin, "-port", "-1", "-store", dir)
	cmd.SysProcAttr = sysProcAttr()
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, fmt.Errorf("stack: nats: %w", err)
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("stack: nats: %w", err)
	}
	p := &NATSProcess{cmd: cmd, done: make(chan struct{})}
	urls := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(out)
		if sc.Scan() {
			urls <- strings.TrimSpace(sc.Text())
		}
		_, _ = io.Copy(io.Discard, out)
		_ = cmd.Wait()
		close(p.done)
	}()
	select {
	case p.URL = <-urls:
		return p, nil
	case <-p.done:
		return nil, fmt.Errorf("stack: %s exited before it was ready (%v)", bin, cmd.ProcessState)
	case <-ctx.Done():
		p.Stop()
		return nil, fmt.Errorf("stack: %s not ready: %w", bin, ctx.Err())
	}
}

// Stop ends the server with SIGTERM, or SIGKILL when it takes over 10 s.
func (p *NATSProcess) Stop() {
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(10 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.done
	}
}
