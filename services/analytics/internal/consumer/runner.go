package consumer

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/huifang/huifang/pkg/inbox"
	"github.com/huifang/huifang/pkg/stream"
	"github.com/huifang/huifang/services/analytics/internal/store"
)

// Runner runs the consumer on one replica at a time and can rebuild: stop
// it, reset the rollups and the inbox, delete the durable consumer, and
// start it again from the first message of the stream.
//
// Only the replica holding the leader lock consumes (see Leader): a visit's
// product category comes from its service's ServiceCompleted and "won back"
// compares a customer's service with the one handled before it, both of
// which need the events in stream order. The other replicas stand by and
// take over when the leader stops.
type Runner struct {
	Consumer *inbox.Consumer
	// Leader decides which replica consumes; its Pool is the consumer's.
	Leader  *Leader
	restart chan rebuild
}

// ErrStandby is Rebuild's answer on a replica that does not consume now.
var ErrStandby = errors.New("consumer: this replica is standing by; another one consumes (retry reaches the leader)")

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

// NewRunner returns a runner of c, whose parts must be filled in before Run.
func NewRunner(c *inbox.Consumer) *Runner {
	return &Runner{Consumer: c, restart: make(chan rebuild),
		Leader: &Leader{Key: "huifang.analytics.consumer/" + c.Durable, Retry: StandbyRetry}}
}

// Leading reports whether this replica consumes now.
func (r *Runner) Leading() bool { return r.Leader.Leading() }

// Run consumes whenever this replica leads, until ctx ends.
func (r *Runner) Run(ctx context.Context) error {
	if r.Leader.Pool == nil {
		r.Leader.Pool = r.Consumer.Pool
	}
	if r.Leader.Log == nil {
		r.Leader.Log = r.Consumer.Log
	}
	return r.Leader.Run(ctx, r.lead)
}

// lead consumes until ctx ends (this replica stops leading), rebuilding
// when asked, and first when a migration asked for it.
func (r *Runner) lead(ctx context.Context) error {
	requested, err := store.RebuildRequested(ctx, r.Consumer.Pool)
	if err != nil {
		return err
	}
	if requested {
		if _, err := r.reset(ctx); err != nil {
			return err
		}
	}
	for {
		runCtx, cancel := context.WithCancel(ctx)
		done := make(chan error, 1)
		go func() { done <- r.Consumer.Run(runCtx) }()
		select {
		case <-ctx.Done():
			cancel()
			return <-done
		case err := <-done:
			cancel()
			return err
		case req := <-r.restart:
			cancel()
			if err := <-done; err != nil {
				req.reply <- rebuildResult{err: err}
				return err
			}
			seq, err := r.reset(req.ctx)
			req.reply <- rebuildResult{lastSeq: seq, err: err}
		}
	}
}

// Rebuild asks the running Run to rebuild and waits until the consumer has
// started again; the rollups are complete once it has passed the returned
// stream sequence. Meanwhile the figures are partial. Only the leader
// rebuilds (no other replica consumes meanwhile); a standby answers ErrStandby.
func (r *Runner) Rebuild(ctx context.Context) (uint64, error) {
	if !r.Leading() {
		return 0, ErrStandby
	}
	reply := make(chan rebuildResult, 1)
	select {
	case r.restart <- rebuild{ctx: ctx, reply: reply}:
	case <-ctx.Done():
		return 0, ctx.Err()
	}
	res := <-reply
	return res.lastSeq, res.err
}

func (r *Runner) reset(ctx context.Context) (uint64, error) {
	c := r.Consumer
	if err := pgx.BeginFunc(ctx, c.Pool, func(tx pgx.Tx) error { return store.Reset(ctx, tx, c.Durable) }); err != nil {
		return 0, err
	}
	if err := c.JS.DeleteConsumer(ctx, c.Stream, c.Durable); err != nil && !errors.Is(err, jetstream.ErrConsumerNotFound) {
		return 0, fmt.Errorf("consumer: delete durable %s: %w", c.Durable, err)
	}
	s, err := c.JS.Stream(ctx, stream.EventsStream)
	if err != nil {
		return 0, fmt.Errorf("consumer: stream info: %w", err)
	}
	c.Log.InfoContext(ctx, "rebuilding rollups from the stream", "consumer", c.Durable, "last_sequence", s.CachedInfo().State.LastSeq)
	return s.CachedInfo().State.LastSeq, nil
}
