package ingest

import (
	"testing"

	"google.golang.org/protobuf/proto"

	eventsv1 "github.com/huifang/huifang/proto/huifang/events/v1"

	"github.com/huifang/huifang/pkg/invalid"
	"github.com/huifang/huifang/pkg/tenant"
)

// checkInvalid fails unless err is bad input: an *invalid.Error whose every
// violation names a field and a rule.
func checkInvalid(t *testing.T, err error) {
	t.Helper()
	bad, ok := invalid.As(err)
	if !ok {
		t.Fatalf("%T %v: want *invalid.Error", err, err)
	}
	if len(bad.Violations) == 0 {
		t.Fatal("an *invalid.Error without violations")
	}
	for _, v := range bad.Violations {
		if v.Field == "" || v.Rule == "" {
			t.Fatalf("violation %+v: want a field and a rule", v)
		}
	}
}

// FuzzParse: whatever a NATS ingress message carries (its Content-Type
// header and payload: JSON, protobuf, or neither), intake decodes it into an
// event it accepts, or refuses it as bad input naming fields and rules;
// never a panic, never another kind of error. An accepted event is
// normalized and valid, and comes back the same through its protobuf
// encoding. (FuzzPeekTenant checks the tenant read of a payload too large
// to decode.)
func FuzzParse(f *testing.F) {
	valid, err := Parse("application/json", []byte(contractJSON), now)
	if err != nil {
		f.Fatal(err)
	}
	pb, err := proto.Marshal(valid)
	if err != nil {
		f.Fatal(err)
	}
	for _, seed := range []struct {
		ct   string
		data []byte
	}{
		{"application/json", []byte(contractJSON)},
		{"", []byte(contractJSON)},
		{"application/json; charset=utf-8", []byte(`{"tenant_id":"acme","source_system":"erp","source_event_id":"e","service_type":"complaint_closed","completed_at":"2026-11-28T10:00:00Z","complaint":{"severity":"SEVERITY_MAJOR","reference":"r-1"},"customer":{"external_id":"c","email":"a@b.cn","preferences":{"time_zone":"Asia/Shanghai","windows":[{"start_minute":600,"end_minute":690}]}}}`)},
		{"application/protobuf", pb},
		{"", pb},
		{"application/json", []byte(`{"tenantId":"ACME","completed_at":"not a time"}`)},
		{"application/json", []byte(`{"source_system":`)},
		{"application/json", []byte(`[]`)},
		{"application/json", []byte(`{"vehicle":{"vin":"lsvam4187c2184847","mileage_km":-1},"amount_minor":-5}`)},
		{"application/protobuf", []byte{0x0a, 0xff}},
		{"application/protobuf", []byte{0x0a, 0x03, 'a', 'b', 'c'}},
		{"application/json", []byte(`{"customer":{"external_id":""}}`)},
		{"", []byte("{")},
		{"text/plain", []byte("hello")},
		{"", nil},
	} {
		f.Add(seed.ct, seed.data)
	}
	f.Fuzz(func(t *testing.T, contentType string, data []byte) {
		ev, err := Parse(contentType, data, now)
		if err != nil {
			checkInvalid(t, err)
			return
		}
		if !tenant.Valid(ev.TenantId) || ev.SourceEventId == "" {
			t.Fatalf("accepted with tenant %q and source_event_id %q", ev.TenantId, ev.SourceEventId)
		}
		again := proto.Clone(ev).(*eventsv1.ServiceCompleted)
		Normalize(again)
		if !proto.Equal(again, ev) {
			t.Fatal("an accepted event is not normalized")
		}
		b, err := proto.Marshal(ev)
		if err != nil {
			t.Fatalf("an accepted event does not encode: %v", err)
		}
		back, err := Parse("application/protobuf", b, now)
		if err != nil {
			t.Fatalf("an accepted event, encoded, is refused: %v", err)
		}
		if !proto.Equal(back, ev) {
			t.Fatal("an accepted event changes through its encoding")
		}
	})
}
