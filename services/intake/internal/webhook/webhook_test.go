package webhook_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/huifang/huifang/pkg/grpcserver"
	"github.com/huifang/huifang/pkg/servicetest"
	"github.com/huifang/huifang/services/intake/internal/app"
	"github.com/huifang/huifang/services/intake/internal/privacy"
	"github.com/huifang/huifang/services/intake/internal/store"
	"github.com/huifang/huifang/services/intake/internal/tier"
	"github.com/huifang/huifang/services/intake/internal/webhook"
	"github.com/huifang/huifang/services/intake/migrations"
)

var now = time.Date(2026, 11, 28, 12, 0, 0, 0, time.UTC)

func setup(t *testing.T) (*httptest.Server, *pgxpool.Pool) {
	t.Helper()
	pool, a := appFor(t)
	srv := httptest.NewServer(webhook.Handler(a, servicetest.Logger()))
	t.Cleanup(srv.Close)
	return srv, pool
}

func appFor(t *testing.T) (*pgxpool.Pool, *app.App) {
	t.Helper()
	pool := servicetest.Pool(t, "intake", migrations.FS)
	cipher, err := privacy.New(privacy.DevKeys, privacy.DevHashKey)
	require.NoError(t, err)
	rules, err := tier.Parse(tier.DefaultRules)
	require.NoError(t, err)
	clock := func() time.Time { return now }
	return pool, &app.App{DB: pool, Store: &store.Store{Cipher: cipher}, Rules: rules, Now: clock}
}

func post(t *testing.T, url, contentType, body string) (int, map[string]any) {
	t.Helper()
	resp, err := http.Post(url, contentType, strings.NewReader(body))
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	var out map[string]any
	require.NoError(t, json.Unmarshal(b, &out), string(b))
	return resp.StatusCode, out
}

const good = `{"source_system":"erp-demo","source_event_id":"e-1","service_type":"purchase","completed_at":"2026-11-28T10:00:00Z","customer":{"external_id":"c-1","name":"王芳","phone":"+8613800138000"}}`

// The webhook ends in the same validation and storage as the other paths.
func TestWebhook(t *testing.T) {
	srv, pool := setup(t)
	code, out := post(t, srv.URL+"/v1/services", "application/json", good)
	require.Equal(t, http.StatusCreated, code)
	require.NotEmpty(t, out["service_id"])
	code, again := post(t, srv.URL+"/v1/services", "application/json; charset=utf-8", good)
	require.Equal(t, http.StatusOK, code)
	require.Equal(t, true, again["duplicate"])
	require.Equal(t, out["service_id"], again["service_id"])

	code, out = post(t, srv.URL+"/v1/services", "application/json", `{"source_system":"erp","source_event_id":"e-2","service_type":"repair","completed_at":"2026-11-28T10:00:00Z","customer":{"phone":"+8613800138000"}}`)
	require.Equal(t, http.StatusUnprocessableEntity, code)
	require.Equal(t, "customer.external_id", out["violations"].([]any)[0].(map[string]any)["field"])
	require.NotEmpty(t, out["rejected_event_id"])

	code, out = post(t, srv.URL+"/v1/services", "application/json", `{"source_system":`)
	require.Equal(t, http.StatusBadRequest, code)
	require.Equal(t, "payload", out["violations"].([]any)[0].(map[string]any)["field"])

	code, _ = post(t, srv.URL+"/v1/services", "text/plain", good)
	require.Equal(t, http.StatusUnsupportedMediaType, code)

	code, out = post(t, srv.URL+"/v1/services:batch", "application/json", `{"events":[`+good+`,{"source_system":"erp","source_event_id":"e-3","service_type":"repair","completed_at":"2026-11-28T10:00:00Z","customer":{"external_id":"c-3","email":"c3@example.com"}}]}`)
	require.Equal(t, http.StatusOK, code)
	require.EqualValues(t, 1, out["accepted"])
	require.EqualValues(t, 1, out["duplicates"])

	var rejected, services int
	require.NoError(t, pool.QueryRow(t.Context(), `SELECT count(*) FROM rejected_events WHERE source = 'http'`).Scan(&rejected))
	require.NoError(t, pool.QueryRow(t.Context(), `SELECT count(*) FROM services`).Scan(&services))
	require.Equal(t, 2, rejected, "refused webhook input is kept (sealed) for replay")
	require.Equal(t, 2, services)

	resp, err := http.Get(srv.URL + "/openapi.json")
	require.NoError(t, err)
	defer resp.Body.Close()
	var doc map[string]any
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&doc))
	require.Equal(t, "3.0.3", doc["openapi"])
	require.Contains(t, doc["paths"], "/v1/services")
}

// By default the webhook and /openapi.json are served on the service's own
// HTTP port, beside /healthz (grpcserver.Server.Handle).
func TestWebhookOnTheServiceHTTPPort(t *testing.T) {
	_, a := appFor(t)
	gs := grpcserver.New(servicetest.Logger(), "127.0.0.1:0", "127.0.0.1:0")
	require.NoError(t, gs.StartHTTP())
	t.Cleanup(func() { require.NoError(t, gs.CloseHTTP(context.Background())) })
	webhook.Register(gs.Handle, a, servicetest.Logger())
	base := "http://" + gs.HTTPAddr()

	code, out := post(t, base+"/v1/services", "application/json", good)
	require.Equal(t, http.StatusCreated, code)
	require.NotEmpty(t, out["service_id"])
	for _, path := range []string{"/openapi.json", "/healthz"} {
		resp, err := http.Get(base + path)
		require.NoError(t, err)
		resp.Body.Close()
		require.Equal(t, http.StatusOK, resp.StatusCode, path)
	}
}
