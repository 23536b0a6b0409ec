package store_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	calendar "github.com/huifang/huifang/pkg/contact"
	"github.com/huifang/huifang/pkg/servicetest"
	"github.com/huifang/huifang/services/scheduler/internal/contact"
	"github.com/huifang/huifang/services/scheduler/internal/policy"
	"github.com/huifang/huifang/services/scheduler/internal/store"
	"github.com/huifang/huifang/services/scheduler/internal/visit"
	"github.com/huifang/huifang/services/scheduler/migrations"
)

var t0 = time.Date(2026, 11, 28, 10, 0, 0, 0, time.UTC)

func setup(t *testing.T) (context.Context, *pgxpool.Pool) {
	t.Helper()
	return context.Background(), servicetest.Pool(t, "scheduler", migrations.FS)
}

func instant(id, name string) policy.Policy {
	return policy.Policy{ID: id, Tenant: "default", Name: name, Version: 1, Active: true, CreatedAt: t0,
		Trigger: policy.Trigger{ServiceTypes: []string{"repair"}}, Steps: []policy.Step{{Channel: policy.ChannelPhone, SampleRate: 1}}}
}

func planned(id, service string) visit.Visit {
	s := policy.Service{Tenant: "default", ID: service, Type: "repair", CompletedAt: t0, CustomerID: "c-1"}
	v := policy.Visit{PolicyID: "p1", PolicyVersion: 1, Channel: policy.ChannelPhone, Nominal: t0, DueAt: t0, Deadline: t0.Add(48 * time.Hour),
		Planned: true, SampleRate: 1, Reason: "rule", Decisions: []policy.Decision{{Kind: policy.KindRule, Detail: "rule"}}}
	return visit.New(id, v, s, nil, []byte(`{"id":"c-1"}`), "", 0)
}

// Driver errors become the store's sentinels in one place: a missing row is
// ErrNotFound, a taken key ErrConflict.
func TestErrorsAreTheStoresSentinels(t *testing.T) {
	ctx, pool := setup(t)
	require.NoError(t, store.InsertPolicy(ctx, pool, instant("p1", "instant")))
	err := store.InsertPolicy(ctx, pool, instant("p2", "instant"))
	require.ErrorIs(t, err, store.ErrConflict, "the tenant has a policy of that name")
	require.ErrorIs(t, store.InsertPolicy(ctx, pool, instant("p1", "other")), store.ErrConflict, "the version exists")
	_, err = store.GetPolicy(ctx, pool, "default", "nope", 0)
	require.ErrorIs(t, err, store.ErrNotFound)
	_, err = store.GetVisit(ctx, pool, "default", "nope")
	require.ErrorIs(t, err, store.ErrNotFound)
	err = pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		_, err := store.UpdateVisit(ctx, tx, "default", "nope", func(*visit.Visit) error { return nil })
		return err
	})
	require.ErrorIs(t, err, store.ErrNotFound)
	require.ErrorIs(t, store.SetActive(ctx, pool, "other", "p1", false), store.ErrNotFound, "not the tenant's own policy")
	id, err := store.PolicyIDByName(ctx, pool, "default", "missing")
	require.NoError(t, err)
	require.Empty(t, id)
}

// A visit is stored once per (service, policy, step, occurrence) and read back as it was planned.
func TestInsertVisitIsIdempotent(t *testing.T) {
	ctx, pool := setup(t)
	v := planned("v-1", "s-1")
	ok, err := store.InsertVisit(ctx, pool, v)
	require.NoError(t, err)
	require.True(t, ok)
	again := planned("v-2", "s-1")
	ok, err = store.InsertVisit(ctx, pool, again)
	require.NoError(t, err)
	require.False(t, ok, "the same step of the same service")
	got, err := store.GetVisit(ctx, pool, "default", "v-1")
	require.NoError(t, err)
	require.Equal(t, visit.StatusPlanned, got.Status)
	require.Equal(t, t0, got.DueAt)
	require.Equal(t, v.Decisions, got.Decisions)
	require.JSONEq(t, `{"id":"c-1"}`, string(got.Customer))
	require.Nil(t, got.Service, "not a recurring step")
}

// InsertNewVisits stores many visits in one statement, each as it was
// planned (its stop types whatever characters they hold, none as an empty
// list). A visit of a key stored before fails the statement: ErrConflict.
func TestInsertNewVisitsStoresEachAsPlanned(t *testing.T) {
	ctx, pool := setup(t)
	a, b, c := planned("v-1", "s-1"), planned("v-2", "s-2"), planned("v-3", "s-3")
	a.StopTypes = []string{"repair", `say "hi"`, `back\\slash`, "a,b", "{x}", "NULL", "", " 保养 "}
	b.StopTypes = []string{}
	require.NoError(t, store.InsertNewVisits(ctx, pool, []visit.Visit{a, b, c}))
	for _, v := range []visit.Visit{a, b, c} {
		got, err := store.GetVisit(ctx, pool, "default", v.ID)
		require.NoError(t, err)
		if len(v.StopTypes) == 0 {
			require.Empty(t, got.StopTypes, v.ID)
		} else {
			require.Equal(t, v.StopTypes, got.StopTypes, v.ID)
		}
		require.Equal(t, v.Decisions, got.Decisions, v.ID)
		require.JSONEq(t, string(v.Customer), string(got.Customer), v.ID)
	}
	before, err := store.ExistingVisits(ctx, pool, []visit.Visit{planned("v-4", "s-1"), planned("v-5", "s-5")})
	require.NoError(t, err)
	require.Equal(t, map[string]bool{"v-4": true}, before, "s-1's step was planned before")
	err = store.InsertNewVisits(ctx, pool, []visit.Visit{planned("v-5", "s-5"), planned("v-4", "s-1")})
	require.ErrorIs(t, err, store.ErrConflict)
	_, err = store.GetVisit(ctx, pool, "default", "v-5")
	require.ErrorIs(t, err, store.ErrNotFound, "the statement failed as a whole")
}

// UpdateVisit is an update by closure: the row is locked, the closure
// decides, the visit is saved; an error from the closure saves nothing.
func TestUpdateVisitByClosure(t *testing.T) {
	ctx, pool := setup(t)
	_, err := store.InsertVisit(ctx, pool, planned("v-1", "s-1"))
	require.NoError(t, err)
	refused := errors.New("no")
	err = pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		_, err := store.UpdateVisit(ctx, tx, "default", "v-1", func(v *visit.Visit) error {
			v.Status = visit.StatusCancelled
			return refused
		})
		return err
	})
	require.ErrorIs(t, err, refused)
	got, err := store.GetVisit(ctx, pool, "default", "v-1")
	require.NoError(t, err)
	require.Equal(t, visit.StatusPlanned, got.Status, "nothing saved")

	at := t0.Add(72 * time.Hour)
	require.NoError(t, pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		_, err := store.UpdateVisit(ctx, tx, "default", "v-1", func(v *visit.Visit) error { return v.Reschedule(at, "evening", t0) })
		return err
	}))
	got, err = store.GetVisit(ctx, pool, "default", "v-1")
	require.NoError(t, err)
	require.Equal(t, at, got.DueAt)
	require.Equal(t, at.Add(48*time.Hour), got.Deadline)
	require.True(t, got.CustomerChosen)
	require.Equal(t, t0, got.UpdatedAt)
	require.Len(t, got.Decisions, 2)
	require.Equal(t, policy.KindReschedule, got.Decisions[1].Kind)

	// The lock holds: a second claim of the row waits for the first transaction.
	tx, err := pool.Begin(ctx)
	require.NoError(t, err)
	defer func() { _ = tx.Rollback(ctx) }()
	_, err = store.UpdateVisit(ctx, tx, "default", "v-1", func(*visit.Visit) error { return nil })
	require.NoError(t, err)
	other, err := pool.Begin(ctx)
	require.NoError(t, err)
	defer func() { _ = other.Rollback(ctx) }()
	_, err = other.Exec(ctx, `SET LOCAL lock_timeout = '100ms'`)
	require.NoError(t, err)
	_, err = store.UpdateVisit(ctx, other, "default", "v-1", func(*visit.Visit) error { return nil })
	require.Error(t, err, "locked by the first transaction")
}

// ClaimDue skips visits another transaction holds (FOR UPDATE SKIP LOCKED).
func TestClaimDueSkipsLockedVisits(t *testing.T) {
	ctx, pool := setup(t)
	for _, id := range []string{"v-1", "v-2"} {
		_, err := store.InsertVisit(ctx, pool, planned(id, "s-"+id))
		require.NoError(t, err)
	}
	first, err := pool.Begin(ctx)
	require.NoError(t, err)
	defer func() { _ = first.Rollback(ctx) }()
	got, err := store.ClaimDue(ctx, first, t0, 1)
	require.NoError(t, err)
	require.Len(t, got, 1)
	second, err := pool.Begin(ctx)
	require.NoError(t, err)
	defer func() { _ = second.Rollback(ctx) }()
	rest, err := store.ClaimDue(ctx, second, t0, 10)
	require.NoError(t, err)
	require.Len(t, rest, 1)
	require.NotEqual(t, got[0].ID, rest[0].ID)
	none, err := store.ClaimDue(ctx, second, t0.Add(-time.Second), 10)
	require.NoError(t, err)
	require.Empty(t, none, "nothing due before its time")
}

// UpdateCustomer creates a customer the scheduler never heard of, locks it,
// and saves only what the closure changed.
func TestUpdateCustomerByClosure(t *testing.T) {
	ctx, pool := setup(t)
	update := func(fn func(*contact.Customer) bool) contact.Customer {
		var c contact.Customer
		require.NoError(t, pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
			var err error
			c, err = store.UpdateCustomer(ctx, tx, "default", "c-1", "test", fn)
			return err
		}))
		return c
	}
	prefs := contact.Prefs{TimeZone: "Asia/Shanghai", Windows: []calendar.Window{{Start: 600, End: 690}}, OptedOut: []int32{2}}
	c := update(func(c *contact.Customer) bool {
		require.Zero(t, c.Version, "new: version 0")
		return c.Update(2, prefs, "key", t0)
	})
	require.Equal(t, int64(2), c.Version)
	c = update(func(c *contact.Customer) bool { return c.Update(1, contact.Prefs{}, "", t0) })
	require.Equal(t, int64(2), c.Version, "an older version changes nothing")
	update(func(c *contact.Customer) bool { c.OptOut(1, t0.Add(time.Hour)); return true })
	cs, err := store.Customers(ctx, pool, []store.CustomerKey{{Tenant: "default", Customer: "c-1"}, {Tenant: "default", Customer: "c-2"}})
	require.NoError(t, err)
	require.Len(t, cs, 1, "only the customers the scheduler knows")
	got := cs[store.CustomerKey{Tenant: "default", Customer: "c-1"}]
	require.Equal(t, int64(2), got.Version)
	require.Equal(t, "key", got.Tier)
	require.Equal(t, prefs, got.Prefs)
	require.ElementsMatch(t, []int32{2, 1}, got.OptedOut)
	require.Equal(t, t0.Add(time.Hour), got.UpdatedAt.UTC())
}

// UpdateCustomerIfChanged decides on an unlocked read: a snapshot that
// changes nothing does not wait for the row another transaction holds
// (the CustomerUpdated consumer), and returns the customer as stored; one
// that changes something locks, creates and saves as UpdateCustomer does.
func TestUpdateCustomerIfChangedWaitsOnlyToWrite(t *testing.T) {
	ctx, pool := setup(t)
	snapshot := func(c *contact.Customer) bool { return c.Update(0, contact.Prefs{TimeZone: "UTC"}, "gold", t0) }
	var c contact.Customer
	require.NoError(t, pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		var err error
		c, err = store.UpdateCustomerIfChanged(ctx, tx, "default", "c-1", "test", nil, snapshot)
		return err
	}))
	require.Equal(t, "gold", c.Tier, "an unknown customer is created from the snapshot")
	require.NoError(t, pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		_, err := store.UpdateCustomer(ctx, tx, "default", "c-1", "test", func(c *contact.Customer) bool {
			return c.Update(3, contact.Prefs{TimeZone: "Asia/Shanghai"}, "key", t0)
		})
		return err
	}))

	// Another transaction holds the row, as a CustomerUpdated being applied does.
	holder, err := pool.Begin(ctx)
	require.NoError(t, err)
	defer func() { _ = holder.Rollback(ctx) }()
	_, err = holder.Exec(ctx, `SELECT 1 FROM customers WHERE tenant_id = 'default' AND customer_id = 'c-1' FOR UPDATE`)
	require.NoError(t, err)
	require.NoError(t, pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `SET LOCAL lock_timeout = '2s'`); err != nil {
			return err
		}
		var err error
		c, err = store.UpdateCustomerIfChanged(ctx, tx, "default", "c-1", "test", nil, snapshot)
		return err
	}), "a snapshot that changes nothing does not wait for the lock")
	require.Equal(t, int64(3), c.Version)
	require.Equal(t, "key", c.Tier)
	require.Equal(t, "Asia/Shanghai", c.Prefs.TimeZone)
}

// A snapshot that a stored customer holds already (holds) is not written:
// the row keeps when it changed, and the snapshot does not wait for the
// row another transaction holds.
func TestUpdateCustomerIfChangedSkipsHeldSnapshot(t *testing.T) {
	ctx, pool := setup(t)
	prefs := contact.Prefs{TimeZone: "UTC"}
	snapshot := func(at time.Time) func(c *contact.Customer) bool {
		return func(c *contact.Customer) bool { return c.Update(0, prefs, "gold", at) }
	}
	holds := func(c contact.Customer) bool { return c.Holds(0, prefs, "gold") }
	require.NoError(t, pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		_, err := store.UpdateCustomerIfChanged(ctx, tx, "default", "c-1", "test", holds, snapshot(t0))
		return err
	}))
	holder, err := pool.Begin(ctx)
	require.NoError(t, err)
	defer func() { _ = holder.Rollback(ctx) }()
	_, err = holder.Exec(ctx, `SELECT 1 FROM customers WHERE tenant_id = 'default' AND customer_id = 'c-1' FOR UPDATE`)
	require.NoError(t, err)
	var c contact.Customer
	require.NoError(t, pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `SET LOCAL lock_timeout = '2s'`); err != nil {
			return err
		}
		var err error
		c, err = store.UpdateCustomerIfChanged(ctx, tx, "default", "c-1", "test", holds, snapshot(t0.Add(time.Hour)))
		return err
	}))
	require.NoError(t, holder.Rollback(ctx))
	require.Equal(t, t0, c.UpdatedAt.UTC())
	var at time.Time
	require.NoError(t, pool.QueryRow(ctx, `SELECT updated_at FROM customers WHERE tenant_id = 'default' AND customer_id = 'c-1'`).Scan(&at))
	require.Equal(t, t0, at.UTC(), "the row is not written again")

	// Another tier is a change: written, as before.
	require.NoError(t, pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		var err error
		c, err = store.UpdateCustomerIfChanged(ctx, tx, "default", "c-1", "test",
			func(c contact.Customer) bool { return c.Holds(0, prefs, "silver") },
			func(c *contact.Customer) bool { return c.Update(0, prefs, "silver", t0.Add(2*time.Hour)) })
		return err
	}))
	require.Equal(t, "silver", c.Tier)
	require.NoError(t, pool.QueryRow(ctx, `SELECT updated_at FROM customers WHERE tenant_id = 'default' AND customer_id = 'c-1'`).Scan(&at))
	require.Equal(t, t0.Add(2*time.Hour), at.UTC())
}

// A contact policy stored before the calendar moved to pkg/contact reads as it was.
func TestStoredContactPolicyReads(t *testing.T) {
	ctx, pool := setup(t)
	_, err := pool.Exec(ctx, `INSERT INTO contact_policies (tenant_id, spec) VALUES ('estate', $1)`,
		[]byte(`{"windows":[{"start_minute":600,"end_minute":690}],"quiet_hours":{"start_minute":1260,"end_minute":480},"time_zone":"Asia/Shanghai",
		  "holidays":["2026-10-01"],"avoid_holidays":true,"caps":[{"channel":"CHANNEL_PHONE","max":1,"per":"3d"}],"dislikes_calls_gap":"1w",
		  "milestones":[{"date":"2026-03-15","kind":"launch","project":"bay"}]}`))
	require.NoError(t, err)
	rs, err := store.ContactRules(ctx, pool, []string{"estate", "shop"})
	require.NoError(t, err)
	require.Len(t, rs, 1)
	r := rs["estate"]
	require.Equal(t, []calendar.Window{{Start: 600, End: 690}}, r.Windows)
	require.Equal(t, &calendar.Window{Start: 1260, End: 480}, r.Quiet)
	require.Equal(t, "Asia/Shanghai", r.TimeZone)
	require.Equal(t, []string{"2026-10-01"}, r.Holidays)
	require.True(t, r.AvoidHolidays)
	require.Equal(t, []contact.Cap{{Channel: policy.ChannelPhone, Max: 1, Per: policy.Duration(72 * time.Hour)}}, r.Caps)
	require.Equal(t, policy.Duration(7*24*time.Hour), r.DislikesCallsGap)
	require.Equal(t, "bay", r.Milestones[0].Project)
}

// A visit whose stored JSON cannot be decoded is still read (listed, got,
// locked) as far as it can be; the claim returns it with its damage instead
// of failing for the whole batch.
func TestDamagedVisitIsReadAndClaimedWithItsDamage(t *testing.T) {
	ctx, pool := setup(t)
	for _, id := range []string{"v-1", "v-2"} {
		_, err := store.InsertVisit(ctx, pool, planned(id, "s-"+id))
		require.NoError(t, err)
	}
	_, err := pool.Exec(ctx, `UPDATE planned_visits SET service = '{"completed_at":"yesterday"}', decisions = '{"kind":"rule"}' WHERE id = 'v-1'`)
	require.NoError(t, err)

	got, err := store.GetVisit(ctx, pool, "default", "v-1")
	require.NoError(t, err)
	require.Equal(t, "s-v-1", got.ServiceID)
	require.Nil(t, got.Service)
	require.Empty(t, got.Decisions)
	list, err := store.ListVisits(ctx, pool, store.VisitFilter{Tenant: "default", Limit: 10})
	require.NoError(t, err)
	require.Len(t, list, 2)

	err = pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		claimed, err := store.ClaimDue(ctx, tx, t0, 10)
		require.NoError(t, err)
		require.Len(t, claimed, 2)
		for _, c := range claimed {
			if c.ID == "v-1" {
				require.ErrorIs(t, c.Damage, store.ErrDamaged)
				require.ErrorContains(t, c.Damage, "the service it keeps cannot be decoded")
				require.ErrorContains(t, c.Damage, "its stored decisions cannot be decoded")
			} else {
				require.NoError(t, c.Damage)
			}
		}
		return nil
	})
	require.NoError(t, err)
}
