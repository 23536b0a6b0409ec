// Package stack runs Huifang's five services as real processes, the way
// `make run` and the end-to-end test need them: each with its own ports and
// log, started together, checked for readiness on /readyz, and stopped,
// killed or restarted one by one.
package stack

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/huifang/huifang/pkg/auth"
	"github.com/huifang/huifang/pkg/issuer"
	"github.com/huifang/huifang/pkg/ports"
)

// Services lists the five services in the order of the pipeline, which is
// also the order of their default ports.
func Services() []string {
	return []string{"intake", "scheduler", "dispatch", "feedback", "analytics"}
}

// Ports are the two ports of a service.
type Ports struct {
	GRPC int
	HTTP int
}

// DefaultPorts are a service's ports: gRPC 7001–7005 and HTTP 8001–8005 in
// the order of Services, each moved by offset.
func DefaultPorts(service string, offset int) Ports {
	i := slices.Index(Services(), service)
	return Ports{GRPC: 7001 + i + offset, HTTP: 8001 + i + offset}
}

// FreePorts asks the kernel for a free loopback port for each service, for
// tests that run next to other stacks.
func FreePorts() (map[string]Ports, error) {
	return FreePortsFor(Services()...)
}

// FreePortsFor picks free loopback ports for each of the named services or
// instances (see Stack.Instances), out of the kernel's ephemeral range
// (package ports), so that no listener on port 0 takes one before the
// service listens on it.
func FreePortsFor(names ...string) (map[string]Ports, error) {
	free, err := ports.Free(2 * len(names))
	if err != nil {
		return nil, fmt.Errorf("stack: %w", err)
	}
	out := map[string]Ports{}
	for i, s := range names {
		out[s] = Ports{GRPC: free[2*i], HTTP: free[2*i+1]}
	}
	return out, nil
}

// Config says how to run the services.
type Config struct {
	// BinDir holds the binaries, named after the services.
	BinDir      string
	DatabaseURL string
	NATSURL     string
	// PortOffset moves the default ports (DefaultPorts).
	PortOffset int
	// Ports, when it has an entry for a service or an instance, sets its ports.
	Ports map[string]Ports
	// Replicas is how many processes of a service run (1 when unset). The
	// first is named after the service, the others <service>-2, <service>-3...
	// (see Instances); replica k's default ports are moved by a further
	// 100×(k-1).
	Replicas map[string]int
	// Env holds extra variables per service or instance ("NAME=value"); they
	// win over everything else, an instance's over its service's.
	Env map[string][]string
	// NATSUsers: the NATS server takes Huifang's users (HuifangUsers); each
	// service connects as its own (NATS_USER, NATS_PASSWORD), not as the
	// user of NATSURL.
	NATSUsers bool
	// Auth says which tokens the services accept (AUTH_ISSUER, AUTH_AUDIENCE,
	// AUTH_JWKS_URL); the issuer is required.
	Auth auth.Config
	// ClientSecrets are the OAuth 2.0 client secrets, by service, of the
	// services that call another on their own account (dispatch asks
	// intake for contacts): RegisterClients registers them at an issuer.
	ClientSecrets map[string]string
	// LogLevel is passed as LOG_LEVEL when set.
	LogLevel string
	// LogDir, when set, receives <service>.log for each service (appended to
	// on restarts). Otherwise output goes to Output, each line prefixed with
	// the service's name.
	LogDir string
	Output io.Writer
	// ReadyTimeout bounds the wait for /readyz; 60 s when zero.
	ReadyTimeout time.Duration
	// StopGrace is how long a service may take to stop after SIGTERM before
	// it is killed; 15 s when zero.
	StopGrace time.Duration
	// Log receives the stack's own messages; slog.Default() when nil.
	Log *slog.Logger
}

// Stack is the set of service processes.
type Stack struct {
	cfg Config

	mu    sync.Mutex
	procs map[string]*process
	env   map[string][]string
	out   *syncWriter
}

type process struct {
	cmd      *exec.Cmd
	logFile  *os.File
	done     chan struct{}
	err      error // set before done is closed
	stopping bool  // guarded by Stack.mu
}

// New checks cfg and returns a stack with nothing running yet.
func New(cfg Config) (*Stack, error) {
	if cfg.BinDir == "" || cfg.DatabaseURL == "" || cfg.NATSURL == "" || cfg.Auth.Issuer == "" {
		return nil, errors.New("stack: BinDir, DatabaseURL, NATSURL and Auth.Issuer are required")
	}
	for _, s := range Services() {
		if _, err := os.Stat(filepath.Join(cfg.BinDir, s)); err != nil {
			return nil, fmt.Errorf("stack: binary of %s: %w (build it with: go build -o %s/%s ./services/%s/cmd/%s)", s, err, cfg.BinDir, s, s, s)
		}
	}
	for svc, n := range cfg.Replicas {
		if !slices.Contains(Services(), svc) || n < 1 {
			return nil, fmt.Errorf("stack: replicas: %d of %q (want a service and at least 1)", n, svc)
		}
	}
	if cfg.ReadyTimeout == 0 {
		cfg.ReadyTimeout = 60 * time.Second
	}
	if cfg.StopGrace == 0 {
		cfg.StopGrace = 15 * time.Second
	}
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	if cfg.Output == nil {
		cfg.Output = os.Stderr
	}
	if cfg.LogDir != "" {
		if err := os.MkdirAll(cfg.LogDir, 0o755); err != nil {
			return nil, fmt.Errorf("stack: log dir: %w", err)
		}
	}
	env := map[string][]string{}
	for k, v := range cfg.Env {
		env[k] = slices.Clone(v)
	}
	return &Stack{cfg: cfg, procs: map[string]*process{}, env: env, out: &syncWriter{w: cfg.Output}}, nil
}

// Instances names every process the stack runs: each service, followed by
// its further replicas (<service>-2, ...).
func (s *Stack) Instances() []string { return Instances(s.cfg.Replicas) }

// Instances names the processes that run with the given replicas per
// service: each service, followed by its further replicas (<service>-2, ...).
func Instances(replicas map[string]int) []string {
	var out []string
	for _, svc := range Services() {
		out = append(out, svc)
		for k := 2; k <= replicas[svc]; k++ {
			out = append(out, svc+"-"+strconv.Itoa(k))
		}
	}
	return out
}

// ServiceOf returns the service an instance name belongs to ("scheduler-2"
// → "scheduler"), and its replica number (1 for the service's own name).
func ServiceOf(instance string) (string, int) {
	if i := strings.LastIndexByte(instance, '-'); i > 0 {
		if k, err := strconv.Atoi(instance[i+1:]); err == nil && k > 1 && slices.Contains(Services(), instance[:i]) {
			return instance[:i], k
		}
	}
	return instance, 1
}

// Start runs all five services and waits until each is ready; when one
// fails, it stops the others and returns the error.
func Start(ctx context.Context, cfg Config) (*Stack, error) {
	s, err := New(cfg)
	if err != nil {
		return nil, err
	}
	if err := s.StartAll(ctx); err != nil {
		s.StopAll(context.WithoutCancel(ctx))
		return nil, err
	}
	return s, nil
}

// StartAll starts every service that is not running, all at once, and waits
// until all are ready.
func (s *Stack) StartAll(ctx context.Context) error {
	var started []string
	for _, name := range s.Instances() {
		if s.Running(name) {
			continue
		}
		if err := s.spawn(name); err != nil {
			return err
		}
		started = append(started, name)
	}
	errs := make([]error, len(started))
	var wg sync.WaitGroup
	for i, name := range started {
		wg.Go(func() { errs[i] = s.waitReady(ctx, name) })
	}
	wg.Wait()
	return errors.Join(errs...)
}

// StartService starts one service and waits until it is ready.
func (s *Stack) StartService(ctx context.Context, name string) error {
	if s.Running(name) {
		return fmt.Errorf("stack: %s is already running", name)
	}
	if err := s.spawn(name); err != nil {
		return err
	}
	return s.waitReady(ctx, name)
}

// SetEnv replaces the extra environment of a service for its next start.
func (s *Stack) SetEnv(name string, env ...string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.env[name] = slices.Clone(env)
}

// Restart stops a service gracefully and starts it again.
func (s *Stack) Restart(ctx context.Context, name string) error {
	if err := s.Stop(ctx, name); err != nil {
		return err
	}
	return s.StartService(ctx, name)
}

// Stop sends SIGTERM to a service and waits for it to exit, killing it
// after the grace period. Stopping a service that is not running is a no-op.
// The error is the process's exit status when it did not exit cleanly.
func (s *Stack) Stop(ctx context.Context, name string) error {
	p := s.take(name)
	if p == nil {
		return nil
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	// A paused process would never see the SIGTERM.
	_ = p.cmd.Process.Signal(syscall.SIGCONT)
	timer := time.NewTimer(s.cfg.StopGrace)
	defer timer.Stop()
	select {
	case <-p.done:
		s.cfg.Log.Info("stopped", "service", name)
		return exitErr(name, p.err)
	case <-timer.C:
		s.cfg.Log.Warn("did not stop in time; killing it", "service", name, "grace", s.cfg.StopGrace)
	case <-ctx.Done():
		s.cfg.Log.Warn("stop cancelled; killing it", "service", name)
	}
	_ = p.cmd.Process.Kill()
	<-p.done
	return fmt.Errorf("stack: %s killed after SIGTERM was not enough", name)
}

// Kill ends a service with SIGKILL, as a crash would, and waits until it is gone.
func (s *Stack) Kill(name string) {
	p := s.take(name)
	if p == nil {
		return
	}
	_ = p.cmd.Process.Kill()
	<-p.done
	s.cfg.Log.Info("killed", "service", name)
}

// Pause stops a service's process with SIGSTOP (as a long GC pause, a
// frozen VM or a debugger would): it holds its connections, leases and
// locks but does nothing until Resume.
func (s *Stack) Pause(name string) error { return s.signal(name, syscall.SIGSTOP) }

// Resume lets a paused service go on (SIGCONT).
func (s *Stack) Resume(name string) error { return s.signal(name, syscall.SIGCONT) }

func (s *Stack) signal(name string, sig syscall.Signal) error {
	s.mu.Lock()
	p := s.procs[name]
	s.mu.Unlock()
	if p == nil {
		return fmt.Errorf("stack: %s is not running", name)
	}
	if err := p.cmd.Process.Signal(sig); err != nil {
		return fmt.Errorf("stack: %s: %s: %w", sig, name, err)
	}
	s.cfg.Log.Info("signalled", "service", name, "signal", sig.String())
	return nil
}

// Pid is the process id of a running service, 0 when it does not run.
func (s *Stack) Pid(name string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	if p := s.procs[name]; p != nil {
		return p.cmd.Process.Pid
	}
	return 0
}

// StopAll stops all services at once (they share nothing but durable
// streams and tables, so no order is needed) and returns what went wrong.
func (s *Stack) StopAll(ctx context.Context) error {
	names := s.Instances()
	errs := make([]error, len(names))
	var wg sync.WaitGroup
	for i, n := range names {
		wg.Go(func() { errs[i] = s.Stop(ctx, n) })
	}
	wg.Wait()
	return errors.Join(errs...)
}

// Running says whether a service's process is alive.
func (s *Stack) Running(name string) bool {
	s.mu.Lock()
	p := s.procs[name]
	s.mu.Unlock()
	if p == nil {
		return false
	}
	select {
	case <-p.done:
		return false
	default:
		return true
	}
}

// Ports returns the ports a service listens on.
func (s *Stack) Ports(name string) Ports {
	if p, ok := s.cfg.Ports[name]; ok {
		return p
	}
	svc, k := ServiceOf(name)
	return DefaultPorts(svc, s.cfg.PortOffset+100*(k-1))
}

// GRPCAddr is the host:port of a service's gRPC server.
func (s *Stack) GRPCAddr(name string) string {
	return "127.0.0.1:" + strconv.Itoa(s.Ports(name).GRPC)
}

// HTTPAddr is the host:port of a service's health and metrics server.
func (s *Stack) HTTPAddr(name string) string {
	return "127.0.0.1:" + strconv.Itoa(s.Ports(name).HTTP)
}

// LogPath is the log file of a service, or "" when output is not logged to files.
func (s *Stack) LogPath(name string) string {
	if s.cfg.LogDir == "" {
		return ""
	}
	return filepath.Join(s.cfg.LogDir, name+".log")
}

// LogTail returns the last n lines of a service's log file.
func (s *Stack) LogTail(name string, n int) string {
	path := s.LogPath(name)
	if path == "" {
		return ""
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// take removes a running service from the stack, marking it as stopping so
// that its exit is not reported as a crash.
func (s *Stack) take(name string) *process {
	s.mu.Lock()
	defer s.mu.Unlock()
	p := s.procs[name]
	if p == nil {
		return nil
	}
	p.stopping = true
	delete(s.procs, name)
	return p
}

func (s *Stack) spawn(name string) error {
	if !slices.Contains(s.Instances(), name) {
		return fmt.Errorf("stack: unknown service %q", name)
	}
	svc, _ := ServiceOf(name)
	ports := s.Ports(name)
	s.mu.Lock()
	extra := slices.Clone(s.env[svc])
	if name != svc {
		extra = append(extra, s.env[name]...)
	}
	s.mu.Unlock()
	cmd := exec.Command(filepath.Join(s.cfg.BinDir, svc))
	natsURL := s.cfg.NATSURL
	if s.cfg.NATSUsers {
		natsURL = withoutUser(natsURL)
	}
	cmd.Env = append(baseEnv(), "DATABASE_URL="+s.cfg.DatabaseURL, "NATS_URL="+natsURL,
		"GRPC_ADDR=127.0.0.1:"+strconv.Itoa(ports.GRPC), "HTTP_ADDR=127.0.0.1:"+strconv.Itoa(ports.HTTP))
	if s.cfg.NATSUsers {
		cmd.Env = append(cmd.Env, "NATS_USER="+svc, "NATS_PASSWORD="+svc)
	}
	cmd.Env = append(cmd.Env, "AUTH_ISSUER="+s.cfg.Auth.Issuer, "AUTH_AUDIENCE="+s.cfg.Auth.Audience, "AUTH_JWKS_URL="+s.cfg.Auth.JWKSURL)
	if secret, ok := s.cfg.ClientSecrets[svc]; ok {
		cmd.Env = append(cmd.Env, "AUTH_CLIENT_ID="+svc, "AUTH_CLIENT_SECRET="+secret)
	}
	switch svc {
	case "dispatch": // contacts from intake, a task's questionnaire from feedback
		cmd.Env = append(cmd.Env, "INTAKE_ADDR="+s.GRPCAddr("intake"), "FEEDBACK_ADDR="+s.GRPCAddr("feedback"))
	case "intake": // ExportCustomerData asks the others for their part
		for _, peer := range []string{"scheduler", "dispatch", "feedback", "analytics"} {
			cmd.Env = append(cmd.Env, strings.ToUpper(peer)+"_ADDR="+s.GRPCAddr(peer))
		}
	}
	// A development and test stack: intake may use the committed
	// development keys unless Env gives it keys of its own.
	cmd.Env = append(cmd.Env, "DEV_MODE=true")
	if s.cfg.LogLevel != "" {
		cmd.Env = append(cmd.Env, "LOG_LEVEL="+s.cfg.LogLevel)
	}
	cmd.Env = append(cmd.Env, extra...)
	cmd.SysProcAttr = sysProcAttr()
	p := &process{cmd: cmd, done: make(chan struct{})}
	if s.cfg.LogDir != "" {
		f, err := os.OpenFile(s.LogPath(name), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
		if err != nil {
			return fmt.Errorf("stack: log of %s: %w", name, err)
		}
		p.logFile = f
		cmd.Stdout, cmd.Stderr = f, f
	} else {
		w := &prefixWriter{prefix: name + " | ", w: s.out}
		cmd.Stdout, cmd.Stderr = w, w
	}
	if err := cmd.Start(); err != nil {
		if p.logFile != nil {
			_ = p.logFile.Close()
		}
		return fmt.Errorf("stack: start %s: %w", name, err)
	}
	s.mu.Lock()
	s.procs[name] = p
	s.mu.Unlock()
	s.cfg.Log.Info("started", "service", name, "pid", cmd.Process.Pid, "grpc", s.GRPCAddr(name), "http", s.HTTPAddr(name), "extra_env", extra)
	go func() {
		p.err = cmd.Wait()
		if p.logFile != nil {
			_ = p.logFile.Close()
		}
		s.mu.Lock()
		expected := p.stopping
		s.mu.Unlock()
		if !expected {
			s.cfg.Log.Error("service exited on its own", "service", name, "err", p.err, "log", s.LogPath(name))
		}
		close(p.done)
	}()
	return nil
}

// baseEnv is this process's environment without the variables the stack
// sets, in any of their per-service forms.
func baseEnv() []string {
	owned := []string{"DATABASE_URL", "NATS_URL", "NATS_USER", "NATS_PASSWORD", "GRPC_ADDR", "HTTP_ADDR", "AUTH_ISSUER", "AUTH_AUDIENCE", "AUTH_JWKS_URL",
		"AUTH_CLIENT_ID", "AUTH_CLIENT_SECRET", "AUTH_TOKEN_URL", "INTAKE_ADDR", "SCHEDULER_ADDR", "DISPATCH_ADDR", "FEEDBACK_ADDR", "ANALYTICS_ADDR"}
	var env []string
	for _, kv := range os.Environ() {
		key, _, _ := strings.Cut(kv, "=")
		drop := false
		for _, o := range owned {
			if key == o {
				drop = true
			}
			for _, svc := range Services() {
				if key == strings.ToUpper(svc)+"_"+o {
					drop = true
				}
			}
		}
		if !drop {
			env = append(env, kv)
		}
	}
	return env
}

func (s *Stack) waitReady(ctx context.Context, name string) error {
	s.mu.Lock()
	p := s.procs[name]
	s.mu.Unlock()
	if p == nil {
		return fmt.Errorf("stack: %s is not running", name)
	}
	ctx, cancel := context.WithTimeout(ctx, s.cfg.ReadyTimeout)
	defer cancel()
	client := &http.Client{Timeout: time.Second}
	url := "http://" + s.HTTPAddr(name) + "/readyz"
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			return fmt.Errorf("stack: %w", err)
		}
		if resp, err := client.Do(req); err == nil {
			_, _ = io.Copy(io.Discard, resp.Body)
			_ = resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				s.cfg.Log.Info("ready", "service", name)
				return nil
			}
		}
		select {
		case <-p.done:
			return fmt.Errorf("stack: %s exited before it was ready (%v)%s", name, p.err, s.logHint(name))
		case <-ctx.Done():
			return fmt.Errorf("stack: %s not ready on %s within %s%s", name, url, s.cfg.ReadyTimeout, s.logHint(name))
		case <-tick.C:
		}
	}
}

func (s *Stack) logHint(name string) string {
	if path := s.LogPath(name); path != "" {
		return "; log " + path + ":\n" + s.LogTail(name, 20)
	}
	return ""
}

func exitErr(name string, err error) error {
	if err == nil {
		return nil
	}
	return fmt.Errorf("stack: %s: %w", name, err)
}

// syncWriter serialises writes of several processes to one writer.
type syncWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (w *syncWriter) Write(b []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.w.Write(b)
}

// prefixWriter writes whole lines, each with a prefix; a partial line waits
// for its end.
type prefixWriter struct {
	prefix string
	w      io.Writer
	buf    []byte
}

func (w *prefixWriter) Write(b []byte) (int, error) {
	w.buf = append(w.buf, b...)
	for {
		i := slices.Index(w.buf, '\n')
		if i < 0 {
			break
		}
		line := append([]byte(w.prefix), w.buf[:i+1]...)
		w.buf = w.buf[i+1:]
		if _, err := w.w.Write(line); err != nil {
			return len(b), err
		}
	}
	return len(b), nil
}

// withoutUser is a NATS URL list without user information.
func withoutUser(urls string) string {
	parts := strings.Split(urls, ",")
	for i, p := range parts {
		if u, err := url.Parse(p); err == nil && u.User != nil {
			u.User = nil
			parts[i] = u.String()
		}
	}
	return strings.Join(parts, ",")
}

// RegisterClients gives each service that calls another on its own
// account (dispatch) a new client secret at the issuer, for a token of the
// service role, and returns the secrets for Config.ClientSecrets.
func RegisterClients(is *issuer.Issuer) map[string]string {
	secrets := map[string]string{}
	for _, svc := range []string{"intake", "dispatch"} {
		secrets[svc] = rand.Text()
		is.AddClient(svc, secrets[svc], issuer.ServiceAccount(svc))
	}
	return secrets
}
