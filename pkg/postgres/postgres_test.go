package postgres_test

import (
	"context"
	"io"
	"log/slog"
	"sync"
	"testing"
	"testing/fstest"

	"github.com/stretchr/testify/require"

	"github.com/huifang/huifang/pkg/pgtest"
	"github.com/huifang/huifang/pkg/postgres"
)

func quiet() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// Replicas that start together apply each migration once, in order, in their own schema.
func TestMigrationsApplyOnceUnderConcurrentStarts(t *testing.T) {
	url := pgtest.NewDatabase(t)
	ctx := context.Background()
	set := postgres.Migrations{Set: "svc", FS: fstest.MapFS{
		"001_a.sql": {Data: []byte(`CREATE TABLE a (n int); INSERT INTO a VALUES (1);`)},
		"002_b.sql": {Data: []byte(`INSERT INTO a VALUES (2);`)},
		"README.md": {Data: []byte(`not a migration`)},
	}}
	var wg sync.WaitGroup
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			pool, err := postgres.Open(ctx, quiet(), url, "svc", set)
			if err != nil {
				t.Error(err)
				return
			}
			pool.Close()
		}()
	}
	wg.Wait()
	pool, err := postgres.Open(ctx, quiet(), url, "svc", set)
	require.NoError(t, err)
	defer pool.Close()
	var sum, n int
	require.NoError(t, pool.QueryRow(ctx, `SELECT sum(n), count(*) FROM svc.a`).Scan(&sum, &n))
	require.Equal(t, 3, sum)
	require.Equal(t, 2, n)
}

func TestFailedMigrationLeavesNothingHalfDone(t *testing.T) {
	url := pgtest.NewDatabase(t)
	ctx := context.Background()
	set := postgres.Migrations{Set: "svc", FS: fstest.MapFS{
		"001_a.sql": {Data: []byte(`CREATE TABLE a (n int); SELECT no_such_function();`)},
	}}
	_, err := postgres.Open(ctx, quiet(), url, "svc", set)
	require.ErrorContains(t, err, "001_a.sql")
	pool, err := postgres.Open(ctx, quiet(), url, "svc")
	require.NoError(t, err)
	defer pool.Close()
	var exists bool
	require.NoError(t, pool.QueryRow(ctx, `SELECT to_regclass('svc.a') IS NOT NULL`).Scan(&exists))
	require.False(t, exists)
}

func TestMigrationNamesMustBeNumbered(t *testing.T) {
	_, err := postgres.Open(context.Background(), quiet(), pgtest.NewDatabase(t), "svc",
		postgres.Migrations{Set: "svc", FS: fstest.MapFS{"init.sql": {Data: []byte(`SELECT 1`)}}})
	require.ErrorContains(t, err, "must start with its number")
}

func TestSchemaMustBeAPlainIdentifier(t *testing.T) {
	_, err := postgres.Open(context.Background(), quiet(), pgtest.AdminURL(), "bad; drop", postgres.Migrations{})
	require.ErrorContains(t, err, "plain identifier")
}

// Statements are planned for their parameters at each execution
// (force_custom_plan), unless the URL says otherwise.
func TestPoolPlansEachExecution(t *testing.T) {
	url := pgtest.NewDatabase(t)
	ctx := context.Background()
	for _, c := range []struct{ url, want string }{
		{url, "force_custom_plan"},
		{url + "&options=-c%20plan_cache_mode%3Dauto", "auto"},
	} {
		pool, err := postgres.Open(ctx, quiet(), c.url, "svc")
		require.NoError(t, err)
		var mode string
		require.NoError(t, pool.QueryRow(ctx, `SHOW plan_cache_mode`).Scan(&mode))
		require.EqualValues(t, postgres.DefaultMaxConns, pool.Config().MaxConns)
		pool.Close()
		require.Equal(t, c.want, mode, c.url)
	}
}

// Migrations that ran leave their tables with statistics (issue #15: plans
// on fresh tables), so a table a migration filled is planned on its rows at
// once, not on a guess until autovacuum's first visit.
func TestMigrationsLeaveStatistics(t *testing.T) {
	url := pgtest.NewDatabase(t)
	ctx := context.Background()
	set := postgres.Migrations{Set: "svc", FS: fstest.MapFS{
		"001_a.sql": {Data: []byte(`CREATE TABLE a (n int); INSERT INTO a SELECT generate_series(1, 500);`)},
	}}
	pool, err := postgres.Open(ctx, quiet(), url, "svc", set)
	require.NoError(t, err)
	defer pool.Close()
	var tuples float64
	require.NoError(t, pool.QueryRow(ctx, `SELECT reltuples FROM pg_class WHERE oid = 'svc.a'::regclass`).Scan(&tuples))
	require.Equal(t, float64(500), tuples, "analyzed after the migration")
}
