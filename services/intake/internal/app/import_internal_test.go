package app

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	eventsv1 "github.com/huifang/huifang/proto/huifang/events/v1"
	typesv1 "github.com/huifang/huifang/proto/huifang/types/v1"

	"github.com/huifang/huifang/pkg/invalid"
	"github.com/huifang/huifang/pkg/servicetest"
	"github.com/huifang/huifang/pkg/stream"
	"github.com/huifang/huifang/pkg/tenant"
	"github.com/huifang/huifang/services/intake/internal/archive"
	"github.com/huifang/huifang/services/intake/internal/ingest"
	"github.com/huifang/huifang/services/intake/internal/privacy"
	"github.com/huifang/huifang/services/intake/internal/store"
	"github.com/huifang/huifang/services/intake/internal/tier"
	"github.com/huifang/huifang/services/intake/migrations"
)

var importNow = time.Date(2026, 11, 28, 12, 0, 0, 0, time.UTC)

func importApp(t *testing.T) (*App, *pgxpool.Pool) {
	t.Helper()
	pool := servicetest.Pool(t, "intake", migrations.FS)
	cipher, err := privacy.New(privacy.DevKeys, privacy.DevHashKey)
	require.NoError(t, err)
	rules, err := tier.Parse(tier.DefaultRules)
	require.NoError(t, err)
	return &App{DB: pool, Store: &store.Store{Cipher: cipher}, Rules: rules, Now: func() time.Time { return importNow },
		Log: servicetest.Logger()}, pool
}

// oneByOne imports in as ImportCustomersTx did before it worked set-wise:
// each valid record on its own through importRecord, in one transaction.
// It is the reference the set-wise import must agree with.
func oneByOne(ctx context.Context, a *App, in ImportCustomers) (Import, error) {
	var out Import
	err := a.inTx(ctx, func(tx pgx.Tx) error {
		var bad invalid.List
		t := tenant.Parse(&bad, "tenant_id", in.Tenant)
		out = Import{Results: make([]ImportResult, len(in.Records))}
		for i, rec := range in.Records {
			r := &out.Results[i]
			r.Line = rec.Line
			var l invalid.List
			if n := proto.Size(rec.Customer); n > a.EventLimit() {
				l.Add(fmt.Sprintf("records[%d].customer", i), fmt.Sprintf("must be at most %d bytes", a.EventLimit()))
			}
			at := ingest.ImportRecord(&l, i, rec.Customer, rec.SourceUpdatedAt, a.Now())
			if err := l.Err(); err != nil {
				r.Outcome, r.Invalid = Rejected, asInvalid(err)
				continue
			}
			var err error
			if r.Outcome, r.CustomerID, err = a.importRecord(ctx, tx, t, rec.Customer, at); err != nil {
				return err
			}
		}
		return nil
	})
	out.count()
	return out, err
}

func customer(ext string, set func(c *typesv1.Customer)) *typesv1.Customer {
	c := &typesv1.Customer{ExternalId: ext}
	if set != nil {
		set(c)
	}
	if c.Phone == "" && c.Email == "" {
		c.Email = ext + "@example.com" // one is required
	}
	return c
}

// The set-wise import leaves what importing the records one by one left:
// the same customers (fields, tier, version, source time), the same
// CustomerUpdated per customer in the same order, the same audit entries
// and outcomes, for records of one customer several times in a call, older
// and newer records, referrers inside the call (before and after the record
// naming them, and counted within the call), a referrer outside it, a row
// from before data keys, and a rejected record.
func TestImportSetWiseAgreesWithOneByOne(t *testing.T) {
	ctx := context.Background()
	older := timestamppb.New(importNow.AddDate(0, -2, 0))
	newer := timestamppb.New(importNow.AddDate(0, 0, -1))
	seed := []ImportRecord{
		{Line: 1, Customer: customer("e-1", func(c *typesv1.Customer) { c.Name, c.Phone = "王芳", "+8613800000001" }), SourceUpdatedAt: timestamppb.New(importNow.AddDate(0, -1, 0))},
		{Line: 2, Customer: customer("r-out", nil)},
		{Line: 3, Customer: customer("r-in", nil)},
	}
	for i := range 4 {
		seed = append(seed,
			ImportRecord{Line: int64(10 + i), Customer: customer(fmt.Sprintf("s-%d", i), func(c *typesv1.Customer) { c.ReferredBy = "r-out" })},
			ImportRecord{Line: int64(20 + i), Customer: customer(fmt.Sprintf("t-%d", i), func(c *typesv1.Customer) { c.ReferredBy = "r-in" })})
	}
	batch := []ImportRecord{
		{Line: 2, Customer: customer("n-1", func(c *typesv1.Customer) {
			c.Name, c.Phone, c.OwnerIds = "李娜", "+8613800000002", []string{"s-1", "s-2"}
			c.Preferences = &typesv1.ContactPreferences{TimeZone: "Asia/Shanghai"}
		}), SourceUpdatedAt: older},
		{Line: 3, Customer: customer("n-1", func(c *typesv1.Customer) { c.Phone, c.OwnerIds = "+8613800000003", []string{"s-3"} }), SourceUpdatedAt: newer},
		{Line: 4, Customer: customer("n-1", func(c *typesv1.Customer) { c.Phone = "+8613800000003" }), SourceUpdatedAt: newer},
		{Line: 5, Customer: customer("e-1", func(c *typesv1.Customer) { c.Name, c.Email = "王 芳", "wang@example.com" }), SourceUpdatedAt: older},
		{Line: 6, Customer: customer("n-5", func(c *typesv1.Customer) { c.ReferredBy = "r-out" })},
		{Line: 7, Customer: customer("n-6", func(c *typesv1.Customer) { c.ReferredBy = "r-in" })},
		{Line: 8, Customer: customer("r-in", func(c *typesv1.Customer) { c.Email = "r@example.com" })},
		{Line: 9, Customer: customer("n-8", func(c *typesv1.Customer) { c.ReferredBy = "n-9" })},
		{Line: 10, Customer: customer("n-9", func(c *typesv1.Customer) { c.Kind = "fleet" })},
		{Line: 11, Customer: customer("legacy", func(c *typesv1.Customer) { c.Email = "old@example.com" })},
		{Line: 12, Customer: customer("n-12", func(c *typesv1.Customer) {
			c.Preferences = &typesv1.ContactPreferences{OptedOut: []typesv1.Channel{typesv1.Channel_CHANNEL_SMS}}
		})},
		{Line: 13, Customer: customer("e-1", func(c *typesv1.Customer) { c.Phone = "not a phone" })},
	}
	for i := range 5 {
		batch = append(batch, ImportRecord{Line: int64(20 + i), Customer: customer(fmt.Sprintf("q-%d", i), func(c *typesv1.Customer) { c.ReferredBy = "k-1" })})
	}
	batch = append(batch,
		ImportRecord{Line: 30, Customer: customer("k-1", func(c *typesv1.Customer) { c.Name = "赵" })},
		ImportRecord{Line: 31, Customer: customer("e-1", func(c *typesv1.Customer) { c.OrgUnit = "north" }), SourceUpdatedAt: newer})

	type state struct {
		app  *App
		pool *pgxpool.Pool
		out  Import
	}
	var runs [2]state
	for i := range runs {
		a, pool := importApp(t)
		_, err := pool.Exec(ctx, `INSERT INTO customers (id, tenant_id, external_id, name, phone, source_updated_at)
VALUES ('old-1', 'default', 'legacy', '老客户', '+8613800000009', $1)`, importNow.AddDate(0, -3, 0))
		require.NoError(t, err)
		// Seeded one by one in both, each in a transaction of its own.
		for _, rec := range seed {
			_, err := oneByOne(ctx, a, ImportCustomers{Records: []ImportRecord{cloneRecord(rec)}})
			require.NoError(t, err)
		}
		records := make([]ImportRecord, len(batch))
		for j, rec := range batch {
			records[j] = cloneRecord(rec)
		}
		var out Import
		if i == 0 {
			out, err = oneByOne(ctx, a, ImportCustomers{Records: records})
		} else {
			out, err = a.ImportCustomers(ctx, ImportCustomers{Records: records})
		}
		require.NoError(t, err)
		runs[i] = state{app: a, pool: pool, out: out}
	}

	want, got := runs[0], runs[1]
	require.Equal(t, 1, got.out.Rejected)
	require.Equal(t, outcomes(want.out), outcomes(got.out))
	require.Equal(t, customersByExt(t, want.app), customersByExt(t, got.app))
	wantEvents, gotEvents := updates(t, want.pool), updates(t, got.pool)
	require.Equal(t, wantEvents, gotEvents)
	require.Contains(t, gotEvents["r-out"][len(gotEvents["r-out"])-1], "[tier] ", "the referrer outside the call")
	require.Contains(t, gotEvents["r-in"][len(gotEvents["r-in"])-2], "[tier] ", "the referrer inside the call, after the record naming it")
	require.Contains(t, gotEvents["k-1"][0], "tier=key", "five referrals within the call")
	require.Len(t, gotEvents["n-1"], 2, "three records, the last one unchanged")
	require.Equal(t, auditVersions(t, want.pool), auditVersions(t, got.pool))
	var keys int
	require.NoError(t, got.pool.QueryRow(ctx, `SELECT count(*) FROM customer_keys k JOIN customers c ON c.id = k.customer_id AND c.dek_version = k.version`).Scan(&keys))
	require.Equal(t, len(customersByExt(t, got.app)), keys, "every customer sealed under a data key of its own")
}

func cloneRecord(r ImportRecord) ImportRecord {
	r.Customer = proto.CloneOf(r.Customer)
	return r
}

func outcomes(out Import) []string {
	var list []string
	for _, r := range out.Results {
		list = append(list, fmt.Sprintf("line %d: %d", r.Line, r.Outcome))
	}
	return append(list, fmt.Sprintf("%d/%d/%d/%d", out.Imported, out.Updated, out.Unchanged, out.Rejected))
}

// customersByExt is every customer as read back, without its id (the two
// runs make different ones).
func customersByExt(t *testing.T, a *App) map[string]archive.Customer {
	t.Helper()
	list, err := a.Store.Customers(context.Background(), a.DB, store.CustomerFilter{Tenant: "default"}, 1000, "")
	require.NoError(t, err)
	out := map[string]archive.Customer{}
	for _, c := range list {
		c.ID = ""
		if len(c.Owners) == 0 {
			c.Owners = nil
		}
		out[c.ExternalID] = *c
	}
	return out
}

// updates is each customer's CustomerUpdated in the order written: version,
// changed fields and tier.
func updates(t *testing.T, pool *pgxpool.Pool) map[string][]string {
	t.Helper()
	rows, err := pool.Query(context.Background(), `SELECT payload FROM outbox WHERE subject = $1 ORDER BY seq`, stream.SubjectCustomerUpdated)
	require.NoError(t, err)
	payloads, err := pgx.CollectRows(rows, pgx.RowTo[[]byte])
	require.NoError(t, err)
	out := map[string][]string{}
	for _, p := range payloads {
		var ev eventsv1.CustomerUpdated
		require.NoError(t, proto.Unmarshal(p, &ev))
		c := ev.Customer
		out[c.ExternalId] = append(out[c.ExternalId], fmt.Sprintf("v%d %v %s %s tier=%s", ev.Version, ev.ChangedFields, c.PhoneMasked, c.EmailMasked, c.Tier))
	}
	return out
}

// auditVersions is the audit log's customer.preferences entries: the
// versions they name, by customer external id.
func auditVersions(t *testing.T, pool *pgxpool.Pool) []string {
	t.Helper()
	rows, err := pool.Query(context.Background(), `SELECT c.external_id || ' v' || (a.detail::jsonb->>'version') || ' ' || (a.detail::jsonb->>'opted_out') || ' ' || (a.detail::jsonb->>'source')
FROM audit_log a JOIN customers c ON c.id = a.target_id WHERE a.action = 'customer.preferences' ORDER BY a.seq`)
	require.NoError(t, err)
	list, err := pgx.CollectRows(rows, pgx.RowTo[string])
	require.NoError(t, err)
	return list
}

// Two calls in flight that share new customers (an import's calls, a
// repeat in each) both commit: the later one waits for the earlier one's
// commit, then merges its records of the shared customers into the rows
// the earlier one created, set-wise (no statement of the one-record way),
// with the outcomes and CustomerUpdated that merge gives: a second record
// of a customer on top of the first, a record that confirms the row
// unchanged, referrals the call made counted in the tier.
func TestImportCallsInFlightShareNewCustomers(t *testing.T) {
	ctx := context.Background()
	a, pool := importApp(t)
	statements := servicetest.CountStatements(t, pool)
	require.True(t, statements.Counted(), "scripts/postgres.sh preloads pg_stat_statements")
	older, newer := timestamppb.New(importNow.AddDate(0, -2, 0)), timestamppb.New(importNow.AddDate(0, 0, -1))

	first := []ImportRecord{
		{Line: 2, Customer: customer("s-1", func(c *typesv1.Customer) { c.Name = "王芳" }), SourceUpdatedAt: older},
		{Line: 3, Customer: customer("s-2", func(c *typesv1.Customer) { c.Name = "李娜" }), SourceUpdatedAt: older},
		{Line: 4, Customer: customer("s-3", nil), SourceUpdatedAt: older},
		{Line: 5, Customer: customer("a-1", nil), SourceUpdatedAt: older},
	}
	second := []ImportRecord{
		{Line: 6, Customer: customer("b-1", nil)},
		{Line: 7, Customer: customer("s-1", func(c *typesv1.Customer) { c.Name, c.Email = "王芳", "wang@example.com" }), SourceUpdatedAt: newer},
		{Line: 8, Customer: customer("s-2", func(c *typesv1.Customer) { c.Name = "李娜" }), SourceUpdatedAt: older},
		{Line: 9, Customer: customer("s-1", func(c *typesv1.Customer) { c.Email, c.OrgUnit = "wang@example.com", "north" }), SourceUpdatedAt: newer},
	}
	for i := range 5 {
		second = append(second, ImportRecord{Line: int64(10 + i), Customer: customer(fmt.Sprintf("r-%d", i), func(c *typesv1.Customer) { c.ReferredBy = "s-3" })})
	}
	second = append(second, ImportRecord{Line: 15, Customer: customer("s-3", func(c *typesv1.Customer) { c.Name = "赵" }), SourceUpdatedAt: newer})

	tx, err := pool.Begin(ctx)
	require.NoError(t, err)
	defer func() { _ = tx.Rollback(context.Background()) }()
	earlier, err := a.ImportCustomersTx(ctx, tx, ImportCustomers{Records: first})
	require.NoError(t, err)
	require.Equal(t, len(first), earlier.Imported)

	done := make(chan error, 1)
	var later Import
	go func() {
		var err error
		later, err = a.ImportCustomers(ctx, ImportCustomers{Records: second})
		done <- err
	}()
	require.Eventually(t, func() bool {
		var waiting int
		require.NoError(t, pool.QueryRow(ctx, `SELECT count(*) FROM pg_stat_activity
WHERE datname = current_database() AND wait_event_type = 'Lock' AND query LIKE '%customer_stage%'`).Scan(&waiting))
		return waiting == 1
	}, time.Minute, 5*time.Millisecond, "the later call's merge waits for the earlier call's new customers")
	require.NoError(t, tx.Commit(ctx))
	require.NoError(t, <-done)

	require.Equal(t, []string{"line 6: 1", "line 7: 2", "line 8: 3", "line 9: 2",
		"line 10: 1", "line 11: 1", "line 12: 1", "line 13: 1", "line 14: 1", "line 15: 2", "6/3/1/0"}, outcomes(later))
	ids := map[string]string{}
	for _, r := range earlier.Results {
		ids[r.CustomerID] = "earlier"
	}
	for _, i := range []int{1, 2, 3, 9} {
		require.Equal(t, "earlier", ids[later.Results[i].CustomerID], "line %d: the row the earlier call created", later.Results[i].Line)
	}

	got := customersByExt(t, a)
	require.Len(t, got, 10)
	require.Equal(t, int64(3), got["s-1"].Version)
	require.Equal(t, "wang@example.com", got["s-1"].Email)
	require.Equal(t, "north", got["s-1"].OrgUnit)
	require.Equal(t, int64(1), got["s-2"].Version, "confirmed, not written")
	require.Equal(t, "key", got["s-3"].Tier, "five referrals by the later call")
	require.Equal(t, int64(2), got["s-3"].Version)
	events := updates(t, pool)
	require.Len(t, events["s-1"], 3, "the earlier call's and the later call's two")
	require.True(t, strings.HasPrefix(events["s-1"][1], "v2 [email] "), events["s-1"][1])
	require.True(t, strings.HasPrefix(events["s-1"][2], "v3 [org_unit] "), events["s-1"][2])
	require.Len(t, events["s-2"], 1, "the earlier call's only")
	require.Len(t, events["s-3"], 2)
	require.Contains(t, events["s-3"][1], "[name tier]")
	require.Contains(t, events["s-3"][1], "tier=key")
	var all int
	for _, list := range events {
		all += len(list)
	}
	require.Equal(t, 4+1+2+5+1, all, "the earlier call's four, b-1's, s-1's two, r-0…r-4's, s-3's")
	var keys int
	require.NoError(t, pool.QueryRow(ctx, `SELECT count(*) FROM customer_keys`).Scan(&keys))
	require.Equal(t, 10, keys, "no data key of a customer the later call did not write")

	var oneByOne int64
	require.NoError(t, pool.QueryRow(ctx, `SELECT coalesce(sum(calls), 0)::bigint FROM public.pg_stat_statements
WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database())
  AND (query LIKE '%external_id = $2 FOR UPDATE OF customers%' OR query LIKE 'INSERT INTO customers (id, tenant_id, external_id, source_updated_at, version)%')`).Scan(&oneByOne))
	require.Zero(t, oneByOne, "no customer locked, created or read one by one")
}
