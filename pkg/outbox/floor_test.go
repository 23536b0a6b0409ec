package outbox_test

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/nats-io/nats.go"
	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/huifang/huifang/pkg/outbox"
	"github.com/huifang/huifang/pkg/pgtest"
	"github.com/huifang/huifang/pkg/postgres"
	"github.com/huifang/huifang/pkg/servicetest"
	"github.com/huifang/huifang/pkg/stream"
)

// xidFloor is the relay's floor of transactions (outbox_relay).
func xidFloor(t *testing.T, b bundle) uint64 {
	t.Helper()
	var floor uint64
	require.NoError(t, b.pool.QueryRow(b.ctx, `SELECT xid_floor FROM outbox_relay`).Scan(&floor))
	return floor
}

// ended waits until every transaction up to the outbox's newest row has
// ended, in the whole cluster (the tests of other packages run beside
// these): the oldest transaction a snapshot sees running is past it, so
// the floor may rise past the outbox's rows.
func ended(t *testing.T, b bundle) {
	t.Helper()
	var last uint64
	require.NoError(t, b.pool.QueryRow(b.ctx, `SELECT coalesce(max(xid), '0') FROM outbox`).Scan(&last))
	require.Eventually(t, func() bool {
		var xmin uint64
		err := b.pool.QueryRow(b.ctx, `SELECT pg_snapshot_xmin(pg_current_snapshot())`).Scan(&xmin)
		return err == nil && xmin > last
	}, 60*time.Second, 10*time.Millisecond)
}

// Marking rows published updates them in place (HOT): no index reads
// published_at, so the mark adds no index entry.
func TestTheMarkIsAnUpdateInPlace(t *testing.T) {
	b := setup(t)
	for i := range 20 {
		add(t, b, fmt.Sprintf("e-%02d", i), "x")
	}
	r := outbox.NewRelay(b.pool, b.js, b.log, "svc")
	r.Batch = 7 // three rounds, each a mark
	n, err := r.Drain(b.ctx)
	require.NoError(t, err)
	require.Equal(t, 20, n)
	// Each session's statistics reach the shared counters when it goes
	// idle: wait until the 20 updates are counted.
	var upd, hot int64
	require.Eventually(t, func() bool {
		if _, err := b.pool.Exec(b.ctx, `SELECT pg_stat_force_next_flush()`); err != nil {
			return false
		}
		err := b.pool.QueryRow(b.ctx, `SELECT n_tup_upd, n_tup_hot_upd FROM pg_stat_user_tables WHERE relname = 'outbox'`).Scan(&upd, &hot)
		return err == nil && upd >= 20
	}, 60*time.Second, 50*time.Millisecond)
	require.EqualValues(t, 20, upd)
	require.EqualValues(t, 20, hot, "every mark is a HOT update")
}

// The floor never passes a transaction still open: one that took its
// seq (and its transaction id) before rows already relayed and commits
// after them is relayed all the same, by a relay that starts afresh (the
// floor it reads is the one persisted), counted by Pending meanwhile, and
// found by an idle relay's look.
func TestTheFloorWaitsForAnOpenTransaction(t *testing.T) {
	b := setup(t)
	late, lateXid := openLate(t, b)
	before := xidFloor(t, b)
	for i := range 5 {
		add(t, b, fmt.Sprintf("e-%d", i), "x")
	}
	n, err := outbox.NewRelay(b.pool, b.js, b.log, "svc").Drain(b.ctx)
	require.NoError(t, err)
	require.Equal(t, 5, n)
	floor := xidFloor(t, b)
	require.LessOrEqual(t, floor, lateXid, "the floor stays at the open transaction")
	require.GreaterOrEqual(t, floor, before)
	require.Zero(t, pending(t, b))

	require.NoError(t, late.Commit(b.ctx))
	require.EqualValues(t, 1, pending(t, b))
	ended(t, b)
	r := outbox.NewRelay(b.pool, b.js, b.log, "svc")
	r.Interval = 20 * time.Millisecond
	ctx, cancel := context.WithCancel(b.ctx)
	done := make(chan error)
	go func() { done <- r.Run(ctx) }() // not woken: its look finds the row
	t.Cleanup(func() { cancel(); <-done })
	require.Eventually(t, func() bool { return pending(t, b) == 0 }, 60*time.Second, 10*time.Millisecond)
	require.Equal(t, []string{"e-0", "e-1", "e-2", "e-3", "e-4", "late"}, idsOf(t, b, stream.EventsStream))
	require.Greater(t, xidFloor(t, b), lateXid, "the floor passed the late transaction once it was relayed")
}

// The floor rises as rounds are marked, so what the relay, its look and
// Pending read stays small: after a drain, no row of a transaction that
// ended before it is above the floor.
func TestTheFloorRisesPastWhatIsRelayed(t *testing.T) {
	b := setup(t)
	for i := range 30 {
		add(t, b, fmt.Sprintf("e-%02d", i), "x")
	}
	var last uint64
	require.NoError(t, b.pool.QueryRow(b.ctx, `SELECT max(xid) FROM outbox`).Scan(&last))
	ended(t, b)
	r := outbox.NewRelay(b.pool, b.js, b.log, "svc")
	r.Batch = 4 // a backlog read past the cursor: the drain catches up at its end
	n, err := r.Drain(b.ctx)
	require.NoError(t, err)
	require.Equal(t, 30, n)
	require.Greater(t, xidFloor(t, b), last)
	var above int
	require.NoError(t, b.pool.QueryRow(b.ctx, `SELECT count(*) FROM outbox, outbox_relay WHERE xid >= xid_floor OR seq > seq_floor`).Scan(&above))
	require.Zero(t, above)
}

// A row made unpublished again by any statement after the floor passed
// it (an operator clearing a quarantine, the mark lost by hand) takes
// that statement's transaction, above the floor: the relay sends it.
func TestARowUnpublishedAgainIsSentAfterTheFloorRose(t *testing.T) {
	b := setup(t)
	add(t, b, "e-1", "one")
	require.NoError(t, pgx.BeginFunc(b.ctx, b.pool, func(tx pgx.Tx) error {
		return outbox.AddRaw(b.ctx, tx, "e-huge", "huifang.events.test", make([]byte, 2<<20), nats.Header{})
	}))
	add(t, b, "e-2", "two")
	ended(t, b)
	r := outbox.NewRelay(b.pool, b.js, b.log, "svc")
	n, err := r.Drain(b.ctx)
	require.NoError(t, err)
	require.Equal(t, 3, n)
	var xid uint64
	require.NoError(t, b.pool.QueryRow(b.ctx, `SELECT xid FROM outbox WHERE id = 'e-huge'`).Scan(&xid))
	require.Greater(t, xidFloor(t, b), xid, "the floor passed the quarantined row")
	require.Zero(t, pending(t, b))

	// The operator "fixes the cause" (here: the payload) and clears the
	// quarantine, as docs/operations.md says.
	_, err = b.pool.Exec(b.ctx, `UPDATE outbox SET quarantined_at = NULL, payload = '\x00' WHERE id = 'e-huge'`)
	require.NoError(t, err)
	require.EqualValues(t, 1, pending(t, b))
	n, err = r.Drain(b.ctx)
	require.NoError(t, err)
	require.Equal(t, 1, n)
	require.Equal(t, []string{"e-1", "e-2", "e-huge"}, idsOf(t, b, stream.EventsStream))

	// A statement that sets published_at back itself.
	_, err = b.pool.Exec(b.ctx, `UPDATE outbox SET published_at = NULL WHERE id = 'e-1'`)
	require.NoError(t, err)
	require.EqualValues(t, 1, pending(t, b))
	n, err = r.Drain(b.ctx)
	require.NoError(t, err)
	require.Equal(t, 1, n, "published again (JetStream drops the copy by its id)")
	require.Zero(t, pending(t, b))
}

// Restreamed after the floor rose past the rows queues them above it
// again: the relay publishes them, in their order.
func TestRestreamedAfterTheFloorRoseRepublishes(t *testing.T) {
	b := setup(t)
	for i := range 3 {
		add(t, b, fmt.Sprintf("e-%d", i), "x")
	}
	ended(t, b)
	r := outbox.NewRelay(b.pool, b.js, b.log, "svc")
	_, err := r.Drain(b.ctx)
	require.NoError(t, err)
	var last uint64
	require.NoError(t, b.pool.QueryRow(b.ctx, `SELECT max(xid) FROM outbox`).Scan(&last))
	require.Greater(t, xidFloor(t, b), last)
	s, err := b.js.Stream(b.ctx, stream.EventsStream)
	require.NoError(t, err)
	_, err = r.Restreamed(b.ctx, stream.EventsStream, "huifang.events.", s.CachedInfo().Created)
	require.NoError(t, err)
	require.NoError(t, b.js.DeleteStream(b.ctx, stream.EventsStream))
	require.NoError(t, stream.Ensure(b.ctx, b.js, stream.Config{}))
	s, err = b.js.Stream(b.ctx, stream.EventsStream)
	require.NoError(t, err)
	n, err := r.Restreamed(b.ctx, stream.EventsStream, "huifang.events.", s.CachedInfo().Created)
	require.NoError(t, err)
	require.EqualValues(t, 3, n)
	require.EqualValues(t, 3, pending(t, b))
	m, err := r.Drain(b.ctx)
	require.NoError(t, err)
	require.Equal(t, 3, m)
	require.Equal(t, []string{"e-0", "e-1", "e-2"}, idsOf(t, b, stream.EventsStream))
}

// Purge reads the rows from the oldest: it passes quarantined rows and
// rows written before the cutoff and published after it (published again
// after their stream was created anew), deletes the rows published before
// the cutoff, and stops at the first row not yet published or written and
// published after the cutoff.
func TestPurgeWalksFromTheOldest(t *testing.T) {
	b := setup(t)
	for _, id := range []string{"refused", "again", "old-1", "old-2", "waiting", "old-3"} {
		add(t, b, id, id)
	}
	_, err := b.pool.Exec(b.ctx, `UPDATE outbox SET quarantined_at = now() - interval '3 days', quarantine_reason = 'refused' WHERE id = 'refused'`)
	require.NoError(t, err)
	_, err = b.pool.Exec(b.ctx, `UPDATE outbox SET created_at = now() - interval '3 days', published_at = now() - interval '1 hour' WHERE id = 'again'`)
	require.NoError(t, err)
	_, err = b.pool.Exec(b.ctx, `UPDATE outbox SET published_at = now() - interval '2 days' WHERE id LIKE 'old-%'`)
	require.NoError(t, err)
	cutoff := time.Now().Add(-24 * time.Hour)
	n, err := outbox.Purge(b.ctx, b.pool, cutoff, 100)
	require.NoError(t, err)
	require.Equal(t, 2, n)
	var left []string
	require.NoError(t, b.pool.QueryRow(b.ctx, `SELECT array_agg(id ORDER BY seq) FROM outbox`).Scan(&left))
	require.Equal(t, []string{"refused", "again", "waiting", "old-3"}, left, "old-3 waits for the row before it")
	_, err = b.pool.Exec(b.ctx, `UPDATE outbox SET published_at = now() - interval '1 hour' WHERE id = 'waiting'`)
	require.NoError(t, err)
	n, err = outbox.Purge(b.ctx, b.pool, cutoff, 100)
	require.NoError(t, err)
	require.Zero(t, n, "a row written and published after the cutoff stops the walk")
	n, err = outbox.Purge(b.ctx, b.pool, time.Now(), 100)
	require.NoError(t, err)
	require.Equal(t, 3, n)
	require.NoError(t, b.pool.QueryRow(b.ctx, `SELECT array_agg(id ORDER BY seq) FROM outbox`).Scan(&left))
	require.Equal(t, []string{"refused"}, left)
}

// An outbox of the release before (published, unpublished and
// quarantined rows) migrated: the relay publishes exactly the
// unpublished rows, once, and what is written after.
func TestUpgradeRelaysExactlyTheUnpublishedRows(t *testing.T) {
	ctx := context.Background()
	set := outbox.Migrations()
	pool, err := postgres.Open(ctx, servicetest.Logger(), pgtest.NewDatabase(t), "svc",
		postgres.Migrations{Set: set.Set, FS: servicetest.MigrationsBefore(t, set.FS, "005")})
	require.NoError(t, err)
	t.Cleanup(pool.Close)
	_, err = pool.Exec(ctx, `INSERT INTO outbox (id, subject, payload, published_at, quarantined_at, quarantine_reason) VALUES
  ('p-1', 'huifang.events.test', '', now() - interval '1 hour', NULL, NULL),
  ('u-1', 'huifang.events.test', '', NULL, NULL, NULL),
  ('p-2', 'huifang.events.test', '', now(), NULL, NULL),
  ('q-1', 'huifang.events.test', '', NULL, now(), 'refused'),
  ('u-2', 'huifang.events.test', '', NULL, NULL, NULL)`)
	require.NoError(t, err)

	require.NoError(t, postgres.Migrate(ctx, pool, "svc", set))

	b := bundle{ctx: ctx, pool: pool, js: servicetest.JetStream(t), log: servicetest.Logger()}
	require.EqualValues(t, 2, pending(t, b))
	add(t, b, "new", "after the upgrade")
	r := outbox.NewRelay(pool, b.js, b.log, "svc")
	n, err := r.Drain(ctx)
	require.NoError(t, err)
	require.Equal(t, 3, n)
	require.Equal(t, []string{"u-1", "u-2", "new"}, idsOf(t, b, stream.EventsStream))
	require.Zero(t, pending(t, b))
	q, err := outbox.Quarantined(ctx, pool)
	require.NoError(t, err)
	require.EqualValues(t, 1, q)
	var reloptions []string
	require.NoError(t, pool.QueryRow(ctx, `SELECT reloptions FROM pg_class WHERE oid = 'outbox'::regclass`).Scan(&reloptions))
	require.Contains(t, reloptions, "fillfactor=50")
}

// belowFloors counts the unpublished rows below both floors: none, ever.
func belowFloors(ctx context.Context, pool *pgxpool.Pool) (int, error) {
	var n int
	err := pool.QueryRow(ctx, `SELECT count(*) FROM outbox, outbox_relay
WHERE xid < xid_floor AND seq <= seq_floor AND published_at IS NULL AND quarantined_at IS NULL`).Scan(&n)
	return n, err
}

// Writers committing while a relay drains in small rounds, some of them
// holding their transaction open (its seq taken) until others committed
// after it: every row is published, and at no moment is an unpublished
// row below the floors.
func TestConcurrentWritersAndLateCommitsAreAllRelayed(t *testing.T) {
	b := setup(t)
	r := outbox.NewRelay(b.pool, b.js, b.log, "svc")
	r.Batch, r.InFlight, r.Interval = 3, 4, time.Hour
	ctx, cancel := context.WithCancel(b.ctx)
	done := make(chan error)
	go func() { done <- r.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })

	const writers, each = 4, 30
	var (
		want    []string
		wg      sync.WaitGroup
		errs    = make(chan error, writers)
		commits = make(chan struct{}, writers*each)
	)
	for w := range writers {
		for i := range each {
			want = append(want, fmt.Sprintf("w%d-%02d", w, i))
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				id := fmt.Sprintf("w%d-%02d", w, i)
				err := pgx.BeginFunc(b.ctx, b.pool, func(tx pgx.Tx) error {
					if _, err := outbox.Add(b.ctx, tx, outbox.Message{ID: id, Subject: "huifang.events.test", Payload: wrapperspb.String(id)}); err != nil {
						return err
					}
					if _, err := tx.Exec(b.ctx, `SELECT 1`); err != nil { // the insert is sent: the seq is taken
						return err
					}
					if i%5 == 4 && w > 0 {
						// Commit late: after two commits of others.
						for range 2 {
							select {
							case <-commits:
							case <-time.After(30 * time.Second):
								return nil // the others are done: commit now
							}
						}
					}
					return nil
				})
				if err != nil {
					errs <- err
					return
				}
				commits <- struct{}{}
				r.Notify()
			}
		}()
	}
	stop := make(chan struct{})
	checked := make(chan int)
	go func() {
		// Check the floors while everything runs.
		n := 0
		for {
			select {
			case <-stop:
				checked <- n
				return
			default:
			}
			if n, err := belowFloors(b.ctx, b.pool); err != nil || n != 0 {
				checked <- -1
				return
			}
			n++
		}
	}()
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}
	require.Eventually(t, func() bool { return pending(t, b) == 0 }, 60*time.Second, 10*time.Millisecond)
	close(stop)
	require.Positive(t, <-checked, "an unpublished row was below the floors")
	below, err := belowFloors(b.ctx, b.pool)
	require.NoError(t, err)
	require.Zero(t, below)
	got := idsOf(t, b, stream.EventsStream)
	slices.Sort(got)
	slices.Sort(want)
	require.Equal(t, want, got)
}
