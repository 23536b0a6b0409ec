package webhook_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/encoding/protojson"

	eventsv1 "github.com/huifang/huifang/proto/huifang/events/v1"
	intakev1 "github.com/huifang/huifang/proto/huifang/intake/v1"
	"github.com/huifang/huifang/proto/openapi"

	"github.com/huifang/huifang/pkg/auth"
	"github.com/huifang/huifang/pkg/grpcserver"
	"github.com/huifang/huifang/pkg/issuer"
	"github.com/huifang/huifang/pkg/servicetest"
	"github.com/huifang/huifang/services/intake/internal/app"
	"github.com/huifang/huifang/services/intake/internal/privacy"
	"github.com/huifang/huifang/services/intake/internal/store"
	"github.com/huifang/huifang/services/intake/internal/tier"
	"github.com/huifang/huifang/services/intake/internal/webhook"
	"github.com/huifang/huifang/services/intake/migrations"
)

var now = time.Date(2026, 11, 28, 12, 0, 0, 0, time.UTC)

// setup serves the webhook to posts that carry the token of the default
// tenant's integrator erp-demo unless they carry one of their own.
func setup(t *testing.T) (*httptest.Server, *pgxpool.Pool) {
	t.Helper()
	pool, a := appFor(t)
	guard, is := servicetest.Guard(t, "intake")
	srv := httptest.NewServer(withToken(t, is, issuer.Integrator("default", "erp-demo"), webhook.Handler(a, servicetest.Logger(), guard)))
	t.Cleanup(srv.Close)
	return srv, pool
}

// withToken gives requests without an Authorization header tok's.
func withToken(t *testing.T, is *issuer.Issuer, tok issuer.Token, h http.Handler) http.Handler {
	raw, err := is.Mint(tok)
	require.NoError(t, err)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") == "" {
			r.Header.Set("Authorization", "Bearer "+raw)
		}
		h.ServeHTTP(w, r)
	})
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
	return send(t, "", url, contentType, body)
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

	code, out = post(t, srv.URL+"/v1/services", "application/json", `{"source_system":"erp-demo","source_event_id":"e-2","service_type":"repair","completed_at":"2026-11-28T10:00:00Z","customer":{"phone":"+8613800138000"}}`)
	require.Equal(t, http.StatusUnprocessableEntity, code)
	require.Equal(t, "customer.external_id", out["violations"].([]any)[0].(map[string]any)["field"])
	require.NotEmpty(t, out["rejected_event_id"])

	code, out = post(t, srv.URL+"/v1/services", "application/json", `{"source_system":`)
	require.Equal(t, http.StatusBadRequest, code)
	require.Equal(t, "payload", out["violations"].([]any)[0].(map[string]any)["field"])

	code, _ = post(t, srv.URL+"/v1/services", "text/plain", good)
	require.Equal(t, http.StatusUnsupportedMediaType, code)

	code, out = post(t, srv.URL+"/v1/services:batch", "application/json", `{"events":[`+good+`,{"source_system":"erp-demo","source_event_id":"e-3","service_type":"repair","completed_at":"2026-11-28T10:00:00Z","customer":{"external_id":"c-3","email":"c3@example.com"}}]}`)
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
	require.Equal(t, "2.0", doc["swagger"], "intake's OpenAPI document, generated from intake.proto")
	require.Contains(t, doc["paths"], "/v1/services")
	require.Contains(t, doc["paths"], "/v1/services:batch")
}

// By default the webhook and /openapi.json are served on the service's own
// HTTP port, beside /healthz (grpcserver.Server.Handle) and the HTTP/JSON
// gateway, whose routes of the same RPCs the webhook's take over.
func TestWebhookOnTheServiceHTTPPort(t *testing.T) {
	_, a := appFor(t)
	gs := grpcserver.New(servicetest.Logger(), "127.0.0.1:0", "127.0.0.1:0")
	require.NoError(t, gs.StartHTTP())
	t.Cleanup(func() { require.NoError(t, gs.CloseHTTP(context.Background())) })
	guard, is := servicetest.Guard(t, "intake")
	doc, err := openapi.Document("intake")
	require.NoError(t, err)
	require.NoError(t, gs.Gateway(t.Context(), doc, nil, intakev1.RegisterIntakeServiceHandler))
	webhook.Register(gs.Handle, a, servicetest.Logger(), guard)
	base := "http://" + gs.HTTPAddr()

	code, _ := post(t, base+"/v1/services", "application/json", good)
	require.Equal(t, http.StatusUnauthorized, code, "no token")
	raw, err := is.Mint(issuer.Integrator("default", "erp-demo"))
	require.NoError(t, err)
	code, out := postAs(t, raw, base+"/v1/services", good)
	require.Equal(t, http.StatusCreated, code)
	require.NotEmpty(t, out["service_id"])
	for _, path := range []string{"/openapi.json", "/healthz"} {
		resp, err := http.Get(base + path)
		require.NoError(t, err)
		resp.Body.Close()
		require.Equal(t, http.StatusOK, resp.StatusCode, path)
	}
}

func postAs(t *testing.T, token, url, body string) (int, map[string]any) {
	t.Helper()
	return send(t, token, url, "application/json", body)
}

// send posts body, with token as the bearer when given, and decodes the
// JSON answer.
func send(t *testing.T, token, url, contentType, body string) (int, map[string]any) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, url, strings.NewReader(body))
	require.NoError(t, err)
	req.Header.Set("Content-Type", contentType)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	var out map[string]any
	require.NoError(t, json.Unmarshal(b, &out), string(b))
	return resp.StatusCode, out
}

// TestWebhookChecksTheCaller: a post needs an integrator's token (401
// without, before its body is even read: nothing is recorded), and an
// integrator posts only for its own tenant and source system (403).
func TestWebhookChecksTheCaller(t *testing.T) {
	pool, a := appFor(t)
	guard, is := servicetest.Guard(t, "intake")
	srv := httptest.NewServer(webhook.Handler(a, servicetest.Logger(), guard))
	t.Cleanup(srv.Close)
	mint := func(tok issuer.Token) string {
		raw, err := is.Mint(tok)
		require.NoError(t, err)
		return raw
	}
	erp := mint(issuer.Integrator("default", "erp-demo"))
	for _, c := range []struct {
		name, token, body string
		want              int
	}{
		{"no token", "", good, http.StatusUnauthorized},
		{"no token, malformed body", "", "{not json", http.StatusUnauthorized},
		{"a bad token", "abc.def.ghi", good, http.StatusUnauthorized},
		{"an agent", mint(issuer.Staff("default", "a-1")), good, http.StatusForbidden},
		{"an agent, malformed body", mint(issuer.Staff("default", "a-1")), "{not json", http.StatusForbidden},
		{"an agent, malformed batch", mint(issuer.Staff("default", "a-1")), `{"events":[{not json`, http.StatusForbidden},
		{"another source system", erp, strings.Replace(good, "erp-demo", "erp-other", 1), http.StatusForbidden},
		{"another tenant", mint(issuer.Integrator("acme", "erp-demo")), strings.Replace(good, `{"source_system"`, `{"tenant_id":"default","source_system"`, 1), http.StatusForbidden},
		{"a batch for another source system", erp, `{"events":[` + strings.Replace(good, "erp-demo", "erp-other", 1) + `]}`, http.StatusForbidden},
	} {
		t.Run(c.name, func(t *testing.T) {
			url := srv.URL + "/v1/services"
			if strings.HasPrefix(c.body, `{"events"`) {
				url += ":batch"
			}
			code, out := postAs(t, c.token, url, c.body)
			require.Equal(t, c.want, code, "%v", out)
			require.NotEmpty(t, out["error"])
		})
	}
	var services, rejected int
	require.NoError(t, pool.QueryRow(context.Background(), `SELECT (SELECT count(*) FROM intake.services), (SELECT count(*) FROM intake.rejected_events)`).Scan(&services, &rejected))
	require.Zero(t, services+rejected, "refused posts leave nothing behind")

	// The integrator's own post: stored, under its tenant and source system.
	code, out := postAs(t, erp, srv.URL+"/v1/services", strings.Replace(good, `"source_system":"erp-demo",`, "", 1))
	require.Equal(t, http.StatusCreated, code, "%v", out)
	var tenant, source string
	require.NoError(t, pool.QueryRow(context.Background(), `SELECT tenant_id, source_system FROM intake.services`).Scan(&tenant, &source))
	require.Equal(t, []string{"default", "erp-demo"}, []string{tenant, source})
}

// TestWebhookRateLimit: posts count against the caller's rate (the bucket
// its gRPC calls use): beyond it 429 with Retry-After, and the post is not
// read; another caller is not held back.
func TestWebhookRateLimit(t *testing.T) {
	pool, a := appFor(t)
	guard, is := servicetest.Guard(t, "intake")
	guard.SetRateLimit(auth.RateLimit{Rate: 0.01, Burst: 2})
	srv := httptest.NewServer(webhook.Handler(a, servicetest.Logger(), guard))
	t.Cleanup(srv.Close)
	erp, err := is.Mint(issuer.Integrator("default", "erp-demo"))
	require.NoError(t, err)
	code, _ := postAs(t, erp, srv.URL+"/v1/services", good)
	require.Equal(t, http.StatusCreated, code)
	code, _ = postAs(t, erp, srv.URL+"/v1/services", "{not json")
	require.Equal(t, http.StatusBadRequest, code, "a refused post counts too")

	req, err := http.NewRequest(http.MethodPost, srv.URL+"/v1/services", strings.NewReader(strings.Replace(good, "e-1", "e-2", 1)))
	require.NoError(t, err)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+erp)
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	var out map[string]any
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&out))
	resp.Body.Close()
	require.Equal(t, http.StatusTooManyRequests, resp.StatusCode)
	retry, err := strconv.Atoi(resp.Header.Get("Retry-After"))
	require.NoError(t, err, "whole seconds")
	require.InDelta(t, 100, retry, 10, "one post per 100 s")
	require.Contains(t, out["error"], "rate limit")

	var services int
	require.NoError(t, pool.QueryRow(t.Context(), `SELECT count(*) FROM intake.services`).Scan(&services))
	require.Equal(t, 1, services, "the refused post is not stored")

	other, err := is.Mint(issuer.Integrator("default", "erp-other"))
	require.NoError(t, err)
	code, _ = postAs(t, other, srv.URL+"/v1/services", strings.Replace(strings.Replace(good, "erp-demo", "erp-other", 1), "e-1", "e-3", 1))
	require.Equal(t, http.StatusCreated, code, "another caller has a bucket of its own")
}

// TestWebhookKeepsRefusedBodiesInTheCallersTenant: a body that is not JSON
// of the shape is kept with the refused inputs of the tenant of the caller
// that posted it (whose admin may fix and replay it, into that tenant only),
// not of the default tenant.
func TestWebhookKeepsRefusedBodiesInTheCallersTenant(t *testing.T) {
	pool, a := appFor(t)
	guard, is := servicetest.Guard(t, "intake")
	srv := httptest.NewServer(webhook.Handler(a, servicetest.Logger(), guard))
	t.Cleanup(srv.Close)
	raw, err := is.Mint(issuer.Integrator("acme", "erp-demo"))
	require.NoError(t, err)
	code, out := postAs(t, raw, srv.URL+"/v1/services", `{"source_system":`)
	require.Equal(t, http.StatusBadRequest, code)
	code, _ = postAs(t, raw, srv.URL+"/v1/services:batch", `{"events":[{`)
	require.Equal(t, http.StatusBadRequest, code)
	var tenants []string
	rows, err := pool.Query(t.Context(), `SELECT tenant_id FROM intake.rejected_events`)
	require.NoError(t, err)
	for rows.Next() {
		var tn string
		require.NoError(t, rows.Scan(&tn))
		tenants = append(tenants, tn)
	}
	require.NoError(t, rows.Err())
	require.Equal(t, []string{"acme", "acme"}, tenants)

	// Its replay, fixed without a tenant, is stored in acme.
	fixed := &eventsv1.ServiceCompleted{}
	require.NoError(t, protojson.Unmarshal([]byte(good), fixed))
	res, err := a.ReplayRejected(t.Context(), app.ReplayRejected{Tenant: "acme", ID: out["rejected_event_id"].(string), Fixed: fixed})
	require.NoError(t, err)
	var tenant string
	require.NoError(t, pool.QueryRow(t.Context(), `SELECT tenant_id FROM intake.services WHERE id = $1`, res.ServiceID).Scan(&tenant))
	require.Equal(t, "acme", tenant)
	_, err = a.ReplayRejected(t.Context(), app.ReplayRejected{Tenant: "default", ID: out["rejected_event_id"].(string)})
	require.ErrorContains(t, err, "not found", "the default tenant does not hold it")
}
