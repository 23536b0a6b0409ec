package store_test

import (
	"context"
	"io/fs"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/huifang/huifang/services/analytics/internal/store"
	"github.com/huifang/huifang/services/analytics/migrations"
)

// The lease: taken when free or expired (by the database's clock), each
// take-over with a greater token; renewed only by its term; released for
// the next taker at once.
func TestLeaseTakeRenewRelease(t *testing.T) {
	db := pool(t)
	ctx := context.Background()
	const name = "test"
	a, ok, err := store.TakeLease(ctx, db, name, "a", time.Hour)
	require.NoError(t, err)
	require.True(t, ok)
	require.EqualValues(t, 1, a.Token)
	_, ok, err = store.TakeLease(ctx, db, name, "b", time.Hour)
	require.NoError(t, err)
	require.False(t, ok, "held and not expired")
	_, ok, err = store.TakeLease(ctx, db, name, "a", time.Hour)
	require.NoError(t, err)
	require.False(t, ok, "not even by its own holder: a new term needs the old one over")
	require.NoError(t, store.RenewLease(ctx, db, a))

	// Expired by the database's clock: taken over with the next token; the
	// old term can no longer renew, nor write.
	_, err = db.Exec(ctx, `UPDATE leases SET expires_at = now() - interval '1 second' WHERE name = $1`, name)
	require.NoError(t, err)
	b, ok, err := store.TakeLease(ctx, db, name, "b", time.Hour)
	require.NoError(t, err)
	require.True(t, ok)
	require.EqualValues(t, 2, b.Token)
	require.ErrorIs(t, store.RenewLease(ctx, db, a), store.ErrLeaseLost)
	hold := func(l store.Lease) error {
		return pgx.BeginFunc(ctx, db, func(tx pgx.Tx) error { return store.HoldLease(ctx, tx, l) })
	}
	require.ErrorIs(t, hold(a), store.ErrLeaseLost)
	require.NoError(t, hold(b))
	holder, token, err := store.LeaseHolder(ctx, db, name)
	require.NoError(t, err)
	require.Equal(t, "b", holder)
	require.EqualValues(t, 2, token)

	// A release by the old term changes nothing; the holder's frees it.
	require.NoError(t, store.ReleaseLease(ctx, db, a))
	_, ok, err = store.TakeLease(ctx, db, name, "c", time.Hour)
	require.NoError(t, err)
	require.False(t, ok)
	require.NoError(t, store.ReleaseLease(ctx, db, b))
	require.ErrorIs(t, hold(b), store.ErrLeaseLost, "released: the term is over")
	c, ok, err := store.TakeLease(ctx, db, name, "c", time.Hour)
	require.NoError(t, err)
	require.True(t, ok, "free at once")
	require.EqualValues(t, 3, c.Token)
}

// The fence keeps the lease row share-locked until its transaction ends:
// a take-over waits for a write of the old term to commit or roll back, so
// no write of an old term lands after a new term began.
func TestHoldLeaseBlocksTheTakeOverUntilTheWriteEnds(t *testing.T) {
	db := pool(t)
	ctx := context.Background()
	_, tx := takeAndWrite(t, db, 500*time.Millisecond)
	expired := make(chan struct{})
	taken := make(chan store.Lease, 1)
	go func() {
		defer close(taken)
		for {
			if h, _, err := store.LeaseHolder(ctx, db, "test"); err == nil && h == "" {
				break
			}
			time.Sleep(10 * time.Millisecond)
		}
		close(expired)
		b, ok, err := store.TakeLease(ctx, db, "test", "b", time.Hour)
		if err == nil && ok {
			taken <- b
		}
	}()
	// The write goes on (busy, not idle) past the lease's expiry.
	_, err := tx.Exec(ctx, `SELECT pg_sleep(1.5)`)
	require.NoError(t, err)
	<-expired
	select {
	case <-taken:
		t.Fatal("taken over while a write of the old term was open")
	default:
	}
	require.NoError(t, tx.Commit(ctx))
	b, ok := <-taken
	require.True(t, ok, "taken over once the write ended")
	require.EqualValues(t, 2, b.Token)
}

// The leader's renewal goes on beside its own open writes: a renewal that
// waited for the fences of a busy consumer (which overlap without end under
// load) would time out, and the leader would stand down although nobody
// else wanted the lease.
func TestRenewalIsNotHeldUpByOpenWrites(t *testing.T) {
	db := pool(t)
	ctx := context.Background()
	a, _ := takeAndWrite(t, db, time.Hour)
	openWrite(t, db, a)
	rctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	require.NoError(t, store.RenewLease(rctx, db, a), "renewed while two writes of the term are open")
	require.NoError(t, store.ReleaseLease(rctx, db, a))
	// Released, yet a taker waits while the old term's writes are open.
	tctx, tcancel := context.WithTimeout(ctx, time.Second)
	defer tcancel()
	_, ok, err := store.TakeLease(tctx, db, "test", "b", time.Hour)
	require.ErrorIs(t, err, context.DeadlineExceeded, "a take-over waits for the open writes")
	require.False(t, ok)
}

// A replica that stops inside a fenced transaction (dead, paused) does not
// keep the lease row locked: Postgres ends the idle transaction after the
// lease's duration, and the lease is taken over.
func TestHoldLeaseDoesNotOutliveAnIdleWriter(t *testing.T) {
	db := pool(t)
	ctx := context.Background()
	_, tx := takeAndWrite(t, db, time.Second)
	require.Eventually(t, func() bool {
		_, ok, err := store.TakeLease(ctx, db, "test", "b", time.Hour)
		return err == nil && ok
	}, 15*time.Second, 50*time.Millisecond, "taken over although the old term's transaction never ended")
	require.Error(t, tx.Commit(ctx), "Postgres ended the idle transaction")
}

// takeAndWrite takes the lease "test" for "a" and opens a write of its term
// (a transaction past HoldLease), rolled back at the test's end.
func takeAndWrite(t *testing.T, db *pgxpool.Pool, ttl time.Duration) (store.Lease, pgx.Tx) {
	t.Helper()
	ctx := context.Background()
	a, ok, err := store.TakeLease(ctx, db, "test", "a", ttl)
	require.NoError(t, err)
	require.True(t, ok)
	return a, openWrite(t, db, a)
}

// openWrite opens a write of l's term, rolled back at the test's end.
func openWrite(t *testing.T, db *pgxpool.Pool, l store.Lease) pgx.Tx {
	t.Helper()
	ctx := context.Background()
	tx, err := db.Begin(ctx)
	require.NoError(t, err)
	t.Cleanup(func() { _ = tx.Rollback(ctx) })
	require.NoError(t, store.HoldLease(ctx, tx, l))
	return tx
}

// Every table analytics' migrations create is either made by a replay of
// the stream (a rebuild makes it again in shadow and swaps it in) or kept
// by a rebuild: a new table must be put in one of the two lists.
func TestEveryTableIsClassified(t *testing.T) {
	created := regexp.MustCompile(`(?i)CREATE TABLE (?:IF NOT EXISTS )?([a-z_][a-z0-9_]*)`)
	dropped := regexp.MustCompile(`(?i)DROP TABLE (?:IF EXISTS )?([a-z_][a-z0-9_]*)`)
	files, err := fs.Glob(migrations.FS, "*.sql")
	require.NoError(t, err)
	tables := map[string]bool{}
	for _, f := range files {
		b, err := fs.ReadFile(migrations.FS, f)
		require.NoError(t, err)
		var lines []string
		for _, l := range strings.Split(string(b), "\n") {
			if !strings.HasPrefix(strings.TrimSpace(l), "--") {
				lines = append(lines, l)
			}
		}
		sql := strings.Join(lines, "\n")
		for _, m := range created.FindAllStringSubmatch(sql, -1) {
			tables[m[1]] = true
		}
		for _, m := range dropped.FindAllStringSubmatch(sql, -1) {
			delete(tables, m[1])
		}
	}
	require.NotEmpty(t, tables)
	for name := range tables {
		require.True(t, slices.Contains(store.RollupTables, name) != slices.Contains(store.KeptTables, name),
			"table %s must be in exactly one of store.RollupTables and store.KeptTables", name)
	}
	for _, name := range append(append([]string{}, store.RollupTables...), store.KeptTables...) {
		require.True(t, tables[name], "%s is listed but no migration creates it", name)
	}
}
