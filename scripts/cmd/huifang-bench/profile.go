package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	"github.com/huifang/huifang/pkg/ports"

	"github.com/huifang/huifang/scripts/internal/stack"
)

// profiler takes CPU profiles of the services and the NATS server during
// the burst (-profile): each process serves its runtime profiles on a
// loopback port of its own (PPROF_ADDR; huifang-nats -prof-port).
type profiler struct {
	dir     string
	seconds int
	ports   map[string]int // process → its profile port
	wg      sync.WaitGroup
	mu      sync.Mutex
	files   map[string]string
	errs    []error
}

// newProfiler picks the processes' profile ports; nil when -profile is not
// set.
func newProfiler(cfg config) (*profiler, error) {
	if cfg.profile == "" {
		return nil, nil
	}
	if err := os.MkdirAll(cfg.profile, 0o755); err != nil {
		return nil, fmt.Errorf("-profile: %w", err)
	}
	names := append(stack.Services(), "nats-server")
	free, err := ports.Free(len(names))
	if err != nil {
		return nil, fmt.Errorf("-profile: %w", err)
	}
	p := &profiler{dir: cfg.profile, seconds: cfg.profileSeconds, ports: map[string]int{}, files: map[string]string{}}
	for i, n := range names {
		p.ports[n] = free[i]
	}
	return p, nil
}

// natsArgs are huifang-nats's flags that serve its profiles.
func (p *profiler) natsArgs() []string {
	if p == nil {
		return nil
	}
	return []string{"-prof-port", strconv.Itoa(p.ports["nats-server"])}
}

// env gives each service the address of its profiles.
func (p *profiler) env() map[string][]string {
	if p == nil {
		return nil
	}
	env := map[string][]string{}
	for _, s := range stack.Services() {
		env[s] = []string{"PPROF_ADDR=127.0.0.1:" + strconv.Itoa(p.ports[s])}
	}
	return env
}

// start asks every process for a CPU profile of the next p.seconds.
func (p *profiler) start(ctx context.Context) {
	if p == nil {
		return
	}
	for name, port := range p.ports {
		p.wg.Go(func() {
			file := filepath.Join(p.dir, name+".pprof")
			err := fetchProfile(ctx, fmt.Sprintf("http://127.0.0.1:%d/debug/pprof/profile?seconds=%d", port, p.seconds), file, time.Duration(p.seconds)*time.Second+time.Minute)
			p.mu.Lock()
			defer p.mu.Unlock()
			if err != nil {
				p.errs = append(p.errs, fmt.Errorf("profile of %s: %w", name, err))
				return
			}
			p.files[name] = file
		})
	}
}

// wait returns the profiles written, by process, and what failed.
func (p *profiler) wait() (map[string]string, []error) {
	if p == nil {
		return nil, nil
	}
	p.wg.Wait()
	return p.files, p.errs
}

func fetchProfile(ctx context.Context, url, file string, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		return fmt.Errorf("%s: %s", resp.Status, b)
	}
	f, err := os.Create(file)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, resp.Body); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
