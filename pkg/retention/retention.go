// Package retention enforces how long each class of data is kept: a purge
// per class on a schedule, in bounded batches, with metrics that say what
// was purged and when a purge last succeeded (docs/privacy.md, "How long").
package retention

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/huifang/huifang/pkg/loop"
)

// Batch bounds one purge statement, so that a large backlog is deleted in
// short transactions.
const Batch = 10000

// Class is one class of data and how long it is kept.
type Class struct {
	// Name names the class in metrics and logs ("outbox", "rejected_events", ...).
	Name string
	// Retain is how long an item is kept; zero or less: kept for good (no purge).
	Retain time.Duration
	// Purge deletes (or strips of personal data) at most limit items older
	// than cutoff and returns how many it handled.
	Purge func(ctx context.Context, cutoff time.Time, limit int) (int, error)
}

// Metrics are the purges' figures, per class.
type Metrics struct {
	purged  *prometheus.CounterVec
	last    *prometheus.GaugeVec
	retain  *prometheus.GaugeVec
	collect []prometheus.Collector
}

// NewMetrics makes the purges' metrics; register them with Collectors.
func NewMetrics() *Metrics {
	m := &Metrics{
		purged: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "huifang_retention_purged_total",
			Help: "Items purged because their class's retention ran out, by class."}, []string{"class"}),
		last: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "huifang_retention_last_success_timestamp_seconds",
			Help: "When the class's purge last ran to the end without error (Unix time)."}, []string{"class"}),
		retain: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "huifang_retention_seconds",
			Help: "How long the class's items are kept; 0: kept for good."}, []string{"class"}),
	}
	m.collect = []prometheus.Collector{m.purged, m.last, m.retain}
	return m
}

// Collectors are the metrics to register.
func (m *Metrics) Collectors() []prometheus.Collector { return m.collect }

// Loop returns the loop that purges c every interval (nil when c is kept
// for good): each round deletes up to Batch items older than the
// retention; a full round is followed at once by the next.
func (m *Metrics) Loop(c Class, every time.Duration, log *slog.Logger, now func() time.Time) *loop.Loop {
	m.retain.WithLabelValues(c.Name).Set(max(0, c.Retain.Seconds()))
	m.purged.WithLabelValues(c.Name)
	if c.Retain <= 0 {
		return nil
	}
	return &loop.Loop{Name: "retention-" + c.Name, Every: every, Batch: Batch, Log: log,
		Round: func(ctx context.Context) (int, error) {
			n, err := c.Purge(ctx, now().Add(-c.Retain), Batch)
			if err != nil {
				return n, fmt.Errorf("retention: purge %s: %w", c.Name, err)
			}
			m.purged.WithLabelValues(c.Name).Add(float64(n))
			if n < Batch {
				m.last.WithLabelValues(c.Name).Set(float64(now().Unix()))
			}
			return n, nil
		}}
}
