package consumer

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/huifang/huifang/pkg/inbox"
	"github.com/huifang/huifang/pkg/stream"
	"github.com/huifang/huifang/services/analytics/internal/store"
)

// Runner runs the consumer and can rebuild: stop it, reset the rollups and
// the inbox, delete the durable consumer, and start it again from the first
// message of the stream.
type Runner struct {
	Consumer *inbox.Consumer
	restart  chan rebuild
}

type rebuild struct {
	ctx   context.Context
	reply chan rebuildResult
}

type rebuildResult struct {
	lastSeq uint64
	err     error
}

// NewRunner returns a runner of c, whose parts must be filled in.
func NewRunner(c *inbox.Consumer) *Runner {
	return &Runner{Consumer: c, restart: make(chan rebuild)}
}

// Run consumes until ctx ends, rebuilding when asked.
func (r *Runner) Run(ctx context.Context) error {
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
// stream sequence. Meanwhile the figures are partial. Run it on one replica:
// another replica's consumer keeps handling events while this one resets.
func (r *Runner) Rebuild(ctx context.Context) (uint64, error) {
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
