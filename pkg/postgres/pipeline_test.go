package postgres_test

import (
	"context"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/huifang/huifang/pkg/pgtest"
	"github.com/huifang/huifang/pkg/postgres"
)

// trips counts what a connection sends to the server: one per query
// outside a batch, one per batch.
type trips struct{ n int }

func (t *trips) TraceQueryStart(ctx context.Context, _ *pgx.Conn, _ pgx.TraceQueryStartData) context.Context {
	t.n++
	return ctx
}
func (*trips) TraceQueryEnd(context.Context, *pgx.Conn, pgx.TraceQueryEndData) {}
func (t *trips) TraceBatchStart(ctx context.Context, _ *pgx.Conn, _ pgx.TraceBatchStartData) context.Context {
	t.n++
	return ctx
}
func (*trips) TraceBatchQuery(context.Context, *pgx.Conn, pgx.TraceBatchQueryData) {}
func (*trips) TraceBatchEnd(context.Context, *pgx.Conn, pgx.TraceBatchEndData)     {}

func pipelineConn(t *testing.T) (*pgx.Conn, *trips) {
	t.Helper()
	ctx := context.Background()
	cfg, err := pgx.ParseConfig(pgtest.NewDatabase(t))
	require.NoError(t, err)
	tr := &trips{}
	cfg.Tracer = tr
	conn, err := pgx.ConnectConfig(ctx, cfg)
	require.NoError(t, err)
	t.Cleanup(func() { _ = conn.Close(ctx) })
	_, err = conn.Exec(ctx, `CREATE TABLE t (n int NOT NULL)`)
	require.NoError(t, err)
	return conn, tr
}

// Held statements run, in order, with the next statement that needs an
// answer, in the same round trip; Exec, Query and QueryRow carry them.
func TestPipelineSendsHeldStatementsWithTheNext(t *testing.T) {
	ctx := context.Background()
	conn, tr := pipelineConn(t)
	tx, err := conn.Begin(ctx)
	require.NoError(t, err)
	p := postgres.NewPipeline(tx)

	require.NoError(t, postgres.Defer(ctx, p, `INSERT INTO t VALUES ($1)`, 1))
	require.NoError(t, postgres.Defer(ctx, p, `INSERT INTO t VALUES ($1)`, 2))
	require.Equal(t, 2, p.Held())
	before := tr.n
	var sum, count int
	require.NoError(t, p.QueryRow(ctx, `SELECT coalesce(sum(n), 0), count(*) FROM t`).Scan(&sum, &count))
	require.Equal(t, 3, sum, "the held inserts ran before the query")
	require.Equal(t, 1, tr.n-before, "in one round trip")
	require.Equal(t, 0, p.Held())

	p.Hold(`INSERT INTO t VALUES (10)`)
	before = tr.n
	rows, err := p.Query(ctx, `SELECT n FROM t ORDER BY n`)
	require.NoError(t, err)
	ns, err := pgx.CollectRows(rows, pgx.RowTo[int])
	require.NoError(t, err)
	require.Equal(t, []int{1, 2, 10}, ns)
	require.Equal(t, 1, tr.n-before)

	p.Hold(`INSERT INTO t VALUES (20)`)
	rows, err = p.Query(ctx, `SELECT n FROM t WHERE n = 20`)
	require.NoError(t, err)
	for rows.Next() { // read to the end without Close: the connection is free again
	}
	require.NoError(t, rows.Err())

	p.Hold(`INSERT INTO t VALUES (30)`)
	before = tr.n
	tag, err := p.Exec(ctx, `DELETE FROM t WHERE n < 3`)
	require.NoError(t, err)
	require.EqualValues(t, 2, tag.RowsAffected(), "Exec's answer is its own statement's")
	require.Equal(t, 1, tr.n-before)

	p.Hold(`INSERT INTO t VALUES (40)`)
	require.ErrorIs(t, p.QueryRow(ctx, `SELECT n FROM t WHERE n = 99`).Scan(&sum), pgx.ErrNoRows)

	at := p.Hold(`INSERT INTO t VALUES (50)`)
	p.Drop(at)
	require.NoError(t, p.Commit(ctx))
	rows, err = conn.Query(ctx, `SELECT n FROM t ORDER BY n`)
	require.NoError(t, err)
	ns, err = pgx.CollectRows(rows, pgx.RowTo[int])
	require.NoError(t, err)
	require.Equal(t, []int{10, 20, 30, 40}, ns, "a dropped statement never ran")
}

// The error of a held statement comes back from the call that sent it, and
// the statement after it does not run; Commit sends what is still held.
func TestPipelineHeldStatementsErrorAndCommit(t *testing.T) {
	ctx := context.Background()
	conn, _ := pipelineConn(t)

	tx, err := conn.Begin(ctx)
	require.NoError(t, err)
	p := postgres.NewPipeline(tx)
	p.Hold(`INSERT INTO t VALUES (NULL)`)
	_, err = p.Exec(ctx, `INSERT INTO t VALUES (1)`)
	require.Equal(t, "23502", postgres.Code(err), "the held statement's not-null violation")
	require.NoError(t, p.Rollback(ctx))

	tx, err = conn.Begin(ctx)
	require.NoError(t, err)
	p = postgres.NewPipeline(tx)
	p.Hold(`INSERT INTO t VALUES (7)`)
	sp, err := p.Begin(ctx) // sends what is held, then a savepoint
	require.NoError(t, err)
	require.NoError(t, postgres.Defer(ctx, sp, `INSERT INTO t VALUES (8)`))
	require.NoError(t, sp.Rollback(ctx))
	require.NoError(t, postgres.Defer(ctx, p, `INSERT INTO t VALUES (9)`))
	require.NoError(t, p.Commit(ctx))
	rows, err := conn.Query(ctx, `SELECT n FROM t ORDER BY n`)
	require.NoError(t, err)
	ns, err := pgx.CollectRows(rows, pgx.RowTo[int])
	require.NoError(t, err)
	require.Equal(t, []int{7, 9}, ns)

	// Without a pipeline, Defer runs the statement at once.
	require.NoError(t, postgres.Defer(ctx, conn, `INSERT INTO t VALUES (11)`))
}
