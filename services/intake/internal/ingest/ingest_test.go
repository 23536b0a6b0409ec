package ingest

import (
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/proto"

	"github.com/huifang/huifang/pkg/invalid"
)

var now = time.Date(2026, 11, 28, 12, 0, 0, 0, time.UTC)

// The ingress JSON of the contract is accepted as it stands.
const contractJSON = `{"source_system":"erp-demo","source_event_id":"e-1","service_type":"purchase","completed_at":"2026-11-28T10:00:00Z","customer":{"external_id":"c-1","name":"王芳","phone":"+8613800138000"}}`

func TestContractJSONIsAccepted(t *testing.T) {
	ev, err := Parse("application/json", []byte(contractJSON), now)
	require.NoError(t, err)
	require.Equal(t, "default", ev.TenantId)
	require.Equal(t, "purchase", ev.ServiceType)
	require.Equal(t, "王芳", ev.Customer.Name)
	require.Equal(t, time.Date(2026, 11, 28, 10, 0, 0, 0, time.UTC), ev.CompletedAt.AsTime())
}

func TestProtobufIsAccepted(t *testing.T) {
	ev, err := Parse("application/json", []byte(contractJSON), now)
	require.NoError(t, err)
	data, err := proto.Marshal(ev)
	require.NoError(t, err)
	got, err := Parse("application/protobuf", data, now)
	require.NoError(t, err)
	require.True(t, proto.Equal(ev, got))
	got, err = Parse("", data, now)
	require.NoError(t, err, "binary without a content type is taken as protobuf")
	require.True(t, proto.Equal(ev, got))
}

// A tenant's own service types are accepted beside the built-in ones.
func TestTenantTypes(t *testing.T) {
	body := `{"source_system":"s","source_event_id":"e","service_type":"trade_in","completed_at":"2026-11-28T10:00:00Z","customer":{"external_id":"c","phone":"+8613800138000"}}`
	_, err := Parse("application/json", []byte(body), now)
	require.Equal(t, []string{"service_type"}, fields(t, err))
	_, err = Parse("application/json", []byte(body), now, "trade_in")
	require.NoError(t, err)
	require.NoError(t, ValidateTypeName("trade_in"))
	require.Error(t, ValidateTypeName("repair"))
	for _, internal := range InternalServiceTypes() {
		require.Error(t, ValidateTypeName(internal), "made by Huifang itself")
		_, err = Parse("application/json", []byte(strings.Replace(body, "trade_in", internal, 1)), now, internal)
		require.Equal(t, []string{"service_type"}, fields(t, err), "refused even when the tenant registered it before")
	}
}

func fields(t *testing.T, err error) []string {
	t.Helper()
	bad, ok := invalid.As(err)
	require.True(t, ok, "want *invalid.Error, got %v", err)
	var out []string
	for _, v := range bad.Violations {
		out = append(out, v.Field)
	}
	return out
}

func TestBadInputNamesTheField(t *testing.T) {
	tests := []struct {
		name, contentType, body string
		want                    []string
	}{
		{"malformed JSON", "application/json", `{"source_system":`, []string{"payload"}},
		{"not protobuf", "application/protobuf", "\xff\xff\xff", []string{"payload"}},
		{"unknown content type", "text/csv", "a,b", []string{"Content-Type"}},
		{"missing external id", "application/json", `{"source_system":"s","source_event_id":"e","service_type":"repair","completed_at":"2026-11-28T10:00:00Z","customer":{"phone":"+8613800138000"}}`, []string{"customer.external_id"}},
		{"unknown service type", "application/json", `{"source_system":"s","source_event_id":"e","service_type":"teleport","completed_at":"2026-11-28T10:00:00Z","customer":{"external_id":"c","phone":"+8613800138000"}}`, []string{"service_type"}},
		{"everything missing", "application/json", `{}`, []string{"source_system", "source_event_id", "service_type", "completed_at", "customer"}},
		{"future completion", "application/json", `{"source_system":"s","source_event_id":"e","service_type":"repair","completed_at":"2026-12-28T10:00:00Z","customer":{"external_id":"c","phone":"+8613800138000"}}`, []string{"completed_at"}},
		{"no contact", "application/json", `{"source_system":"s","source_event_id":"e","service_type":"repair","completed_at":"2026-11-28T10:00:00Z","customer":{"external_id":"c"}}`, []string{"customer.phone"}},
		{"bad phone", "application/json", `{"source_system":"s","source_event_id":"e","service_type":"repair","completed_at":"2026-11-28T10:00:00Z","customer":{"external_id":"c","phone":"call me"}}`, []string{"customer.phone"}},
		{"bad VIN", "application/json", `{"source_system":"s","source_event_id":"e","service_type":"maintenance","completed_at":"2026-11-28T10:00:00Z","customer":{"external_id":"c","phone":"+8613800138000"},"vehicle":{"vin":"IOQ","mileage_km":-1}}`, []string{"vehicle.vin", "vehicle.mileage_km"}},
		{"complaint on a repair", "application/json", `{"source_system":"s","source_event_id":"e","service_type":"repair","completed_at":"2026-11-28T10:00:00Z","customer":{"external_id":"c","phone":"+8613800138000"},"complaint":{"reference":"T-1","severity":9}}`, []string{"complaint", "complaint.severity"}},
		{"bad customer record", "application/json", `{"source_system":"s","source_event_id":"e","service_type":"repair","completed_at":"2026-11-28T10:00:00Z","customer":{"external_id":"c","email":"c@x","kind":"alien","referred_by":"c","owner_ids":[" "],"preferences":{"time_zone":"Local","language":"??","windows":[{"start_minute":0,"end_minute":1441}]}}}`,
			[]string{"customer.kind", "customer.referred_by", "customer.owner_ids[0]", "customer.preferences.time_zone", "customer.preferences.language", "customer.preferences.windows[0]"}},
		{"future source time", "application/json", `{"source_system":"s","source_event_id":"e","service_type":"repair","completed_at":"2026-11-28T10:00:00Z","source_updated_at":"2027-01-01T00:00:00Z","customer":{"external_id":"c","phone":"+8613800138000"}}`, []string{"source_updated_at"}},
		{"negative amounts", "application/json", `{"source_system":"s","source_event_id":"e","service_type":"repair","completed_at":"2026-11-28T10:00:00Z","amount_minor":-1,"claim_amount_minor":-1,"customer":{"external_id":"c","phone":"+8613800138000"}}`, []string{"amount_minor", "claim_amount_minor"}},
		{"malformed tier", "application/json", `{"source_system":"s","source_event_id":"e","service_type":"showroom_visit","completed_at":"2026-11-28T10:00:00Z","customer":{"external_id":"c","phone":"+8613800138000","tier":"A类 客户"}}`, []string{"customer.tier"}},
		{"bad tenant", "application/json", `{"tenant_id":"Big Co","source_system":"s","source_event_id":"e","service_type":"repair","completed_at":"2026-11-28T10:00:00Z","customer":{"external_id":"c","phone":"+8613800138000"}}`, []string{"tenant_id"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse(tc.contentType, []byte(tc.body), now)
			require.ElementsMatch(t, tc.want, fields(t, err))
		})
	}
}
