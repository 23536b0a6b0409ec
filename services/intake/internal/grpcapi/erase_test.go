package grpcapi_test

import (
	"testing"

	"github.com/stretchr/testify/require"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	intakev1 "github.com/huifang/huifang/proto/huifang/intake/v1"
	typesv1 "github.com/huifang/huifang/proto/huifang/types/v1"

	"github.com/huifang/huifang/pkg/invalid"
	"github.com/huifang/huifang/services/intake/internal/app"
)

// EraseCustomer (the right to deletion) destroys the customer's data key:
// its name, phone and email can no longer be read or found, in the archive
// or from any sealed copy; it opts out of every channel; CustomerUpdated
// says erased; the audit log has the reason. Its services stay (figures do
// not change). A second erasure changes nothing more.
func TestEraseCustomer(t *testing.T) {
	ctx, srv := setup(t)
	r := ingest(t, srv, `{"source_system":"erp","source_event_id":"e-1","service_type":"repair","completed_at":"2026-11-20T10:00:00Z",
		"customer":{"external_id":"c-1","name":"王芳","phone":"+8613800138000","email":"wang.fang@example.com"}}`)
	require.Equal(t, 1, count(t, srv, `SELECT count(*) FROM customer_keys WHERE version = 1`))

	_, err := srv.EraseCustomer(ctx, &intakev1.EraseCustomerRequest{CustomerId: r.CustomerId})
	require.Equal(t, []string{"reason"}, violationFields(t, err))
	_, err = srv.EraseCustomer(ctx, &intakev1.EraseCustomerRequest{CustomerId: "nobody", Reason: "the customer's request"})
	require.Equal(t, codes.NotFound, status.Code(err))

	got, err := srv.EraseCustomer(ctx, &intakev1.EraseCustomerRequest{CustomerId: r.CustomerId, Reason: "the customer's request, ticket 4711"})
	require.NoError(t, err)
	require.True(t, got.ErasedNow)
	c := got.Customer.Customer
	require.Empty(t, c.NameMasked+c.PhoneMasked+c.EmailMasked)
	require.False(t, c.HasPhone || c.HasEmail)
	require.ElementsMatch(t, []typesv1.Channel{typesv1.Channel_CHANNEL_PHONE, typesv1.Channel_CHANNEL_SMS, typesv1.Channel_CHANNEL_ONSITE,
		typesv1.Channel_CHANNEL_EMAIL, typesv1.Channel_CHANNEL_WEB}, c.Preferences.OptedOut)

	ev := lastCustomerUpdated(t, srv)
	require.True(t, ev.Erased)
	require.Contains(t, ev.ChangedFields, "erased")
	require.Equal(t, got.Customer.Version, ev.Version)
	require.Equal(t, 1, count(t, srv, `SELECT count(*) FROM outbox WHERE subject = 'huifang.events.customer.erased'`),
		"the erasure again on its own subject, for analytics")

	// Nothing opens or finds it any more.
	_, err = srv.RevealContact(ctx, &intakev1.RevealContactRequest{TenantId: "default", CustomerId: r.CustomerId,
		Fields: []intakev1.ContactField{intakev1.ContactField_CONTACT_FIELD_PHONE}, Purpose: "call back"})
	require.NoError(t, err)
	rv, _ := srv.RevealContact(ctx, &intakev1.RevealContactRequest{TenantId: "default", CustomerId: r.CustomerId,
		Fields: []intakev1.ContactField{intakev1.ContactField_CONTACT_FIELD_PHONE, intakev1.ContactField_CONTACT_FIELD_NAME}, Purpose: "call back"})
	require.Empty(t, rv.GetPhone()+rv.GetName())
	_, err = srv.GetCustomer(ctx, &intakev1.GetCustomerRequest{Phone: "+8613800138000", Purpose: "inbound call"})
	require.Equal(t, codes.NotFound, status.Code(err))
	require.Zero(t, count(t, srv, `SELECT count(*) FROM customer_keys WHERE version = 1`), "the data key the contacts were sealed under is destroyed")
	require.Zero(t, count(t, srv, `SELECT count(*) FROM customers AS r WHERE r::text LIKE '%13800138000%' OR r::text LIKE '%王芳%' OR r::text LIKE '%wang.fang%'`))
	require.Equal(t, 1, count(t, srv, `SELECT count(*) FROM services`), "the service stays: figures do not change")

	again, err := srv.EraseCustomer(ctx, &intakev1.EraseCustomerRequest{CustomerId: r.CustomerId, Reason: "asked again"})
	require.NoError(t, err)
	require.False(t, again.ErasedNow)
	require.Equal(t, got.Customer.Version, again.Customer.Version, "nothing more changes")
	require.Equal(t, 1, count(t, srv, `SELECT count(*) FROM outbox WHERE subject = 'huifang.events.customer.erased'`), "and announces nothing more")
	require.Equal(t, 2, count(t, srv, `SELECT count(*) FROM audit_log WHERE action = 'customer.erase'`))
	require.Equal(t, 1, count(t, srv, `SELECT count(*) FROM audit_log WHERE action = 'customer.erase' AND detail::jsonb->>'reason' = 'the customer''s request, ticket 4711'`))
}

// A refused input naming the customer was sealed under the tenant's key,
// not the customer's: the erasure deletes it, whether it names the customer
// by its external id, phone or email, decodes as an event or not (broken
// JSON); refused inputs about other people stay. The audit entry says how
// many went.
func TestEraseCustomerDeletesRefusedInputsNamingIt(t *testing.T) {
	ctx, srv := setup(t)
	r := ingest(t, srv, `{"source_system":"erp","source_event_id":"e-1","service_type":"repair","completed_at":"2026-11-20T10:00:00Z",
		"customer":{"external_id":"c-1","name":"王芳","phone":"+8613800138000","email":"wang.fang@example.com"}}`)
	refuse := func(js string) {
		t.Helper()
		_, err := srv.IngestService(ctx, &intakev1.IngestServiceRequest{Event: event(t, js)})
		require.Error(t, err)
	}
	// By external id only, by phone in a note, by email under another id.
	refuse(`{"source_system":"erp","source_event_id":"e-2","service_type":"no_such_type","completed_at":"2026-11-21T10:00:00Z","customer":{"external_id":"c-1"}}`)
	refuse(`{"source_system":"erp","source_event_id":"e-3","service_type":"no_such_type","completed_at":"2026-11-21T10:00:00Z","customer":{"external_id":"c-9"},"attributes":{"note":"spouse +8613800138000"}}`)
	refuse(`{"source_system":"erp","source_event_id":"e-4","service_type":"no_such_type","completed_at":"2026-11-21T10:00:00Z","customer":{"external_id":"c-8","email":"Wang.Fang@Example.com"}}`)
	// Someone else, and a customer whose id only starts like it.
	refuse(`{"source_system":"erp","source_event_id":"e-5","service_type":"no_such_type","completed_at":"2026-11-21T10:00:00Z","customer":{"external_id":"c-2","phone":"+8613900139000"}}`)
	refuse(`{"source_system":"erp","source_event_id":"e-6","service_type":"no_such_type","completed_at":"2026-11-21T10:00:00Z","customer":{"external_id":"c-10"}}`)
	// Broken JSON naming it by its id, and broken JSON about someone else.
	for _, raw := range []string{`{"customer":{"external_id": "c-1", "name":"王芳"`, `{"customer":{"externalId":"c-11"`} {
		_, err := srv.App.RejectRaw(ctx, app.RejectRaw{Source: "http", ContentType: "application/json", Payload: []byte(raw),
			Err: invalid.New("payload", "must be JSON")})
		require.NoError(t, err)
	}
	require.Equal(t, 7, count(t, srv, `SELECT count(*) FROM rejected_events`))

	_, err := srv.EraseCustomer(ctx, &intakev1.EraseCustomerRequest{CustomerId: r.CustomerId, Reason: "the customer's request, ticket 4711"})
	require.NoError(t, err)
	require.Equal(t, 3, count(t, srv, `SELECT count(*) FROM rejected_events`), "c-2, c-10 and the broken c-11 stay")
	list, err := srv.ListRejectedEvents(ctx, &intakev1.ListRejectedEventsRequest{})
	require.NoError(t, err)
	require.Len(t, list.RejectedEvents, 3)
	require.Equal(t, 1, count(t, srv, `SELECT count(*) FROM audit_log WHERE action = 'customer.erase' AND detail::jsonb->>'refused_inputs_deleted' = '4'`))
}
