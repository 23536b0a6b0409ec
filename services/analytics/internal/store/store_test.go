package store_test

import (
	"context"
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

// Visits gives a new entry for a visit not stored, and what SaveVisits saved.
func TestVisitsAndSaveVisits(t *testing.T) {
	db := pool(t)
	ctx := context.Background()
	due := time.Date(2025, 3, 1, 8, 0, 0, 0, time.UTC)
	k1, k2 := store.EntryKey{Tenant: "default", ID: "v1"}, store.EntryKey{Tenant: "acme", ID: "v1"}
	in := func(fn func(tx pgx.Tx) error) { require.NoError(t, pgx.BeginFunc(ctx, db, fn)) }
	in(func(tx pgx.Tx) error {
		require.NoError(t, store.LockEntries(ctx, tx, []store.Lock{{Kind: store.KindVisit, EntryKey: k1}, {Kind: store.KindVisit, EntryKey: k2}}))
		vs, err := store.Visits(ctx, tx, []store.EntryKey{k1, k2, k1})
		require.NoError(t, err)
		require.Equal(t, map[store.EntryKey]rollup.Visit{k1: {Tenant: "default", VisitID: "v1"}, k2: {Tenant: "acme", VisitID: "v1"}}, vs, "new entries")
		v := vs[k1]
		v.Due, v.DueAt, v.OrgUnit = true, due, "north"
		return store.SaveVisits(ctx, tx, []rollup.Visit{v, vs[k2]})
	})
	in(func(tx pgx.Tx) error {
		vs, err := store.Visits(ctx, tx, []store.EntryKey{k1, k2})
		require.NoError(t, err)
		require.Equal(t, rollup.Visit{Tenant: "default", VisitID: "v1", Dims: rollup.Dims{OrgUnit: "north"}, Due: true, DueAt: due}, vs[k1])
		require.Equal(t, rollup.Visit{Tenant: "acme", VisitID: "v1"}, vs[k2], "each tenant's own")
		return nil
	})
}

// A service coverage left without eligible visits is removed.
func TestSaveServiceCoveragesRemovesEmptyEntries(t *testing.T) {
	db := pool(t)
	ctx := context.Background()
	k := store.EntryKey{Tenant: "default", ID: "s1"}
	update := func(fn func(c rollup.ServiceCoverage) rollup.ServiceCoverage) {
		require.NoError(t, pgx.BeginFunc(ctx, db, func(tx pgx.Tx) error {
			cs, err := store.ServiceCoverages(ctx, tx, []store.EntryKey{k})
			require.NoError(t, err)
			return store.SaveServiceCoverages(ctx, tx, []rollup.ServiceCoverage{fn(cs[k])})
		}))
	}
	count := func() (n int) {
		require.NoError(t, db.QueryRow(ctx, `SELECT count(*) FROM service_coverage`).Scan(&n))
		return n
	}
	update(func(c rollup.ServiceCoverage) rollup.ServiceCoverage {
		return c.With("v1", rollup.ServiceVisit{Day: time.Date(2025, 3, 1, 0, 0, 0, 0, time.UTC)}, true)
	})
	require.Equal(t, 1, count())
	update(func(c rollup.ServiceCoverage) rollup.ServiceCoverage {
		require.Len(t, c.Visits, 1)
		return c.With("v1", rollup.ServiceVisit{}, false)
	})
	require.Zero(t, count())
}

// SaveServices keeps a service's car and advisor when it names none of them.
func TestSaveServicesKeepsTheCar(t *testing.T) {
	db := pool(t)
	ctx := context.Background()
	k := store.EntryKey{Tenant: "default", ID: "s1"}
	require.NoError(t, store.SaveServices(ctx, db, []store.Service{{EntryKey: k, ProductCategory: "engine", VehicleModel: "A4", PlateMasked: "沪A***45"}}))
	require.NoError(t, store.SaveServices(ctx, db, []store.Service{{EntryKey: k, ProductCategory: "tyres"}}))
	var cat, model, plate, advisor string
	require.NoError(t, db.QueryRow(ctx, `SELECT product_category, vehicle_model, plate_masked, advisor FROM services`).Scan(&cat, &model, &plate, &advisor))
	require.Equal(t, []string{"tyres", "A4", "沪A***45", ""}, []string{cat, model, plate, advisor})
	got, err := store.Services(ctx, db, []store.EntryKey{k, {Tenant: "default", ID: "s2"}})
	require.NoError(t, err)
	require.Equal(t, map[store.EntryKey]store.Service{k: {EntryKey: k, ProductCategory: "tyres"}}, got, "only stored services, with their product")
}

// Customers gives a new customer for one not stored, and what SaveCustomers saved.
func TestCustomers(t *testing.T) {
	db := pool(t)
	ctx := context.Background()
	at := time.Date(2025, 3, 1, 8, 0, 0, 0, time.UTC)
	k := store.EntryKey{Tenant: "default", ID: "cu1"}
	require.NoError(t, pgx.BeginFunc(ctx, db, func(tx pgx.Tx) error {
		cs, err := store.Customers(ctx, tx, []store.EntryKey{k})
		require.NoError(t, err)
		require.Equal(t, rollup.Customer{Tenant: "default", CustomerID: "cu1"}, cs[k])
		c := cs[k]
		c.Serve(at)
		return store.SaveCustomers(ctx, tx, []rollup.Customer{c})
	}))
	require.NoError(t, pgx.BeginFunc(ctx, db, func(tx pgx.Tx) error {
		cs, err := store.Customers(ctx, tx, []store.EntryKey{k})
		require.NoError(t, err)
		require.True(t, cs[k].LastServiceAt.Equal(at))
		return nil
	}))
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

// A visit's and a service coverage's state is stored without its key (the
// row's columns hold it), and a state stored with its key, as before,
// reads the same.
func TestStatesStoredWithoutTheirKey(t *testing.T) {
	db := pool(t)
	ctx := context.Background()
	due := time.Date(2025, 3, 1, 8, 0, 0, 0, time.UTC)
	v := rollup.Visit{Tenant: "acme", VisitID: "v1", ServiceID: "s1", Dims: rollup.Dims{OrgUnit: "north"}, Due: true, DueAt: due}
	c := rollup.ServiceCoverage{Tenant: "acme", ServiceID: "s1"}.With("v1", rollup.ServiceVisit{Day: rollup.Day(due), Customer: "c1"}, true)
	require.NoError(t, pgx.BeginFunc(ctx, db, func(tx pgx.Tx) error {
		require.NoError(t, store.SaveVisits(ctx, tx, []rollup.Visit{v}))
		return store.SaveServiceCoverages(ctx, tx, []rollup.ServiceCoverage{c})
	}))
	var visitKeys, coverageKeys int
	require.NoError(t, db.QueryRow(ctx, `SELECT
  (SELECT count(*) FROM visits WHERE state ?| array['tenant', 'visit_id']),
  (SELECT count(*) FROM service_coverage WHERE state ?| array['tenant', 'service_id'])`).Scan(&visitKeys, &coverageKeys))
	require.Zero(t, visitKeys+coverageKeys, "no key in the stored states")
	// The shape stored before: the key inside the state too.
	_, err := db.Exec(ctx, `INSERT INTO visits (tenant_id, visit_id, state) VALUES ('acme', 'v2',
  '{"tenant":"acme","visit_id":"v2","service_id":"s1","org_unit":"north","due":true,"due_at":"2025-03-01T08:00:00Z"}');
INSERT INTO service_coverage (tenant_id, service_id, state) VALUES ('acme', 's2',
  '{"tenant":"acme","service_id":"s2","visits":{"v1":{"day":"2025-03-01T00:00:00Z","customer":"c1"}}}')`)
	require.NoError(t, err)
	require.NoError(t, pgx.BeginFunc(ctx, db, func(tx pgx.Tx) error {
		k1, k2 := store.EntryKey{Tenant: "acme", ID: "v1"}, store.EntryKey{Tenant: "acme", ID: "v2"}
		vs, err := store.Visits(ctx, tx, []store.EntryKey{k1, k2})
		require.NoError(t, err)
		require.Equal(t, v, vs[k1])
		old := v
		old.VisitID = "v2"
		require.Equal(t, old, vs[k2])
		s1, s2 := store.EntryKey{Tenant: "acme", ID: "s1"}, store.EntryKey{Tenant: "acme", ID: "s2"}
		cs, err := store.ServiceCoverages(ctx, tx, []store.EntryKey{s1, s2})
		require.NoError(t, err)
		require.Equal(t, c, cs[s1])
		oldc := c
		oldc.ServiceID = "s2"
		require.Equal(t, oldc, cs[s2])
		return nil
	}))
}
