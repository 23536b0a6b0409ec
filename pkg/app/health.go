package app

import (
	"context"
	"fmt"
	"log/slog"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
)

// The dependencies a service watches.
const (
	DependencyPostgres = "postgres"
	DependencyNATS     = "nats"
)

// Health watches the service's dependencies (Postgres and NATS with
// JetStream) once a second. While one is away the service is not ready
// (/readyz 503 with the reason, gRPC health NOT_SERVING), consumers treat
// failures as of the moment (retried without limit, never dead-lettered),
// and huifang_dependency_down_seconds says for how long; a change is logged
// once, when it happens.
type Health struct {
	log *slog.Logger
	now func() time.Time
	// onChange is told the reason the service cannot serve ("" when it can).
	onChange func(why string)

	mu   sync.Mutex
	deps map[string]*dependency
}

type dependency struct {
	up    bool
	since time.Time
	err   string
}

func newHealth(log *slog.Logger, onChange func(string)) *Health {
	return &Health{log: log, now: time.Now, onChange: onChange, deps: map[string]*dependency{}}
}

// Set records a dependency's state: up when err is nil.
func (h *Health) Set(name string, err error) {
	h.mu.Lock()
	d, seen := h.deps[name]
	if !seen {
		d = &dependency{up: true, since: h.now()}
		h.deps[name] = d
	}
	up := err == nil
	changed := d.up != up
	if changed {
		d.up, d.since = up, h.now()
	}
	was := d.since
	if err != nil {
		d.err = err.Error()
	}
	why := h.whyLocked()
	h.mu.Unlock()
	if !changed {
		return
	}
	if up {
		h.log.Info("dependency is back", "dependency", name, "after", h.now().Sub(was).Round(time.Millisecond))
	} else {
		h.log.Error("dependency is away: not ready; work waits and is retried", "dependency", name, "err", err)
	}
	if h.onChange != nil {
		h.onChange(why)
	}
}

// Up tells whether the dependency was up at the last look (true before the first).
func (h *Health) Up(name string) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	d, ok := h.deps[name]
	return !ok || d.up
}

// Why says which dependencies are away and since when, "" when none is.
func (h *Health) Why() string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.whyLocked()
}

func (h *Health) whyLocked() string {
	var parts []string
	for name, d := range h.deps {
		if !d.up {
			parts = append(parts, fmt.Sprintf("%s away for %s: %s", name, h.now().Sub(d.since).Round(time.Second), d.err))
		}
	}
	sort.Strings(parts)
	return strings.Join(parts, "; ")
}

var (
	dependencyUpDesc = prometheus.NewDesc("huifang_dependency_up",
		"1 when the service reaches the dependency (postgres, nats), 0 while it is away.", []string{"dependency"}, nil)
	dependencyDownDesc = prometheus.NewDesc("huifang_dependency_down_seconds",
		"How long the dependency has been away (0 while it is up).", []string{"dependency"}, nil)
)

// Describe implements prometheus.Collector.
func (h *Health) Describe(ch chan<- *prometheus.Desc) {
	ch <- dependencyUpDesc
	ch <- dependencyDownDesc
}

// Collect implements prometheus.Collector.
func (h *Health) Collect(ch chan<- prometheus.Metric) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, name := range []string{DependencyPostgres, DependencyNATS} {
		up, down := 1.0, 0.0
		if d, ok := h.deps[name]; ok && !d.up {
			up, down = 0, h.now().Sub(d.since).Seconds()
		}
		ch <- prometheus.MustNewConstMetric(dependencyUpDesc, prometheus.GaugeValue, up, name)
		ch <- prometheus.MustNewConstMetric(dependencyDownDesc, prometheus.GaugeValue, down, name)
	}
}

// probe looks at Postgres and NATS once, each bounded by timeout.
func (h *Health) probe(ctx context.Context, pool *pgxpool.Pool, nc *nats.Conn, js jetstream.JetStream, timeout time.Duration) {
	pctx, cancel := context.WithTimeout(ctx, timeout)
	err := pool.Ping(pctx)
	cancel()
	if ctx.Err() != nil {
		return
	}
	h.Set(DependencyPostgres, err)
	var natsErr error
	if !nc.IsConnected() {
		natsErr = fmt.Errorf("not connected (%s)", nc.Status())
	} else {
		jctx, cancel := context.WithTimeout(ctx, timeout)
		_, natsErr = js.AccountInfo(jctx)
		cancel()
	}
	if ctx.Err() != nil {
		return
	}
	h.Set(DependencyNATS, natsErr)
}
