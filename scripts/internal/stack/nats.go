package stack

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/huifang/huifang/pkg/natstest"
	"github.com/huifang/huifang/pkg/ports"
	"github.com/huifang/huifang/pkg/stream"
)

// StartNATS runs an embedded NATS server with JetStream on 127.0.0.1:port
// (server.RANDOM_PORT picks a free one), its store in dir. Every write is
// synced to disk (sync_interval: always), as the architecture demands, so
// that an acknowledged message survives a crash of the machine. The caller
// shuts it down with Shutdown and WaitForShutdown.
func StartNATS(dir string, port int) (*server.Server, error) {
	return StartNATSNode(NATSNode{Name: "huifang-dev", Dir: dir, Port: port})
}

// NATSNode is one NATS server with JetStream; with a ClusterPort it is a
// node of a JetStream cluster whose other nodes are at Routes.
type NATSNode struct {
	// Name is the server's name, unique within a cluster.
	Name string
	// Dir is the JetStream store folder.
	Dir string
	// Port is the client port on 127.0.0.1; server.RANDOM_PORT picks one.
	Port int
	// ClusterName, ClusterPort and Routes make the server a cluster node:
	// it listens for routes on 127.0.0.1:ClusterPort and dials Routes
	// ("nats-route://127.0.0.1:6222", ...). ClusterName defaults to "huifang".
	ClusterName string
	ClusterPort int
	Routes      []string
	// Users, when set, makes the server take only these users.
	Users []*server.User
	// ProfPort, when set, serves the server's Go runtime profiles
	// (/debug/pprof/) on 127.0.0.1:ProfPort (make bench's -profile).
	ProfPort int
}

// HuifangUsers are NATS users for tests on loopback: one per service with
// its permissions (stream.ServicePermissions), the integrator "erp"
// (stream.IntegratorPermissions) and "admin" with every permission; each
// user's password is its name.
func HuifangUsers() []*server.User {
	users := []*server.User{{Username: "admin", Password: "admin"}, natstest.User("erp", "erp", stream.IntegratorPermissions())}
	for _, svc := range stream.Services() {
		users = append(users, natstest.User(svc, svc, stream.ServicePermissions(svc)))
	}
	return users
}

// StartNATSNode runs an embedded NATS server with JetStream as node
// describes, every write synced to disk. A standalone server is checked for
// JetStream before it returns; a cluster node returns as soon as it takes
// connections, since JetStream needs a quorum of nodes to elect its leader
// (WaitJetStream waits for that).
func StartNATSNode(node NATSNode) (*server.Server, error) {
	opts := &server.Options{
		ServerName: node.Name,
		Host:       "127.0.0.1",
		ProfPort:   node.ProfPort,
		Port:       node.Port,
		JetStream:  true,
		StoreDir:   node.Dir,
		SyncAlways: true,
		NoLog:      true,
		NoSigs:     true,
		Users:      node.Users,
	}
	clustered := node.ClusterPort != 0
	if clustered {
		if node.ClusterName == "" {
			node.ClusterName = "huifang"
		}
		opts.Cluster = server.ClusterOpts{Name: node.ClusterName, Host: "127.0.0.1", Port: node.ClusterPort}
		opts.Routes = server.RoutesFromStr(strings.Join(node.Routes, ","))
	}
	s, err := server.NewServer(opts)
	if err != nil {
		return nil, fmt.Errorf("stack: nats: %w", err)
	}
	go s.Start()
	if !s.ReadyForConnections(10 * time.Second) {
		s.Shutdown()
		return nil, errors.New("stack: nats not ready within 10 s (is the port taken?)")
	}
	if !clustered && !s.JetStreamEnabled() {
		s.Shutdown()
		return nil, errors.New("stack: nats started without JetStream")
	}
	return s, nil
}

// WaitJetStream waits until JetStream answers at url (in a cluster: until
// its meta leader is elected), retrying until ctx ends.
func WaitJetStream(ctx context.Context, url string) error {
	var last error
	for {
		last = func() error {
			nc, err := nats.Connect(url, nats.Timeout(time.Second))
			if err != nil {
				return err
			}
			defer nc.Close()
			js, err := jetstream.New(nc)
			if err != nil {
				return err
			}
			callCtx, cancel := context.WithTimeout(ctx, time.Second)
			defer cancel()
			_, err = js.AccountInfo(callCtx)
			return err
		}()
		if last == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("stack: jetstream at %s not ready: %w", url, last)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// NATSProcess is a NATS server run as a separate process (huifang-nats).
type NATSProcess struct {
	URL string
	// StoreDir is the server's JetStream store folder.
	StoreDir string
	bin      string
	args     []string
	cmd      *exec.Cmd
	done     chan struct{}
}

// RunNATS starts the huifang-nats binary with its store in dir on a free
// port and returns once it accepts connections.
func RunNATS(ctx context.Context, bin, dir string, extra ...string) (*NATSProcess, error) {
	p, err := runNATS(ctx, bin, append([]string{"-port", "-1", "-store", dir}, extra...)...)
	if err != nil {
		return nil, err
	}
	// A restart keeps the port the server got, so that clients find it again.
	if port := urlPort(p.URL); port != "" {
		p.args = append([]string{"-port", port, "-store", dir}, extra...)
	}
	return p, nil
}

func urlPort(url string) string {
	if i := strings.LastIndexByte(url, ':'); i >= 0 {
		return url[i+1:]
	}
	return ""
}

func runNATS(ctx context.Context, bin string, args ...string) (*NATSProcess, error) {
	p := &NATSProcess{bin: bin, args: args}
	for i, a := range args {
		if a == "-store" && i+1 < len(args) {
			p.StoreDir = args[i+1]
		}
	}
	if err := p.start(ctx); err != nil {
		return nil, err
	}
	return p, nil
}

// start runs the process with p's arguments and waits for its client URL.
func (p *NATSProcess) start(ctx context.Context) error {
	bin := p.bin
	cmd := exec.Command(bin, p.args...)
	cmd.SysProcAttr = sysProcAttr()
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		return fmt.Errorf("stack: nats: %w", err)
	}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("stack: nats: %w", err)
	}
	done := make(chan struct{})
	p.cmd, p.done = cmd, done
	urls := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(out)
		if sc.Scan() {
			urls <- strings.TrimSpace(sc.Text())
		}
		_, _ = io.Copy(io.Discard, out)
		_ = cmd.Wait()
		close(done)
	}()
	select {
	case p.URL = <-urls:
		return nil
	case <-done:
		return fmt.Errorf("stack: %s exited before it was ready (%v)", bin, cmd.ProcessState)
	case <-ctx.Done():
		p.Stop()
		return fmt.Errorf("stack: %s not ready: %w", bin, ctx.Err())
	}
}

// Stop ends the server with SIGTERM, or SIGKILL when it takes over 10 s.
// Stopping a server that is not running is a no-op.
func (p *NATSProcess) Stop() {
	if !p.Running() {
		return
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(10 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.done
	}
}

// Kill ends the server with SIGKILL, as a crash would, and waits until it is gone.
func (p *NATSProcess) Kill() {
	if !p.Running() {
		return
	}
	_ = p.cmd.Process.Kill()
	<-p.done
}

// Pid is the server's process id, 0 when it does not run.
func (p *NATSProcess) Pid() int {
	if !p.Running() {
		return 0
	}
	return p.cmd.Process.Pid
}

// Running says whether the server's process is alive.
func (p *NATSProcess) Running() bool {
	if p.cmd == nil {
		return false
	}
	select {
	case <-p.done:
		return false
	default:
		return true
	}
}

// Restart starts a stopped or killed server again with the same port,
// store folder and cluster settings; with wipe, its store folder is emptied
// first (a node that lost its disk). It returns once the server takes
// connections (a cluster node may still be catching up).
func (p *NATSProcess) Restart(ctx context.Context, wipe bool) error {
	if p.Running() {
		return errors.New("stack: nats is still running; stop or kill it first")
	}
	if wipe && p.StoreDir != "" {
		if err := os.RemoveAll(p.StoreDir); err != nil {
			return fmt.Errorf("stack: wipe nats store: %w", err)
		}
	}
	url := p.URL
	if err := p.start(ctx); err != nil {
		return err
	}
	if url != "" && p.URL != url {
		return fmt.Errorf("stack: nats came back at %s, not %s", p.URL, url)
	}
	return nil
}

// NATSCluster is a JetStream cluster of huifang-nats processes on loopback
// ports, as the compose file runs it on three hosts.
type NATSCluster struct {
	Nodes []*NATSProcess
}

// URL lists every node's client URL, comma-separated, as NATS_URL takes it:
// a client fails over to the next node when its node goes away.
func (c *NATSCluster) URL() string {
	urls := make([]string, len(c.Nodes))
	for i, n := range c.Nodes {
		urls[i] = n.URL
	}
	return strings.Join(urls, ",")
}

// Stop stops every node.
func (c *NATSCluster) Stop() {
	for _, n := range c.Nodes {
		n.Stop()
	}
}

// RunNATSCluster starts size huifang-nats processes that form one JetStream
// cluster (each with its store under dir/<name>), and returns once the
// cluster has elected its JetStream leader.
func RunNATSCluster(ctx context.Context, bin, dir string, size int) (*NATSCluster, error) {
	ports, err := freeLoopbackPorts(2 * size)
	if err != nil {
		return nil, err
	}
	routes := make([]string, size)
	for i := range size {
		routes[i] = "nats-route://127.0.0.1:" + strconv.Itoa(ports[size+i])
	}
	c := &NATSCluster{Nodes: make([]*NATSProcess, size)}
	errs := make([]error, size)
	var wg sync.WaitGroup
	for i := range size {
		name := fmt.Sprintf("nats-%d", i+1)
		wg.Go(func() {
			c.Nodes[i], errs[i] = runNATS(ctx, bin, "-name", name, "-port", strconv.Itoa(ports[i]),
				"-store", filepath.Join(dir, name), "-cluster-port", strconv.Itoa(ports[size+i]),
				"-routes", strings.Join(routes, ","))
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		for _, n := range c.Nodes {
			if n != nil {
				n.Stop()
			}
		}
		return nil, err
	}
	for _, n := range c.Nodes {
		if err := WaitJetStream(ctx, n.URL); err != nil {
			c.Stop()
			return nil, err
		}
	}
	return c, nil
}

func freeLoopbackPorts(n int) ([]int, error) {
	free, err := ports.Free(n)
	if err != nil {
		return nil, fmt.Errorf("stack: %w", err)
	}
	return free, nil
}
