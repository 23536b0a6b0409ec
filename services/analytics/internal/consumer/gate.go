package consumer

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/huifang/huifang/pkg/stream"
	"github.com/huifang/huifang/services/analytics/internal/app"
)

// Gate runs the consumer on one replica at a time (pkg/app's Gate: register
// it with rt.Consume(c, app.Gated(g))) and rebuilds: stop the consumer,
// reset the rollups and the inbox, delete the durable consumer, and start
// it again from the first message of the stream.
//
// Only the replica holding the leader lock consumes (see Leader): a visit's
// product category comes from its service's ServiceCompleted and "won back"
// compares a customer's service with the one handled before it, both of
// which need the events in stream order. The other replicas stand by and
// take over when the leader stops.
type Gate struct {
	// Leader decides which replica consumes.
	Leader *Leader
	// App resets the rollups (ResetRollups) and says whether a migration
	// asked for a rebuild.
	App *app.App
	// JS deletes the durable consumer and reads the stream's last sequence.
	JS      jetstream.JetStream
	Log     *slog.Logger
	restart chan rebuild
}

type rebuild struct {
	ctx   context.Context
	reply chan rebuildResult
}

type rebuildResult struct {
	lastSeq uint64
	err     error
}

// StandbyRetry is how often a standby replica tries to take the lead.
const StandbyRetry = 2 * time.Second

// LockKey names the leader lock of the consumer.
const LockKey = "huifang.analytics.consumer/" + Durable

// NewGate returns the gate of the consumer: the leader lock on pool, the
// rollups reset by a, the durable deleted through js.
func NewGate(a *app.App, pool *pgxpool.Pool, js jetstream.JetStream, log *slog.Logger) *Gate {
	return &Gate{App: a, JS: js, Log: log, restart: make(chan rebuild),
		Leader: &Leader{Pool: pool, Key: LockKey, Retry: StandbyRetry, Log: log}}
}

// Leading reports whether this replica consumes now.
func (g *Gate) Leading() bool { return g.Leader.Leading() }

// Run calls consume whenever this replica leads, until ctx ends; consume's
// context ends when the replica stops leading (or for a rebuild, after
// which it is called again).
func (g *Gate) Run(ctx context.Context, consume func(context.Context) error) error {
	return g.Leader.Run(ctx, func(ctx context.Context) error { return g.lead(ctx, consume) })
}

// lead consumes until ctx ends (this replica stops leading), rebuilding
// when asked, and first when a migration asked for it.
func (g *Gate) lead(ctx context.Context, consume func(context.Context) error) error {
	requested, err := g.App.RebuildRequested(ctx)
	if err != nil {
		return err
	}
	if requested {
		if _, err := g.reset(ctx); err != nil {
			return err
		}
	}
	for {
		runCtx, cancel := context.WithCancel(ctx)
		done := make(chan error, 1)
		go func() { done <- consume(runCtx) }()
		select {
		case <-ctx.Done():
			cancel()
			return <-done
		case err := <-done:
			cancel()
			return err
		case req := <-g.restart:
			cancel()
			if err := <-done; err != nil {
				req.reply <- rebuildResult{err: err}
				return err
			}
			seq, err := g.reset(req.ctx)
			req.reply <- rebuildResult{lastSeq: seq, err: err}
		}
	}
}

// Rebuild asks the running Run to rebuild and waits until the consumer has
// started again; the rollups are complete once it has passed the returned
// stream sequence. Meanwhile the figures are partial. Only the leader
// rebuilds (no other replica consumes meanwhile); a standby answers
// app.ErrStandby.
func (g *Gate) Rebuild(ctx context.Context) (uint64, error) {
	if !g.Leading() {
		return 0, app.ErrStandby
	}
	reply := make(chan rebuildResult, 1)
	select {
	case g.restart <- rebuild{ctx: ctx, reply: reply}:
	case <-ctx.Done():
		return 0, ctx.Err()
	}
	res := <-reply
	return res.lastSeq, res.err
}

// reset empties the rollups and the consumer's inbox, deletes the durable
// (so it starts again from the stream's first message) and returns the
// stream's last sequence.
func (g *Gate) reset(ctx context.Context) (uint64, error) {
	if err := g.App.ResetRollups(ctx, Durable); err != nil {
		return 0, err
	}
	if err := g.JS.DeleteConsumer(ctx, stream.EventsStream, Durable); err != nil && !errors.Is(err, jetstream.ErrConsumerNotFound) {
		return 0, fmt.Errorf("consumer: delete durable %s: %w", Durable, err)
	}
	s, err := g.JS.Stream(ctx, stream.EventsStream)
	if err != nil {
		return 0, fmt.Errorf("consumer: stream info: %w", err)
	}
	g.Log.InfoContext(ctx, "rebuilding rollups from the stream", "consumer", Durable, "last_sequence", s.CachedInfo().State.LastSeq)
	return s.CachedInfo().State.LastSeq, nil
}
