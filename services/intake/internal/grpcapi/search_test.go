package grpcapi_test

import (
	"context"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"

	intakev1 "github.com/huifang/huifang/proto/huifang/intake/v1"

	"github.com/huifang/huifang/pkg/auth"
)

// searchFixture reports three customers: 王芳 (north, a car), Li Lei
// (south) and 王小明 (north); the first two numbers end in 8000.
func searchFixture(t *testing.T, d desk) (wang, li, xiaoming string) {
	t.Helper()
	wang = ingest(t, d.srv, `{"source_system":"dms","source_event_id":"e-1","service_type":"maintenance","completed_at":"2026-11-20T10:00:00Z",
		"org_unit":"north","vehicle":{"vin":"LSVAM4187C2184847","plate":"沪A·12345","mileage_km":3100},
		"customer":{"external_id":"c-1","name":"王芳","phone":"+8613800138000"}}`).CustomerId
	li = ingest(t, d.srv, `{"source_system":"dms","source_event_id":"e-2","service_type":"repair","completed_at":"2026-11-21T10:00:00Z",
		"org_unit":"south","customer":{"external_id":"c-2","name":"Li Lei","phone":"139 0000 8000"}}`).CustomerId
	xiaoming = ingest(t, d.srv, `{"source_system":"dms","source_event_id":"e-3","service_type":"repair","completed_at":"2026-11-22T10:00:00Z",
		"org_unit":"north","customer":{"external_id":"c-3","name":"王小明","phone":"+8613700001234"}}`).CustomerId
	return wang, li, xiaoming
}

func searchIDs(t *testing.T, d desk, ctx context.Context, req *intakev1.SearchCustomersRequest) []string {
	t.Helper()
	var ids []string
	for {
		resp, err := d.client.SearchCustomers(ctx, req)
		require.NoError(t, err)
		for _, v := range resp.GetCustomers() {
			ids = append(ids, v.GetCustomer().GetId())
		}
		if resp.GetNextPageToken() == "" {
			return ids
		}
		req.PageToken = resp.GetNextPageToken()
	}
}

func searchViolations(t *testing.T, err error) []string {
	t.Helper()
	st := status.Convert(err)
	require.Equal(t, codes.InvalidArgument, st.Code(), st.Message())
	var fields []string
	for _, det := range st.Details() {
		if br, ok := det.(*errdetails.BadRequest); ok {
			for _, v := range br.GetFieldViolations() {
				fields = append(fields, v.GetField())
			}
		}
	}
	return fields
}

// A frontend agent finds a customer by name, the last digits of a phone,
// a car's plate or VIN, or the upstream id, each through the guard; answers
// are masked; agents and leaders find only the customers of their org
// units; every search is audited without the values searched for.
func TestSearchCustomers(t *testing.T) {
	d := newDesk(t, auth.RateLimit{Rate: 1000, Burst: 1000})
	wang, li, xiaoming := searchFixture(t, d)
	dir := d.as(t, "dir-1", []string{"director"})

	for _, tc := range []struct {
		label string
		req   *intakev1.SearchCustomersRequest
		want  []string
	}{
		{"full name", &intakev1.SearchCustomersRequest{Name: "王芳"}, []string{wang}},
		{"surname", &intakev1.SearchCustomersRequest{Name: "王"}, []string{wang, xiaoming}},
		{"latin full name, other case and spaces", &intakev1.SearchCustomersRequest{Name: " li  LEI "}, []string{li}},
		{"latin surname", &intakev1.SearchCustomersRequest{Name: "Li"}, []string{li}},
		{"given name alone of a Han name", &intakev1.SearchCustomersRequest{Name: "芳"}, nil},
		{"last 4 digits", &intakev1.SearchCustomersRequest{Phone: "8000"}, []string{wang, li}},
		{"last 6 digits", &intakev1.SearchCustomersRequest{Phone: "13-8000"}, []string{wang}},
		{"a whole local number", &intakev1.SearchCustomersRequest{Phone: "138 0013 8000"}, []string{wang}},
		{"a whole international number", &intakev1.SearchCustomersRequest{Phone: "+8613800138000"}, []string{wang}},
		{"digits in the middle", &intakev1.SearchCustomersRequest{Phone: "0013"}, nil},
		{"plate, spaces and dots ignored", &intakev1.SearchCustomersRequest{Plate: "沪a 12345"}, []string{wang}},
		{"vin, any case", &intakev1.SearchCustomersRequest{Vin: "lsvam4187c2184847"}, []string{wang}},
		{"external id", &intakev1.SearchCustomersRequest{ExternalId: "c-2"}, []string{li}},
		{"every criterion must hold", &intakev1.SearchCustomersRequest{Name: "王", Phone: "8000"}, []string{wang}},
		{"none holds", &intakev1.SearchCustomersRequest{Name: "王", ExternalId: "c-2"}, nil},
	} {
		got := searchIDs(t, d, dir, tc.req)
		require.ElementsMatch(t, tc.want, got, tc.label)
	}

	// Paged by id, one at a time.
	first, err := d.client.SearchCustomers(dir, &intakev1.SearchCustomersRequest{Phone: "8000", PageSize: 1})
	require.NoError(t, err)
	require.Len(t, first.GetCustomers(), 1)
	require.NotEmpty(t, first.GetNextPageToken())
	second, err := d.client.SearchCustomers(dir, &intakev1.SearchCustomersRequest{Phone: "8000", PageSize: 1, PageToken: first.GetNextPageToken()})
	require.NoError(t, err)
	require.Len(t, second.GetCustomers(), 1)
	require.Empty(t, second.GetNextPageToken())
	require.NotEqual(t, first.GetCustomers()[0].GetCustomer().GetId(), second.GetCustomers()[0].GetCustomer().GetId())

	// Masked as GetCustomer masks.
	resp, err := d.client.SearchCustomers(dir, &intakev1.SearchCustomersRequest{ExternalId: "c-1"})
	require.NoError(t, err)
	got := resp.GetCustomers()[0].GetCustomer()
	require.Equal(t, "王*", got.GetNameMasked())
	require.True(t, strings.HasSuffix(got.GetPhoneMasked(), "8000"), got.GetPhoneMasked())
	require.Empty(t, got.GetName()+got.GetPhone())
	text, err := protojson.Marshal(resp)
	require.NoError(t, err)
	require.NotContains(t, string(text), "13800138000")
	require.NotContains(t, string(text), "王芳")

	// Scoped: an agent or a leader finds only the customers of its org units.
	south := d.as(t, "a-1", []string{"agent"}, "south")
	require.Equal(t, []string{li}, searchIDs(t, d, south, &intakev1.SearchCustomersRequest{Phone: "8000"}))
	north := d.as(t, "l-1", []string{"leader"}, "north")
	require.Equal(t, []string{wang}, searchIDs(t, d, north, &intakev1.SearchCustomersRequest{Phone: "8000"}))
	nowhere := d.as(t, "a-2", []string{"agent"})
	require.Empty(t, searchIDs(t, d, nowhere, &intakev1.SearchCustomersRequest{Phone: "8000"}))
	for _, role := range []string{"department_owner", "qa_reviewer", "auditor", "tenant_admin"} {
		_, err := d.client.SearchCustomers(d.as(t, "x-"+role, []string{role}), &intakev1.SearchCustomersRequest{Phone: "8000"})
		require.Equal(t, codes.PermissionDenied, status.Code(err), role)
	}
	_, err = d.client.SearchCustomers(dir, &intakev1.SearchCustomersRequest{TenantId: "other", Phone: "8000"})
	require.Equal(t, codes.PermissionDenied, status.Code(err), "another tenant")

	// Bad input names the field and changes nothing.
	before := d.count(t, `SELECT count(*) FROM audit_log WHERE action = 'customer.search'`)
	for _, tc := range []struct {
		req   *intakev1.SearchCustomersRequest
		field string
	}{
		{&intakev1.SearchCustomersRequest{}, "name"},
		{&intakev1.SearchCustomersRequest{Name: "   "}, "name"},
		{&intakev1.SearchCustomersRequest{Name: strings.Repeat("王", 101)}, "name"},
		{&intakev1.SearchCustomersRequest{Phone: "800"}, "phone"},
		{&intakev1.SearchCustomersRequest{Phone: "80a0"}, "phone"},
		{&intakev1.SearchCustomersRequest{Vin: "LSVAM4187"}, "vin"},
		{&intakev1.SearchCustomersRequest{Plate: " - "}, "plate"},
		{&intakev1.SearchCustomersRequest{Phone: "8000", PageSize: -1}, "page_size"},
		{&intakev1.SearchCustomersRequest{Phone: "8000", PageToken: "not a token"}, "page_token"},
	} {
		_, err := d.client.SearchCustomers(dir, tc.req)
		require.Equal(t, []string{tc.field}, searchViolations(t, err), "%v", tc.req)
	}
	require.Equal(t, before, d.count(t, `SELECT count(*) FROM audit_log WHERE action = 'customer.search'`), "refused searches are not run")

	// Audited: who, which criteria, how many; never a name or a whole number.
	require.Positive(t, d.count(t, `SELECT count(*) FROM audit_log WHERE action = 'customer.search' AND actor LIKE '%a-1%'
		AND detail::jsonb->'criteria' = '["phone"]' AND (detail::jsonb->>'found')::int = 1`))
	require.Zero(t, d.count(t, `SELECT count(*) FROM audit_log WHERE action = 'customer.search'
		AND (detail::text LIKE '%王%' OR detail::text LIKE '%13800138000%' OR detail::text LIKE '%lsvam%')`))
}

// A search is an enumeration risk: each caller is held to its own search
// rate, refused with ResourceExhausted and a retry hint beyond it; other
// callers are not.
func TestSearchCustomersRateLimit(t *testing.T) {
	d := newDesk(t, auth.RateLimit{Rate: 0.001, Burst: 3})
	searchFixture(t, d)
	agent := d.as(t, "a-1", []string{"agent"}, "north")
	for range 3 {
		_, err := d.client.SearchCustomers(agent, &intakev1.SearchCustomersRequest{Phone: "8000"})
		require.NoError(t, err)
	}
	_, err := d.client.SearchCustomers(agent, &intakev1.SearchCustomersRequest{Phone: "8000"})
	st := status.Convert(err)
	require.Equal(t, codes.ResourceExhausted, st.Code(), st.Message())
	var retry *errdetails.RetryInfo
	for _, det := range st.Details() {
		if r, ok := det.(*errdetails.RetryInfo); ok {
			retry = r
		}
	}
	require.NotNil(t, retry, "the refusal says when to retry")
	require.Positive(t, retry.GetRetryDelay().AsDuration())
	_, err = d.client.SearchCustomers(d.as(t, "a-2", []string{"agent"}, "north"), &intakev1.SearchCustomersRequest{Phone: "8000"})
	require.NoError(t, err, "another caller has its own rate")
	require.Equal(t, 4, d.count(t, `SELECT count(*) FROM audit_log WHERE action = 'customer.search'`), "a refused search is not run")
}

// An erased customer's name and phone are found no more (the erasure drops
// their search hashes with the data key); its id, services and cars stay,
// as the archive keeps them (docs/privacy.md). Customers stored before the
// search hashes existed get them from the re-hash (RehashContacts), as
// migration 006 marks them for.
func TestSearchAfterErasureAndBackfill(t *testing.T) {
	d := newDesk(t, auth.RateLimit{Rate: 1000, Burst: 1000})
	wang, li, _ := searchFixture(t, d)
	dir := d.as(t, "dir-1", []string{"director"})

	// Backfill: as migration 006 leaves a customer stored before it.
	_, err := d.pool.Exec(context.Background(), `UPDATE customers SET search_hashes = '{}', hash_key_id = '' WHERE id = $1`, li)
	require.NoError(t, err)
	require.Equal(t, []string{wang}, searchIDs(t, d, dir, &intakev1.SearchCustomersRequest{Phone: "8000"}))
	re, err := d.srv.RehashContacts(context.Background(), &intakev1.RehashContactsRequest{}) // an operator's call (tenant "*")
	require.NoError(t, err)
	require.EqualValues(t, 1, re.GetRehashed())
	require.ElementsMatch(t, []string{wang, li}, searchIDs(t, d, dir, &intakev1.SearchCustomersRequest{Phone: "8000"}))
	require.Equal(t, []string{li}, searchIDs(t, d, dir, &intakev1.SearchCustomersRequest{Name: "lei"}))

	admin := d.as(t, "adm-1", []string{"tenant_admin"})
	_, err = d.client.EraseCustomer(admin, &intakev1.EraseCustomerRequest{CustomerId: wang, Reason: "the customer asked, ticket 4711"})
	require.NoError(t, err)
	require.Empty(t, searchIDs(t, d, dir, &intakev1.SearchCustomersRequest{Name: "王芳"}))
	require.Equal(t, []string{li}, searchIDs(t, d, dir, &intakev1.SearchCustomersRequest{Phone: "8000"}))
	require.Zero(t, d.count(t, `SELECT cardinality(search_hashes) FROM customers WHERE id = $1`, wang))
	resp, err := d.client.SearchCustomers(dir, &intakev1.SearchCustomersRequest{Plate: "沪A12345"})
	require.NoError(t, err)
	require.Len(t, resp.GetCustomers(), 1, "the car stays with the service")
	c := resp.GetCustomers()[0].GetCustomer()
	require.Equal(t, wang, c.GetId())
	require.Empty(t, c.GetNameMasked()+c.GetPhoneMasked(), "no contact left to show")
}
