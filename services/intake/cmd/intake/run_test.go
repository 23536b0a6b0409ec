package main

import (
	"context"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/huifang/huifang/pkg/app"
	"github.com/huifang/huifang/pkg/issuer"
	"github.com/huifang/huifang/pkg/natstest"
	"github.com/huifang/huifang/pkg/pgtest"
	"github.com/huifang/huifang/pkg/servicetest"
	"github.com/huifang/huifang/services/intake/internal/store"
)

func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer l.Close()
	return l.Addr().String()
}

// The service as it runs: by default the webhook and /openapi.json answer on
// its own HTTP port, beside /healthz and /readyz.
func TestRunServesWebhookOnTheHTTPPort(t *testing.T) {
	db := pgtest.NewDatabase(t)
	ns := natstest.Start(t)
	httpAddr := freeAddr(t)
	t.Setenv("DATABASE_URL", db)
	t.Setenv("NATS_URL", ns.ClientURL())
	t.Setenv("GRPC_ADDR", freeAddr(t))
	t.Setenv("HTTP_ADDR", httpAddr)
	t.Setenv("SHUTDOWN_DELAY", "0s")
	t.Setenv("DEV_MODE", "true") // the development keys
	is := servicetest.AuthEnv(t)

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- run(ctx, servicetest.Logger()) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			require.NoError(t, err)
		case <-time.After(30 * time.Second):
			t.Error("intake did not stop")
		}
	})
	base := "http://" + httpAddr
	require.Eventually(t, func() bool {
		resp, err := http.Get(base + "/readyz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	}, 60*time.Second, 50*time.Millisecond)

	body := `{"source_system":"erp-demo","source_event_id":"e-1","service_type":"repair","completed_at":"` +
		time.Now().UTC().Add(-time.Minute).Format(time.RFC3339) + `","customer":{"external_id":"c-1","phone":"+8613800138000"}}`
	resp, err := http.Post(base+"/v1/services", "application/json", strings.NewReader(body))
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusUnauthorized, resp.StatusCode, "no token")
	raw, err := is.Mint(issuer.Integrator("default", "erp-demo"))
	require.NoError(t, err)
	req, err := http.NewRequest(http.MethodPost, base+"/v1/services", strings.NewReader(body))
	require.NoError(t, err)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+raw)
	resp, err = http.DefaultClient.Do(req)
	require.NoError(t, err)
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	require.Equal(t, http.StatusCreated, resp.StatusCode, string(b))

	resp, err = http.Get(base + "/openapi.json")
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)

	// /metrics answers, with the ingress durable's backlog exported once
	// (registering the durable once per worker made it answer 500).
	require.Eventually(t, func() bool {
		resp, err := http.Get(base + "/metrics")
		if err != nil {
			return false
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode == http.StatusOK && strings.Contains(string(b), `huifang_consumer_pending{consumer="intake-ingress"`) &&
			strings.Contains(string(b), `huifang_intake_encryption_pending{work="reseal"} 0`)
	}, 30*time.Second, 100*time.Millisecond, "/metrics answers 200 with the ingress backlog and the re-encryption left")
}

// MAX_EVENT_BYTES must leave room for headers under the NATS server's
// max_payload: a limit NATS could not carry stops the service at start.
func TestRunRefusesAnEventLimitNATSCannotCarry(t *testing.T) {
	t.Setenv("DATABASE_URL", pgtest.NewDatabase(t))
	t.Setenv("NATS_URL", natstest.Start(t).ClientURL())
	t.Setenv("GRPC_ADDR", freeAddr(t))
	t.Setenv("HTTP_ADDR", freeAddr(t))
	t.Setenv("DEV_MODE", "true")
	t.Setenv("MAX_EVENT_BYTES", "1048576")
	servicetest.AuthEnv(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	err := run(ctx, servicetest.Logger())
	require.ErrorContains(t, err, "MAX_EVENT_BYTES (1048576) must leave 65536 bytes for headers under the NATS server's max_payload (1048576)")
}

// A key ring that lacks a key id the database still needs (a key retired
// before the re-wrap moved every data key off it) stops the service at
// start, naming the key id and how many rows need it.
func TestRunRefusesARingLackingAKeyInUse(t *testing.T) {
	db := pgtest.NewDatabase(t)
	t.Setenv("DATABASE_URL", db)
	t.Setenv("NATS_URL", natstest.Start(t).ClientURL())
	t.Setenv("GRPC_ADDR", freeAddr(t))
	t.Setenv("HTTP_ADDR", freeAddr(t))
	t.Setenv("MIGRATE_ONLY", "true")
	servicetest.AuthEnv(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	require.ErrorIs(t, run(ctx, servicetest.Logger()), app.ErrMigrated, "migrations need no keys")

	pool, err := pgxpool.New(ctx, db)
	require.NoError(t, err)
	defer pool.Close()
	_, err = pool.Exec(ctx, `INSERT INTO intake.customers (id, tenant_id, external_id, dek_version, source_updated_at) VALUES ('c-1', 'default', 'c-1', 1, now());
INSERT INTO intake.customer_keys (tenant_id, customer_id, version, kek_id, wrapped) VALUES ('default', 'c-1', 1, 'k2025', '\x00')`)
	require.NoError(t, err)

	t.Setenv("MIGRATE_ONLY", "false")
	t.Setenv("ENCRYPTION_KEYS", "k2026:MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=")
	t.Setenv("HASH_KEY", "b3RoZXItaGFzaC1rZXktb3RoZXItaGFzaC1rZXk=")
	err = run(ctx, servicetest.Logger())
	var missing *store.MissingKeysError
	require.ErrorAs(t, err, &missing)
	require.ErrorContains(t, err, `"k2025" (1 data keys wrapped under it, 0 customers`)
}
