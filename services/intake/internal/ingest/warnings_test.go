package ingest

import (
	"testing"

	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	eventsv1 "github.com/huifang/huifang/proto/huifang/events/v1"
)

// seed 002 (real estate): the sales centre's classes arrive as customer.tier,
// in the seed's own lowercase ("a、b类") or the packs' spelling; referrals
// (公司领导或政府部门领导介绍客户) are a built-in service type.
func TestTierAndReferralAccepted(t *testing.T) {
	body := `{"tenant_id":"estate","source_system":"crm","source_event_id":"r-1","service_type":"referral","completed_at":"2026-11-28T10:00:00Z","customer":{"external_id":"c","phone":"+8613800138000","tier":" vip "}}`
	ev, err := Parse("application/json", []byte(body), now)
	require.NoError(t, err)
	require.Equal(t, "VIP", ev.Customer.Tier, "spelled as the real-estate pack's trigger")
	for in, want := range map[string]string{"a": "A", "B": "B", "d": "D", "key": "key", "gold": "gold"} {
		ev.Customer.Tier = in
		Normalize(ev)
		require.NoError(t, Validate(ev, now))
		require.Equal(t, want, ev.Customer.Tier)
	}
}

// A field intake does not use is named, never dropped silently: the fields
// Huifang sets itself, JSON keys it does not know (at any depth), protobuf
// fields of a newer contract.
func TestIgnoredFields(t *testing.T) {
	body := `{"source_system":"s","source_event_id":"e","service_type":"repair","completedAt":"2026-11-28T10:00:00Z","event_id":"x","class":"A",
 "customer":{"id":"h-1","external_id":"c","phone":"+8613800138000","phone_masked":"***","upstream_tier":"B","grade":"A"},
 "product":{"sku":"s","colour":"red"},"attributes":{"anything":"goes"}}`
	ev, err := Parse("application/json", []byte(body), now)
	require.NoError(t, err)
	var got []string
	for _, w := range Ignored(ev) {
		got = append(got, w.Field)
		require.True(t, KnownField(w.Field))
	}
	require.Equal(t, []string{"event_id", "customer.id", "customer.upstream_tier", "customer.phone_masked"}, got)
	require.Equal(t, []string{"class", "customer.grade", "product.colour"}, UnknownJSON([]byte(body)), "JSON names and proto names are both known")
	require.False(t, KnownField("customer.grade"))
	unknown := UnknownWarnings(UnknownJSON([]byte(body)))
	require.Contains(t, unknown[1].Reason, "customer.tier", "a grade under another name points to customer.tier")
	require.NotContains(t, unknown[2].Reason, "customer.tier", "a colour does not")
	require.Nil(t, UnknownJSON([]byte("not json")))

	ev.EventId, ev.Customer.Id, ev.Customer.UpstreamTier, ev.Customer.PhoneMasked = "", "", "", ""
	ev.Customer.ProtoReflect().SetUnknown(protowire.AppendVarint(protowire.AppendTag(nil, 99, protowire.VarintType), 1))
	data, err := proto.Marshal(ev)
	require.NoError(t, err)
	back, err := Parse("application/protobuf", data, now)
	require.NoError(t, err)
	ws := Ignored(back)
	require.Len(t, ws, 1)
	require.Equal(t, "customer.#99", ws[0].Field)
}

// DecodeUnknown is Decode and UnknownJSON in one: the same event, the same
// keys, the same refusals, whether the payload holds unknown keys or not.
func TestDecodeUnknownIsDecodeAndUnknownJSON(t *testing.T) {
	known := `{"source_system":"s","source_event_id":"e","service_type":"repair","completedAt":"2026-11-28T10:00:00Z",
 "customer":{"external_id":"c","phone":"+8613800138000"},"attributes":{"anything":"goes"}}`
	unknown := `{"source_system":"s","class":"A","customer":{"external_id":"c","grade":"A"},"product":{"sku":"s","colour":"red"}}`
	pb, err := proto.Marshal(&eventsv1.ServiceCompleted{SourceSystem: "s", ServiceType: "repair"})
	require.NoError(t, err)
	for _, tc := range []struct {
		name, contentType string
		data              []byte
		wantUnknown       []string
	}{
		{"JSON of known keys", "application/json", []byte(known), nil},
		{"JSON with unknown keys", "", []byte(unknown), []string{"class", "customer.grade", "product.colour"}},
		{"protobuf", "application/protobuf", pb, nil},
		{"JSON that does not decode", "application/json", []byte(`{"service_type":7}`), nil},
		{"a content type it does not read", "text/csv", []byte("a,b"), nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			want, wantErr := Decode(tc.contentType, tc.data)
			ev, keys, err := DecodeUnknown(tc.contentType, tc.data)
			if wantErr != nil {
				require.EqualError(t, err, wantErr.Error())
				require.Nil(t, ev)
				return
			}
			require.NoError(t, err)
			require.True(t, proto.Equal(want, ev), "got %v, want %v", ev, want)
			require.Equal(t, tc.wantUnknown, keys)
			if ContentType(tc.contentType, tc.data) == "application/json" {
				require.Equal(t, UnknownJSON(tc.data), keys)
			}
		})
	}
}
