package app_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	typesv1 "github.com/huifang/huifang/proto/huifang/types/v1"

	"github.com/huifang/huifang/services/intake/internal/app"
)

func records(n int, customer func(i int) *typesv1.Customer) []app.ImportRecord {
	list := make([]app.ImportRecord, n)
	for i := range list {
		list[i] = app.ImportRecord{Line: int64(i + 2), Customer: customer(i)}
	}
	return list
}

// Records that only confirm what the archive holds (a resumed import)
// write nothing: no row of customers, customer_keys, outbox or the audit
// log is touched.
func TestImportOfUnchangedRecordsWritesNothing(t *testing.T) {
	b := setup(t)
	archive := func(i int) *typesv1.Customer {
		return &typesv1.Customer{ExternalId: fmt.Sprintf("c-%d", i), Name: "王芳", Phone: fmt.Sprintf("+86138%08d", i),
			Preferences: &typesv1.ContactPreferences{OptedOut: []typesv1.Channel{typesv1.Channel_CHANNEL_SMS}}}
	}
	first, err := b.app.ImportCustomers(b.ctx, app.ImportCustomers{Records: records(300, archive)})
	require.NoError(t, err)
	require.Equal(t, 300, first.Imported)
	snapshot := func() string {
		var s string
		require.NoError(t, b.pool.QueryRow(b.ctx, `SELECT (SELECT string_agg(xmin::text, ',' ORDER BY id) FROM customers)
  || '/' || (SELECT string_agg(xmin::text, ',' ORDER BY customer_id) FROM customer_keys)
  || '/' || (SELECT count(*) FROM outbox) || '/' || (SELECT count(*) FROM audit_log)`).Scan(&s))
		return s
	}
	before := snapshot()
	again, err := b.app.ImportCustomers(b.ctx, app.ImportCustomers{Records: records(300, archive)})
	require.NoError(t, err)
	require.Equal(t, 300, again.Unchanged)
	require.Equal(t, before, snapshot())
}

// A new customer that a concurrent writer creates while the import runs
// is not overwritten: the import waits for the other writer's commit and
// merges its records into that customer, the one-record way.
func TestImportMeetsAConcurrentWriter(t *testing.T) {
	b := setup(t)
	tx, err := b.pool.Begin(b.ctx)
	require.NoError(t, err)
	defer func() { _ = tx.Rollback(context.Background()) }()
	ingested, err := b.app.IngestServiceTx(b.ctx, tx, app.IngestService{Event: event(t, repair)}) // creates c-1, not yet committed
	require.NoError(t, err)

	done := make(chan error, 1)
	var imp app.Import
	go func() {
		var err error
		imp, err = b.app.ImportCustomers(b.ctx, app.ImportCustomers{Records: []app.ImportRecord{
			{Line: 2, Customer: &typesv1.Customer{ExternalId: "c-2", Phone: "+8613800000002"}},
			{Line: 3, Customer: &typesv1.Customer{ExternalId: "c-1", Name: "王芳", Email: "wang@example.com"}},
			{Line: 4, Customer: &typesv1.Customer{ExternalId: "c-1", Email: "wang@example.com", OrgUnit: "north"}},
		}})
		done <- err
	}()
	require.Eventually(t, func() bool {
		return count(t, b.pool, `SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND query LIKE '%customer_stage%'`) == 1
	}, 10*time.Second, 5*time.Millisecond, "the import waits for the other writer's row")
	require.NoError(t, tx.Commit(b.ctx))
	require.NoError(t, <-done)

	require.Equal(t, []app.ImportOutcome{app.Imported, app.Updated, app.Updated}, []app.ImportOutcome{imp.Results[0].Outcome, imp.Results[1].Outcome, imp.Results[2].Outcome})
	require.Equal(t, ingested.CustomerID, imp.Results[1].CustomerID)
	c, err := b.app.GetCustomer(b.ctx, app.CustomerQuery{Tenant: "default", ExternalID: "c-1"})
	require.NoError(t, err)
	require.Equal(t, ingested.CustomerID, c.ID)
	require.Equal(t, "+8613800000001", c.Phone, "the other writer's")
	require.Equal(t, "wang@example.com", c.Email, "the import's")
	require.Equal(t, "north", c.OrgUnit)
	require.Equal(t, int64(3), c.Version)
	require.Equal(t, 2, count(t, b.pool, `SELECT count(*) FROM customers`))
	require.Equal(t, 2, count(t, b.pool, `SELECT count(*) FROM customer_keys`), "no key of the customer that was not written")
	require.Equal(t, 4, count(t, b.pool, `SELECT count(*) FROM outbox WHERE subject = 'huifang.events.customer.updated'`),
		"the other writer's, c-2's and c-1's two")
}

// An erased customer (its data key destroyed) imported again is sealed
// under a new data key, as a save of it is.
func TestImportOfAnErasedCustomer(t *testing.T) {
	b := setup(t)
	first, err := b.app.ImportCustomers(b.ctx, app.ImportCustomers{Records: []app.ImportRecord{
		{Line: 2, Customer: &typesv1.Customer{ExternalId: "c-1", Name: "王芳", Phone: "+8613800000001"}},
	}})
	require.NoError(t, err)
	_, _, err = b.app.EraseCustomer(b.ctx, app.EraseCustomer{Tenant: "default", CustomerID: first.Results[0].CustomerID, Reason: "the person asked"})
	require.NoError(t, err)
	again, err := b.app.ImportCustomers(b.ctx, app.ImportCustomers{Records: []app.ImportRecord{
		{Line: 2, Customer: &typesv1.Customer{ExternalId: "c-1", Name: "王芳", Phone: "+8613800000001"}},
		{Line: 3, Customer: &typesv1.Customer{ExternalId: "c-2", Phone: "+8613800000002"}},
	}})
	require.NoError(t, err)
	require.Equal(t, app.Updated, again.Results[0].Outcome)
	c, err := b.app.GetCustomer(b.ctx, app.CustomerQuery{Tenant: "default", ExternalID: "c-1"})
	require.NoError(t, err)
	require.False(t, c.Erased)
	require.Equal(t, "+8613800000001", c.Phone)
	require.Equal(t, 1, count(t, b.pool, `SELECT count(*) FROM customer_keys k JOIN customers c ON c.id = k.customer_id
WHERE c.external_id = 'c-1' AND k.version = 2 AND c.dek_version = 2`))
}

// Referrers outside a call that its records newly name are re-evaluated
// once each, after the call's customers are written: one that reaches the
// key tier (5 referrals) is announced once, one that does not is not
// written, one the archive does not hold is passed over.
func TestImportReEvaluatesReferrersOutsideTheCall(t *testing.T) {
	b := setup(t)
	first, err := b.app.ImportCustomers(b.ctx, app.ImportCustomers{Records: records(3, func(i int) *typesv1.Customer {
		return &typesv1.Customer{ExternalId: fmt.Sprintf("r-%d", i), Name: "王芳", Phone: fmt.Sprintf("+86138%08d", i)}
	})})
	require.NoError(t, err)
	require.Equal(t, 3, first.Imported, "%+v", first.Results)
	const updated = `SELECT count(*) FROM outbox WHERE subject = 'huifang.events.customer.updated'`
	require.Equal(t, 3, count(t, b.pool, updated))

	refs := []string{"r-0", "r-0", "r-0", "r-0", "r-1", "r-0", "r-1", "r-none", "r-1", "r-none"}
	out, err := b.app.ImportCustomers(b.ctx, app.ImportCustomers{Records: records(len(refs), func(i int) *typesv1.Customer {
		return &typesv1.Customer{ExternalId: fmt.Sprintf("n-%d", i), Phone: fmt.Sprintf("+86139%08d", i), ReferredBy: refs[i]}
	})})
	require.NoError(t, err)
	require.Equal(t, len(refs), out.Imported)
	r0, err := b.app.GetCustomer(b.ctx, app.CustomerQuery{Tenant: "default", ExternalID: "r-0"})
	require.NoError(t, err)
	require.Equal(t, "key", r0.Tier, "5 referrals")
	require.Equal(t, int64(2), r0.Version)
	r1, err := b.app.GetCustomer(b.ctx, app.CustomerQuery{Tenant: "default", ExternalID: "r-1"})
	require.NoError(t, err)
	require.Empty(t, r1.Tier, "3 referrals")
	require.Equal(t, int64(1), r1.Version, "not written")
	require.Equal(t, 3+len(refs)+1, count(t, b.pool, updated), "the new customers' and r-0's")
	require.Equal(t, 0, count(t, b.pool, `SELECT count(*) FROM customers WHERE external_id = 'r-none'`))
}
