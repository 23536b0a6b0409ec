package grpcapi_test

import (
	"testing"

	"github.com/stretchr/testify/require"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	intakev1 "github.com/huifang/huifang/proto/huifang/intake/v1"
	typesv1 "github.com/huifang/huifang/proto/huifang/types/v1"
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
	require.Equal(t, 2, count(t, srv, `SELECT count(*) FROM audit_log WHERE action = 'customer.erase'`))
	require.Equal(t, 1, count(t, srv, `SELECT count(*) FROM audit_log WHERE action = 'customer.erase' AND detail::jsonb->>'reason' = 'the customer''s request, ticket 4711'`))
}
