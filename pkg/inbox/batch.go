package inbox

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/nats-io/nats.go/jetstream"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"

	"github.com/huifang/huifang/pkg/outbox"
	"github.com/huifang/huifang/pkg/postgres"
	"github.com/huifang/huifang/pkg/stream"
)

type afterCommitKey struct{}

// afterCommit holds what a handler asked to run once its transaction
// commits.
type afterCommit struct{ fns []func() }

// AfterCommit asks that f run once the transaction the handler of ctx runs
// in has committed (not when it rolls back): for instance waking a loop
// that will find the handler's rows only then. It returns false, and f
// never runs, outside a consumer's handler.
func AfterCommit(ctx context.Context, f func()) bool {
	a, ok := ctx.Value(afterCommitKey{}).(*afterCommit)
	if ok {
		a.fns = append(a.fns, f)
	}
	return ok
}

// withAfterCommit gives ctx a fresh registry for AfterCommit.
func withAfterCommit(ctx context.Context) (context.Context, *afterCommit) {
	a := &afterCommit{}
	return context.WithValue(ctx, afterCommitKey{}, a), a
}

func (a *afterCommit) run() {
	for _, f := range a.fns {
		f()
	}
}

// batchLockTimeout is how long a batch's statement waits for a row lock
// another transaction holds before the batch gives way.
const batchLockTimeout = "50ms"

// lockConflict tells whether err is a lock that could not be had: a lock
// timeout, a deadlock, a serialization failure.
func lockConflict(err error) bool {
	switch postgres.Code(err) {
	case "55P03", postgres.CodeDeadlockDetected, postgres.CodeSerializationFailure:
		return true
	}
	return false
}

// DefaultBatchWait is how long a worker waits for more messages after the
// first one of a batch when BatchWait is zero.
const DefaultBatchWait = 5 * time.Millisecond

// take gathers the next batch from msgs: the first message as soon as it
// comes, then what else comes within the batch wait, up to Batch; false
// once msgs is closed and empty.
func (c *Consumer) take(msgs <-chan jetstream.Msg) ([]jetstream.Msg, bool) {
	first, ok := <-msgs
	if !ok {
		return nil, false
	}
	size := max(1, c.Batch)
	batch := make([]jetstream.Msg, 1, size)
	batch[0] = first
	if size == 1 {
		return batch, true
	}
	wait := c.BatchWait
	if wait <= 0 {
		wait = DefaultBatchWait
	}
	timer := time.NewTimer(wait)
	defer timer.Stop()
	for len(batch) < size {
		select {
		case m, ok := <-msgs:
			if !ok {
				return batch, true
			}
			batch = append(batch, m)
		case <-timer.C:
			return batch, true
		}
	}
	return batch, true
}

// ProcessBatch handles msgs in one transaction: their inbox entries are
// claimed in one statement, each claimed message is applied in a savepoint
// of its own, the transaction commits once, and then every message is
// acknowledged. A message seen before (claimed by an earlier transaction or
// earlier in the batch) is acknowledged without being applied. A message
// whose handler fails, whatever the reason, is rolled back to its savepoint
// and, after the commit, handled alone by Process, which retries it or
// dead-letters it as it would any message (its inbox entry is given back
// in the batch's transaction, so that it is not taken as seen). When the
// batch's transaction itself fails (the database went away, the fence was
// lost) or a message waits for a row lock another transaction holds (more
// than 50 ms: two batches touching the same rows in different orders would
// deadlock), nothing of it is written, and every message is handled alone,
// in order, by Process.
//
// Effects stay exactly once: a crash before the commit leaves every message
// to be delivered again; after it, a redelivery finds its inbox entry.
func (c *Consumer) ProcessBatch(ctx context.Context, msgs []jetstream.Msg) {
	if len(msgs) == 0 {
		return
	}
	if len(msgs) == 1 {
		c.Process(ctx, msgs[0])
		return
	}
	work := context.WithoutCancel(ctx)
	ids := make([]string, len(msgs))
	for i, m := range msgs {
		ids[i] = c.eventID(m)
	}
	var done, alone []jetstream.Msg
	var then []*afterCommit
	var writes *outbox.Writes
	err := pgx.BeginFunc(work, c.Pool, func(dbtx pgx.Tx) error {
		done, alone, then = done[:0], alone[:0], then[:0]
		var gath []*gathered
		var wctx context.Context
		wctx, writes = outbox.Track(work)
		wctx = withBatch(wctx, msgs)
		// Statements whose answers nobody reads (the savepoints around
		// each message, outbox rows, advisory locks) ride along with the
		// next statement that needs one: a round trip costs more than
		// the statement.
		tx := postgres.NewPipeline(dbtx)
		// A batch holds its rows' locks until it commits: one that waits
		// on another's (two batches touching one customer, in different
		// orders, deadlock) gives way at once and is handled message by
		// message, each waiting its turn.
		tx.Hold(`SET LOCAL lock_timeout = '` + batchLockTimeout + `'`)
		if c.Fence != nil {
			if err := c.Fence(work, tx); err != nil {
				return err
			}
		}
		claimed, err := c.claim(work, tx, msgs, ids)
		if err != nil {
			return err
		}
		mine := make(map[string]bool, len(claimed))
		for _, id := range claimed {
			mine[id] = true
		}
		if c.Prepare != nil {
			var claimedMsgs []jetstream.Msg
			seen := make(map[string]bool, len(mine))
			for i, m := range msgs {
				if mine[ids[i]] && !seen[ids[i]] {
					seen[ids[i]] = true
					claimedMsgs = append(claimedMsgs, m)
				}
			}
			if len(claimedMsgs) > 0 {
				if wctx, err = c.Prepare(wctx, tx, claimedMsgs); err != nil {
					return fmt.Errorf("inbox: prepare %d messages: %w", len(claimedMsgs), err)
				}
			}
		}
		var giveBack []string
		applied := 0
		for i, m := range msgs {
			id := ids[i]
			if !mine[id] {
				// Handled before, or earlier in this batch.
				c.Log.DebugContext(work, "duplicate event ignored", "consumer", c.Durable, "event_id", id)
				done = append(done, m)
				continue
			}
			delete(mine, id)
			after, g, err := c.apply(wctx, tx, m, id, savepoints[applied%2])
			applied++
			if err != nil {
				if tx.Conn().PgConn().TxStatus() == 'E' || lockConflict(err) {
					return err // the transaction itself broke, or it waits on another
				}
				c.Log.DebugContext(work, "handler failed in a batch; handling the message alone", "consumer", c.Durable, "event_id", id, "err", err)
				if !c.keyed(m) {
					// A keyed message has no entry of the batch's to give
					// back (an entry it claimed went with its savepoint;
					// one claimed before must stay).
					giveBack = append(giveBack, id)
				}
				alone = append(alone, m)
				continue
			}
			done = append(done, m)
			then = append(then, after)
			gath = append(gath, g)
		}
		if err := flushGathered(wctx, tx, gath); err != nil {
			return err
		}
		if len(giveBack) > 0 {
			if _, err := tx.Exec(work, `DELETE FROM inbox WHERE consumer = $1 AND event_id = ANY($2)`, c.Durable, giveBack); err != nil {
				return fmt.Errorf("inbox: give back %d events: %w", len(giveBack), err)
			}
		}
		return settle(work, tx)
	})
	if err != nil {
		c.Log.DebugContext(work, "batch failed; handling its messages one by one", "consumer", c.Durable, "messages", len(msgs), "err", err)
		for _, m := range msgs {
			c.Process(ctx, m)
		}
		return
	}
	for _, m := range done {
		c.ackAsync(work, m)
	}
	for _, a := range then {
		a.run()
	}
	if writes.Wrote() {
		c.notify()
	}
	for _, m := range alone {
		c.Process(ctx, m)
	}
}

// claim writes the inbox entries of a batch's event ids (ids[i] is the id
// of msgs[i]) in one statement and returns the ids that had none (seen for
// the first time). A keyed message (Idempotent, Keyed) gets none: its id
// is its own.
func (c *Consumer) claim(ctx context.Context, tx *postgres.Pipeline, msgs []jetstream.Msg, ids []string) ([]string, error) {
	if c.Idempotent {
		return ids, nil
	}
	var keyed, entered []string
	for i, m := range msgs {
		if c.keyed(m) {
			keyed = append(keyed, ids[i])
		} else {
			entered = append(entered, ids[i])
		}
	}
	if len(entered) == 0 {
		return keyed, nil
	}
	rows, err := tx.Query(ctx, `INSERT INTO inbox (consumer, event_id) SELECT $1, unnest($2::text[]) ON CONFLICT DO NOTHING RETURNING event_id`, c.Durable, entered)
	if err != nil {
		return nil, fmt.Errorf("inbox: claim %d events: %w", len(entered), err)
	}
	claimed, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, fmt.Errorf("inbox: claim %d events: %w", len(entered), err)
	}
	return append(claimed, keyed...), nil
}

// savepoints are the names of the messages' savepoints in a batch, taken
// in turn: a message's savepoint is released (held, sent with the next
// message's first statement) before the next one's is made, and a rollback
// to a savepoint that was never made fails instead of rolling back the
// message before it.
var savepoints = [2]string{"inbox_message_a", "inbox_message_b"}

// apply runs the handler for one message of a batch in savepoint name, with
// the message's trace and event id in its context, and returns what the
// handler asked to run after the commit and what it gathered for the end of
// the transaction.
//
// The savepoint costs no round trip of its own: it is held, sent with the
// handler's first statement (a handler that sends none makes none), and
// released with the next message's first statement. What the handler held
// back (outbox rows, advisory locks) is sent before the message counts as
// applied, so that a failure of it rolls back this message and no other.
func (c *Consumer) apply(ctx context.Context, tx *postgres.Pipeline, msg jetstream.Msg, id, name string) (*afterCommit, *gathered, error) {
	ctx = stream.ExtractTrace(ctx, msg.Headers())
	ctx, span := otel.Tracer("github.com/huifang/huifang/pkg/inbox").Start(ctx, "consume "+msg.Subject(),
		trace.WithSpanKind(trace.SpanKindConsumer),
		trace.WithAttributes(attribute.String("messaging.system", "nats"), attribute.String("messaging.destination.name", msg.Subject())))
	defer span.End()
	ctx = context.WithValue(ctx, eventIDKey{}, id)
	ctx, after := withAfterCommit(ctx)
	ctx, g := withGather(ctx)
	ctx, undo := withRollback(ctx)
	at := tx.Hold("SAVEPOINT " + name)
	sends := tx.Sends()
	err := c.handle(ctx, tx, msg)
	if err == nil {
		switch {
		case tx.Sends() == sends && tx.Held() == at+1:
			tx.Drop(at) // the handler sent nothing: no savepoint
			return after, g, nil
		case tx.Sends() == sends || tx.Held() > 0:
			// What the handler held is sent now, with the release.
			tx.Hold("RELEASE SAVEPOINT " + name)
			err = tx.Flush(ctx)
		default:
			tx.Hold("RELEASE SAVEPOINT " + name)
			return after, g, nil
		}
		if err == nil {
			return after, g, nil
		}
	}
	// Past this point the message's changes are undone, in the database
	// and in what its handler changed of the batch's memory.
	defer undo.run()
	if tx.Sends() == sends {
		tx.Drop(at) // nothing of the message was sent
		return after, g, err
	}
	tx.Drop(0) // what the message held after its last round trip
	if _, rerr := tx.Exec(ctx, "ROLLBACK TO SAVEPOINT "+name); rerr != nil {
		return after, g, errors.Join(err, fmt.Errorf("inbox: roll back to the message's savepoint: %w", rerr))
	}
	tx.Hold("RELEASE SAVEPOINT " + name)
	return after, g, err
}

// settle leaves nothing held in tx that must run before the commit: held
// releases of savepoints are dropped (the commit releases them), anything
// else is sent.
func settle(ctx context.Context, tx *postgres.Pipeline) error {
	for i := range tx.Held() {
		if !strings.HasPrefix(tx.HeldSQL(i), "RELEASE SAVEPOINT ") {
			return tx.Flush(ctx)
		}
	}
	tx.Drop(0)
	return nil
}

// ackAsync acknowledges a message of a committed batch without waiting for
// the server's answer: an acknowledgement that is lost brings the message
// again, and its inbox entry makes it change nothing.
func (c *Consumer) ackAsync(ctx context.Context, msg jetstream.Msg) {
	if err := msg.Ack(); err != nil {
		c.Log.WarnContext(ctx, "ack failed; the message will come again and be ignored", "consumer", c.Durable, "err", err)
		return
	}
	if c.Forget {
		c.kickForget()
	}
}
