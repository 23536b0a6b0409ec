package app_test

import (
	"context"
	"errors"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	typesv1 "github.com/huifang/huifang/proto/huifang/types/v1"

	"github.com/huifang/huifang/services/dispatch/internal/app"
	"github.com/huifang/huifang/services/dispatch/internal/task"
)

var errRollback = errors.New("the caller rolls back")

// TestCommandsJoinTheCallersTransaction: a consumer's command runs in the
// caller's transaction (the Tx form, or an App whose DB is that
// transaction) and rolls back with it; committed, its effects stay.
func TestCommandsJoinTheCallersTransaction(t *testing.T) {
	b := setup(t)
	ctx := context.Background()
	due := func(visit string) task.Due {
		return task.Due{Tenant: "default", VisitID: visit, Channel: typesv1.Channel_CHANNEL_PHONE, Customer: task.Customer{ID: "c-1", NameMasked: "王芳"}}
	}
	count := func(q string, args ...any) int {
		var n int
		require.NoError(t, b.pool.QueryRow(ctx, q, args...).Scan(&n))
		return n
	}

	err := pgx.BeginFunc(ctx, b.pool, func(tx pgx.Tx) error {
		created, err := b.a.CreateTaskTx(ctx, tx, due("v-1"))
		require.NoError(t, err)
		require.True(t, created)
		_, err = b.a.UpdateCustomerTx(ctx, tx, app.CustomerUpdate{Tenant: "default", Customer: task.Customer{ID: "c-1", NameMasked: "王芳"}, Version: 2})
		require.NoError(t, err)
		require.NoError(t, b.a.CancelVisitTx(ctx, tx, "default", "v-9", "gone"))
		// The same command with the transaction as its DB runs in a savepoint.
		in := *b.a
		in.DB = tx
		created, err = in.CreateTask(ctx, due("v-2"))
		require.NoError(t, err)
		require.True(t, created)
		return errRollback
	})
	require.ErrorIs(t, err, errRollback)
	require.Zero(t, count(`SELECT count(*) FROM tasks`), "the tasks rolled back with the caller")
	require.Zero(t, count(`SELECT count(*) FROM customer_versions`))
	require.Zero(t, count(`SELECT count(*) FROM cancelled_visits`))

	require.NoError(t, pgx.BeginFunc(ctx, b.pool, func(tx pgx.Tx) error {
		_, err := b.a.CreateTaskTx(ctx, tx, due("v-1"))
		return err
	}))
	require.Equal(t, 1, count(`SELECT count(*) FROM tasks WHERE visit_id = 'v-1'`), "committed with the caller")

	// A command that fails in a savepoint leaves the caller's transaction usable.
	require.NoError(t, pgx.BeginFunc(ctx, b.pool, func(tx pgx.Tx) error {
		in := *b.a
		in.DB = tx
		_, err := in.CreateTask(ctx, task.Due{Tenant: "default"})
		require.Error(t, err, "no visit id")
		_, err = in.CreateTask(ctx, due("v-3"))
		return err
	}))
	require.Equal(t, 1, count(`SELECT count(*) FROM tasks WHERE visit_id = 'v-3'`))
}
