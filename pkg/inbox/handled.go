package inbox

import (
	"context"
	"fmt"
	"time"

	"github.com/huifang/huifang/pkg/postgres"
)

// Handled tells whether consumer (its durable name) has applied the event
// id (its inbox holds it).
func Handled(ctx context.Context, q postgres.Querier, consumer, eventID string) (bool, error) {
	var ok bool
	if err := q.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM inbox WHERE consumer = $1 AND event_id = $2)`, consumer, eventID).Scan(&ok); err != nil {
		return false, fmt.Errorf("inbox: handled %s by %s: %w", eventID, consumer, err)
	}
	return ok, nil
}

// AwaitHandled waits until consumer has applied the event id, looking every
// poll, for at most wait: a watch (pkg/watch Spec.Settle) reads the state
// a service's consumer changes only after the consumer applied the event.
// It returns an error when the wait ran out (a dead-lettered event is never
// applied) or the database failed.
func AwaitHandled(ctx context.Context, q postgres.Querier, consumer, eventID string, poll, wait time.Duration) error {
	return Await(ctx, poll, wait, consumer+" applying "+eventID, func(ctx context.Context) (bool, error) {
		return Handled(ctx, q, consumer, eventID)
	})
}

// Await waits until done reports true, asking every poll, for at most
// wait: AwaitHandled for a consumer that keeps no inbox entries
// (Consumer.Idempotent), whose done looks for the effect of the event
// instead. It returns an error naming what when the wait ran out, or
// done's error.
func Await(ctx context.Context, poll, wait time.Duration, what string, done func(ctx context.Context) (bool, error)) error {
	deadline := time.Now().Add(wait)
	for {
		ok, err := done(ctx)
		if err != nil || ok {
			return err
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("inbox: waited %s for %s", wait, what)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(poll):
		}
	}
}
