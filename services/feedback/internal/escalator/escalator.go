// Package escalator escalates overdue complaints by themselves: a
// background loop finds open or acknowledged complaints past their
// deadline and hands each one level up with a new deadline, publishing
// ComplaintEscalated (seed 004: problems are answered within the set time).
package escalator

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"google.golang.org/protobuf/types/known/timestamppb"

	feedbackv1 "github.com/huifang/huifang/proto/huifang/feedback/v1"

	"github.com/huifang/huifang/pkg/outbox"
	"github.com/huifang/huifang/pkg/stream"
	"github.com/huifang/huifang/services/feedback/internal/complaint"
	"github.com/huifang/huifang/services/feedback/internal/store"
)

// Escalator is the overdue-complaint loop.
type Escalator struct {
	Pool  *pgxpool.Pool
	Relay *outbox.Relay
	Log   *slog.Logger
	// Now is the clock; tests control it.
	Now func() time.Time
	// Interval between scans.
	Interval time.Duration
	// Batch is how many complaints one transaction escalates.
	Batch int
}

// Run scans every Interval until ctx ends.
func (e *Escalator) Run(ctx context.Context) error {
	t := time.NewTicker(e.Interval)
	defer t.Stop()
	for {
		if _, err := e.RunOnce(ctx); err != nil && ctx.Err() == nil {
			e.Log.WarnContext(ctx, "escalating overdue complaints failed; retrying at the next tick", "err", err)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
	}
}

// RunOnce escalates every complaint overdue at Now, batch by batch, and
// returns how many it escalated. Replicas may run it at once: claims skip
// locked rows, so each complaint is escalated once per missed deadline.
func (e *Escalator) RunOnce(ctx context.Context) (int, error) {
	total := 0
	for {
		n, err := e.batch(ctx)
		total += n
		if err != nil {
			return total, err
		}
		if n > 0 && e.Relay != nil {
			e.Relay.Notify()
		}
		if n < e.batchSize() {
			return total, nil
		}
	}
}

func (e *Escalator) batchSize() int {
	if e.Batch <= 0 {
		return 100
	}
	return e.Batch
}

func (e *Escalator) batch(ctx context.Context) (int, error) {
	now := e.Now()
	n := 0
	err := pgx.BeginFunc(ctx, e.Pool, func(tx pgx.Tx) error {
		list, err := store.ClaimOverdue(ctx, tx, now, e.batchSize())
		if err != nil {
			return err
		}
		for _, l := range list {
			c := l.Complaint
			missed := c.Deadline.AsTime()
			if err := complaint.Escalate(c, l.Window, now); err != nil {
				return err
			}
			if err := store.UpdateComplaint(ctx, tx, c); err != nil {
				return err
			}
			if err := store.AddStep(ctx, tx, c.Id, &feedbackv1.ComplaintStep{Kind: complaint.StepEscalated, By: "system",
				At: timestamppb.New(now), Detail: "deadline " + missed.UTC().Format(time.RFC3339) + " passed", Level: c.Level}); err != nil {
				return err
			}
			ev := complaint.Escalated(outbox.NewEventID(), c, now)
			if err := store.Publish(ctx, tx, stream.SubjectComplaintEscalated, ev.EventId, ev); err != nil {
				return err
			}
		}
		n = len(list)
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("escalator: %w", err)
	}
	return n, nil
}
