package store

import (
	"errors"
	"fmt"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/stretchr/testify/require"

	"github.com/huifang/huifang/pkg/postgres"
)

// Driver errors become the store's sentinels in one place, keeping the
// driver's error in the chain; other errors pass as they are.
func TestTranslate(t *testing.T) {
	unique := &pgconn.PgError{Code: postgres.CodeUniqueViolation, ConstraintName: "services_complaint_once"}
	deadlock := &pgconn.PgError{Code: postgres.CodeDeadlockDetected}
	serial := &pgconn.PgError{Code: postgres.CodeSerializationFailure}
	other := errors.New("connection reset")
	for _, tc := range []struct {
		in   error
		want error
	}{
		{pgx.ErrNoRows, ErrNotFound},
		{fmt.Errorf("scan: %w", pgx.ErrNoRows), ErrNotFound},
		{unique, ErrConflict},
		{fmt.Errorf("exec: %w", unique), ErrConflict},
		{deadlock, ErrBusy},
		{serial, ErrBusy},
		{&pgconn.PgError{Code: postgres.CodeCheckViolation}, nil},
		{other, nil},
	} {
		got := translate(tc.in)
		if tc.want == nil {
			require.Equal(t, tc.in, got, "passes as it is")
			continue
		}
		require.ErrorIs(t, got, tc.want, tc.in)
	}
	require.Nil(t, translate(nil))
	require.Nil(t, wrap("op", nil))
	got := wrap("insert service", unique)
	require.ErrorIs(t, got, ErrConflict)
	require.Equal(t, postgres.CodeUniqueViolation, postgres.Code(got), "the driver's error stays in the chain")
	require.Contains(t, got.Error(), "services_complaint_once")
	require.Contains(t, got.Error(), "store: insert service")
}
