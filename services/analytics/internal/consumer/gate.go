package consumer

import (
	"context"
	"errors"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/huifang/huifang/pkg/audit"
	"github.com/huifang/huifang/pkg/stream"
	"github.com/huifang/huifang/services/analytics/internal/app"
)

// Gate runs the consumer on one replica at a time (pkg/app's Gate: register
// it with rt.Consume(c, app.Gated(g))) and rebuilds the rollups on that
// replica (see rebuild.go).
//
// Only the replica holding the lease consumes (see Leader): a visit's
// product category comes from its service's ServiceCompleted and "won back"
// compares a customer's service with the one handled before it, both of
// which need the events in stream order. The other replicas stand by and
// take over when the leader stops or its lease expires.
type Gate struct {
	// Leader decides which replica consumes.
	Leader *Leader
	// App applies the replayed events, fills and swaps the shadow tables,
	// and says whether a migration asked for a rebuild.
	App *app.App
	// JS reads the stream for a rebuild.
	JS  jetstream.JetStream
	Log *slog.Logger
	// Service names the owner in the refusals a replay records.
	Service string
	// Refused is 1 while a rebuild a migration asked for is refused
	// because the stream no longer holds the whole history
	// (huifang_analytics_rebuild_refused); may be nil.
	Refused prometheus.Gauge
	// Batch is how many messages a rebuild applies per transaction.
	Batch int

	cur atomic.Pointer[term]
	// fault, when set, may fail a rebuild at a stage ("replay": in each
	// replayed batch's transaction; "swap": in the swap's, before its
	// commit). Tests inject failures with it.
	fault func(stage string) error
}

// term is what a leading Gate takes requests on.
type term struct {
	rebuilds chan rebuildRequest
	pauses   chan pauseRequest
	done     chan struct{}
}

// rebuildRequest is a caller's request for a rebuild: who asks (the audit
// log records it) and where the result goes.
type rebuildRequest struct {
	by    audit.Actor
	reply chan rebuildResult
}

// pauseRequest asks the leading loop to stop the consumer (stopped says
// when it has, or why it failed) until resume is closed.
type pauseRequest struct {
	stopped chan error
	resume  chan struct{}
}

// rebuildJob is a running rebuild.
type rebuildJob struct {
	// migration: a migration asked for it.
	migration bool

	mu sync.Mutex
	// cut is set once the rebuild has stopped the consumer to read the
	// stream's last sequence and catch up with it.
	cut bool
	// by are the callers it serves.
	by []audit.Actor
}

// join adds a caller to the rebuild; false once it took its cut (the
// caller waits for the next one).
func (j *rebuildJob) join(by audit.Actor) bool {
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.cut {
		return false
	}
	j.by = append(j.by, by)
	return true
}

// cutOff marks the cut and returns the callers the rebuild serves: no one
// joins after it.
func (j *rebuildJob) cutOff() []audit.Actor {
	j.mu.Lock()
	defer j.mu.Unlock()
	j.cut = true
	return slices.Clone(j.by)
}

type rebuildResult struct {
	lastSeq uint64
	err     error
	// migration: a rebuild a migration asked for; none: it found no request.
	migration, none bool
}

// StandbyRetry is how often a standby replica tries to take the lead.
const StandbyRetry = 2 * time.Second

// LockKey names the lease of the consumer.
const LockKey = "huifang.analytics.consumer/" + Durable

// DefaultBatch is how many messages a rebuild applies per transaction.
const DefaultBatch = 256

// RebuildRefusedMetricName is the gauge of a refused rebuild a migration asked for.
const RebuildRefusedMetricName = "huifang_analytics_rebuild_refused"

// NewRebuildRefusedGauge returns the gauge huifang_analytics_rebuild_refused.
func NewRebuildRefusedGauge() prometheus.Gauge {
	return prometheus.NewGauge(prometheus.GaugeOpts{
		Name: RebuildRefusedMetricName,
		Help: "1 while a rebuild a migration asked for is refused because the stream no longer holds the whole history (the figures are kept as they are); 0 otherwise. Set by the leading replica.",
	})
}

// NewGate returns the gate of the consumer: the lease on pool (DefaultLease
// long), the rollups rebuilt by a from the stream read through js.
func NewGate(a *app.App, pool *pgxpool.Pool, js jetstream.JetStream, log *slog.Logger) *Gate {
	return &Gate{App: a, JS: js, Log: log, Service: "analytics", Batch: DefaultBatch,
		Leader: &Leader{Pool: pool, Key: LockKey, Holder: NewHolder(), Lease: DefaultLease, Retry: StandbyRetry, Log: log}}
}

// Leading reports whether this replica consumes now.
func (g *Gate) Leading() bool { return g.Leader.Leading() }

// Run calls consume whenever this replica leads, until ctx ends; consume's
// context ends when the replica stops leading (and while a rebuild swaps
// its tables in, after which it is called again).
func (g *Gate) Run(ctx context.Context, consume func(context.Context) error) error {
	return g.Leader.Run(ctx, func(ctx context.Context) error { return g.lead(ctx, consume) })
}

// lead consumes until ctx ends (this replica stops leading), running
// rebuilds beside the consumer: first the one a migration asked for, then
// those Rebuild asks for. A rebuild pauses the consumer only for the end of
// its catch-up and its swap.
func (g *Gate) lead(ctx context.Context, consume func(context.Context) error) error {
	ctx, stop := context.WithCancel(ctx)
	t := &term{rebuilds: make(chan rebuildRequest), pauses: make(chan pauseRequest), done: make(chan struct{})}
	var wg sync.WaitGroup
	g.cur.Store(t)
	defer func() {
		g.cur.CompareAndSwap(t, nil)
		close(t.done)
		stop()
		wg.Wait()
	}()
	g.recordOrigin(ctx)

	results := make(chan rebuildResult, 1)
	var running *rebuildJob // nil when none runs
	// waiters wait for the running rebuild; queued for the next one (they
	// came after the running one took its cut of the stream).
	var waiters, queued []rebuildRequest
	var retry <-chan time.Time
	failures := 0
	start := func(migration bool, reqs []rebuildRequest) {
		j := &rebuildJob{migration: migration}
		for _, r := range reqs {
			j.join(r.by)
		}
		running = j
		wg.Add(1)
		go func() {
			defer wg.Done()
			results <- g.rebuildJob(ctx, t, j, migration)
		}()
	}
	start(true, nil)

	for {
		runCtx, cancel := context.WithCancel(ctx)
		done := make(chan error, 1)
		go func() { done <- consume(runCtx) }()
	consuming:
		for {
			select {
			case <-ctx.Done():
				cancel()
				return <-done
			case err := <-done:
				cancel()
				return err
			case req := <-t.rebuilds:
				// A call joins the running rebuild until it takes its cut of
				// the stream (its last sequence); later calls get the next one.
				switch {
				case running == nil:
					waiters = append(waiters, req)
					start(false, waiters)
				case running.join(req.by):
					waiters = append(waiters, req)
				default:
					queued = append(queued, req)
				}
			case res := <-results:
				running = nil
				if res.none {
					queued = append(waiters, queued...)
				} else {
					for _, w := range waiters {
						w.reply <- res
					}
				}
				waiters = nil
				if len(queued) > 0 {
					waiters, queued = queued, nil
					start(false, waiters)
				}
				if res.migration && res.err != nil && !errors.Is(res.err, app.ErrStreamIncomplete) {
					failures++
					retry = time.After(backoff(5*time.Second, 5*time.Minute, failures))
				}
			case <-retry:
				retry = nil
				if running == nil {
					start(true, nil)
				}
			case p := <-t.pauses:
				cancel()
				err := <-done
				p.stopped <- err
				if err != nil {
					return err
				}
				select {
				case <-p.resume:
				case <-ctx.Done():
					return nil
				}
				break consuming
			}
		}
	}
}

// pause stops the consumer of term t until resume is called.
func (g *Gate) pause(ctx context.Context, t *term) (resume func(), err error) {
	p := pauseRequest{stopped: make(chan error, 1), resume: make(chan struct{})}
	select {
	case t.pauses <- p:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	var once sync.Once
	resume = func() { once.Do(func() { close(p.resume) }) }
	if err := <-p.stopped; err != nil {
		resume()
		return nil, err
	}
	return resume, nil
}

// Rebuild asks the leading replica's gate to rebuild and waits until the
// rebuilt tables are in use (or the rebuild failed or was refused, leaving
// the figures as they were). A call while a rebuild runs joins it when that
// one has not yet taken its cut of the stream, and otherwise gets the next.
// A caller that stops waiting does not stop the rebuild. A standby answers
// app.ErrStandby. The swap records by in the audit log.
func (g *Gate) Rebuild(ctx context.Context, by audit.Actor) (uint64, error) {
	t := g.cur.Load()
	if t == nil || !g.Leading() {
		return 0, app.ErrStandby
	}
	reply := make(chan rebuildResult, 1)
	select {
	case t.rebuilds <- rebuildRequest{by: by, reply: reply}:
	case <-t.done:
		return 0, app.ErrStandby
	case <-ctx.Done():
		return 0, ctx.Err()
	}
	select {
	case res := <-reply:
		return res.lastSeq, res.err
	case <-t.done:
		select {
		case res := <-reply:
			return res.lastSeq, res.err
		default:
			return 0, app.ErrStandby
		}
	case <-ctx.Done():
		return 0, ctx.Err()
	}
}

// rebuildJob runs one rebuild: a migration's (when one asked for it; none
// otherwise) or a caller's, and logs and exposes how it ended.
func (g *Gate) rebuildJob(ctx context.Context, t *term, j *rebuildJob, migration bool) rebuildResult {
	if migration {
		requested, err := g.App.RebuildRequested(ctx)
		if err != nil {
			if ctx.Err() == nil {
				g.Log.WarnContext(ctx, "could not read the rebuild requests; trying again", "err", err)
			}
			return rebuildResult{err: err, migration: true}
		}
		if !requested {
			g.setRefused(0)
			return rebuildResult{none: true, migration: true}
		}
		g.Log.InfoContext(ctx, "a migration asked for a rebuild of the rollups")
	}
	seq, err := g.rebuild(ctx, t, j)
	switch {
	case err == nil:
		g.setRefused(0)
	case errors.Is(err, app.ErrStreamIncomplete) && migration:
		g.setRefused(1)
		g.Log.ErrorContext(ctx, "the rebuild a migration asked for is refused; the figures stay as they are (rows of rebuild_requests remain; see the README's Rebuild)", "err", err)
	case errors.Is(err, app.ErrStreamIncomplete):
		g.Log.WarnContext(ctx, "rebuild refused; the figures stay as they are", "err", err)
	case ctx.Err() != nil:
		g.Log.InfoContext(ctx, "rebuild stopped with the term; the figures stay as they were", "err", err)
	default:
		g.Log.ErrorContext(ctx, "rebuild failed; the figures stay as they were", "err", err)
	}
	return rebuildResult{lastSeq: seq, err: err, migration: migration}
}

func (g *Gate) setRefused(v float64) {
	if g.Refused != nil {
		g.Refused.Set(v)
	}
}

// recordOrigin remembers when the stream was created the first time a
// leader sees it (see app.CheckHistory); NATS being away only delays it.
func (g *Gate) recordOrigin(ctx context.Context) {
	ictx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	s, err := g.JS.Stream(ictx, stream.EventsStream)
	if err == nil {
		err = g.App.RecordStreamOrigin(ictx, history(s.CachedInfo()))
	}
	if err != nil && ctx.Err() == nil {
		g.Log.WarnContext(ctx, "could not record the stream's origin; the next term will", "stream", stream.EventsStream, "err", err)
	}
}

// backoff is base doubled for each failure after the first, up to limit.
func backoff(base, limit time.Duration, failures int) time.Duration {
	d := base
	for i := 1; i < failures && d < limit; i++ {
		d *= 2
	}
	return min(d, limit)
}
