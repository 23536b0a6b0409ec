package app_test

import (
	"fmt"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	typesv1 "github.com/huifang/huifang/proto/huifang/types/v1"

	"github.com/huifang/huifang/pkg/invalid"
	"github.com/huifang/huifang/services/intake/internal/app"
)

func owners(prefix string, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("%s-%014d", prefix, i)
	}
	return out
}

func withOwners(t *testing.T, id string, owners []string) string {
	t.Helper()
	return fmt.Sprintf(`{"source_system":"erp","source_event_id":%q,"service_type":"repair","completed_at":"2026-11-28T10:00:00Z","customer":{"external_id":"c-1","phone":"+8613800000001","owner_ids":["%s"]}}`,
		id, strings.Join(owners, `","`))
}

// An event that fits the limit, but whose customer as archived (owners are a
// union) makes the events intake would publish larger than it, is refused
// naming payload and the limit, and changes nothing: the Tx form leaves its
// writes to the caller's rollback, IngestService keeps only the rejected row.
func TestEventWhoseOutgoingEventsAreTooLarge(t *testing.T) {
	b := setup(t)
	b.app.MaxEventBytes = 8 << 10
	first, err := b.app.IngestService(b.ctx, app.IngestService{Event: event(t, withOwners(t, "e-1", owners("a", 300))), Source: "grpc"})
	require.NoError(t, err)
	require.Nil(t, first.Invalid)
	c, err := b.app.GetCustomer(b.ctx, app.CustomerQuery{Tenant: "default", ExternalID: "c-1"})
	require.NoError(t, err)
	version := c.Version

	second := withOwners(t, "e-2", owners("b", 300))
	require.Less(t, len(second), b.app.EventLimit(), "the event itself fits")
	rule := fmt.Sprintf("must be at most %d bytes: the ", b.app.EventLimit())

	err = pgx.BeginFunc(b.ctx, b.pool, func(tx pgx.Tx) error {
		_, err := b.app.IngestServiceTx(b.ctx, tx, app.IngestService{Event: event(t, second)})
		return err
	})
	bad, ok := invalid.As(err)
	require.True(t, ok, err)
	require.Equal(t, "payload", bad.Violations[0].Field)
	require.True(t, strings.HasPrefix(bad.Violations[0].Rule, rule), bad.Violations[0].Rule)

	out, err := b.app.IngestService(b.ctx, app.IngestService{Event: event(t, second), Source: "grpc"})
	require.NoError(t, err)
	require.NotNil(t, out.Invalid)
	require.True(t, strings.HasPrefix(out.Invalid.Violations[0].Rule, rule), out.Invalid.Violations[0].Rule)
	require.NotEmpty(t, out.RejectedID, "it fits the limit: kept for a fixed replay")

	require.Equal(t, 1, count(t, b.pool, `SELECT count(*) FROM services`))
	require.Equal(t, 2, count(t, b.pool, `SELECT count(*) FROM outbox WHERE subject <> 'huifang.deadletter.intake'`), "the first event's ServiceCompleted and CustomerUpdated")
	require.Equal(t, 1, count(t, b.pool, `SELECT count(*) FROM rejected_events`))
	c, err = b.app.GetCustomer(b.ctx, app.CustomerQuery{Tenant: "default", ExternalID: "c-1"})
	require.NoError(t, err)
	require.Equal(t, version, c.Version)
	require.Len(t, c.Owners, 300)
	require.Equal(t, 0, count(t, b.pool, fmt.Sprintf(`SELECT count(*) FROM outbox WHERE length(payload) > %d`, b.app.EventLimit())))
}

// No other command publishes a CustomerUpdated over the limit either: it
// refuses its input, naming the field, and changes nothing; an import
// record over the limit refuses only itself.
func TestCommandsRefuseCustomersTooLargeToAnnounce(t *testing.T) {
	b := setup(t)
	b.app.MaxEventBytes = 8 << 10
	out, err := b.app.IngestService(b.ctx, app.IngestService{Event: event(t, repair), Source: "grpc"})
	require.NoError(t, err)
	outbox := count(t, b.pool, `SELECT count(*) FROM outbox`)

	_, err = b.app.SetCustomerOwners(b.ctx, app.SetCustomerOwners{Tenant: "default", CustomerID: out.CustomerID, OwnerIDs: owners("s", 600)})
	bad, ok := invalid.As(err)
	require.True(t, ok, err)
	require.Equal(t, "owner_ids", bad.Violations[0].Field)
	require.Contains(t, bad.Violations[0].Rule, "must be at most 8192 bytes: the CustomerUpdated")
	c, err := b.app.GetCustomer(b.ctx, app.CustomerQuery{Tenant: "default", ID: out.CustomerID})
	require.NoError(t, err)
	require.Equal(t, []string{"s-1"}, c.Owners)
	require.Equal(t, outbox, count(t, b.pool, `SELECT count(*) FROM outbox`))

	imp, err := b.app.ImportCustomers(b.ctx, app.ImportCustomers{Records: []app.ImportRecord{
		{Line: 1, Customer: &typesv1.Customer{ExternalId: "c-big", Phone: "+8613800000009", OwnerIds: owners("s", 600)}},
		{Line: 2, Customer: &typesv1.Customer{ExternalId: "c-small", Phone: "+8613800000008"}},
	}})
	require.NoError(t, err)
	require.Equal(t, 1, imp.Imported)
	require.Equal(t, 1, imp.Rejected)
	require.Equal(t, app.Rejected, imp.Results[0].Outcome)
	require.Equal(t, "records[0].customer", imp.Results[0].Invalid.Violations[0].Field)
	require.Equal(t, "must be at most 8192 bytes", imp.Results[0].Invalid.Violations[0].Rule)
}

// The tier refresh skips (and logs) a customer too large to announce, held
// from before the limit, rather than failing every round; the others are
// refreshed.
func TestRefreshTiersSkipsCustomersTooLargeToAnnounce(t *testing.T) {
	b := setup(t)
	for _, id := range []string{"c-big", "c-small"} {
		_, err := b.app.ImportCustomers(b.ctx, app.ImportCustomers{Records: []app.ImportRecord{{Line: 1, Customer: &typesv1.Customer{ExternalId: id, Phone: "+8613800000009"}}}})
		require.NoError(t, err)
	}
	// Both hold a tier their figures no longer give; c-big's record grew
	// past the limit before there was one.
	_, err := b.pool.Exec(b.ctx, `UPDATE customers SET tier = 'key'`)
	require.NoError(t, err)
	_, err = b.pool.Exec(b.ctx, `UPDATE customers SET owner_ids = $1 WHERE external_id = 'c-big'`, owners("s", 600))
	require.NoError(t, err)
	b.app.MaxEventBytes = 8 << 10
	outbox := count(t, b.pool, `SELECT count(*) FROM outbox`)

	changed, err := b.app.RefreshTiers(b.ctx, 10)
	require.NoError(t, err)
	require.Equal(t, 1, changed)
	require.Equal(t, 1, count(t, b.pool, `SELECT count(*) FROM customers WHERE external_id = 'c-big' AND tier = 'key'`))
	require.Equal(t, 1, count(t, b.pool, `SELECT count(*) FROM customers WHERE external_id = 'c-small' AND tier = ''`))
	require.Equal(t, outbox+1, count(t, b.pool, `SELECT count(*) FROM outbox`))
}

func TestCheckEventLimit(t *testing.T) {
	require.NoError(t, app.CheckEventLimit(256<<10, 1<<20))
	require.NoError(t, app.CheckEventLimit(1<<20-app.HeaderRoom, 1<<20))
	require.ErrorContains(t, app.CheckEventLimit(1<<20-app.HeaderRoom+1, 1<<20), "MAX_EVENT_BYTES")
	require.ErrorContains(t, app.CheckEventLimit(1<<20, 1<<20), "at most 983040")
	require.ErrorContains(t, app.CheckEventLimit(100, 1<<20), "at least")
}
