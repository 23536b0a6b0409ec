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

	dup := &pgconn.PgError{Code: "23505", ConstraintName: "breaches_tenant_id_figure_org_unit_period_start_key"}
	err := translate(fmt.Errorf("insert: %w", dup))
	require.ErrorIs(t, err, ErrConflict)
	require.ErrorAs(t, err, new(*pgconn.PgError), "the driver's error stays reachable")
	require.Contains(t, err.Error(), dup.ConstraintName)

	other := &pgconn.PgError{Code: "40P01"}
	require.Same(t, error(other), translate(other), "other errors are returned as they are")
	boom := errors.New("boom")
	require.Equal(t, boom, translate(boom))
}
