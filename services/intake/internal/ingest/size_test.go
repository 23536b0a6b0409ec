package ingest

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/proto"

	eventsv1 "github.com/huifang/huifang/proto/huifang/events/v1"

	"github.com/huifang/huifang/pkg/invalid"
)

func TestCheckSize(t *testing.T) {
	require.NoError(t, CheckSize(100, 100))
	require.NoError(t, CheckSize(0, 100))
	err := CheckSize(101, 100)
	bad, ok := invalid.As(err)
	require.True(t, ok)
	require.Equal(t, []invalid.Violation{{Field: "payload", Rule: "must be at most 100 bytes"}}, bad.Violations)

	out := TooLargeToPublish("owner_ids", "CustomerUpdated", 300, 200)
	require.Equal(t, "owner_ids", out.Violations[0].Field)
	require.True(t, strings.HasPrefix(out.Violations[0].Rule, "must be at most 200 bytes: the CustomerUpdated"), out.Violations[0].Rule)
	require.Contains(t, out.Violations[0].Rule, "300")
}

// The tenant of a payload too large to decode is read without decoding
// it: the top-level tenant_id of JSON (also of JSON cut short after it)
// or of protobuf, wherever it stands; nothing else.
func TestPeekTenant(t *testing.T) {
	pad := strings.Repeat("x", 64<<10)
	for _, tc := range []struct {
		name, contentType, payload, want string
	}{
		{"json", "application/json", `{"tenant_id":"acme","source_system":"erp"}`, "acme"},
		{"json after other fields", "", `{"source_system":"erp","customer":{"tenant_id":"nested","x":[1,{"a":"b"}]},"attributes":{"pad":"` + pad + `"},"tenant_id":"acme"}`, "acme"},
		{"json camel case", "application/json; charset=utf-8", `{"tenantId":"acme"}`, "acme"},
		{"json cut short", "application/json", `{"tenant_id":"acme","notes":"` + pad, "acme"},
		{"json nested only", "application/json", `{"customer":{"tenant_id":"nested"}}`, ""},
		{"json without", "application/json", `{"source_system":"erp"}`, ""},
		{"json not a string", "application/json", `{"tenant_id":7}`, ""},
		{"not json", "application/json", `not json`, ""},
		{"unknown content type", "text/plain", `{"tenant_id":"acme"}`, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			require.Equal(t, tc.want, PeekTenant(tc.contentType, []byte(tc.payload)))
		})
	}

	ev := &eventsv1.ServiceCompleted{SourceSystem: "erp", SourceEventId: "e-1", Attributes: map[string]string{"pad": pad}, TenantId: "acme"}
	data, err := proto.Marshal(ev)
	require.NoError(t, err)
	require.Equal(t, "acme", PeekTenant("application/protobuf", data))
	require.Equal(t, "acme", PeekTenant("", data), "no content type and not '{': protobuf")
	ev.TenantId = ""
	data, err = proto.Marshal(ev)
	require.NoError(t, err)
	require.Equal(t, "", PeekTenant("application/protobuf", data))
	require.Equal(t, "", PeekTenant("application/protobuf", []byte{0x12, 0xff}), "cut short")
}

// An event is named by its tenant, source system and the source's id,
// trimmed as Normalize trims them; no two different names share a key.
func TestSourceKey(t *testing.T) {
	key := func(tenant, system, id string) string {
		return SourceKey(&eventsv1.ServiceCompleted{TenantId: tenant, SourceSystem: system, SourceEventId: id})
	}
	require.Equal(t, "default/erp/e-1", key("", "erp", "e-1"))
	require.Equal(t, key("", "erp", "e-1"), key(" default ", " erp", "e-1 "), "as normalized")
	require.Equal(t, "acme/erp/e-1", key("acme", "erp", "e-1"))
	require.NotEqual(t, key("", "erp-a", "1"), key("", "erp-b", "1"))
	require.NotEqual(t, key("", "erp-a", "1"), key("acme", "erp-a", "1"))
	require.NotEqual(t, key("", "a/b", "c"), key("", "a", "b/c"), "a '/' in an id is escaped")
	require.NotEqual(t, key("", "a%2Fb", "c"), key("", "a/b", "c"))
	require.Empty(t, key("", "", "e-1"))
	require.Empty(t, key("", "erp", " "))

	long := key("", "erp", strings.Repeat("9", 4000))
	require.LessOrEqual(t, len(long), MaxSourceKey)
	require.True(t, strings.HasPrefix(long, "sha256:"))
	require.NotEqual(t, long, key("", "erp", strings.Repeat("9", 4001)))
}

// Whatever the bytes, PeekTenant does not panic, and for a payload that
// decodes it tells the tenant the decoded event names.
func FuzzPeekTenant(f *testing.F) {
	f.Add("application/json", []byte(`{"tenant_id":"acme","source_system":"erp"}`))
	f.Add("application/json", []byte(`{"customer":{"tenant_id":"x"},"tenantId":"acme"}`))
	f.Add("", []byte(`{"tenant_id":"acme","notes":"`))
	data, _ := proto.Marshal(&eventsv1.ServiceCompleted{TenantId: "acme", SourceSystem: "erp"})
	f.Add("application/protobuf", data)
	f.Add("application/protobuf", []byte{0x12, 0x01})
	f.Fuzz(func(t *testing.T, contentType string, data []byte) {
		got := PeekTenant(contentType, data)
		if ev, err := Decode(contentType, data); err == nil {
			require.Equal(t, ev.GetTenantId(), got)
		}
	})
}
