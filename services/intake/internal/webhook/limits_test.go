package webhook_test

import (
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/huifang/huifang/services/intake/internal/ingest"
)

// sized is a valid JSON event of exactly n bytes (padded with an attribute).
func sized(t *testing.T, n int, id string) string {
	t.Helper()
	head := fmt.Sprintf(`{"source_system":"erp-demo","source_event_id":%q,"service_type":"repair","completed_at":"2026-11-28T10:00:00Z",`+
		`"customer":{"external_id":"c-%s","phone":"+8613800000001"},"attributes":{"pad":"`, id, id)
	const tail = `"}}`
	require.GreaterOrEqual(t, n-len(head)-len(tail), 0)
	return head + strings.Repeat("x", n-len(head)-len(tail)) + tail
}

// A body over MAX_EVENT_BYTES is answered 413 with the webhook's error shape
// naming the limit, and stores nothing; one of exactly the limit is stored.
// In a batch, an event over the limit is refused on its own (not kept:
// the caller holds it) and the others are stored.
func TestWebhookRefusesOversizedBody(t *testing.T) {
	srv, pool := setup(t)
	limit := ingest.DefaultMaxEventBytes
	rule := fmt.Sprintf("must be at most %d bytes", limit)
	counts := func() (services, rejected, outbox int) {
		t.Helper()
		require.NoError(t, pool.QueryRow(t.Context(), `SELECT (SELECT count(*) FROM services), (SELECT count(*) FROM rejected_events), (SELECT count(*) FROM outbox)`).
			Scan(&services, &rejected, &outbox))
		return
	}

	code, out := post(t, srv.URL+"/v1/services", "application/json", sized(t, limit+1, "big"))
	require.Equal(t, http.StatusRequestEntityTooLarge, code)
	require.Equal(t, "invalid input: payload: "+rule, out["error"])
	require.Equal(t, []any{map[string]any{"field": "payload", "rule": rule}}, out["violations"])
	services, rejected, outbox := counts()
	require.Zero(t, services+rejected+outbox, "nothing stored")

	code, out = post(t, srv.URL+"/v1/services", "application/json", sized(t, limit-1024, "fits"))
	require.Equal(t, http.StatusCreated, code, out)
	services, _, _ = counts()
	require.Equal(t, 1, services)

	// A body of exactly the limit is read, but the ServiceCompleted intake
	// would publish for it (with its ids and the customer as archived) is
	// larger: refused (422, kept with the refused inputs), nothing else stored.
	code, out = post(t, srv.URL+"/v1/services", "application/json", sized(t, limit, "edge"))
	require.Equal(t, http.StatusUnprocessableEntity, code, out)
	v := out["violations"].([]any)[0].(map[string]any)
	require.Equal(t, "payload", v["field"])
	require.True(t, strings.HasPrefix(v["rule"].(string), rule+": the ServiceCompleted intake would publish"), v["rule"])
	require.NotEmpty(t, out["rejected_event_id"])
	var customers int
	require.NoError(t, pool.QueryRow(t.Context(), `SELECT count(*) FROM customers WHERE external_id = 'c-edge'`).Scan(&customers))
	require.Zero(t, customers, "the customer it would have created is rolled back")
	services, rejected, _ = counts()
	require.Equal(t, 1, services)
	require.Equal(t, 1, rejected)

	// A batch: the event over the limit (as protobuf, which is what a batch's
	// events are held to) refuses only itself.
	batch := `{"events":[` + sized(t, limit+300, "big-in-batch") + `,` + sized(t, 1000, "small-in-batch") + `]}`
	code, out = post(t, srv.URL+"/v1/services:batch", "application/json", batch)
	require.Equal(t, http.StatusOK, code, out)
	require.EqualValues(t, 1, out["accepted"])
	require.EqualValues(t, 1, out["rejected"])
	first := out["results"].([]any)[0].(map[string]any)
	require.Equal(t, []any{map[string]any{"field": "payload", "rule": rule}}, first["violations"])
	require.Nil(t, first["rejected_event_id"], "not kept")
	services, rejected, _ = counts()
	require.Equal(t, 2, services)
	require.Equal(t, 1, rejected, "the batch's oversized event is not kept")

	// A batch body that is not JSON and larger than one event is answered
	// 400 without being kept (its copy would travel on the dead-letter subject).
	code, out = post(t, srv.URL+"/v1/services:batch", "application/json", `{"events":[`+strings.Repeat(" ", limit))
	require.Equal(t, http.StatusBadRequest, code)
	require.Equal(t, "payload", out["violations"].([]any)[0].(map[string]any)["field"])
	require.Nil(t, out["rejected_event_id"])
	_, rejected, _ = counts()
	require.Equal(t, 1, rejected)
}
