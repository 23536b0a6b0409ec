package store_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/huifang/huifang/pkg/servicetest"
	"github.com/huifang/huifang/services/analytics/internal/figures"
	"github.com/huifang/huifang/services/analytics/internal/rollup"
	"github.com/huifang/huifang/services/analytics/internal/store"
	"github.com/huifang/huifang/services/analytics/migrations"
)

func pool(t *testing.T) *pgxpool.Pool { return servicetest.Pool(t, "analytics", migrations.FS) }

// UpdateVisit hands fn the stored entry (a new one the first time) and
// saves what fn leaves; an error of fn saves nothing.
func TestUpdateVisitByClosure(t *testing.T) {
	db := pool(t)
	ctx := context.Background()
	due := time.Date(2025, 3, 1, 8, 0, 0, 0, time.UTC)
	update := func(fn func(v *rollup.Visit) error) error {
		return pgx.BeginFunc(ctx, db, func(tx pgx.Tx) error { return store.UpdateVisit(ctx, tx, "default", "v1", fn) })
	}
	require.NoError(t, update(func(v *rollup.Visit) error {
		require.Equal(t, rollup.Visit{Tenant: "default", VisitID: "v1"}, *v, "a new entry")
		v.Due, v.DueAt, v.OrgUnit = true, due, "north"
		return nil
	}))
	refused := errors.New("refused")
	require.ErrorIs(t, update(func(v *rollup.Visit) error {
		v.OrgUnit = "south"
		return refused
	}), refused)
	require.NoError(t, update(func(v *rollup.Visit) error {
		require.Equal(t, rollup.Visit{Tenant: "default", VisitID: "v1", Dims: rollup.Dims{OrgUnit: "north"}, Due: true, DueAt: due}, *v,
			"what the first update saved; the refused one saved nothing")
		return nil
	}))
}

// A service coverage left without eligible visits is removed.
func TestUpdateServiceCoverageRemovesEmptyEntries(t *testing.T) {
	db := pool(t)
	ctx := context.Background()
	update := func(fn func(c *rollup.ServiceCoverage) error) {
		require.NoError(t, pgx.BeginFunc(ctx, db, func(tx pgx.Tx) error { return store.UpdateServiceCoverage(ctx, tx, "default", "s1", fn) }))
	}
	count := func() (n int) {
		require.NoError(t, db.QueryRow(ctx, `SELECT count(*) FROM service_coverage`).Scan(&n))
		return n
	}
	update(func(c *rollup.ServiceCoverage) error {
		*c = c.With("v1", rollup.ServiceVisit{Day: time.Date(2025, 3, 1, 0, 0, 0, 0, time.UTC)}, true)
		return nil
	})
	require.Equal(t, 1, count())
	update(func(c *rollup.ServiceCoverage) error {
		require.Len(t, c.Visits, 1)
		*c = c.With("v1", rollup.ServiceVisit{}, false)
		return nil
	})
	require.Zero(t, count())
}

// A customer's latest service is saved when fn moves it.
func TestUpdateCustomer(t *testing.T) {
	db := pool(t)
	ctx := context.Background()
	at := time.Date(2025, 3, 1, 8, 0, 0, 0, time.UTC)
	serve := func(at time.Time) (wonBack bool) {
		require.NoError(t, pgx.BeginFunc(ctx, db, func(tx pgx.Tx) error {
			return store.UpdateCustomer(ctx, tx, "default", "cu1", func(c *rollup.Customer) error {
				wonBack = c.Serve(at)
				return nil
			})
		}))
		return wonBack
	}
	require.False(t, serve(at))
	require.False(t, serve(at.AddDate(0, -1, 0)), "an older service changes nothing")
	require.True(t, serve(at.AddDate(0, 7, 0)), "7 months after the latest stored: won back")
	var last time.Time
	require.NoError(t, db.QueryRow(ctx, `SELECT last_service_at FROM customers`).Scan(&last))
	require.True(t, last.Equal(at.AddDate(0, 7, 0)))
}

// A breach recorded before is ErrConflict, and the caller's transaction
// goes on (the insert ran in a savepoint).
func TestAddBreachConflict(t *testing.T) {
	db := pool(t)
	ctx := context.Background()
	b := figures.Breach{ID: "b1", Tenant: "default", Figure: "coverage", PeriodStart: time.Date(2025, 3, 1, 0, 0, 0, 0, time.UTC),
		PeriodEnd: time.Date(2025, 3, 15, 0, 0, 0, 0, time.UTC), Value: 0.75, Target: 0.9, DetectedAt: time.Date(2025, 3, 15, 9, 0, 0, 0, time.UTC)}
	require.NoError(t, pgx.BeginFunc(ctx, db, func(tx pgx.Tx) error { return store.AddBreach(ctx, tx, b) }))
	require.NoError(t, pgx.BeginFunc(ctx, db, func(tx pgx.Tx) error {
		again := b
		again.ID = "b2"
		require.ErrorIs(t, store.AddBreach(ctx, tx, again), store.ErrConflict, "same tenant, figure, org unit and period")
		other := b
		other.ID, other.OrgUnit = "b3", "south"
		return store.AddBreach(ctx, tx, other)
	}))
	got, err := store.Breaches(ctx, db, "default", nil, "", 10)
	require.NoError(t, err)
	require.Len(t, got, 2)
	require.ElementsMatch(t, []string{"b1", "b3"}, []string{got[0].ID, got[1].ID})
}

func TestIncentiveRuleNotFound(t *testing.T) {
	db := pool(t)
	_, err := store.IncentiveRule(context.Background(), db, "acme")
	require.ErrorIs(t, err, store.ErrNotFound)
}
