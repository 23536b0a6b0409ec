package webhook_test

import (
	"crypto/ed25519"
	"encoding/base64"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/huifang/huifang/pkg/servicetest"
	"github.com/huifang/huifang/services/dispatch/internal/app"
	"github.com/huifang/huifang/services/dispatch/internal/webhook"
)

var now = time.Date(2026, 12, 1, 9, 0, 0, 0, time.UTC)

// telnyx serves the receipts webhook to a Telnyx account whose key it
// returns, on a clock at now. Its App is empty: a report that reached it
// would fail the request (500), so any other answer recorded nothing.
func telnyx(t *testing.T) (string, ed25519.PrivateKey) {
	t.Helper()
	pub, priv, err := ed25519.GenerateKey(nil)
	require.NoError(t, err)
	r := &webhook.Receipts{App: &app.App{}, Log: servicetest.Logger(), TelnyxKey: pub, Now: func() time.Time { return now }}
	srv := httptest.NewServer(r.Handler())
	t.Cleanup(srv.Close)
	return srv.URL + "/receipts/telnyx", priv
}

// post sends body with the given Telnyx headers (none when sig is empty).
func post(t *testing.T, url, body, sig, ts string) int {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, url, strings.NewReader(body))
	require.NoError(t, err)
	req.Header.Set("Content-Type", "application/json")
	if sig != "" {
		req.Header.Set("telnyx-signature-ed25519", sig)
		req.Header.Set("telnyx-timestamp", ts)
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	resp.Body.Close()
	return resp.StatusCode
}

// sign returns Telnyx's signature of body at at, and the timestamp.
func sign(priv ed25519.PrivateKey, at time.Time, body string) (string, string) {
	ts := strconv.FormatInt(at.Unix(), 10)
	return base64.StdEncoding.EncodeToString(ed25519.Sign(priv, []byte(ts+"|"+body))), ts
}

// TestWebhookShape: a signed body that is not a Telnyx webhook is refused
// before the app is asked; a signed report that is not final is
// acknowledged and ignored. (A final report, through the app, is tested
// with the sender in internal/app: TestDeliveryReceipt.)
func TestWebhookShape(t *testing.T) {
	url, priv := telnyx(t)
	for body, want := range map[string]int{
		`not json`: http.StatusBadRequest,
		`{"data":{"event_type":"message.finalized","payload":{}}}`:    http.StatusBadRequest,
		`{"data":{"event_type":"message.sent","payload":{"id":"x"}}}`: http.StatusNoContent,
	} {
		sig, ts := sign(priv, now, body)
		require.Equal(t, want, post(t, url, body, sig, ts), body)
	}
	resp, err := http.Get(url)
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusMethodNotAllowed, resp.StatusCode)
}

// TestWebhookNeedsTelnyxSignature: a final report (which would reach the
// app) is refused with 401 when it is unsigned, signed by another key, not
// the body that was signed, or a replay of a signed one more than five
// minutes old; the app is never asked.
func TestWebhookNeedsTelnyxSignature(t *testing.T) {
	url, priv := telnyx(t)
	_, other, err := ed25519.GenerateKey(nil)
	require.NoError(t, err)
	const final = `{"data":{"event_type":"message.finalized","payload":{"id":"m-1","to":[{"status":"delivered"}]}}}`
	forged := strings.Replace(final, "m-1", "m-2", 1)
	sig, ts := sign(priv, now, final)
	otherSig, _ := sign(other, now, final)
	staleSig, staleTS := sign(priv, now.Add(-6*time.Minute), final)
	for _, c := range []struct{ name, body, sig, ts string }{
		{"unsigned", final, "", ""},
		{"another key", final, otherSig, ts},
		{"a changed body", forged, sig, ts},
		{"a replay, six minutes on", final, staleSig, staleTS},
	} {
		require.Equal(t, http.StatusUnauthorized, post(t, url, c.body, c.sig, c.ts), c.name)
	}
	// Too large to be a receipt: refused before anything else.
	require.Equal(t, http.StatusRequestEntityTooLarge, post(t, url, strings.Repeat("x", 256<<10+1), sig, ts))
}
