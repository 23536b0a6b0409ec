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
	require.NoError(t, translate(nil))
	require.ErrorIs(t, translate(pgx.ErrNoRows), ErrNotFound)
	require.ErrorIs(t, translate(fmt.Errorf("scan: %w", pgx.ErrNoRows)), ErrNotFound)

	unique := &pgconn.PgError{Code: "23505", ConstraintName: "visit_records_tenant_id_visit_id_key", Message: "duplicate key"}
	err := translate(unique)
	require.ErrorIs(t, err, ErrConflict)
	var pgErr *pgconn.PgError
	require.ErrorAs(t, err, &pgErr, "the driver's error stays in the chain")
	require.Contains(t, err.Error(), "duplicate key")

	require.ErrorIs(t, translate(&pgconn.PgError{Code: "23503"}), ErrNotFound, "a row it refers to does not exist")

	other := &pgconn.PgError{Code: "P0001", Message: "visit records are append-only (seed 004)"}
	err = translate(other)
	require.Same(t, other, err, "other errors pass as they are")
	require.False(t, errors.Is(err, ErrNotFound) || errors.Is(err, ErrConflict))
}
