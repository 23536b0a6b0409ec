package app_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"testing/fstest"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
	grpcstatus "google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/emptypb"

	"github.com/huifang/huifang/pkg/app"
	"github.com/huifang/huifang/pkg/auth"
	"github.com/huifang/huifang/pkg/config"
	"github.com/huifang/huifang/pkg/httpserver"
	"github.com/huifang/huifang/pkg/inbox"
	"github.com/huifang/huifang/pkg/issuer"
	"github.com/huifang/huifang/pkg/natstest"
	"github.com/huifang/huifang/pkg/outbox"
	"github.com/huifang/huifang/pkg/pgtest"
	"github.com/huifang/huifang/pkg/ports"
	"github.com/huifang/huifang/pkg/stream"
	schedulerv1 "github.com/huifang/huifang/proto/huifang/scheduler/v1"
)

func quiet() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func freePort(t *testing.T) int {
	t.Helper()
	free, err := ports.Free(1)
	require.NoError(t, err)
	return free[0]
}

func freeAddr(t *testing.T) string { return "127.0.0.1:" + strconv.Itoa(freePort(t)) }

// status GETs an HTTP path and returns the status code, or 0 when nothing answers.
func status(addr, path string) int {
	c := &http.Client{Timeout: time.Second}
	resp, err := c.Get("http://" + addr + path)
	if err != nil {
		return 0
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	_ = resp.Body.Close()
	return resp.StatusCode
}

func body(t *testing.T, addr, path string) string {
	t.Helper()
	resp, err := http.Get("http://" + addr + path)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return string(b)
}

func baseConfig(t *testing.T, dbURL, natsURL string) app.Base {
	is, err := issuer.Listen("127.0.0.1:0", "huifang")
	require.NoError(t, err)
	t.Cleanup(func() { _ = is.Close() })
	return app.Base{
		AuthIssuer:     is.URL(),
		AuthAudience:   is.Audience(),
		DatabaseURL:    dbURL,
		NATSURL:        natsURL,
		GRPCAddr:       freeAddr(t),
		HTTPAddr:       freeAddr(t),
		LogLevel:       "debug",
		StartTimeout:   30 * time.Second,
		ShutdownGrace:  10 * time.Second,
		StreamReplicas: 1,
		OutboxRelay:    true,
	}
}

// noMigrations is a service without tables of its own.
var noMigrations = fstest.MapFS{}

type started struct {
	rt  *app.Runtime
	err error
}

// A service that starts before NATS answers /healthz at once, says not
// ready on /readyz while it waits with backoff, and becomes ready once NATS
// is up and Run serves.
func TestStartServesHealthBeforeDependenciesAreUp(t *testing.T) {
	natsPort := freePort(t)
	cfg := baseConfig(t, pgtest.NewDatabase(t), "nats://127.0.0.1:"+strconv.Itoa(natsPort))
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()

	res := make(chan started, 1)
	go func() {
		rt, err := app.Start(ctx, quiet(), "apptest", cfg, noMigrations)
		res <- started{rt, err}
	}()
	require.Eventually(t, func() bool { return status(cfg.HTTPAddr, "/healthz") == http.StatusOK }, 10*time.Second, 10*time.Millisecond,
		"/healthz answers while the service waits for NATS")
	require.Equal(t, http.StatusServiceUnavailable, status(cfg.HTTPAddr, "/readyz"), "not ready while NATS is down")
	select {
	case r := <-res:
		t.Fatalf("Start returned before NATS was up: %v", r.err)
	default:
	}

	ns, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: natsPort, JetStream: true, StoreDir: t.TempDir(), SyncAlways: true, NoLog: true, NoSigs: true})
	require.NoError(t, err)
	go ns.Start()
	t.Cleanup(ns.Shutdown)
	require.True(t, ns.ReadyForConnections(10*time.Second))

	var r started
	select {
	case r = <-res:
	case <-time.After(30 * time.Second):
		t.Fatal("Start did not finish after NATS came up")
	}
	require.NoError(t, r.err)
	rt := r.rt
	require.Equal(t, http.StatusServiceUnavailable, status(cfg.HTTPAddr, "/readyz"), "not ready before Run")
	rt.Consume(&inbox.Consumer{
		Durable: "apptest-visit-due", Stream: stream.EventsStream, Subjects: []string{stream.SubjectVisitDue},
		Handle: func(context.Context, pgx.Tx, jetstream.Msg) error { return nil },
	})

	done := make(chan error, 1)
	go func() { done <- rt.Run(ctx) }()
	require.Eventually(t, func() bool { return status(cfg.HTTPAddr, "/readyz") == http.StatusOK }, 60*time.Second, 10*time.Millisecond)
	require.Eventually(t, func() bool {
		return strings.Contains(body(t, cfg.HTTPAddr, "/metrics"), `huifang_consumer_pending{consumer="apptest-visit-due",stream="HUIFANG_EVENTS"} 0`)
	}, 10*time.Second, 50*time.Millisecond, "the consumer's backlog is exported")
	m := body(t, cfg.HTTPAddr, "/metrics")
	require.Contains(t, m, "huifang_ready 1")
	require.Contains(t, m, "huifang_outbox_pending 0")
	require.Contains(t, m, "huifang_build_info{")

	cancel()
	require.NoError(t, <-done)
	require.Equal(t, 0, status(cfg.HTTPAddr, "/healthz"), "the HTTP server is closed after shutdown")
}

// A service whose Postgres never comes gives up after START_TIMEOUT, having
// been alive and not ready meanwhile, and frees its port.
func TestStartGivesUpWhenPostgresNeverComes(t *testing.T) {
	cfg := baseConfig(t, "postgres://postgres@127.0.0.1:"+strconv.Itoa(freePort(t))+"/x?sslmode=disable&connect_timeout=1", "nats://127.0.0.1:1")
	cfg.StartTimeout = 2 * time.Second
	res := make(chan started, 1)
	go func() {
		rt, err := app.Start(t.Context(), quiet(), "apptest", cfg, noMigrations)
		res <- started{rt, err}
	}()
	require.Eventually(t, func() bool { return status(cfg.HTTPAddr, "/healthz") == http.StatusOK }, 60*time.Second, 10*time.Millisecond)
	require.Equal(t, http.StatusServiceUnavailable, status(cfg.HTTPAddr, "/readyz"))
	r := <-res
	require.ErrorContains(t, r.err, "postgres")
	require.Nil(t, r.rt)
	l, err := net.Listen("tcp", cfg.HTTPAddr)
	require.NoError(t, err, "the HTTP port is released")
	l.Close()
}

// SIGTERM (the context ending): readiness goes false first; the background
// loop stops claiming work but finishes the item it holds; during
// SHUTDOWN_DELAY new gRPC calls are still served; a call in flight finishes;
// only then does Run return.
func TestShutdownDrainsInFlightWork(t *testing.T) {
	ns := natstest.Start(t)
	cfg := baseConfig(t, pgtest.NewDatabase(t), ns.ClientURL())
	cfg.ShutdownDelay = 2 * time.Second
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	rt, err := app.Start(ctx, quiet(), "apptest", cfg, noMigrations)
	require.NoError(t, err)

	// A worker that claims one item and holds it until released.
	var claims atomic.Int32
	var finished atomic.Bool
	holding, releaseWork := make(chan struct{}), make(chan struct{})
	rt.Go("worker", func(ctx context.Context) error {
		for ctx.Err() == nil {
			if claims.Add(1) == 1 {
				close(holding)
				<-releaseWork
				finished.Store(true)
				continue
			}
			select {
			case <-ctx.Done():
			case <-time.After(10 * time.Millisecond):
			}
		}
		return nil
	})
	// A gRPC method that blocks until released.
	inCall, releaseCall := make(chan struct{}), make(chan struct{})
	rt.Server.GRPC.RegisterService(&grpc.ServiceDesc{
		ServiceName: "huifang.apptest.Slow",
		HandlerType: (*any)(nil),
		Methods: []grpc.MethodDesc{{
			MethodName: "Wait",
			Handler: func(_ any, _ context.Context, dec func(any) error, _ grpc.UnaryServerInterceptor) (any, error) {
				if err := dec(&emptypb.Empty{}); err != nil {
					return nil, err
				}
				close(inCall)
				<-releaseCall
				return &emptypb.Empty{}, nil
			},
		}},
	}, struct{}{})
	rt.Guard.SetTable(auth.Merge(rt.Guard.Table(), auth.Table{"/huifang.apptest.Slow/Wait": {Permission: "test.wait", Roles: []auth.Role{auth.Agent}}}))

	done := make(chan error, 1)
	go func() { done <- rt.Run(ctx) }()
	require.Eventually(t, func() bool { return status(cfg.HTTPAddr, "/readyz") == http.StatusOK }, 60*time.Second, 10*time.Millisecond)
	<-holding

	conn, err := grpc.NewClient(cfg.GRPCAddr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	require.NoError(t, err)
	defer conn.Close()
	callErr := make(chan error, 1)
	go func() {
		callErr <- conn.Invoke(t.Context(), "/huifang.apptest.Slow/Wait", &emptypb.Empty{}, &emptypb.Empty{})
	}()
	<-inCall

	cancel() // SIGTERM
	require.Eventually(t, func() bool { return status(cfg.HTTPAddr, "/readyz") == http.StatusServiceUnavailable }, 5*time.Second, 5*time.Millisecond,
		"readiness goes false first")
	hc, err := healthpb.NewHealthClient(conn).Check(t.Context(), &healthpb.HealthCheckRequest{})
	require.NoError(t, err, "during SHUTDOWN_DELAY gRPC still takes calls")
	require.Equal(t, healthpb.HealthCheckResponse_NOT_SERVING, hc.GetStatus())
	select {
	case err := <-done:
		t.Fatalf("Run returned while work was in flight: %v", err)
	default:
	}

	close(releaseWork)
	close(releaseCall)
	require.NoError(t, <-callErr, "the call in flight at SIGTERM finishes")
	require.NoError(t, <-done)
	require.True(t, finished.Load(), "the item held at SIGTERM was finished")
	require.EqualValues(t, 1, claims.Load(), "no new work claimed after SIGTERM")
}

// MIGRATE_ONLY (the Kubernetes init step) applies the migrations without
// NATS and without serving, and says so with ErrMigrated.
func TestMigrateOnly(t *testing.T) {
	dbURL := pgtest.NewDatabase(t)
	cfg := baseConfig(t, dbURL, "nats://127.0.0.1:1")
	cfg.MigrateOnly = true
	migrations := fstest.MapFS{"001_things.sql": {Data: []byte(`CREATE TABLE things (id text PRIMARY KEY)`)}}
	rt, err := app.Start(t.Context(), quiet(), "apptest", cfg, migrations)
	require.ErrorIs(t, err, app.ErrMigrated)
	require.Nil(t, rt)
	require.Equal(t, 0, status(cfg.HTTPAddr, "/healthz"), "nothing is served")

	conn, err := pgx.Connect(t.Context(), dbURL)
	require.NoError(t, err)
	defer conn.Close(context.Background())
	var tables int
	require.NoError(t, conn.QueryRow(t.Context(), `SELECT count(*) FROM information_schema.tables
WHERE table_schema = 'apptest' AND table_name IN ('things', 'outbox', 'inbox', 'audit_log')`).Scan(&tables))
	require.Equal(t, 4, tables, "the service's, the outbox's, the inbox's and the audit log's tables exist")
}

func TestProbe(t *testing.T) {
	ready := atomic.Bool{}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/readyz" || !ready.Load() {
			w.WriteHeader(http.StatusServiceUnavailable)
		}
	})}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	go func() { _ = srv.Serve(l) }()
	t.Cleanup(func() { _ = srv.Close() })
	port := strconv.Itoa(l.Addr().(*net.TCPAddr).Port)
	lookup := func(addr string) func(string) (string, bool) {
		return func(name string) (string, bool) {
			if name == "HTTP_ADDR" && addr != "" {
				return addr, true
			}
			return "", false
		}
	}
	require.ErrorContains(t, app.Probe(t.Context(), lookup(":"+port)), "503", "not ready yet")
	ready.Store(true)
	tests := []struct {
		name, addr, wantErr string
	}{
		{"all interfaces means loopback", ":" + port, ""},
		{"explicit host", "127.0.0.1:" + port, ""},
		{"unset", "", "HTTP_ADDR is not set"},
		{"malformed", "8002", "HTTP_ADDR"},
		{"nothing listening", "127.0.0.1:" + strconv.Itoa(freePort(t)), "connection refused"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := app.Probe(t.Context(), lookup(tt.addr))
			if tt.wantErr == "" {
				require.NoError(t, err)
				return
			}
			require.ErrorContains(t, err, tt.wantErr)
		})
	}
}

// gate lets its consumer run once opened.
type gate struct{ open chan struct{} }

func (g gate) Run(ctx context.Context, consume func(context.Context) error) error {
	select {
	case <-ctx.Done():
		return nil
	case <-g.open:
	}
	return consume(ctx)
}

// Every consumer goes through Consume: several workers of one durable and
// a gated consumer are each exported once, /metrics answers 200 and parses
// as Prometheus text, and registering a durable twice is refused.
func TestConsumersAreRegisteredOnce(t *testing.T) {
	ns := natstest.Start(t)
	cfg := baseConfig(t, pgtest.NewDatabase(t), ns.ClientURL())
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	rt, err := app.Start(ctx, quiet(), "apptest", cfg, noMigrations)
	require.NoError(t, err)

	handled := make(chan string, 10)
	record := func(name string) inbox.Handler {
		return func(context.Context, pgx.Tx, jetstream.Msg) error { handled <- name; return nil }
	}
	rt.Consume(&inbox.Consumer{Durable: "apptest-workers", Stream: stream.EventsStream, Subjects: []string{stream.SubjectVisitDue}, Handle: record("workers")}, app.Workers(4))
	g := gate{open: make(chan struct{})}
	rt.Consume(&inbox.Consumer{Durable: "apptest-gated", Stream: stream.EventsStream, Subjects: []string{stream.SubjectVisitLogged}, Handle: record("gated")}, app.Gated(g))
	require.Panics(t, func() {
		rt.Consume(&inbox.Consumer{Durable: "apptest-workers", Stream: stream.EventsStream, Subjects: []string{stream.SubjectVisitDue}})
	}, "a durable registered twice")

	done := make(chan error, 1)
	go func() { done <- rt.Run(ctx) }()
	_, err = rt.JS.Publish(ctx, stream.SubjectVisitDue, []byte("x"))
	require.NoError(t, err)
	_, err = rt.JS.Publish(ctx, stream.SubjectVisitLogged, []byte("y"))
	require.NoError(t, err)
	select {
	case got := <-handled:
		require.Equal(t, "workers", got, "the gated consumer must wait for its gate")
	case <-time.After(20 * time.Second):
		t.Fatal("the workers' consumer handled nothing")
	}
	close(g.open)
	select {
	case got := <-handled:
		require.Equal(t, "gated", got)
	case <-time.After(20 * time.Second):
		t.Fatal("the gated consumer handled nothing once open")
	}

	var families map[string]*dto.MetricFamily
	require.Eventually(t, func() bool {
		resp, err := http.Get("http://" + cfg.HTTPAddr + "/metrics")
		if err != nil {
			return false
		}
		defer resp.Body.Close()
		require.Equal(t, http.StatusOK, resp.StatusCode)
		p := expfmt.NewTextParser(model.UTF8Validation)
		families, err = p.TextToMetricFamilies(resp.Body)
		require.NoError(t, err, "/metrics must parse as Prometheus text")
		return len(families["huifang_consumer_pending"].GetMetric()) == 2
	}, 20*time.Second, 50*time.Millisecond, "both consumers exported")
	seen := map[string]int{}
	for _, m := range families["huifang_consumer_pending"].GetMetric() {
		for _, l := range m.GetLabel() {
			if l.GetName() == "consumer" {
				seen[l.GetValue()]++
			}
		}
	}
	require.Equal(t, map[string]int{"apptest-workers": 1, "apptest-gated": 1}, seen)

	cancel()
	require.NoError(t, <-done)
}

// A Postgres outage while the service runs: readiness says so (503 naming
// postgres, huifang_dependency_up 0) and the messages that arrive meanwhile
// wait; none is dead-lettered, and every one is handled once the database
// is back, when the service is ready again.
func TestDatabaseOutageIsWaitedOut(t *testing.T) {
	ns := natstest.Start(t)
	proxy, dbURL := pgtest.NewProxy(t, pgtest.NewDatabase(t))
	cfg := baseConfig(t, dbURL, ns.ClientURL())
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	rt, err := app.Start(ctx, quiet(), "apptest", cfg, fstest.MapFS{"001_effects.sql": {Data: []byte(`CREATE TABLE effects (body text NOT NULL)`)}})
	require.NoError(t, err)
	rt.Consume(&inbox.Consumer{Durable: "apptest-outage", Stream: stream.EventsStream, Subjects: []string{stream.SubjectVisitDue}, Backoff: 50 * time.Millisecond,
		Handle: func(ctx context.Context, tx pgx.Tx, msg jetstream.Msg) error {
			_, err := tx.Exec(ctx, `INSERT INTO effects (body) VALUES ($1)`, string(msg.Data()))
			return err
		}})
	done := make(chan error, 1)
	go func() { done <- rt.Run(ctx) }()
	require.Eventually(t, func() bool { return status(cfg.HTTPAddr, "/readyz") == http.StatusOK }, 60*time.Second, 20*time.Millisecond)

	proxy.Down()
	require.Eventually(t, func() bool {
		return status(cfg.HTTPAddr, "/readyz") == http.StatusServiceUnavailable && strings.Contains(body(t, cfg.HTTPAddr, "/readyz"), "postgres away")
	}, 20*time.Second, 50*time.Millisecond, "readiness reports the outage")
	require.Contains(t, body(t, cfg.HTTPAddr, "/metrics"), `huifang_dependency_up{dependency="postgres"} 0`)
	for i := range 20 {
		_, err := rt.JS.Publish(ctx, stream.SubjectVisitDue, []byte(fmt.Sprintf("m-%d", i)))
		require.NoError(t, err)
	}
	// The outage lasts well past the 5 failures that dead-letter a broken message.
	require.Eventually(t, func() bool {
		return metricValue(t, body(t, cfg.HTTPAddr, "/metrics"), `huifang_dependency_down_seconds{dependency="postgres"}`) >= 3
	}, 30*time.Second, 100*time.Millisecond)
	proxy.Up()
	require.Eventually(t, func() bool { return status(cfg.HTTPAddr, "/readyz") == http.StatusOK }, 30*time.Second, 50*time.Millisecond)
	count := func(q string) int {
		var n int
		require.NoError(t, rt.Pool.QueryRow(ctx, q).Scan(&n))
		return n
	}
	require.Eventually(t, func() bool { return count(`SELECT count(DISTINCT body) FROM effects`) == 20 }, 60*time.Second, 50*time.Millisecond, "every message handled after the outage")
	require.Zero(t, count(`SELECT count(*) FROM rejected_events`), "an outage is not bad input")
	require.Equal(t, 20, count(`SELECT count(*) FROM effects`), "and none twice")
	m := body(t, cfg.HTTPAddr, "/metrics")
	require.Contains(t, m, `huifang_dependency_up{dependency="postgres"} 1`)
	require.Contains(t, m, `huifang_dependency_down_seconds{dependency="postgres"} 0`)
	cancel()
	require.NoError(t, <-done)
}

// metricValue reads one sample of a Prometheus text page (-1 when absent).
func metricValue(t *testing.T, page, series string) float64 {
	t.Helper()
	for _, line := range strings.Split(page, "\n") {
		if rest, ok := strings.CutPrefix(line, series+" "); ok {
			v, err := strconv.ParseFloat(strings.TrimSpace(rest), 64)
			require.NoError(t, err)
			return v
		}
	}
	return -1
}

// NATS back with an empty store (a replaced node or volume): the service
// provisions the streams again, creates its durable again, publishes again
// the events the lost store held (here one its consumer had not handled
// yet), and goes on without a restart.
func TestNATSBackWithAnEmptyStore(t *testing.T) {
	ns := natstest.Start(t)
	cfg := baseConfig(t, pgtest.NewDatabase(t), ns.ClientURL())
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	rt, err := app.Start(ctx, quiet(), "apptest", cfg, fstest.MapFS{"001_effects.sql": {Data: []byte(`CREATE TABLE effects (body text NOT NULL)`)}})
	require.NoError(t, err)
	var accept atomic.Bool
	var tried atomic.Int32
	accept.Store(true)
	rt.Consume(&inbox.Consumer{Durable: "apptest-empty", Stream: stream.EventsStream, Subjects: []string{stream.SubjectVisitDue}, Backoff: 50 * time.Millisecond,
		Handle: func(ctx context.Context, tx pgx.Tx, msg jetstream.Msg) error {
			if !accept.Load() {
				tried.Add(1)
				return inbox.Transient(errors.New("not yet"))
			}
			_, err := tx.Exec(ctx, `INSERT INTO effects (body) VALUES ($1)`, string(msg.Data()))
			return err
		}})
	done := make(chan error, 1)
	go func() { done <- rt.Run(ctx) }()
	count := func() int {
		var n int
		require.NoError(t, rt.Pool.QueryRow(ctx, `SELECT count(*) FROM effects`).Scan(&n))
		return n
	}
	// Events the service itself publishes through its outbox.
	emit := func(body string) {
		require.NoError(t, pgx.BeginFunc(ctx, rt.Pool, func(tx pgx.Tx) error {
			return outbox.AddRaw(ctx, tx, "", stream.SubjectVisitDue, []byte(body), nats.Header{})
		}))
		rt.Relay.Notify()
	}
	emit("before")
	require.Eventually(t, func() bool { return count() == 1 }, 60*time.Second, 20*time.Millisecond)
	// The relay has noted the streams' incarnations (its first look).
	require.Eventually(t, func() bool {
		var n int
		require.NoError(t, rt.Pool.QueryRow(ctx, `SELECT count(*) FROM outbox_streams`).Scan(&n))
		return n == 2
	}, 30*time.Second, 50*time.Millisecond)

	accept.Store(false)
	emit("held")
	require.Eventually(t, func() bool { return tried.Load() > 0 }, 20*time.Second, 20*time.Millisecond, "published and delivered, not handled")
	ns = ns.RestartEmpty(t)
	accept.Store(true)
	require.Eventually(t, func() bool {
		_, err := rt.JS.Stream(ctx, stream.EventsStream)
		return err == nil
	}, 60*time.Second, 100*time.Millisecond, "the streams are provisioned again")
	emit("after")
	require.Eventually(t, func() bool { return count() == 3 }, 90*time.Second, 50*time.Millisecond,
		"the held event is published again, the new one flows, and the one handled before is not applied twice")
	var bodies []string
	rows, err := rt.Pool.Query(ctx, `SELECT body FROM effects ORDER BY body`)
	require.NoError(t, err)
	for rows.Next() {
		var b string
		require.NoError(t, rows.Scan(&b))
		bodies = append(bodies, b)
	}
	require.Equal(t, []string{"after", "before", "held"}, bodies)
	require.Eventually(t, func() bool { return status(cfg.HTTPAddr, "/readyz") == http.StatusOK }, 60*time.Second, 50*time.Millisecond)
	cancel()
	require.NoError(t, <-done)
}

// TestStartNeedsAnIssuer: no AUTH_ISSUER, no service: every call needs a
// verified caller.
func TestStartNeedsAnIssuer(t *testing.T) {
	cfg := baseConfig(t, "postgres://127.0.0.1:1/x", "nats://127.0.0.1:1")
	cfg.AuthIssuer = ""
	_, err := app.Start(t.Context(), quiet(), "scheduler", cfg, noMigrations)
	require.ErrorContains(t, err, "AUTH_ISSUER")
}

// TestGRPCNeedsAToken: a started service answers health checks without a
// token, refuses its RPCs without one (Unauthenticated) or with a role its
// table does not name (PermissionDenied), and lets a permitted caller
// through; a service that registers an RPC its table lacks does not start.
func TestGRPCNeedsAToken(t *testing.T) {
	ns := natstest.Start(t)
	is, err := issuer.Listen("127.0.0.1:0", "huifang")
	require.NoError(t, err)
	t.Cleanup(func() { _ = is.Close() })
	cfg := baseConfig(t, pgtest.NewDatabase(t), ns.ClientURL())
	cfg.AuthIssuer, cfg.AuthJWKSURL = is.URL(), is.JWKSURL()
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	rt, err := app.Start(ctx, quiet(), "scheduler", cfg, noMigrations)
	require.NoError(t, err)
	schedulerv1.RegisterSchedulerServiceServer(rt.Server.GRPC, schedulerv1.UnimplementedSchedulerServiceServer{})
	done := make(chan error, 1)
	go func() { done <- rt.Run(ctx) }()
	require.Eventually(t, func() bool { return status(cfg.HTTPAddr, "/readyz") == http.StatusOK }, 60*time.Second, 10*time.Millisecond)

	conn, err := grpc.NewClient(cfg.GRPCAddr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	require.NoError(t, err)
	defer conn.Close()
	hc, err := healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{})
	require.NoError(t, err, "health needs no token")
	require.Equal(t, healthpb.HealthCheckResponse_SERVING, hc.GetStatus())

	client := schedulerv1.NewSchedulerServiceClient(conn)
	as := func(role auth.Role) context.Context {
		raw, err := is.Mint(issuer.Token{Subject: "u", Claims: auth.Claims{Tenant: "acme", Roles: []string{string(role)}, AgentID: "a-1"}})
		require.NoError(t, err)
		return metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+raw)
	}
	_, err = client.ListPolicies(ctx, &schedulerv1.ListPoliciesRequest{})
	require.Equal(t, codes.Unauthenticated, grpcstatus.Code(err), "no token: %v", err)
	_, err = client.ListPolicies(metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer not-a-token"), &schedulerv1.ListPoliciesRequest{})
	require.Equal(t, codes.Unauthenticated, grpcstatus.Code(err), "a bad token: %v", err)
	_, err = client.ListPolicies(as(auth.Agent), &schedulerv1.ListPoliciesRequest{})
	require.Equal(t, codes.PermissionDenied, grpcstatus.Code(err), "an agent lists no policies: %v", err)
	_, err = client.ListPolicies(as(auth.TenantAdmin), &schedulerv1.ListPoliciesRequest{TenantId: "globex"})
	require.Equal(t, codes.PermissionDenied, grpcstatus.Code(err), "another tenant: %v", err)
	_, err = client.ListPolicies(as(auth.TenantAdmin), &schedulerv1.ListPoliciesRequest{})
	require.Equal(t, codes.Unimplemented, grpcstatus.Code(err), "an admin passes the guard: %v", err)
	cancel()
	require.NoError(t, <-done)

	// An RPC without a rule: Run refuses to serve.
	cfg.GRPCAddr, cfg.HTTPAddr = freeAddr(t), freeAddr(t)
	rt, err = app.Start(t.Context(), quiet(), "apptest", cfg, noMigrations)
	require.NoError(t, err)
	schedulerv1.RegisterSchedulerServiceServer(rt.Server.GRPC, schedulerv1.UnimplementedSchedulerServiceServer{})
	require.ErrorContains(t, rt.Run(t.Context()), "no rule for")
}

// The HTTP_* variables bound every HTTP server; a timeout left at zero in
// code is the default, a negative one refuses to start.
func TestHTTPLimits(t *testing.T) {
	var cfg app.Base
	require.NoError(t, config.Load(func(name string) (string, bool) {
		v, ok := map[string]string{"HTTP_READ_TIMEOUT": "7s", "HTTP_MAX_CONCURRENT": "3"}[name]
		return v, ok
	}, &cfg))
	l := cfg.HTTPLimits()
	want := httpserver.Defaults()
	want.ReadTimeout, want.MaxConcurrent = 7*time.Second, 3
	require.Equal(t, want, l)

	l = app.Base{}.HTTPLimits()
	require.Equal(t, httpserver.Defaults().WriteTimeout, l.WriteTimeout, "zero is the default")
	require.Zero(t, l.MaxConcurrent)

	_, err := app.Start(t.Context(), quiet(), "scheduler", app.Base{HTTPWriteTimeout: -time.Second, AuthIssuer: "http://127.0.0.1:1"}, noMigrations)
	require.ErrorContains(t, err, "HTTP_WRITE_TIMEOUT must be positive, got -1s")
}

// RATE_LIMIT and RATE_BURST default to 50 a second in bursts of 100; a
// negative rate, or a burst below 1 with a rate, refuses to start.
func TestRateLimitConfig(t *testing.T) {
	var cfg app.Base
	require.NoError(t, config.Load(func(string) (string, bool) { return "", false }, &cfg))
	require.Equal(t, 50.0, cfg.RateLimit)
	require.Equal(t, 100, cfg.RateBurst)
	for _, bad := range []app.Base{{RateLimit: -1}, {RateLimit: 5, RateBurst: 0}} {
		bad.AuthIssuer = "http://127.0.0.1:1"
		_, err := app.Start(t.Context(), quiet(), "scheduler", bad, noMigrations)
		require.ErrorContains(t, err, "RATE_LIMIT must not be negative (0 lifts the limit) and RATE_BURST must be at least 1")
	}
	for _, bad := range []app.Base{{ConsumerBatch: -1}, {ConsumerBatch: 10001}, {ConsumerBatch: 100, ConsumerBatchWait: -time.Millisecond}} {
		bad.AuthIssuer = "http://127.0.0.1:1"
		_, err := app.Start(t.Context(), quiet(), "scheduler", bad, noMigrations)
		require.ErrorContains(t, err, "CONSUMER_BATCH must be 0 to 10000 and CONSUMER_BATCH_WAIT not negative")
	}
	require.Equal(t, 4, cfg.OutboxInFlight)
	require.Equal(t, time.Second, cfg.OutboxPollInterval)
	for _, bad := range []app.Base{{OutboxInFlight: -1}, {OutboxInFlight: 65}, {OutboxPollInterval: -time.Second}} {
		bad.AuthIssuer = "http://127.0.0.1:1"
		_, err := app.Start(t.Context(), quiet(), "scheduler", bad, noMigrations)
		require.ErrorContains(t, err, "OUTBOX_IN_FLIGHT must be 0 to 64 (0: the default) and OUTBOX_POLL_INTERVAL not negative")
	}
}

// TestGRPCOverTLS: with GRPC_TLS_CERT and GRPC_TLS_KEY the gRPC port speaks
// TLS with that certificate (a plaintext client gets nothing), and a
// renewed certificate is served without a restart.
func TestGRPCOverTLS(t *testing.T) {
	ns := natstest.Start(t)
	cfg := baseConfig(t, pgtest.NewDatabase(t), ns.ClientURL())
	dir := t.TempDir()
	cfg.GRPCTLSCert, cfg.GRPCTLSKey = filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key")
	first := selfSigned(t, "first", cfg.GRPCTLSCert, cfg.GRPCTLSKey, time.Now().Add(-time.Hour))
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	rt, err := app.Start(ctx, quiet(), "apptest", cfg, noMigrations)
	require.NoError(t, err)
	done := make(chan error, 1)
	go func() { done <- rt.Run(ctx) }()
	require.Eventually(t, func() bool { return status(cfg.HTTPAddr, "/readyz") == http.StatusOK }, 60*time.Second, 10*time.Millisecond)

	health := func(roots *x509.CertPool) (*healthpb.HealthCheckResponse, error) {
		conn, err := grpc.NewClient(cfg.GRPCAddr, grpc.WithTransportCredentials(credentials.NewTLS(&tls.Config{RootCAs: roots, ServerName: "localhost"})))
		require.NoError(t, err)
		defer conn.Close()
		cctx, ccancel := context.WithTimeout(ctx, 30*time.Second)
		defer ccancel()
		return healthpb.NewHealthClient(conn).Check(cctx, &healthpb.HealthCheckRequest{})
	}
	pool := x509.NewCertPool()
	pool.AddCert(first)
	hc, err := health(pool)
	require.NoError(t, err)
	require.Equal(t, healthpb.HealthCheckResponse_SERVING, hc.GetStatus())

	plain, err := grpc.NewClient(cfg.GRPCAddr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	require.NoError(t, err)
	defer plain.Close()
	pctx, pcancel := context.WithTimeout(ctx, 5*time.Second)
	defer pcancel()
	_, err = healthpb.NewHealthClient(plain).Check(pctx, &healthpb.HealthCheckRequest{})
	require.Error(t, err, "plaintext is not answered")

	second := selfSigned(t, "second", cfg.GRPCTLSCert, cfg.GRPCTLSKey, time.Now())
	renewed := x509.NewCertPool()
	renewed.AddCert(second)
	_, err = health(renewed)
	require.NoError(t, err, "the renewed certificate is served")
	cancel()
	require.NoError(t, <-done)
}

// selfSigned writes a self-signed certificate for localhost named cn, and
// its key, with modification time at, and returns the certificate.
func selfSigned(t *testing.T, cn, certFile, keyFile string, at time.Time) *x509.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: cn},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), DNSNames: []string{"localhost"}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	require.NoError(t, err)
	kb, err := x509.MarshalECPrivateKey(key)
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600))
	require.NoError(t, os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb}), 0o600))
	for _, f := range []string{certFile, keyFile} {
		require.NoError(t, os.Chtimes(f, at, at))
	}
	cert, err := x509.ParseCertificate(der)
	require.NoError(t, err)
	return cert
}
