package grpcapi_test

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	intakev1 "github.com/huifang/huifang/proto/huifang/intake/v1"

	"github.com/huifang/huifang/services/intake/internal/privacy"
)

// seed 000 (auto dealer): accident claims over 50,000 a year (individual) or
// over 500,000 (fleet) make a key customer; a service carries its claim in
// claim_amount_minor, and the figure is shown with the others.
func TestAccidentClaimsMakeKeyCustomers(t *testing.T) {
	ctx, srv := setup(t)
	ingest(t, srv, `{"source_system":"dms","source_event_id":"a-1","service_type":"repair","completed_at":"2026-10-01T10:00:00Z",
	  "amount_minor":100,"claim_amount_minor":5000000,"customer":{"external_id":"driver","phone":"+8613800000001"}}`)
	c, err := srv.GetCustomer(ctx, &intakev1.GetCustomerRequest{ExternalId: "driver"})
	require.NoError(t, err)
	require.Equal(t, "", c.Customer.Tier, "exactly 50,000 is not over it")
	require.EqualValues(t, 5000000, c.View.AccidentClaimsYearMinor)
	require.EqualValues(t, 100, c.View.ServiceSpendYearMinor, "claims are not service spend")
	ingest(t, srv, `{"source_system":"dms","source_event_id":"a-2","service_type":"repair","completed_at":"2026-11-01T10:00:00Z",
	  "claim_amount_minor":1,"customer":{"external_id":"driver","phone":"+8613800000001"}}`)
	c, err = srv.GetCustomer(ctx, &intakev1.GetCustomerRequest{ExternalId: "driver"})
	require.NoError(t, err)
	require.Equal(t, "key", c.Customer.Tier)
	require.Contains(t, lastCustomerUpdated(t, srv).ChangedFields, "tier")

	ingest(t, srv, `{"source_system":"dms","source_event_id":"f-1","service_type":"repair","completed_at":"2026-10-01T10:00:00Z",
	  "claim_amount_minor":6000000,"customer":{"external_id":"fleet","kind":"fleet","phone":"+8613800000002"}}`)
	c, err = srv.GetCustomer(ctx, &intakev1.GetCustomerRequest{ExternalId: "fleet"})
	require.NoError(t, err)
	require.Equal(t, "", c.Customer.Tier, "a fleet needs over 500,000")
	ingest(t, srv, `{"source_system":"dms","source_event_id":"f-2","service_type":"repair","completed_at":"2026-10-02T10:00:00Z",
	  "claim_amount_minor":44000001,"customer":{"external_id":"fleet","kind":"fleet","phone":"+8613800000002"}}`)
	c, err = srv.GetCustomer(ctx, &intakev1.GetCustomerRequest{ExternalId: "fleet"})
	require.NoError(t, err)
	require.Equal(t, "key", c.Customer.Tier)
	require.EqualValues(t, 50000001, c.View.AccidentClaimsYearMinor)

	_, err = srv.IngestService(ctx, &intakev1.IngestServiceRequest{Event: event(t, `{"source_system":"dms","source_event_id":"bad","service_type":"repair",
	  "completed_at":"2026-10-01T10:00:00Z","claim_amount_minor":-5,"customer":{"external_id":"driver","phone":"+8613800000001"}}`)})
	require.Equal(t, []string{"claim_amount_minor"}, violationFields(t, err))
}

// ListCustomers shows each customer's tier figures, as GetCustomer does, with
// one query for the whole page (no query per customer).
func TestListCustomersShowsFigures(t *testing.T) {
	ctx, srv := setup(t)
	for i := range 6 {
		ingest(t, srv, fmt.Sprintf(`{"source_system":"dms","source_event_id":"s-%d","service_type":"vehicle_delivery","completed_at":"2026-10-01T10:00:00Z",
		  "amount_minor":%d,"claim_amount_minor":%d,"vehicle":{"vin":"LSVAM4187C218484%d"},"customer":{"external_id":"c-%d","phone":"+86138000000%02d"}}`, i, 1000*(i+1), 7*i, i, i%3, i%3))
	}
	for i := range 2 {
		ingest(t, srv, fmt.Sprintf(`{"source_system":"dms","source_event_id":"r-%d","service_type":"showroom_visit","completed_at":"2026-10-01T10:00:00Z",
		  "customer":{"external_id":"friend-%d","phone":"+8613900000%03d","referred_by":"c-1"}}`, i, i, i))
	}
	// The same archive through a pool that counts the queries.
	var queries atomic.Int32
	cfg := srv.App.DB.(*pgxpool.Pool).Config()
	cfg.ConnConfig.Tracer = queryCounter{n: &queries}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	require.NoError(t, err)
	t.Cleanup(pool.Close)
	counted := *srv
	a := *srv.App
	a.DB = pool
	counted.App = &a
	list, err := counted.ListCustomers(ctx, &intakev1.ListCustomersRequest{PageSize: 10})
	require.NoError(t, err)
	require.Len(t, list.Customers, 5)
	for _, v := range list.Customers {
		got, err := srv.GetCustomer(ctx, &intakev1.GetCustomerRequest{Id: v.Customer.Id})
		require.NoError(t, err)
		require.Equal(t, got.View.ServiceSpendYearMinor, v.ServiceSpendYearMinor, v.Customer.ExternalId)
		require.Equal(t, got.View.AccidentClaimsYearMinor, v.AccidentClaimsYearMinor, v.Customer.ExternalId)
		require.Equal(t, got.View.CarsYear, v.CarsYear, v.Customer.ExternalId)
		require.Equal(t, got.View.Referrals, v.Referrals, v.Customer.ExternalId)
		if v.Customer.ExternalId == "c-1" {
			require.EqualValues(t, 2000+5000, v.ServiceSpendYearMinor)
			require.EqualValues(t, 7+28, v.AccidentClaimsYearMinor)
			require.EqualValues(t, 2, v.CarsYear)
			require.EqualValues(t, 2, v.Referrals)
		}
	}
	require.EqualValues(t, 2, queries.Load(), "the page and its figures: two queries")
}

// queryCounter counts the queries a pool runs.
type queryCounter struct{ n *atomic.Int32 }

func (q queryCounter) TraceQueryStart(ctx context.Context, _ *pgx.Conn, _ pgx.TraceQueryStartData) context.Context {
	q.n.Add(1)
	return ctx
}

func (queryCounter) TraceQueryEnd(context.Context, *pgx.Conn, pgx.TraceQueryEndData) {}

// After HASH_KEY changes, customers are not found by phone until their
// hashes are recomputed; RehashContacts does it in batches, each committed
// on its own, and a second call goes on with what is left.
func TestRehashContactsAfterHashKeyChange(t *testing.T) {
	ctx, srv := setup(t)
	for i := range 5 {
		ingest(t, srv, fmt.Sprintf(`{"source_system":"erp","source_event_id":"e-%d","service_type":"repair","completed_at":"2026-11-20T10:00:00Z",
		  "customer":{"external_id":"c-%d","phone":"+86138001380%02d","email":"c%d@example.com"}}`, i, i, i, i))
	}
	newKey, err := privacy.New(privacy.DevKeys, "bmV3LWhhc2gta2V5LW5ldy1oYXNoLWtleS1uZXctaGFzaA==")
	require.NoError(t, err)
	srv.App.Store.Cipher = newKey
	_, err = srv.GetCustomer(ctx, &intakev1.GetCustomerRequest{Phone: "+8613800138003", Purpose: "inbound call"})
	require.Equal(t, codes.NotFound, status.Code(err), "hashes under the old key do not match")

	// A run interrupted after its first batch committed: simulated by
	// re-hashing one customer alone.
	_, err = srv.App.DB.Exec(ctx, `UPDATE customers SET phone_hash = $1, hash_key_id = $2 WHERE external_id = 'c-0'`,
		newKey.HashPhone("+8613800138000"), newKey.HashKeyID())
	require.NoError(t, err)
	_, err = srv.RehashContacts(ctx, &intakev1.RehashContactsRequest{BatchSize: -1})
	require.Error(t, err)
	resp, err := srv.RehashContacts(ctx, &intakev1.RehashContactsRequest{BatchSize: 2})
	require.NoError(t, err)
	require.EqualValues(t, 4, resp.Rehashed, "only the customers still stale")
	require.Zero(t, resp.Remaining)
	for i := range 5 {
		c, err := srv.GetCustomer(ctx, &intakev1.GetCustomerRequest{Phone: fmt.Sprintf("+86138001380%02d", i), Purpose: "inbound call"})
		require.NoError(t, err)
		require.Equal(t, fmt.Sprintf("c-%d", i), c.Customer.ExternalId)
	}
	require.Equal(t, 5, count(t, srv, fmt.Sprintf(`SELECT count(*) FROM customers WHERE email_hash = '%s' OR external_id <> 'c-1'`, newKey.HashEmail("c1@example.com"))))
	resp, err = srv.RehashContacts(ctx, &intakev1.RehashContactsRequest{})
	require.NoError(t, err)
	require.Zero(t, resp.Rehashed, "nothing left to do")
}
