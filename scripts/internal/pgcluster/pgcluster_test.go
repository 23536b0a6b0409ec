package pgcluster

import (
	"context"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"
)

// TestCrashAndResume: a committed row survives an immediate stop (crash
// recovery from the WAL); while the server is down nobody connects; the
// server comes back on the same port; Terminate ends a session.
func TestCrashAndResume(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	c, err := Start(ctx)
	require.NoError(t, err)
	t.Cleanup(c.Destroy)

	url, err := c.CreateDatabase(ctx, "chaos_pg")
	require.NoError(t, err)
	conn, err := pgx.Connect(ctx, url)
	require.NoError(t, err)
	_, err = conn.Exec(ctx, `CREATE TABLE t (id int PRIMARY KEY); INSERT INTO t VALUES (1)`)
	require.NoError(t, err)

	require.NoError(t, c.Crash(ctx))
	require.False(t, c.Running())
	_, err = conn.Exec(ctx, `SELECT 1`)
	require.Error(t, err, "the session ends with the server")
	_, err = pgx.Connect(ctx, url)
	require.Error(t, err, "nothing listens while the server is down")

	port := c.Port
	require.NoError(t, c.Resume(ctx))
	require.Equal(t, port, c.Port)
	conn, err = pgx.Connect(ctx, url)
	require.NoError(t, err)
	var n int
	require.NoError(t, conn.QueryRow(ctx, `SELECT count(*) FROM t`).Scan(&n))
	require.Equal(t, 1, n, "the committed row survived the crash")

	ended, err := c.Terminate(ctx, "chaos_pg")
	require.NoError(t, err)
	require.Equal(t, 1, ended)
	_, err = conn.Exec(ctx, `SELECT 1`)
	require.Error(t, err, "the terminated session is gone")
	require.NoError(t, c.DropDatabase(ctx, "chaos_pg"))
}
