package inbox_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/huifang/huifang/pkg/inbox"
	"github.com/huifang/huifang/pkg/invalid"
	"github.com/huifang/huifang/pkg/outbox"
	"github.com/huifang/huifang/pkg/postgres"
	"github.com/huifang/huifang/pkg/stream"
)

// batched returns a consumer applying up to size messages per transaction,
// recording each effect with its transaction's id.
func (b bundle) batched(t *testing.T, size int, h inbox.Handler) *inbox.Consumer {
	t.Helper()
	_, err := b.pool.Exec(b.ctx, `CREATE TABLE IF NOT EXISTS tx_effects (body text NOT NULL, tx bigint NOT NULL)`)
	require.NoError(t, err)
	if h == nil {
		h = recordTx
	}
	c := b.consumer(h)
	c.Batch, c.BatchWait = size, 200*time.Millisecond
	return c
}

func recordTx(ctx context.Context, tx pgx.Tx, msg jetstream.Msg) error {
	_, err := tx.Exec(ctx, `INSERT INTO tx_effects (body, tx) VALUES ($1, txid_current())`, string(msg.Data()))
	return err
}

// Messages are applied many to a transaction, each once, duplicates (in
// the batch or handled before) acknowledged without an effect, and all
// acknowledged.
func TestBatchAppliesManyPerTransactionEachOnce(t *testing.T) {
	b := setup(t)
	c := b.batched(t, 50, nil)
	const n = 300
	for i := range n {
		b.publish(t, fmt.Sprintf("e-%d", i), fmt.Sprintf("body-%d", i))
		if i%10 == 0 { // a resend of the same event, right behind it
			b.publish(t, fmt.Sprintf("e-%d", i), fmt.Sprintf("body-%d", i))
		}
	}
	b.run(t, c)
	require.Eventually(t, func() bool { return b.count(t, `SELECT count(*) FROM inbox`) == n }, 60*time.Second, 20*time.Millisecond)
	require.Equal(t, n, b.count(t, `SELECT count(*) FROM tx_effects`))
	require.Equal(t, n, b.count(t, `SELECT count(DISTINCT body) FROM tx_effects`))
	require.LessOrEqual(t, b.count(t, `SELECT count(DISTINCT tx) FROM tx_effects`), n/10, "applied in batches, not one transaction per message")
	cons, err := b.js.Consumer(b.ctx, stream.EventsStream, "svc-test")
	require.NoError(t, err)
	require.Eventually(t, func() bool {
		info, err := cons.Info(b.ctx)
		return err == nil && info.NumPending == 0 && info.NumAckPending == 0
	}, 60*time.Second, 20*time.Millisecond, "every message acknowledged")
}

// A batch handled again after its commit (the process died before the
// acknowledgements) changes nothing.
func TestBatchRedeliveredAfterCommitHasNoSecondEffect(t *testing.T) {
	b := setup(t)
	c := b.batched(t, 10, nil)
	for i := range 5 {
		b.publish(t, fmt.Sprintf("e-%d", i), fmt.Sprintf("body-%d", i))
	}
	msgs := fetch(t, b.durable(t, 0), 5)
	c.ProcessBatch(b.ctx, msgs)
	c.ProcessBatch(b.ctx, msgs)
	require.Equal(t, 5, b.count(t, `SELECT count(*) FROM tx_effects`))
	require.Equal(t, 1, b.count(t, `SELECT count(DISTINCT tx) FROM tx_effects`), "one transaction")
}

// In a batch, a message that breaks a rule is rolled back alone (its half
// effect too) and dead-lettered, a message that fails is retried alone
// until it passes, and the rest of the batch is applied once.
func TestBatchBadAndFailingMessagesAreHandledAlone(t *testing.T) {
	b := setup(t)
	var flaky atomic.Int32
	c := b.batched(t, 20, func(ctx context.Context, tx pgx.Tx, msg jetstream.Msg) error {
		if err := recordTx(ctx, tx, msg); err != nil {
			return err
		}
		switch string(msg.Data()) {
		case "bad":
			return invalid.New("payload", "is bad")
		case "flaky":
			if flaky.Add(1) == 1 {
				return errors.New("a bug of the moment")
			}
		}
		return nil
	})
	for i, body := range []string{"a", "bad", "b", "flaky", "c"} {
		b.publish(t, fmt.Sprintf("e-%d", i), body)
	}
	b.run(t, c)
	require.Eventually(t, func() bool {
		return b.count(t, `SELECT count(*) FROM rejected_events`) == 1 && b.count(t, `SELECT count(*) FROM tx_effects`) == 4
	}, 60*time.Second, 20*time.Millisecond)
	require.Equal(t, 0, b.count(t, `SELECT count(*) FROM tx_effects WHERE body = 'bad'`), "the bad message's effect is rolled back")
	require.Equal(t, 1, b.count(t, `SELECT count(*) FROM tx_effects WHERE body = 'flaky'`))
	require.Equal(t, int32(2), flaky.Load())
	require.Equal(t, 0, b.count(t, `SELECT count(*) FROM inbox WHERE event_id = 'e-1'`), "a dead-lettered event may be sent again")
	require.Equal(t, 4, b.count(t, `SELECT count(*) FROM inbox`))
	var reason string
	require.NoError(t, b.pool.QueryRow(b.ctx, `SELECT reason FROM rejected_events`).Scan(&reason))
	require.Contains(t, reason, "payload")
}

// A batch whose transaction cannot be had (the fence refuses: a lease
// lost) writes nothing; its messages wait and are applied once it can.
func TestBatchFencedOutWritesNothing(t *testing.T) {
	b := setup(t)
	var holds atomic.Bool
	var refusals atomic.Int32
	c := b.batched(t, 20, nil)
	c.Fence = func(context.Context, pgx.Tx) error {
		if !holds.Load() {
			refusals.Add(1)
			return inbox.Transient(errors.New("lease lost"))
		}
		return nil
	}
	for i := range 10 {
		b.publish(t, fmt.Sprintf("e-%d", i), fmt.Sprintf("body-%d", i))
	}
	b.run(t, c)
	require.Eventually(t, func() bool { return refusals.Load() > 2 }, 60*time.Second, 10*time.Millisecond)
	require.Equal(t, 0, b.count(t, `SELECT count(*) FROM tx_effects`))
	require.Equal(t, 0, b.count(t, `SELECT count(*) FROM inbox`))
	holds.Store(true)
	require.Eventually(t, func() bool { return b.count(t, `SELECT count(*) FROM tx_effects`) == 10 }, 60*time.Second, 20*time.Millisecond)
	require.Equal(t, 10, b.count(t, `SELECT count(DISTINCT body) FROM tx_effects`))
}

// What a handler asks to run after its commit runs once per applied
// message, after the commit (the effect is visible), in a batch and alone,
// and never for a message rolled back; outside a handler it is refused.
func TestAfterCommitRunsOnlyForCommittedMessages(t *testing.T) {
	require.False(t, inbox.AfterCommit(context.Background(), func() {}))
	for _, size := range []int{1, 20} {
		t.Run(fmt.Sprintf("batch=%d", size), func(t *testing.T) {
			b := setup(t)
			var ran, visible atomic.Int32
			c := b.batched(t, size, func(ctx context.Context, tx pgx.Tx, msg jetstream.Msg) error {
				if err := recordTx(ctx, tx, msg); err != nil {
					return err
				}
				body := string(msg.Data())
				require.True(t, inbox.AfterCommit(ctx, func() {
					if b.count(t, `SELECT count(*) FROM tx_effects WHERE body = $1`, body) == 1 {
						visible.Add(1)
					}
					ran.Add(1) // after the look: ran == 3 means all three looked
				}))
				if body == "bad" {
					return invalid.New("payload", "is bad")
				}
				return nil
			})
			for i, body := range []string{"a", "bad", "b", "c"} {
				b.publish(t, fmt.Sprintf("e-%d", i), body)
			}
			b.run(t, c)
			require.Eventually(t, func() bool { return b.count(t, `SELECT count(*) FROM rejected_events`) == 1 && ran.Load() == 3 }, 60*time.Second, 20*time.Millisecond)
			require.Equal(t, int32(3), visible.Load(), "each ran after its commit")
			require.Equal(t, 3, b.count(t, `SELECT count(*) FROM tx_effects`))
		})
	}
}

// With several workers gathering batches, a lone message that comes to an
// idle consumer is applied (a worker holding it never waits on another
// that waits for the next message).
func TestBatchLoneMessageWithManyWorkers(t *testing.T) {
	b := setup(t)
	c := b.batched(t, 20, nil)
	c.Workers = 4
	b.run(t, c)
	// Each time the consumer is idle again: the workers race for the next
	// message, many times over.
	for i := range 40 {
		b.publish(t, fmt.Sprintf("e-%d", i), fmt.Sprintf("body-%d", i))
		require.Eventually(t, func() bool { return b.count(t, `SELECT count(*) FROM tx_effects`) == i+1 }, 60*time.Second, 5*time.Millisecond,
			"lone message %d applied", i)
	}
}

// A Forget consumer purges from its stream what it acknowledged, and only
// that: a message waiting for its retry stays (with the ones after it)
// while the ones before it go, and goes once it is handled.
func TestForgetPurgesOnlyWhatIsAcknowledged(t *testing.T) {
	b := setup(t)
	var logs bytes.Buffer
	var hold atomic.Bool
	hold.Store(true)
	c := b.batched(t, 10, func(ctx context.Context, tx pgx.Tx, msg jetstream.Msg) error {
		if string(msg.Data()) == "held" && hold.Load() {
			return inbox.Transient(errors.New("a dependency is away"))
		}
		return recordTx(ctx, tx, msg)
	})
	c.Forget, c.ForgetEvery = true, 10*time.Millisecond
	c.Log = slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelWarn}))
	b.publish(t, "e-0", "first")
	b.publish(t, "e-1", "held")
	b.publish(t, "e-2", "after")
	b.run(t, c)
	str, err := b.js.Stream(b.ctx, stream.EventsStream)
	require.NoError(t, err)
	require.Eventually(t, func() bool {
		_, err := str.GetMsg(b.ctx, 1)
		var gone *jetstream.APIError
		return errors.As(err, &gone) && gone.ErrorCode == jetstream.JSErrCodeMessageNotFound && b.count(t, `SELECT count(*) FROM tx_effects`) == 2
	}, 60*time.Second, 20*time.Millisecond, "the first message purged once handled")
	held, err := str.GetMsg(b.ctx, 2)
	require.NoError(t, err, "the message waiting for its retry stays")
	require.Equal(t, "held", string(held.Data))

	hold.Store(false)
	require.Eventually(t, func() bool {
		info, err := str.Info(b.ctx)
		return err == nil && info.State.Msgs == 0 && info.State.LastSeq == 3
	}, 60*time.Second, 20*time.Millisecond, "everything purged once handled")
	require.Equal(t, 3, b.count(t, `SELECT count(*) FROM tx_effects`))
	require.NotContains(t, logs.String(), "not purged")
}

// A batch that waits on a row lock another transaction holds gives way at
// once (two batches locking the same rows in different orders would
// deadlock) and its messages are applied one by one, each waiting its turn.
func TestBatchGivesWayToALockAndGoesOneByOne(t *testing.T) {
	b := setup(t)
	_, err := b.pool.Exec(b.ctx, `CREATE TABLE counters (id int PRIMARY KEY, n int NOT NULL); INSERT INTO counters VALUES (1, 0)`)
	require.NoError(t, err)
	c := b.batched(t, 10, func(ctx context.Context, tx pgx.Tx, msg jetstream.Msg) error {
		if _, err := tx.Exec(ctx, `UPDATE counters SET n = n + 1 WHERE id = 1`); err != nil {
			return err
		}
		return recordTx(ctx, tx, msg)
	})
	for i := range 5 {
		b.publish(t, fmt.Sprintf("e-%d", i), fmt.Sprintf("body-%d", i))
	}
	holder, err := b.pool.Begin(b.ctx)
	require.NoError(t, err)
	defer func() { _ = holder.Rollback(b.ctx) }()
	_, err = holder.Exec(b.ctx, `SELECT n FROM counters WHERE id = 1 FOR UPDATE`)
	require.NoError(t, err)
	b.run(t, c)
	// Someone has waited for the row longer than a batch would: a message
	// on its own.
	require.Eventually(t, func() bool {
		return b.count(t, `SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'
  AND now() - query_start > interval '500 ms'`) > 0
	}, 60*time.Second, 20*time.Millisecond)
	require.NoError(t, holder.Rollback(b.ctx))
	require.Eventually(t, func() bool { return b.count(t, `SELECT count(*) FROM tx_effects`) == 5 }, 60*time.Second, 20*time.Millisecond)
	require.Equal(t, 5, b.count(t, `SELECT n FROM counters WHERE id = 1`))
	require.Equal(t, 5, b.count(t, `SELECT count(DISTINCT tx) FROM tx_effects`), "applied one by one")
}

// With Key, the messages of one key go to one worker: several workers'
// batches touching the same rows per key never wait on each other, so
// none gives way and every message is applied in a batch.
func TestBatchKeyKeepsWorkersOffEachOthersRows(t *testing.T) {
	b := setup(t)
	_, err := b.pool.Exec(b.ctx, `CREATE TABLE counters (id text PRIMARY KEY, n int NOT NULL); INSERT INTO counters SELECT 'k' || i, 0 FROM generate_series(0, 7) i`)
	require.NoError(t, err)
	key := func(msg jetstream.Msg) string { k, _, _ := strings.Cut(string(msg.Data()), ":"); return k }
	c := b.batched(t, 50, func(ctx context.Context, tx pgx.Tx, msg jetstream.Msg) error {
		// Every message of a batch locks its key's row, in the batch's order.
		if _, err := tx.Exec(ctx, `UPDATE counters SET n = n + 1 WHERE id = $1`, key(msg)); err != nil {
			return err
		}
		return recordTx(ctx, tx, msg)
	})
	c.Workers, c.Key = 4, key
	const n = 400
	for i := range n {
		b.publish(t, fmt.Sprintf("e-%d", i), fmt.Sprintf("k%d:%d", (i*7)%8, i))
	}
	b.run(t, c)
	require.Eventually(t, func() bool { return b.count(t, `SELECT count(*) FROM tx_effects`) == n }, 60*time.Second, 20*time.Millisecond)
	require.Equal(t, n, b.count(t, `SELECT sum(n)::int FROM counters`))
	require.LessOrEqual(t, b.count(t, `SELECT count(DISTINCT tx) FROM tx_effects`), n/10, "applied in batches: none gave way to another's lock")
}

// notifier counts the times a relay is woken.
type notifier struct{ n atomic.Int64 }

func (w *notifier) Notify() { w.n.Add(1) }

// A consumer wakes the relay after a commit that wrote to the outbox, and
// not after commits that wrote nothing there (issue #15: rounds that find
// nothing), handling messages one by one or in batches.
func TestRelayWokenOnlyAfterWritesToTheOutbox(t *testing.T) {
	for _, size := range []int{1, 20} {
		t.Run(fmt.Sprintf("batch of %d", size), func(t *testing.T) {
			b := setup(t)
			c := b.batched(t, size, func(ctx context.Context, tx pgx.Tx, msg jetstream.Msg) error {
				if strings.HasPrefix(string(msg.Data()), "announce") {
					if _, err := outbox.Add(ctx, tx, outbox.Message{Subject: "huifang.events.test.announced", Payload: wrapperspb.String("x")}); err != nil {
						return err
					}
				}
				return recordTx(ctx, tx, msg)
			})
			relay := &notifier{}
			c.Relay = relay
			b.run(t, c)
			const quiet = 40
			for i := range quiet {
				b.publish(t, fmt.Sprintf("q-%d", i), fmt.Sprintf("quiet-%d", i))
			}
			require.Eventually(t, func() bool { return b.count(t, `SELECT count(*) FROM tx_effects`) == quiet }, 60*time.Second, 20*time.Millisecond)
			require.Zero(t, relay.n.Load(), "no relay round for commits that wrote nothing to the outbox")

			b.publish(t, "a-1", "announce-1")
			require.Eventually(t, func() bool { return relay.n.Load() > 0 }, 60*time.Second, 20*time.Millisecond,
				"the relay woken after the commit that wrote to the outbox")
			require.Equal(t, 1, b.count(t, `SELECT count(*) FROM outbox`))
		})
	}
}

// What handlers gather (inbox.Gather) is written once per transaction with
// the values of every message that applied; a message that failed after
// gathering takes its value with it (handled alone, it fails again and is
// dead-lettered), and one by one each message writes its own.
func TestGatheredValuesAreWrittenOncePerTransaction(t *testing.T) {
	for _, size := range []int{1, 25} {
		t.Run(fmt.Sprintf("batch of %d", size), func(t *testing.T) {
			b := setup(t)
			_, err := b.pool.Exec(b.ctx, `CREATE TABLE IF NOT EXISTS sums (total int NOT NULL, n int NOT NULL, tx bigint NOT NULL)`)
			require.NoError(t, err)
			flush := func(ctx context.Context, tx pgx.Tx, vs []int) error {
				total := 0
				for _, v := range vs {
					total += v
				}
				_, err := tx.Exec(ctx, `INSERT INTO sums (total, n, tx) VALUES ($1, $2, txid_current())`, total, len(vs))
				return err
			}
			c := b.batched(t, size, func(ctx context.Context, tx pgx.Tx, msg jetstream.Msg) error {
				var v int
				if _, err := fmt.Sscanf(string(msg.Data()), "v-%d", &v); err != nil {
					return invalid.New("body", err.Error())
				}
				if err := inbox.Gather(ctx, tx, "sum", v, flush); err != nil {
					return err
				}
				if v == 13 {
					return invalid.New("body", "13 is refused after gathering")
				}
				return recordTx(ctx, tx, msg)
			})
			const n = 50
			want := 0
			for i := 1; i <= n; i++ {
				b.publish(t, fmt.Sprintf("g-%d", i), fmt.Sprintf("v-%d", i))
				if i != 13 {
					want += i
				}
			}
			b.run(t, c)
			require.Eventually(t, func() bool {
				return b.count(t, `SELECT count(*) FROM tx_effects`) == n-1 && b.count(t, `SELECT count(*) FROM rejected_events`) == 1
			}, 60*time.Second, 20*time.Millisecond)
			require.Equal(t, want, b.count(t, `SELECT coalesce(sum(total), 0) FROM sums`), "every applied message's value, 13's not")
			require.Equal(t, n-1, b.count(t, `SELECT coalesce(sum(n), 0) FROM sums`))
			require.Equal(t, b.count(t, `SELECT count(DISTINCT tx) FROM sums`), b.count(t, `SELECT count(*) FROM sums`), "one write per transaction")
			require.Zero(t, b.count(t, `SELECT count(*) FROM sums s WHERE NOT EXISTS (SELECT 1 FROM tx_effects e WHERE e.tx = s.tx)`),
				"written in the transaction of the messages it sums")
			if size == 1 {
				require.Equal(t, n-1, b.count(t, `SELECT count(*) FROM sums`))
			} else {
				require.Less(t, b.count(t, `SELECT count(*) FROM sums`), n/2, "batched: far fewer writes than messages")
			}
		})
	}
}

// Outside a consumer's handler, Gather writes at once.
func TestGatherOutsideAHandlerWritesAtOnce(t *testing.T) {
	b := setup(t)
	var got []string
	err := pgx.BeginFunc(b.ctx, b.pool, func(tx pgx.Tx) error {
		return inbox.Gather(b.ctx, tx, "k", "v", func(_ context.Context, _ pgx.Tx, vs []string) error {
			got = append(got, vs...)
			return nil
		})
	})
	require.NoError(t, err)
	require.Equal(t, []string{"v"}, got)
}

// What a message's handler holds back for the next round trip (outbox rows,
// advisory locks: postgres.Defer) belongs to that message: held statements
// of a message that fails are never sent or are rolled back with it, a held
// statement that fails fails its own message and no other, and a message
// that sends nothing makes no savepoint.
func TestBatchHeldStatementsBelongToTheirMessage(t *testing.T) {
	b := setup(t)
	var heldBad atomic.Int32
	var mu sync.Mutex
	rolledBack := map[string]int{}
	c := b.batched(t, 20, func(ctx context.Context, tx pgx.Tx, msg jetstream.Msg) error {
		body := string(msg.Data())
		inbox.OnRollback(ctx, func() {
			mu.Lock()
			defer mu.Unlock()
			rolledBack[body]++
		})
		hold := func(v any) error {
			return postgres.Defer(ctx, tx, `INSERT INTO tx_effects (body, tx) VALUES ($1, $2)`, body, v)
		}
		switch body {
		case "quiet": // sends nothing at all
			return nil
		case "held": // only held statements: sent with the release
			return hold(1)
		case "held-then-bad": // held, then refused before any round trip
			if err := hold(1); err != nil {
				return err
			}
			return invalid.New("payload", "is bad")
		case "sent-held-then-bad": // a round trip, more held, then refused
			if err := recordTx(ctx, tx, msg); err != nil {
				return err
			}
			if err := hold(1); err != nil {
				return err
			}
			return invalid.New("payload", "is bad")
		case "held-fails-once": // a held statement that fails, the first time
			if heldBad.Add(1) == 1 {
				return hold(nil) // tx may not be null
			}
			return hold(1)
		}
		return recordTx(ctx, tx, msg)
	})
	bodies := []string{"a", "quiet", "held", "b", "held-then-bad", "c", "sent-held-then-bad", "d", "held-fails-once", "e", "held", "f"}
	for i, body := range bodies {
		b.publish(t, fmt.Sprintf("e-%d", i), body)
	}
	b.run(t, c)
	require.Eventually(t, func() bool {
		return b.count(t, `SELECT count(*) FROM rejected_events`) == 2 && b.count(t, `SELECT count(*) FROM inbox`) == len(bodies)-2
	}, 60*time.Second, 20*time.Millisecond)
	var got []string
	rows, err := b.pool.Query(b.ctx, `SELECT body FROM tx_effects ORDER BY body`)
	require.NoError(t, err)
	got, err = pgx.CollectRows(rows, pgx.RowTo[string])
	require.NoError(t, err)
	require.Equal(t, []string{"a", "b", "c", "d", "e", "f", "held", "held", "held-fails-once"}, got,
		"every message applied once; nothing of the refused ones; the one whose held statement failed applied on its retry")
	require.Equal(t, int32(2), heldBad.Load())
	require.LessOrEqual(t, b.count(t, `SELECT count(DISTINCT tx) FROM tx_effects WHERE tx > 1`), 3, "applied in batches")
	// What a message registered with OnRollback ran when, and only when,
	// it was rolled back to its savepoint in a batch: the refused ones, and
	// the one whose held statement failed after its handler returned.
	mu.Lock()
	defer mu.Unlock()
	for _, body := range []string{"a", "quiet", "held", "b", "c", "d", "e", "f"} {
		require.Zero(t, rolledBack[body], body)
	}
	// (A message that came alone, in a batch of one, has no savepoint.)
	sum := 0
	for _, body := range []string{"held-then-bad", "sent-held-then-bad", "held-fails-once"} {
		require.LessOrEqual(t, rolledBack[body], 1, body)
		sum += rolledBack[body]
	}
	require.Positive(t, sum, "the batch rolled its failing messages back")
}

// An idempotent consumer (its effects keyed by the event) writes no inbox
// entries: a batch applies a message it holds twice once, a redelivery
// after the commit is applied again and changes nothing, and so does a
// message handled alone.
func TestIdempotentConsumerKeepsNoInbox(t *testing.T) {
	b := setup(t)
	_, err := b.pool.Exec(b.ctx, `CREATE TABLE keyed_effects (id text PRIMARY KEY, body text NOT NULL)`)
	require.NoError(t, err)
	var calls atomic.Int64
	c := b.consumer(func(ctx context.Context, tx pgx.Tx, msg jetstream.Msg) error {
		calls.Add(1)
		_, err := tx.Exec(ctx, `INSERT INTO keyed_effects (id, body) VALUES ($1, $2) ON CONFLICT DO NOTHING`, inbox.EventIDFrom(ctx), string(msg.Data()))
		return err
	})
	c.Batch, c.Idempotent = 10, true
	for i := range 5 {
		b.publish(t, fmt.Sprintf("e-%d", i), fmt.Sprintf("body-%d", i))
	}
	msgs := fetch(t, b.durable(t, 0), 5)
	c.ProcessBatch(b.ctx, append(msgs, msgs[0]))
	require.EqualValues(t, 5, calls.Load(), "the message held twice in the batch is applied once")
	c.ProcessBatch(b.ctx, msgs)
	c.Process(b.ctx, msgs[1])
	require.EqualValues(t, 11, calls.Load(), "redeliveries are applied again")
	require.Equal(t, 5, b.count(t, `SELECT count(*) FROM keyed_effects`))
	require.Equal(t, 0, b.count(t, `SELECT count(*) FROM inbox`), "no inbox entries")
}

// TestIdempotentConsumerClaimsWhatIsNotKeyed: the handler of an Idempotent
// consumer claims (inbox.Claim) the messages whose effect is not keyed (an
// appended row) and applies them once, redelivered, held twice in a batch,
// handled in two batches at once, or alone; the others keep no entry.
func TestIdempotentConsumerClaimsWhatIsNotKeyed(t *testing.T) {
	b := setup(t)
	c := b.consumer(func(ctx context.Context, tx pgx.Tx, msg jetstream.Msg) error {
		if !strings.HasPrefix(string(msg.Data()), "append") {
			return nil // keyed: nothing to claim
		}
		first, err := inbox.Claim(ctx, tx)
		if err != nil || !first {
			return err
		}
		return record(ctx, tx, msg)
	})
	c.Batch, c.Idempotent = 10, true
	for i := range 6 {
		body := fmt.Sprintf("keyed-%d", i)
		if i%2 == 0 {
			body = fmt.Sprintf("append-%d", i)
		}
		b.publish(t, fmt.Sprintf("e-%d", i), body)
	}
	msgs := fetch(t, b.durable(t, 0), 6)
	var wg sync.WaitGroup
	for range 2 {
		wg.Go(func() { c.ProcessBatch(b.ctx, append(slices.Clone(msgs), msgs[0])) })
	}
	wg.Wait()
	c.ProcessBatch(b.ctx, msgs)
	for _, m := range msgs {
		c.Process(b.ctx, m)
	}
	require.Equal(t, 3, b.count(t, `SELECT count(*) FROM effects`), "each appending message once")
	require.Equal(t, 3, b.count(t, `SELECT count(*) FROM inbox WHERE consumer = 'svc-test' AND event_id IN ('e-0', 'e-2', 'e-4')`))
	require.Equal(t, 3, b.count(t, `SELECT count(*) FROM inbox`), "no entries of the keyed messages")

	// Outside a handler Claim writes nothing.
	tx, err := b.pool.Begin(b.ctx)
	require.NoError(t, err)
	defer func() { _ = tx.Rollback(b.ctx) }()
	first, err := inbox.Claim(b.ctx, tx)
	require.NoError(t, err)
	require.True(t, first)
}

// TestKeyedMessagesKeepNoInbox: a consumer whose effects are keyed for
// some messages only (Keyed) writes the inbox entries of the others, as any
// consumer does, and none of the keyed ones unless their handler claims
// them (inbox.Claim). Every message is applied once, whether held twice in
// a batch, in two batches at once, redelivered in a batch or alone; a
// keyed message that fails in a batch after it was claimed before keeps
// its entry (the batch gives back only the entries it wrote).
func TestKeyedMessagesKeepNoInbox(t *testing.T) {
	b := setup(t)
	_, err := b.pool.Exec(b.ctx, `CREATE TABLE keyed_effects (id text PRIMARY KEY, body text NOT NULL)`)
	require.NoError(t, err)
	var failClaimed atomic.Bool
	c := b.consumer(func(ctx context.Context, tx pgx.Tx, msg jetstream.Msg) error {
		body := string(msg.Data())
		switch {
		case strings.HasPrefix(body, "keyed-claimed"): // keyed, but this one's effect is not
			if failClaimed.Load() {
				return errors.New("failing for the test")
			}
			first, err := inbox.Claim(ctx, tx)
			if err != nil || !first {
				return err
			}
			return record(ctx, tx, msg)
		case strings.HasPrefix(body, "keyed"):
			_, err := tx.Exec(ctx, `INSERT INTO keyed_effects (id, body) VALUES ($1, $2) ON CONFLICT DO NOTHING`, inbox.EventIDFrom(ctx), body)
			return err
		}
		first, err := inbox.Claim(ctx, tx) // the consumer wrote its entry: true, nothing written
		if err != nil || !first {
			return fmt.Errorf("claim of a message that is not keyed: %v, %w", first, err)
		}
		return record(ctx, tx, msg)
	})
	c.Batch = 10
	c.Keyed = func(msg jetstream.Msg) bool { return strings.HasPrefix(string(msg.Data()), "keyed") }
	bodies := []string{"keyed-0", "append-1", "keyed-claimed-2", "append-3", "keyed-4", "append-5"}
	for i, body := range bodies {
		b.publish(t, fmt.Sprintf("e-%d", i), body)
	}
	msgs := fetch(t, b.durable(t, 0), len(bodies))
	var wg sync.WaitGroup
	for range 2 {
		wg.Go(func() { c.ProcessBatch(b.ctx, append(slices.Clone(msgs), msgs[0], msgs[1], msgs[2])) })
	}
	wg.Wait()
	c.ProcessBatch(b.ctx, msgs)
	for _, m := range msgs {
		c.Process(b.ctx, m)
	}
	require.Equal(t, 4, b.count(t, `SELECT count(*) FROM effects`), "each appending message once")
	require.Equal(t, 2, b.count(t, `SELECT count(*) FROM keyed_effects`))
	rows, err := b.pool.Query(b.ctx, `SELECT event_id FROM inbox WHERE consumer = 'svc-test' ORDER BY 1`)
	require.NoError(t, err)
	entries, err := pgx.CollectRows(rows, pgx.RowTo[string])
	require.NoError(t, err)
	require.Equal(t, []string{"e-1", "e-2", "e-3", "e-5"}, entries,
		"the entries of the messages that are not keyed and of the keyed one its handler claimed")

	// A redelivered keyed message that fails in a batch is handled alone
	// (and fails there too); its entry, claimed before, stays.
	failClaimed.Store(true)
	c.MaxDeliver = 1
	c.ProcessBatch(b.ctx, []jetstream.Msg{msgs[0], msgs[2]})
	require.Equal(t, 1, b.count(t, `SELECT count(*) FROM inbox WHERE event_id = 'e-2'`), "the entry claimed before stays")
	require.Equal(t, 4, b.count(t, `SELECT count(*) FROM effects`))
}
