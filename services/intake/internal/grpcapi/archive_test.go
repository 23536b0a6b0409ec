package grpcapi_test

import (
	"context"
	"encoding/base64"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	eventsv1 "github.com/huifang/huifang/proto/huifang/events/v1"
	intakev1 "github.com/huifang/huifang/proto/huifang/intake/v1"
	typesv1 "github.com/huifang/huifang/proto/huifang/types/v1"

	"github.com/huifang/huifang/pkg/invalid"
	"github.com/huifang/huifang/pkg/stream"
	"github.com/huifang/huifang/services/intake/internal/grpcapi"
	"github.com/huifang/huifang/services/intake/internal/privacy"
)

func ingest(t *testing.T, srv *grpcapi.Server, js string) *intakev1.IngestServiceResponse {
	t.Helper()
	resp, err := srv.IngestService(context.Background(), &intakev1.IngestServiceRequest{Event: event(t, js)})
	require.NoError(t, err)
	return resp
}

func lastCustomerUpdated(t *testing.T, srv *grpcapi.Server) *eventsv1.CustomerUpdated {
	t.Helper()
	var payload []byte
	require.NoError(t, srv.App.DB.QueryRow(context.Background(),
		`SELECT payload FROM outbox WHERE subject = $1 ORDER BY seq DESC LIMIT 1`, stream.SubjectCustomerUpdated).Scan(&payload))
	ev := &eventsv1.CustomerUpdated{}
	require.NoError(t, proto.Unmarshal(payload, ev))
	return ev
}

func violationFields(t *testing.T, err error) []string {
	t.Helper()
	bad, ok := invalid.As(err)
	require.True(t, ok, "want *invalid.Error, got %v", err)
	var out []string
	for _, v := range bad.Violations {
		out = append(out, v.Field)
	}
	return out
}

// A refused input can be listed, inspected, fixed and replayed; replaying
// what still breaks a rule changes nothing; a replay is done once.
func TestReplayRejectedEvent(t *testing.T) {
	ctx, srv := setup(t)
	_, err := srv.IngestService(ctx, &intakev1.IngestServiceRequest{Event: event(t,
		`{"source_system":"erp","source_event_id":"e-1","service_type":"trade_in","completed_at":"2026-11-28T10:00:00Z","customer":{"external_id":"c-1","phone":"+8613800000001"}}`)})
	require.Equal(t, []string{"service_type"}, violationFields(t, err))
	list, err := srv.ListRejectedEvents(ctx, &intakev1.ListRejectedEventsRequest{})
	require.NoError(t, err)
	require.Len(t, list.RejectedEvents, 1)
	id := list.RejectedEvents[0].Id

	got, err := srv.GetRejectedEvent(ctx, &intakev1.GetRejectedEventRequest{Id: id})
	require.NoError(t, err)
	require.Equal(t, "trade_in", got.Decoded.ServiceType, "the stored payload decodes for inspection")
	_, err = srv.GetRejectedEvent(ctx, &intakev1.GetRejectedEventRequest{Id: "nope"})
	require.Equal(t, codes.NotFound, status.Code(err))

	// As it is, it still breaks the rule: nothing changes.
	_, err = srv.ReplayRejectedEvent(ctx, &intakev1.ReplayRejectedEventRequest{Id: id})
	require.Equal(t, []string{"service_type"}, violationFields(t, err))
	require.Equal(t, 0, count(t, srv, `SELECT count(*) FROM services`))

	// The tenant registers its own type; the same payload now goes through.
	_, err = srv.RegisterServiceType(ctx, &intakev1.RegisterServiceTypeRequest{Name: "trade_in", Description: "a car taken in part exchange"})
	require.NoError(t, err)
	res, err := srv.ReplayRejectedEvent(ctx, &intakev1.ReplayRejectedEventRequest{Id: id})
	require.NoError(t, err)
	require.NotEmpty(t, res.ServiceId)
	require.Equal(t, 1, count(t, srv, `SELECT count(*) FROM services WHERE service_type = 'trade_in'`))
	_, err = srv.ReplayRejectedEvent(ctx, &intakev1.ReplayRejectedEventRequest{Id: id})
	require.Equal(t, codes.FailedPrecondition, status.Code(err), "a replay is done once")
	got, err = srv.GetRejectedEvent(ctx, &intakev1.GetRejectedEventRequest{Id: id})
	require.NoError(t, err)
	require.Equal(t, res.ServiceId, got.RejectedEvent.ReplayedServiceId)
	require.NotNil(t, got.RejectedEvent.ReplayedAt)

	// A half-filled event is fixed by the operator and replayed.
	_, err = srv.IngestService(ctx, &intakev1.IngestServiceRequest{Event: event(t,
		`{"source_system":"erp","source_event_id":"e-2","service_type":"repair","completed_at":"2026-11-28T10:00:00Z","customer":{"phone":"+8613800000002"}}`)})
	require.Equal(t, []string{"customer.external_id"}, violationFields(t, err))
	list, err = srv.ListRejectedEvents(ctx, &intakev1.ListRejectedEventsRequest{})
	require.NoError(t, err)
	fixed := event(t, `{"source_system":"erp","source_event_id":"e-2","service_type":"repair","completed_at":"2026-11-28T10:00:00Z","customer":{"external_id":"c-2","phone":"+8613800000002"}}`)
	res, err = srv.ReplayRejectedEvent(ctx, &intakev1.ReplayRejectedEventRequest{Id: list.RejectedEvents[0].Id, Fixed: fixed})
	require.NoError(t, err)
	require.False(t, res.Duplicate)
	require.Equal(t, 2, count(t, srv, `SELECT count(*) FROM services`))

	types, err := srv.ListServiceTypes(ctx, &intakev1.ListServiceTypesRequest{})
	require.NoError(t, err)
	require.Len(t, types.ServiceTypes, 20, "19 built in (referral, move_in, checkup, campaign … among them) and the tenant's own")
	require.Equal(t, "trade_in", types.ServiceTypes[19].Name)
	require.False(t, types.ServiceTypes[19].BuiltIn)
	other, err := srv.ListServiceTypes(ctx, &intakev1.ListServiceTypesRequest{TenantId: "other"})
	require.NoError(t, err)
	require.Len(t, other.ServiceTypes, 19, "a tenant's own types are its own")
}

func TestRegisterServiceTypeRules(t *testing.T) {
	ctx, srv := setup(t)
	for _, name := range []string{"", "Repair Shop", "repair", "9lives"} {
		_, err := srv.RegisterServiceType(ctx, &intakev1.RegisterServiceTypeRequest{Name: name})
		require.Equal(t, []string{"name"}, violationFields(t, err), name)
	}
}

// Issue 16: the service types Huifang makes itself cannot be registered by a
// tenant (InvalidArgument naming name and the rule) nor sent by an upstream
// system (refused naming service_type, kept with the reason), even by a
// tenant that registered one before registering them was refused.
func TestInternalServiceTypesAreRefused(t *testing.T) {
	ctx, srv := setup(t)
	c := client(t, srv)
	for _, name := range []string{"complaint_resolved", "visit_unreachable", "followup"} {
		_, err := c.RegisterServiceType(ctx, &intakev1.RegisterServiceTypeRequest{Name: name})
		v := violations(t, err)
		require.Len(t, v, 1, name)
		require.Equal(t, "name", v[0].GetField())
		require.Contains(t, v[0].GetDescription(), "is a service type Huifang makes itself", name)

		_, err = c.IngestService(ctx, &intakev1.IngestServiceRequest{Event: event(t, fmt.Sprintf(
			`{"source_system":"erp","source_event_id":"e-%s","service_type":%q,"completed_at":"2026-11-28T10:00:00Z","customer":{"external_id":"c-1","phone":"+8613800000001"}}`, name, name))})
		v = violations(t, err)
		require.Len(t, v, 1, name)
		require.Equal(t, "service_type", v[0].GetField())
		require.Contains(t, v[0].GetDescription(), "not one an upstream system sends")
	}
	require.Zero(t, count(t, srv, `SELECT count(*) FROM service_types`))
	require.Zero(t, count(t, srv, `SELECT count(*) FROM services`))
	require.Equal(t, 3, count(t, srv, `SELECT count(*) FROM rejected_events`), "kept with the reason, for the operator")

	// Registered before the rule: still refused on the ingress, and not listed.
	_, err := srv.App.DB.Exec(ctx, `INSERT INTO service_types (tenant_id, name, description) VALUES ('default', 'complaint_resolved', 'old')`)
	require.NoError(t, err)
	_, err = c.IngestService(ctx, &intakev1.IngestServiceRequest{Event: event(t,
		`{"source_system":"erp","source_event_id":"e-old","service_type":"complaint_resolved","completed_at":"2026-11-28T10:00:00Z","customer":{"external_id":"c-1","phone":"+8613800000001"}}`)})
	require.Equal(t, "service_type", violations(t, err)[0].GetField())
	types, err := c.ListServiceTypes(ctx, &intakev1.ListServiceTypesRequest{})
	require.NoError(t, err)
	for _, st := range types.GetServiceTypes() {
		require.NotEqual(t, "complaint_resolved", st.GetName())
	}
}

// seed 000: one problem raised with several departments (here: channels) is recorded once.
func TestSameComplaintThroughSeveralChannelsIsRecordedOnce(t *testing.T) {
	ctx, srv := setup(t)
	byPhone := ingest(t, srv, `{"source_system":"callcenter","source_event_id":"cc-9","service_type":"complaint_closed","completed_at":"2026-11-27T10:00:00Z",
	  "customer":{"external_id":"c-1","phone":"+8613800000001"},"complaint":{"reference":"T-77","severity":"SEVERITY_URGENT","channel":"phone"}}`)
	byWeb := ingest(t, srv, `{"source_system":"webportal","source_event_id":"w-1","service_type":"complaint_closed","completed_at":"2026-11-27T11:00:00Z",
	  "customer":{"external_id":"c-1","phone":"+8613800000001"},"complaint":{"reference":"T-77","severity":"SEVERITY_URGENT","channel":"web"}}`)
	require.False(t, byPhone.Duplicate)
	require.True(t, byWeb.Duplicate)
	require.Equal(t, byPhone.ServiceId, byWeb.ServiceId)
	require.Equal(t, 1, count(t, srv, `SELECT count(*) FROM services`))
	require.Equal(t, 1, count(t, srv, `SELECT count(*) FROM outbox WHERE subject = '`+stream.SubjectServiceCompleted+`'`))

	// Another complaint of the same customer is its own record.
	ingest(t, srv, `{"source_system":"webportal","source_event_id":"w-2","service_type":"complaint_closed","completed_at":"2026-11-27T12:00:00Z",
	  "customer":{"external_id":"c-1","phone":"+8613800000001"},"complaint":{"reference":"T-78","anonymous":true}}`)
	require.Equal(t, 2, count(t, srv, `SELECT count(*) FROM services`))

	_, err := srv.IngestService(ctx, &intakev1.IngestServiceRequest{Event: event(t, `{"source_system":"erp","source_event_id":"r-1","service_type":"repair","completed_at":"2026-11-27T12:00:00Z",
	  "customer":{"external_id":"c-1","phone":"+8613800000001"},"complaint":{"reference":"T-79"}}`)})
	require.Equal(t, []string{"complaint"}, violationFields(t, err), "a complaint belongs to complaint_closed")
}

// seed 000 (auto dealer): key customers: 2 cars a year, 5 referrals, service
// spend over 5,000 a year; the tier is re-evaluated on every change and
// announced with CustomerUpdated.
func TestKeyCustomerTier(t *testing.T) {
	ctx, srv := setup(t)
	ingest(t, srv, `{"source_system":"dms","source_event_id":"d-1","service_type":"vehicle_delivery","completed_at":"2026-03-01T10:00:00Z",
	  "customer":{"external_id":"car-buyer","phone":"+8613800000001"},"vehicle":{"vin":"LSVAM4187C2184847","plate":"沪A12345"}}`)
	c, err := srv.GetCustomer(ctx, &intakev1.GetCustomerRequest{ExternalId: "car-buyer"})
	require.NoError(t, err)
	require.Equal(t, "", c.Customer.Tier)
	ingest(t, srv, `{"source_system":"dms","source_event_id":"d-2","service_type":"vehicle_delivery","completed_at":"2026-09-01T10:00:00Z",
	  "customer":{"external_id":"car-buyer","phone":"+8613800000001"},"vehicle":{"vin":"LSVAM4187C2184848"}}`)
	c, err = srv.GetCustomer(ctx, &intakev1.GetCustomerRequest{ExternalId: "car-buyer"})
	require.NoError(t, err)
	require.Equal(t, "key", c.Customer.Tier, "two cars in a year")
	require.EqualValues(t, 2, c.View.CarsYear)
	up := lastCustomerUpdated(t, srv)
	require.Contains(t, up.ChangedFields, "tier")
	require.Equal(t, "key", up.Customer.Tier)
	require.EqualValues(t, c.View.Version, up.Version)

	// Spend: 3,000 + 2,000 is not over 5,000; one more fen is.
	ingest(t, srv, `{"source_system":"dms","source_event_id":"s-1","service_type":"repair","completed_at":"2026-10-01T10:00:00Z","amount_minor":300000,"customer":{"external_id":"spender","phone":"+8613800000002"}}`)
	ingest(t, srv, `{"source_system":"dms","source_event_id":"s-2","service_type":"maintenance","completed_at":"2026-11-01T10:00:00Z","amount_minor":200000,"customer":{"external_id":"spender","phone":"+8613800000002"}}`)
	c, err = srv.GetCustomer(ctx, &intakev1.GetCustomerRequest{ExternalId: "spender"})
	require.NoError(t, err)
	require.Equal(t, "", c.Customer.Tier)
	ingest(t, srv, `{"source_system":"dms","source_event_id":"s-3","service_type":"repair","completed_at":"2026-11-02T10:00:00Z","amount_minor":1,"customer":{"external_id":"spender","phone":"+8613800000002"}}`)
	c, err = srv.GetCustomer(ctx, &intakev1.GetCustomerRequest{ExternalId: "spender"})
	require.NoError(t, err)
	require.Equal(t, "key", c.Customer.Tier)
	require.EqualValues(t, 500001, c.View.ServiceSpendYearMinor)

	// Referrals: the fifth referred customer makes the referrer key.
	ingest(t, srv, `{"source_system":"dms","source_event_id":"r-0","service_type":"repair","completed_at":"2026-11-01T10:00:00Z","customer":{"external_id":"referrer","phone":"+8613800000003"}}`)
	for i := range 5 {
		ingest(t, srv, fmt.Sprintf(`{"source_system":"dms","source_event_id":"r-%d","service_type":"showroom_visit","completed_at":"2026-11-01T10:00:00Z","customer":{"external_id":"friend-%d","phone":"+86138000001%02d","referred_by":"referrer"}}`, i+1, i, i))
	}
	c, err = srv.GetCustomer(ctx, &intakev1.GetCustomerRequest{ExternalId: "referrer"})
	require.NoError(t, err)
	require.Equal(t, "key", c.Customer.Tier)
	require.EqualValues(t, 5, c.View.Referrals)

	keys, err := srv.ListCustomers(ctx, &intakev1.ListCustomersRequest{Tier: "key"})
	require.NoError(t, err)
	require.Len(t, keys.Customers, 3)

	// A year on, the cars and the spend no longer count; the referrals still do.
	srv.App.Now = func() time.Time { return now.AddDate(1, 1, 0) }
	n, err := srv.App.RefreshTiers(ctx, 2)
	require.NoError(t, err)
	require.Equal(t, 2, n)
	up = lastCustomerUpdated(t, srv)
	require.Equal(t, []string{"tier"}, up.ChangedFields)
	require.Equal(t, "", up.Customer.Tier)
	keys, err = srv.ListCustomers(ctx, &intakev1.ListCustomersRequest{Tier: "key"})
	require.NoError(t, err)
	require.Len(t, keys.Customers, 1)
	require.Equal(t, "referrer", keys.Customers[0].Customer.ExternalId)
}

// seed 002: every customer is known to at least two staff; staff who served
// become owners; the owners can be set, never below two.
func TestOwnersAndPreferences(t *testing.T) {
	ctx, srv := setup(t)
	r := ingest(t, srv, `{"source_system":"erp","source_event_id":"e-1","service_type":"installation","completed_at":"2026-11-20T10:00:00Z","staff_id":"s-1","customer":{"external_id":"c-1","phone":"+8613800000001"}}`)
	ingest(t, srv, `{"source_system":"erp","source_event_id":"e-2","service_type":"repair","completed_at":"2026-11-21T10:00:00Z","staff_id":"s-2","customer":{"external_id":"c-1","phone":"+8613800000001"}}`)
	c, err := srv.GetCustomer(ctx, &intakev1.GetCustomerRequest{Id: r.CustomerId})
	require.NoError(t, err)
	require.Equal(t, []string{"s-1", "s-2"}, c.Customer.OwnerIds)

	ingest(t, srv, `{"source_system":"erp","source_event_id":"e-3","service_type":"repair","completed_at":"2026-11-21T10:00:00Z","staff_id":"s-1","customer":{"external_id":"c-2","phone":"+8613800000002"}}`)
	lonely, err := srv.ListCustomers(ctx, &intakev1.ListCustomersRequest{FewerThanTwoOwners: true})
	require.NoError(t, err)
	require.Len(t, lonely.Customers, 1, "seed 002: the customers that still need a second owner")
	require.Equal(t, "c-2", lonely.Customers[0].Customer.ExternalId)

	_, err = srv.SetCustomerOwners(ctx, &intakev1.SetCustomerOwnersRequest{CustomerId: r.CustomerId, OwnerIds: []string{"s-9", "s-9"}})
	require.Equal(t, []string{"owner_ids"}, violationFields(t, err))
	set, err := srv.SetCustomerOwners(ctx, &intakev1.SetCustomerOwnersRequest{CustomerId: r.CustomerId, OwnerIds: []string{"s-9", "s-1"}})
	require.NoError(t, err)
	require.Equal(t, []string{"s-9", "s-1"}, set.Customer.Customer.OwnerIds)
	require.Equal(t, c.View.Version+1, set.Customer.Version)
	require.Equal(t, []string{"owner_ids"}, lastCustomerUpdated(t, srv).ChangedFields)
	_, err = srv.SetCustomerOwners(ctx, &intakev1.SetCustomerOwnersRequest{CustomerId: "nobody", OwnerIds: []string{"a", "b"}})
	require.Equal(t, codes.NotFound, status.Code(err))

	_, err = srv.UpdateContactPreferences(ctx, &intakev1.UpdateContactPreferencesRequest{CustomerId: r.CustomerId, Preferences: &typesv1.ContactPreferences{
		TimeZone: "Mars/Olympus", Windows: []*typesv1.ContactWindow{{StartMinute: 700, EndMinute: 600}}, OptedOut: []typesv1.Channel{0}}})
	require.ElementsMatch(t, []string{"preferences.time_zone", "preferences.windows[0]", "preferences.opted_out[0]"}, violationFields(t, err))
	prefs := &typesv1.ContactPreferences{
		OptedOut: []typesv1.Channel{typesv1.Channel_CHANNEL_SMS}, TimeZone: "Asia/Shanghai", Language: "zh-CN", DislikesCalls: true,
		Windows: []*typesv1.ContactWindow{{StartMinute: 600, EndMinute: 690}}, // 10:00–11:30 (seed 002)
	}
	upd, err := srv.UpdateContactPreferences(ctx, &intakev1.UpdateContactPreferencesRequest{CustomerId: r.CustomerId, Preferences: prefs})
	require.NoError(t, err)
	require.True(t, proto.Equal(prefs, upd.Customer.Customer.Preferences))
	ev := lastCustomerUpdated(t, srv)
	require.Equal(t, []string{"preferences"}, ev.ChangedFields)
	require.True(t, ev.Customer.Preferences.DislikesCalls)
	require.Empty(t, ev.Customer.Phone, "events carry no clear contact")
	require.Equal(t, "*******0001", ev.Customer.PhoneMasked)
	require.True(t, ev.Customer.HasPhone)
	// The change of consent is recorded with its source, version and time.
	var detail string
	require.NoError(t, srv.App.DB.QueryRow(ctx, `SELECT detail FROM audit_log WHERE action = 'customer.preferences' AND target_id = $1`, r.CustomerId).Scan(&detail))
	require.JSONEq(t, fmt.Sprintf(`{"version": %d, "opted_out": ["CHANNEL_SMS"], "source": "UpdateContactPreferences"}`, upd.Customer.Version), detail)
	before := count(t, srv, `SELECT count(*) FROM outbox`)
	_, err = srv.UpdateContactPreferences(ctx, &intakev1.UpdateContactPreferencesRequest{CustomerId: r.CustomerId, Preferences: prefs})
	require.NoError(t, err)
	require.Equal(t, before, count(t, srv, `SELECT count(*) FROM outbox`), "the same preferences again announce nothing")
	require.Equal(t, 1, count(t, srv, `SELECT count(*) FROM audit_log WHERE action = 'customer.preferences'`), "nor record anything")
}

// Contacts are encrypted at rest with a key id, found by a keyed hash, masked
// in answers (RevealContact reveals), and readable after a key rotation.
func TestContactsEncryptedMaskedAndRotated(t *testing.T) {
	ctx, srv := setup(t)
	r := ingest(t, srv, `{"source_system":"erp","source_event_id":"e-1","service_type":"repair","completed_at":"2026-11-20T10:00:00Z","customer":{"external_id":"c-1","name":"王芳","phone":"+8613800138000","email":"wang.fang@example.com"}}`)
	var phone, email, keyID string
	var phoneEnc []byte
	require.NoError(t, srv.App.DB.QueryRow(ctx, `SELECT c.phone, c.email, k.kek_id, c.phone_enc FROM customers c JOIN customer_keys k ON k.customer_id = c.id`).
		Scan(&phone, &email, &keyID, &phoneEnc))
	require.Empty(t, phone)
	require.Empty(t, email)
	require.Equal(t, "dev", keyID, "the customer's data key is wrapped under the current key")
	require.NotContains(t, string(phoneEnc), "13800138000")
	require.Equal(t, 0, count(t, srv, `SELECT count(*) FROM customers WHERE position('example'::bytea in email_enc) > 0`))

	_, err := srv.GetCustomer(ctx, &intakev1.GetCustomerRequest{Phone: "+86 138-0013-8000"})
	require.Equal(t, []string{"purpose"}, violationFields(t, err), "a lookup by phone says why")
	c, err := srv.GetCustomer(ctx, &intakev1.GetCustomerRequest{Phone: "+86 138-0013-8000", Purpose: "inbound call"})
	require.NoError(t, err, "found by the keyed hash of the normalized number")
	require.Equal(t, r.CustomerId, c.Customer.Id)
	require.Empty(t, c.Customer.Phone)
	require.Empty(t, c.Customer.Name)
	require.Equal(t, "*******8000", c.Customer.PhoneMasked)
	require.Equal(t, "w***@example.com", c.Customer.EmailMasked)
	require.Equal(t, "王*", c.Customer.NameMasked)
	require.True(t, c.Customer.HasPhone)

	rv, err := srv.RevealContact(ctx, &intakev1.RevealContactRequest{TenantId: "default", CustomerId: r.CustomerId,
		Fields: []intakev1.ContactField{intakev1.ContactField_CONTACT_FIELD_PHONE, intakev1.ContactField_CONTACT_FIELD_NAME}, Purpose: "call back"})
	require.NoError(t, err)
	require.Equal(t, "+8613800138000", rv.Phone)
	require.Equal(t, "王芳", rv.Name)
	require.Empty(t, rv.Email)

	// Rotation: a new current key; old rows still open, changed rows move to the new key.
	rotated, err := privacy.New("k2:"+base64.StdEncoding.EncodeToString([]byte("0123456789abcdef0123456789abcdef"))+","+privacy.DevKeys, privacy.DevHashKey)
	require.NoError(t, err)
	srv.App.Store.Cipher = rotated
	rv, err = srv.RevealContact(ctx, &intakev1.RevealContactRequest{TenantId: "default", CustomerId: r.CustomerId,
		Fields: []intakev1.ContactField{intakev1.ContactField_CONTACT_FIELD_PHONE}, Purpose: "call back"})
	require.NoError(t, err)
	require.Equal(t, "+8613800138000", rv.Phone)
	ingest(t, srv, `{"source_system":"erp","source_event_id":"e-2","service_type":"repair","completed_at":"2026-11-21T10:00:00Z","customer":{"external_id":"c-1","phone":"+8613900139000"}}`)
	_, err = srv.App.Store.RewrapPage(ctx, srv.App.DB, 10) // the background re-wrap
	require.NoError(t, err)
	require.NoError(t, srv.App.DB.QueryRow(ctx, `SELECT kek_id FROM customer_keys`).Scan(&keyID))
	require.Equal(t, "k2", keyID)
	c, err = srv.GetCustomer(ctx, &intakev1.GetCustomerRequest{Phone: "+8613900139000", Purpose: "inbound call"})
	require.NoError(t, err)
	rv, err = srv.RevealContact(ctx, &intakev1.RevealContactRequest{TenantId: "default", CustomerId: c.Customer.Id,
		Fields: []intakev1.ContactField{intakev1.ContactField_CONTACT_FIELD_EMAIL}, Purpose: "send the invoice"})
	require.NoError(t, err)
	require.Equal(t, "wang.fang@example.com", rv.Email)
}

// Importing an archive: imported, updated, unchanged and rejected records by
// line; importing the same records again (a resumed import) duplicates nothing.
func TestImportCustomers(t *testing.T) {
	ctx, srv := setup(t)
	at := timestamppb.New(now.AddDate(0, -1, 0))
	rec := func(line int64, c *typesv1.Customer) *intakev1.CustomerRecord {
		return &intakev1.CustomerRecord{Line: line, Customer: c, SourceUpdatedAt: at}
	}
	records := []*intakev1.CustomerRecord{
		rec(2, &typesv1.Customer{ExternalId: "c-1", Name: "王芳", Phone: "+8613800000001", OwnerIds: []string{"s-1", "s-2"}}),
		rec(3, &typesv1.Customer{ExternalId: "c-2", Name: "李娜", Email: "li@example.com", Kind: "fleet"}),
		rec(4, &typesv1.Customer{ExternalId: "", Phone: "+8613800000003"}),
		rec(5, &typesv1.Customer{ExternalId: "c-5", Phone: "not a phone"}),
	}
	resp, err := srv.ImportCustomers(ctx, &intakev1.ImportCustomersRequest{Source: "crm", Records: records})
	require.NoError(t, err)
	require.EqualValues(t, 2, resp.Imported)
	require.EqualValues(t, 2, resp.Rejected)
	require.Equal(t, intakev1.ImportOutcome_IMPORT_OUTCOME_REJECTED, resp.Results[2].Outcome)
	require.EqualValues(t, 4, resp.Results[2].Line)
	require.Equal(t, "records[2].customer.external_id", resp.Results[2].Violations[0].Field)
	require.Equal(t, "records[3].customer.phone", resp.Results[3].Violations[0].Field)

	again, err := srv.ImportCustomers(ctx, &intakev1.ImportCustomersRequest{Source: "crm", Records: records[:2]})
	require.NoError(t, err)
	require.EqualValues(t, 2, again.Unchanged, "a resumed import changes nothing")
	require.Equal(t, 2, count(t, srv, `SELECT count(*) FROM customers`))
	require.Equal(t, 2, count(t, srv, `SELECT count(*) FROM outbox WHERE subject = '`+stream.SubjectCustomerUpdated+`'`))

	newer := &intakev1.CustomerRecord{Line: 2, Customer: &typesv1.Customer{ExternalId: "c-1", Phone: "+8613800000009"}, SourceUpdatedAt: timestamppb.New(now)}
	upd, err := srv.ImportCustomers(ctx, &intakev1.ImportCustomersRequest{Records: []*intakev1.CustomerRecord{newer}})
	require.NoError(t, err)
	require.EqualValues(t, 1, upd.Updated)
	c, err := srv.GetCustomer(ctx, &intakev1.GetCustomerRequest{ExternalId: "c-1"})
	require.NoError(t, err)
	require.Equal(t, "王*", c.Customer.NameMasked, "a newer record without a name keeps the name")
	require.Equal(t, "*******0009", c.Customer.PhoneMasked)
	require.Equal(t, []string{"s-1", "s-2"}, c.Customer.OwnerIds)

	_, err = srv.ImportCustomers(ctx, &intakev1.ImportCustomersRequest{})
	require.Equal(t, []string{"records"}, violationFields(t, err))
}

// A batch stores each event on its own: a bad one refuses only itself.
func TestIngestServicesBatch(t *testing.T) {
	ctx, srv := setup(t)
	good := event(t, `{"source_system":"erp","source_event_id":"b-1","service_type":"repair","completed_at":"2026-11-20T10:00:00Z","customer":{"external_id":"c-1","phone":"+8613800000001"}}`)
	bad := event(t, `{"source_system":"erp","source_event_id":"b-2","service_type":"repair","completed_at":"2026-11-20T10:00:00Z","customer":{"external_id":"c-2"}}`)
	resp, err := srv.IngestServices(ctx, &intakev1.IngestServicesRequest{Events: []*eventsv1.ServiceCompleted{good, bad, proto.CloneOf(good)}})
	require.NoError(t, err)
	require.EqualValues(t, 1, resp.Accepted)
	require.EqualValues(t, 1, resp.Rejected)
	require.EqualValues(t, 1, resp.Duplicates)
	require.Equal(t, "customer.phone", resp.Results[1].Violations[0].Field)
	require.NotEmpty(t, resp.Results[1].RejectedEventId)
	require.True(t, resp.Results[2].Duplicate)
	require.Equal(t, 1, count(t, srv, `SELECT count(*) FROM rejected_events`))

	_, err = srv.IngestServices(ctx, &intakev1.IngestServicesRequest{})
	require.Equal(t, []string{"events"}, violationFields(t, err))
}

// Customers stored before encryption are sealed at start.
func TestEncryptLegacyRows(t *testing.T) {
	ctx, srv := setup(t)
	_, err := srv.App.DB.Exec(ctx, `INSERT INTO customers (id, tenant_id, external_id, name, phone, email, source_updated_at)
VALUES ('old-1', 'default', 'c-old', '老客户', '+8613800000001', 'old@example.com', now())`)
	require.NoError(t, err)
	n, err := srv.App.SealLegacyContacts(ctx)
	require.NoError(t, err)
	require.Equal(t, 1, n)
	require.Equal(t, 0, count(t, srv, `SELECT count(*) FROM customers WHERE phone <> '' OR email <> '' OR phone_enc IS NULL`))
	c, err := srv.GetCustomer(ctx, &intakev1.GetCustomerRequest{Phone: "+8613800000001", Purpose: "inbound call"})
	require.NoError(t, err)
	require.Equal(t, "old-1", c.Customer.Id)
	n, err = srv.App.SealLegacyContacts(ctx)
	require.NoError(t, err)
	require.Zero(t, n)
}
