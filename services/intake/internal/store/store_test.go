package store_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/types/known/timestamppb"

	eventsv1 "github.com/huifang/huifang/proto/huifang/events/v1"
	typesv1 "github.com/huifang/huifang/proto/huifang/types/v1"

	"github.com/huifang/huifang/pkg/contact"
	"github.com/huifang/huifang/pkg/inbox"
	"github.com/huifang/huifang/pkg/invalid"
	"github.com/huifang/huifang/pkg/servicetest"
	"github.com/huifang/huifang/services/intake/internal/archive"
	"github.com/huifang/huifang/services/intake/internal/ingest"
	"github.com/huifang/huifang/services/intake/internal/privacy"
	"github.com/huifang/huifang/services/intake/internal/store"
	"github.com/huifang/huifang/services/intake/internal/tier"
	"github.com/huifang/huifang/services/intake/migrations"
)

var t0 = time.Date(2026, 11, 20, 10, 0, 0, 0, time.UTC)

type bundle struct {
	ctx  context.Context
	pool *pgxpool.Pool
	st   *store.Store
}

func setup(t *testing.T) bundle {
	t.Helper()
	pool := servicetest.Pool(t, "intake", migrations.FS)
	cipher, err := privacy.New(privacy.DevKeys, privacy.DevHashKey)
	require.NoError(t, err)
	return bundle{ctx: context.Background(), pool: pool, st: &store.Store{Cipher: cipher}}
}

// tx runs fn in a transaction that commits when fn succeeds.
func (b bundle) tx(t *testing.T, fn func(tx pgx.Tx) error) error {
	t.Helper()
	return pgx.BeginFunc(b.ctx, b.pool, fn)
}

func (b bundle) upsert(t *testing.T, ext string, rec archive.Record) *archive.Customer {
	t.Helper()
	var c *archive.Customer
	require.NoError(t, b.tx(t, func(tx pgx.Tx) error {
		var err error
		c, err = b.st.UpsertCustomer(b.ctx, tx, "default", ext, rec.SourceUpdatedAt, func(c *archive.Customer, created bool) (bool, error) {
			require.True(t, created)
			require.Zero(t, c.Version)
			archive.Merge(&c.Record, rec)
			c.Version, c.UpdatedAt = 1, t0
			return true, nil
		})
		return err
	}))
	return c
}

// The update closure decides under the row lock: saved when it says so,
// nothing when it does not or fails; a missing customer is ErrNotFound.
func TestUpdateCustomerByClosure(t *testing.T) {
	b := setup(t)
	prefs := &archive.Preferences{Windows: []contact.Window{{Start: 600, End: 690}}, TimeZone: "Asia/Shanghai"}
	c := b.upsert(t, "c-1", archive.Record{Name: "王芳", Phone: "+8613800000001", Preferences: prefs, SourceUpdatedAt: t0})

	got, err := b.st.Customer(b.ctx, b.pool, store.CustomerKey{Tenant: "default", Phone: "+86 138 0000 0001"})
	require.NoError(t, err)
	require.Equal(t, c.ID, got.ID)
	require.Equal(t, "+8613800000001", got.Phone, "contacts open with their key")
	require.True(t, prefs.Equal(got.Preferences), "preferences are stored as they are")
	require.Equal(t, archive.KindIndividual, got.Kind)

	rename := func(name string, save bool, fail error) error {
		return b.tx(t, func(tx pgx.Tx) error {
			_, err := b.st.UpdateCustomer(b.ctx, tx, "default", c.ID, func(c *archive.Customer) (bool, error) {
				c.Name = name
				return save, fail
			})
			return err
		})
	}
	require.NoError(t, rename("不存", false, nil))
	boom := errors.New("boom")
	require.ErrorIs(t, rename("失败", true, boom), boom)
	got, err = b.st.Customer(b.ctx, b.pool, store.CustomerKey{Tenant: "default", ID: c.ID})
	require.NoError(t, err)
	require.Equal(t, "王芳", got.Name, "not saved when the closure says no or fails")
	require.NoError(t, rename("王 芳", true, nil))
	got, err = b.st.Customer(b.ctx, b.pool, store.CustomerKey{Tenant: "default", ExternalID: "c-1"})
	require.NoError(t, err)
	require.Equal(t, "王 芳", got.Name)

	err = b.tx(t, func(tx pgx.Tx) error {
		_, err := b.st.UpdateCustomer(b.ctx, tx, "default", "nobody", func(*archive.Customer) (bool, error) {
			t.Fatal("the closure runs on a customer that exists")
			return false, nil
		})
		return err
	})
	require.ErrorIs(t, err, store.ErrNotFound)
	_, err = b.st.Customer(b.ctx, b.pool, store.CustomerKey{Tenant: "other", ID: c.ID})
	require.ErrorIs(t, err, store.ErrNotFound, "a tenant sees its own customers")
}

// UpsertCustomer creates the customer once: the second call finds it.
func TestUpsertCustomerFindsTheExistingOne(t *testing.T) {
	b := setup(t)
	c := b.upsert(t, "c-1", archive.Record{Email: "a@example.com", SourceUpdatedAt: t0})
	require.NoError(t, b.tx(t, func(tx pgx.Tx) error {
		again, err := b.st.UpsertCustomer(b.ctx, tx, "default", "c-1", t0, func(got *archive.Customer, created bool) (bool, error) {
			require.False(t, created)
			require.EqualValues(t, 1, got.Version)
			return false, nil
		})
		require.Equal(t, c.ID, again.ID)
		return err
	}))
}

// Storing the same event twice is ErrConflict (the key a concurrent writer
// took), and the service and its figures are read back.
func TestAddServiceConflictAndFigures(t *testing.T) {
	b := setup(t)
	c := b.upsert(t, "c-1", archive.Record{Phone: "+8613800000001", SourceUpdatedAt: t0})
	ev := &eventsv1.ServiceCompleted{TenantId: "default", SourceSystem: "dms", SourceEventId: "e-1", ServiceType: "vehicle_delivery",
		CompletedAt: timestamppb.New(t0), AmountMinor: 500, ClaimAmountMinor: 7,
		Vehicle: &typesv1.Vehicle{Vin: "LSVAM4187C2184847"}, Complaint: &typesv1.Complaint{Reference: "T-1"}}
	require.NoError(t, b.tx(t, func(tx pgx.Tx) error { return b.st.AddService(b.ctx, tx, "svc-1", c.ID, ev) }))
	err := b.tx(t, func(tx pgx.Tx) error { return b.st.AddService(b.ctx, tx, "svc-2", c.ID, ev) })
	require.ErrorIs(t, err, store.ErrConflict)

	sid, cid, err := b.st.ServiceBySource(b.ctx, b.pool, "default", "dms", "e-1")
	require.NoError(t, err)
	require.Equal(t, []string{"svc-1", c.ID}, []string{sid, cid})
	_, _, err = b.st.ServiceBySource(b.ctx, b.pool, "default", "dms", "e-2")
	require.ErrorIs(t, err, store.ErrNotFound)
	sid, err = b.st.ServiceByComplaint(b.ctx, b.pool, "default", c.ID, "T-1")
	require.NoError(t, err)
	require.Equal(t, "svc-1", sid)

	require.NoError(t, b.st.Figures(b.ctx, b.pool, "default", tier.ScopeAt(t0.Add(time.Hour)), []*archive.Customer{c}))
	require.Equal(t, tier.Metrics{Kind: "individual", SpendYearMinor: 500, ClaimsYearMinor: 7, CarsYear: 1}, c.Metrics)
	require.NoError(t, b.st.Figures(b.ctx, b.pool, "default", tier.ScopeAt(t0.AddDate(1, 0, 1)), []*archive.Customer{c}))
	require.Equal(t, tier.Metrics{Kind: "individual"}, c.Metrics, "a year on, the service no longer counts")
}

// A refused input is updated under its lock: a failing closure saves nothing.
func TestUpdateRejected(t *testing.T) {
	b := setup(t)
	var id string
	require.NoError(t, b.tx(t, func(tx pgx.Tx) error {
		var err error
		id, err = inbox.Reject(b.ctx, tx, inbox.Rejection{Service: "intake", Tenant: "default", Source: "grpc",
			ContentType: "application/json", Payload: []byte(`{"a":1}`), Err: invalid.New("x", "y"), Seal: b.st.SealPayload})
		return err
	}))
	boom := errors.New("boom")
	err := b.tx(t, func(tx pgx.Tx) error {
		return b.st.UpdateRejected(b.ctx, tx, "default", id, func(r *ingest.Rejected) error {
			r.Replayed("svc-9", t0)
			return boom
		})
	})
	require.ErrorIs(t, err, boom)
	r, err := b.st.Rejected(b.ctx, b.pool, "default", id)
	require.NoError(t, err)
	require.Nil(t, r.ReplayedAt)
	require.Equal(t, `{"a":1}`, string(r.Payload), "opened")

	require.NoError(t, b.tx(t, func(tx pgx.Tx) error {
		return b.st.UpdateRejected(b.ctx, tx, "default", id, func(r *ingest.Rejected) error {
			r.Replayed("svc-9", t0)
			return nil
		})
	}))
	r, err = b.st.Rejected(b.ctx, b.pool, "default", id)
	require.NoError(t, err)
	require.Equal(t, "svc-9", r.ReplayedServiceID)
	require.True(t, t0.Equal(*r.ReplayedAt))
	_, err = b.st.Rejected(b.ctx, b.pool, "default", "nope")
	require.ErrorIs(t, err, store.ErrNotFound)
}

// Customers of one tier are listed through customers_tier, which holds
// only the customers that have a tier (migration 007): an import's new
// customers, with none, add nothing to it.
func TestCustomersOfATier(t *testing.T) {
	b := setup(t)
	var key *archive.Customer
	for _, ext := range []string{"c-1", "c-2", "c-3"} {
		c := b.upsert(t, ext, archive.Record{Name: "王芳", SourceUpdatedAt: t0})
		if ext == "c-2" {
			key = c
		}
	}
	require.NoError(t, b.tx(t, func(tx pgx.Tx) error {
		_, err := b.st.UpdateCustomer(b.ctx, tx, "default", key.ID, func(c *archive.Customer) (bool, error) {
			c.Tier = "key"
			return true, nil
		})
		return err
	}))
	keys, err := b.st.Customers(b.ctx, b.pool, store.CustomerFilter{Tenant: "default", Tier: "key"}, 10, "")
	require.NoError(t, err)
	require.Len(t, keys, 1)
	require.Equal(t, key.ID, keys[0].ID)
	all, err := b.st.Customers(b.ctx, b.pool, store.CustomerFilter{Tenant: "default"}, 10, "")
	require.NoError(t, err)
	require.Len(t, all, 3)

	require.NoError(t, b.tx(t, func(tx pgx.Tx) error {
		_, err := tx.Exec(b.ctx, `SET LOCAL enable_seqscan = off`)
		require.NoError(t, err)
		rows, err := tx.Query(b.ctx, `EXPLAIN SELECT id FROM customers WHERE tenant_id = 'default' AND tier = 'key' ORDER BY id`)
		require.NoError(t, err)
		plan, err := pgx.CollectRows(rows, pgx.RowTo[string])
		require.NoError(t, err)
		require.Contains(t, strings.Join(plan, "\n"), "customers_tier")
		var entries int
		require.NoError(t, tx.QueryRow(b.ctx, `SELECT count(*) FROM customers WHERE tier <> ''`).Scan(&entries))
		require.Equal(t, 1, entries)
		return nil
	}))
}

// AddServices leaves plan_cache_mode at auto for the rest of its
// transaction (the foreign key's check is then planned once per connection,
// not per row) and the pool's mode is back at the commit; the foreign key
// still holds.
func TestAddServicesPlanCacheModeAndForeignKey(t *testing.T) {
	b := setup(t)
	var poolMode string
	require.NoError(t, b.pool.QueryRow(b.ctx, `SHOW plan_cache_mode`).Scan(&poolMode))
	require.Equal(t, "force_custom_plan", poolMode)
	c := b.upsert(t, "c-1", archive.Record{Phone: "+8613800000001", SourceUpdatedAt: t0})
	svc := func(id string) store.NewService {
		return store.NewService{ID: "svc-" + id, CustomerID: c.ID, Event: &eventsv1.ServiceCompleted{TenantId: "default", SourceSystem: "dms",
			SourceEventId: id, ServiceType: "repair", CompletedAt: timestamppb.New(t0), AmountMinor: 100}}
	}
	conn, err := b.pool.Acquire(b.ctx)
	require.NoError(t, err)
	defer conn.Release()
	for round := range 3 {
		require.NoError(t, pgx.BeginFunc(b.ctx, conn, func(tx pgx.Tx) error {
			var mode string
			require.NoError(t, tx.QueryRow(b.ctx, `SHOW plan_cache_mode`).Scan(&mode))
			require.Equal(t, "force_custom_plan", mode, "before the insert")
			var svcs []store.NewService
			for i := range 10 {
				svcs = append(svcs, svc(fmt.Sprintf("e-%d-%d", round, i)))
			}
			if err := b.st.AddServices(b.ctx, tx, svcs); err != nil {
				return err
			}
			require.NoError(t, tx.QueryRow(b.ctx, `SHOW plan_cache_mode`).Scan(&mode))
			require.Equal(t, "auto", mode, "after the insert, in its transaction")
			return nil
		}))
		var mode string
		require.NoError(t, conn.QueryRow(b.ctx, `SHOW plan_cache_mode`).Scan(&mode))
		require.Equal(t, "force_custom_plan", mode, "after the commit")
	}
	var n int
	require.NoError(t, b.pool.QueryRow(b.ctx, `SELECT count(*) FROM services WHERE customer_id = $1`, c.ID).Scan(&n))
	require.Equal(t, 30, n)

	// The foreign key's check, on its reused plan: a service of a customer
	// the archive does not hold is refused, and none of its statement kept.
	err = pgx.BeginFunc(b.ctx, conn, func(tx pgx.Tx) error {
		bad := svc("e-bad")
		bad.CustomerID = "no-such-customer"
		return b.st.AddServices(b.ctx, tx, []store.NewService{svc("e-good"), bad})
	})
	require.ErrorContains(t, err, "services_customer_id_fkey")
	require.NoError(t, b.pool.QueryRow(b.ctx, `SELECT count(*) FROM services`).Scan(&n))
	require.Equal(t, 30, n)
}

// SaveCustomerSetWritesAfter writes as SaveCustomerSet does (a new
// customer with its data key, a changed one) and leaves plan_cache_mode at
// auto for the rest of its transaction; SaveCustomerSet leaves the pool's.
func TestSaveCustomerSetWritesAfter(t *testing.T) {
	b := setup(t)
	old := b.upsert(t, "c-old", archive.Record{Phone: "+8613800000001", SourceUpdatedAt: t0})
	conn, err := b.pool.Acquire(b.ctx)
	require.NoError(t, err)
	defer conn.Release()
	for _, writesAfter := range []bool{false, true} {
		ext := fmt.Sprintf("c-new-%t", writesAfter)
		require.NoError(t, pgx.BeginFunc(b.ctx, conn, func(tx pgx.Tx) error {
			set, err := b.st.LockCustomerSet(b.ctx, tx, "default", []string{"c-old", ext})
			require.NoError(t, err)
			c, ok := set.Customer("c-old")
			require.True(t, ok)
			c.Name, c.Version = "name-"+ext, c.Version+1
			added := set.Add(ext, t0)
			added.Name, added.Phone, added.Version = "new", "+8613800000002", 1
			save := b.st.SaveCustomerSet
			want := "force_custom_plan"
			if writesAfter {
				save, want = b.st.SaveCustomerSetWritesAfter, "auto"
			}
			taken, err := save(b.ctx, tx, set, []*archive.Customer{c, added})
			require.NoError(t, err)
			require.Empty(t, taken)
			var mode string
			require.NoError(t, tx.QueryRow(b.ctx, `SHOW plan_cache_mode`).Scan(&mode))
			require.Equal(t, want, mode)
			return nil
		}))
		var mode string
		require.NoError(t, conn.QueryRow(b.ctx, `SHOW plan_cache_mode`).Scan(&mode))
		require.Equal(t, "force_custom_plan", mode, "after the commit")

		got, err := b.st.Customer(b.ctx, b.pool, store.CustomerKey{Tenant: "default", ExternalID: ext})
		require.NoError(t, err)
		require.Equal(t, "new", got.Name, "the new customer's fields open under its data key")
		got, err = b.st.Customer(b.ctx, b.pool, store.CustomerKey{Tenant: "default", ExternalID: "c-old"})
		require.NoError(t, err)
		require.Equal(t, old.ID, got.ID)
		require.Equal(t, "name-"+ext, got.Name)
	}
}
