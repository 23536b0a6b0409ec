package store

import (
	"errors"
	"fmt"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/stretchr/testify/require"
)

func TestTranslate(t *testing.T) {
	require.NoError(t, translate(nil, "x", ErrTaskNotFound))
	require.ErrorIs(t, translate(pgx.ErrNoRows, "task t-1", ErrTaskNotFound), ErrTaskNotFound)
	require.ErrorIs(t, translate(fmt.Errorf("scan: %w", pgx.ErrNoRows), "agent a-1", ErrAgentNotFound), ErrAgentNotFound)
	noRow := translate(pgx.ErrNoRows, "list", nil)
	require.ErrorIs(t, noRow, pgx.ErrNoRows, "no sentinel asked for: the driver's error, wrapped")
	require.NotErrorIs(t, noRow, ErrTaskNotFound)

	dup := translate(&pgconn.PgError{Code: "23505", ConstraintName: "attempts_task_id_attempt_key"}, "add attempt 1 of task t-1", nil)
	require.ErrorIs(t, dup, ErrConflict)
	require.Contains(t, dup.Error(), "attempts_task_id_attempt_key")
	require.ErrorIs(t, translate(&pgconn.PgError{Code: "23503"}, "add attempt", nil), ErrConflict, "a missing referenced row")

	other := errors.New("connection reset")
	got := translate(other, "save task t-1", ErrTaskNotFound)
	require.ErrorIs(t, got, other)
	require.EqualError(t, got, "store: save task t-1: connection reset")
}
