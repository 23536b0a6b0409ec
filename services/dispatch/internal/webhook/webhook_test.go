package webhook_test

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/huifang/huifang/pkg/servicetest"
	"github.com/huifang/huifang/services/dispatch/internal/app"
	"github.com/huifang/huifang/services/dispatch/internal/webhook"
)

// TestWebhookShape: what is not a Telnyx webhook is refused before the
// app is asked; a report that is not final is acknowledged and ignored.
// (A final report, through the app, is tested with the sender in
// internal/app: TestDeliveryReceipt.)
func TestWebhookShape(t *testing.T) {
	srv := httptest.NewServer((&webhook.Receipts{App: &app.App{}, Log: servicetest.Logger()}).Handler())
	defer srv.Close()
	for body, want := range map[string]int{
		`not json`: http.StatusBadRequest,
		`{"data":{"event_type":"message.finalized","payload":{}}}`:    http.StatusBadRequest,
		`{"data":{"event_type":"message.sent","payload":{"id":"x"}}}`: http.StatusNoContent,
	} {
		resp, err := http.Post(srv.URL+"/receipts/telnyx", "application/json", strings.NewReader(body))
		require.NoError(t, err)
		resp.Body.Close()
		require.Equal(t, want, resp.StatusCode, body)
	}
	resp, err := http.Get(srv.URL + "/receipts/telnyx")
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusMethodNotAllowed, resp.StatusCode)
}
