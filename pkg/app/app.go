// Package app is the runtime every Huifang service starts from: configuration,
// logging, tracing, Postgres with migrations, NATS with the streams, the
// outbox relay, background loops and the gRPC server, and an orderly
// shutdown on SIGTERM.
package app

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"

	auditv1 "github.com/huifang/huifang/proto/huifang/audit/v1"
	privacyv1 "github.com/huifang/huifang/proto/huifang/privacy/v1"
	"github.com/huifang/huifang/proto/openapi"

	"github.com/huifang/huifang/pkg/access"
	"github.com/huifang/huifang/pkg/audit"
	"github.com/huifang/huifang/pkg/auth"
	"github.com/huifang/huifang/pkg/config"
	"github.com/huifang/huifang/pkg/customerdata"
	"github.com/huifang/huifang/pkg/grpcserver"
	"github.com/huifang/huifang/pkg/httpserver"
	"github.com/huifang/huifang/pkg/inbox"
	"github.com/huifang/huifang/pkg/logging"
	"github.com/huifang/huifang/pkg/loop"
	"github.com/huifang/huifang/pkg/outbox"
	"github.com/huifang/huifang/pkg/postgres"
	"github.com/huifang/huifang/pkg/retention"
	"github.com/huifang/huifang/pkg/stream"
	"github.com/huifang/huifang/pkg/telemetry"
	"github.com/huifang/huifang/pkg/watch"
)

// Stamped into binaries by the build: -ldflags "-X github.com/huifang/huifang/pkg/app.version=... -X ...commit=...".
var (
	version = "dev"
	commit  = "none"
)

// Version returns the version and commit the binary was built from.
func Version() string { return version + " (" + commit + ")" }

// Base is the configuration every service reads. Each variable may be given
// with the service's name as a prefix (SCHEDULER_GRPC_ADDR) to set it for one
// service only.
type Base struct {
	DatabaseURL string `env:"DATABASE_URL,url" default:"postgres://postgres@127.0.0.1:5432/huifang?sslmode=disable"`
	NATSURL     string `env:"NATS_URL,url" default:"nats://127.0.0.1:4222"`
	// NATSUser and NATSPassword are the service's own NATS user, which may
	// publish only the service's subjects (docs/security.md); NATSCAFile
	// is the CA of the servers' TLS certificates (tls:// URLs).
	NATSUser     string `env:"NATS_USER"`
	NATSPassword string `env:"NATS_PASSWORD,secret"`
	NATSCAFile   string `env:"NATS_CA_FILE"`
	GRPCAddr     string `env:"GRPC_ADDR"`
	// GRPCMaxRecvBytes bounds a gRPC request; 0 keeps gRPC's 4 MiB.
	GRPCMaxRecvBytes int    `env:"GRPC_MAX_RECV_BYTES" default:"0"`
	HTTPAddr         string `env:"HTTP_ADDR"`
	// PprofAddr, when set, serves Go's runtime profiles (/debug/pprof/) on
	// this loopback address, for an operator measuring where the service's
	// CPU goes (docs/operations.md); unset, nothing is served.
	PprofAddr string `env:"PPROF_ADDR"`
	// The bounds of every HTTP server of the service (the HTTP side,
	// intake's webhook, dispatch's receipts): httpserver.Limits.
	HTTPReadHeaderTimeout time.Duration `env:"HTTP_READ_HEADER_TIMEOUT" default:"5s"`
	HTTPReadTimeout       time.Duration `env:"HTTP_READ_TIMEOUT" default:"60s"`
	HTTPWriteTimeout      time.Duration `env:"HTTP_WRITE_TIMEOUT" default:"60s"`
	HTTPIdleTimeout       time.Duration `env:"HTTP_IDLE_TIMEOUT" default:"120s"`
	// HTTPMaxConcurrent is how many requests each HTTP server handles at
	// once (not counting /healthz, /readyz, /metrics); 0: no bound.
	HTTPMaxConcurrent int `env:"HTTP_MAX_CONCURRENT" default:"64"`
	// AuthIssuer is the OpenID Connect issuer whose bearer tokens the gRPC
	// API accepts (its iss); required: every call needs a verified caller.
	AuthIssuer string `env:"AUTH_ISSUER,url"`
	// AuthAudience is the aud the tokens must carry.
	AuthAudience string `env:"AUTH_AUDIENCE" default:"huifang"`
	// RateLimit is how many requests a second on average each caller
	// (tenant and subject of its token) may make to the service's gRPC API
	// and intake's webhook, RateBurst how many at once; 0 lifts the limit.
	RateLimit float64 `env:"RATE_LIMIT" default:"50"`
	RateBurst int     `env:"RATE_BURST" default:"100"`
	// AuthJWKSURL is where the issuer publishes its keys; empty: the
	// jwks_uri of the issuer's discovery document, read at start.
	AuthJWKSURL string `env:"AUTH_JWKS_URL,url"`
	// GRPCTLSCert and GRPCTLSKey are PEM files for TLS on the gRPC port
	// (both or neither); they are read again when they change.
	GRPCTLSCert string `env:"GRPC_TLS_CERT"`
	GRPCTLSKey  string `env:"GRPC_TLS_KEY"`
	LogLevel    string `env:"LOG_LEVEL" default:"info"`
	// StartTimeout is how long the service waits for Postgres and NATS at start.
	StartTimeout time.Duration `env:"START_TIMEOUT" default:"2m"`
	// ShutdownDelay is how long a service keeps serving, not ready, after
	// SIGTERM before it stops taking gRPC calls, so that load balancers
	// (Kubernetes endpoints) stop routing to it first. 0 on one machine.
	ShutdownDelay time.Duration `env:"SHUTDOWN_DELAY" default:"0s"`
	// ShutdownGrace is how long in-flight work may take after SIGTERM.
	ShutdownGrace time.Duration `env:"SHUTDOWN_GRACE" default:"10s"`
	// WatchPerCaller bounds the streaming watches one caller (tenant and
	// subject) holds at once, WatchMax those of the process; WatchHeartbeat
	// is how long a quiet watch waits before it sends a heartbeat (pkg/watch).
	WatchPerCaller int           `env:"WATCH_PER_CALLER" default:"5"`
	WatchMax       int           `env:"WATCH_MAX" default:"1000"`
	WatchHeartbeat time.Duration `env:"WATCH_HEARTBEAT" default:"15s"`
	// StreamReplicas is 1 on one NATS server, 3 in a cluster.
	StreamReplicas int `env:"STREAM_REPLICAS" default:"1"`
	// StreamMaxAge bounds how long the streams keep messages; 0 keeps them
	// until removed by hand. Give every service the same value.
	StreamMaxAge time.Duration `env:"STREAM_MAX_AGE" default:"0s"`
	// ConsumerBatch is how many messages a consumer's worker applies in one
	// transaction (a savepoint each, one commit, the inbox entries in one
	// statement); 0 or 1 applies each message in a transaction of its own.
	// ConsumerBatchWait is how long a worker waits, after a batch's first
	// message, for more.
	ConsumerBatch     int           `env:"CONSUMER_BATCH" default:"100"`
	ConsumerBatchWait time.Duration `env:"CONSUMER_BATCH_WAIT" default:"5ms"`
	// OutboxAtomic publishes a relay round's events of a stream as one
	// JetStream atomic batch (nats-server 2.12 or later); false publishes
	// them one by one.
	OutboxAtomic bool `env:"OUTBOX_ATOMIC" default:"true"`
	// OutboxRelay can be switched off to hold events in the outbox (fault drills).
	OutboxRelay bool `env:"OUTBOX_RELAY" default:"true"`
	// OutboxInFlight is how many relay rounds may be on their way to
	// JetStream at once (each stream's batches still one after the other).
	// OutboxPollInterval is how often an idle relay looks, in one read-only
	// statement, for rows nobody woke it for (another process's).
	OutboxInFlight     int           `env:"OUTBOX_IN_FLIGHT" default:"4"`
	OutboxPollInterval time.Duration `env:"OUTBOX_POLL_INTERVAL" default:"1s"`
	// InboxRetention is how long the ids of handled events are kept to drop
	// redeliveries: longer than any NATS outage after which an
	// unacknowledged message may come again.
	InboxRetention time.Duration `env:"INBOX_RETENTION" default:"168h"`
	// OutboxRetention is how long published events stay in the outbox
	// (for inspection, and to publish again to a stream created anew);
	// RejectedRetention how long refused inputs are kept for an admin to
	// see and replay (they may hold personal data, sealed); 0 keeps them.
	// RetentionEvery is how often each class is purged (docs/privacy.md).
	OutboxRetention   time.Duration `env:"OUTBOX_RETENTION" default:"24h"`
	RejectedRetention time.Duration `env:"REJECTED_RETENTION" default:"720h"`
	RetentionEvery    time.Duration `env:"RETENTION_EVERY" default:"1h"`
	// MigrateOnly makes Start apply the migrations and stop (Start returns
	// ErrMigrated, and Main exits 0): a Kubernetes init container or a
	// migration Job runs the service's image this way before a rollout.
	MigrateOnly bool `env:"MIGRATE_ONLY" default:"false"`
	// DevMode marks a development or test run: a service may then fall
	// back to the committed development secrets (intake's ENCRYPTION_KEYS
	// and HASH_KEY), which it refuses otherwise. Never set it in production.
	DevMode bool `env:"DEV_MODE" default:"false"`
}

// HTTPLimits are the bounds of the service's HTTP servers, from the
// HTTP_* variables; a timeout left at zero (a Base built in code) is
// httpserver.Defaults', as is the header bound.
func (b Base) HTTPLimits() httpserver.Limits {
	l := httpserver.Defaults()
	for _, f := range []struct {
		dst *time.Duration
		v   time.Duration
	}{{&l.ReadHeaderTimeout, b.HTTPReadHeaderTimeout}, {&l.ReadTimeout, b.HTTPReadTimeout}, {&l.WriteTimeout, b.HTTPWriteTimeout}, {&l.IdleTimeout, b.HTTPIdleTimeout}} {
		if f.v != 0 {
			*f.dst = f.v
		}
	}
	l.MaxConcurrent = b.HTTPMaxConcurrent
	return l
}

// ErrMigrated is what Start returns with MIGRATE_ONLY=true once the
// migrations are applied.
var ErrMigrated = errors.New("app: migrations applied (MIGRATE_ONLY)")

// Main runs a service: it handles --version and --healthcheck, builds the
// logger, cancels the context on SIGINT or SIGTERM, and exits non-zero when
// run fails.
func Main(service string, run func(ctx context.Context, log *slog.Logger) error) {
	showVersion := flag.Bool("version", false, "print the version and exit")
	healthcheck := flag.Bool("healthcheck", false, "ask the running service's /readyz (at HTTP_ADDR) whether it is ready; exit 0 when it is (for container health checks)")
	flag.Parse()
	if *showVersion {
		fmt.Printf("huifang-%s %s\n", service, Version())
		return
	}
	if *healthcheck {
		if err := Probe(context.Background(), config.Env(service)); err != nil {
			fmt.Fprintln(os.Stderr, "huifang-"+service+":", err)
			os.Exit(1)
		}
		return
	}
	log := logging.New(os.Stdout, service, os.Getenv("LOG_LEVEL"))
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, log); err != nil {
		if ctx.Err() != nil && errors.Is(err, context.Canceled) {
			log.Info("stopped before it was ready", "err", err)
			return
		}
		if errors.Is(err, ErrMigrated) {
			log.Info("migrations applied; exiting as MIGRATE_ONLY asks")
			return
		}
		log.Error("service failed", "err", err)
		os.Exit(1)
	}
}

// LoadConfig fills cfg (a pointer to a struct that embeds Base) from the
// environment, with the service's prefix, and logs it with secrets hidden.
func LoadConfig(log *slog.Logger, service string, cfg any) error {
	if err := config.Load(config.Env(service), cfg); err != nil {
		return err
	}
	log.Info("configuration", config.Attrs(cfg)...)
	return nil
}

// Runtime holds what a running service is made of.
type Runtime struct {
	Service string
	Log     *slog.Logger
	Pool    *pgxpool.Pool
	NC      *nats.Conn
	JS      jetstream.JetStream
	Relay   *outbox.Relay
	Server  *grpcserver.Server
	Metrics *prometheus.Registry
	// Health watches Postgres and NATS: readiness, metrics, and whether a
	// consumer's failure is one of the moment.
	Health *Health
	// Guard authenticates every gRPC call and enforces the service's
	// permission table (access.For(Service)).
	Guard *auth.Guard
	// Watches runs the service's streaming watches over the events stream
	// (pkg/watch); Run drains them before gRPC stops.
	Watches *watch.Hub
	// CustomerData serves the service's part of a person's export
	// (huifang.privacy.v1.CustomerDataService): every table of its schema
	// with a customer_id; the service adds what is linked another way
	// (Source.Related) before Run.
	CustomerData *customerdata.Server

	cfg       Base
	retention *retention.Metrics
	shutdown  []func(context.Context) error
	loops     []background
	consumers *consumerLag

	// gatewayCreds are what the HTTP/JSON gateway dials the gRPC listener
	// with: nil for plaintext, the server's own certificate with GRPC_TLS_*.
	gatewayCreds credentials.TransportCredentials
}

// background is a function that runs from Run until shutdown.
type background struct {
	name string
	fn   func(ctx context.Context) error
}

// Start builds the service's runtime. First it starts the HTTP server
// (/healthz alive, /readyz 503, /metrics), so that an orchestrator sees the
// process live but not ready while it waits; then it connects, each with
// backoff until START_TIMEOUT: Postgres (schema = service, with the
// migrations of the outbox, the inbox, the audit log and the service's
// own), NATS, and the streams (which a JetStream cluster can only create
// once it has elected a leader). It
// returns the runtime with the gRPC server built but not yet serving, the
// audit log's API (huifang.audit.v1.AuditService, over the service's own
// log) and the customer-data API (CustomerData) registered on it: the service registers its handlers, consumers and
// loops, then calls Run.
func Start(ctx context.Context, log *slog.Logger, service string, cfg Base, migrations fs.FS) (*Runtime, error) {
	if cfg.MigrateOnly {
		return nil, migrateOnly(ctx, log, service, cfg, migrations)
	}
	if err := cfg.HTTPLimits().Check(); err != nil {
		return nil, fmt.Errorf("app: %w", err)
	}
	if cfg.RateLimit < 0 || (cfg.RateLimit > 0 && cfg.RateBurst < 1) {
		return nil, fmt.Errorf("app: RATE_LIMIT must not be negative (0 lifts the limit) and RATE_BURST must be at least 1, got %g and %d", cfg.RateLimit, cfg.RateBurst)
	}
	if cfg.OutboxInFlight < 0 || cfg.OutboxInFlight > 64 || cfg.OutboxPollInterval < 0 {
		return nil, fmt.Errorf("app: OUTBOX_IN_FLIGHT must be 0 to 64 (0: the default) and OUTBOX_POLL_INTERVAL not negative, got %d and %s", cfg.OutboxInFlight, cfg.OutboxPollInterval)
	}
	if cfg.ConsumerBatch < 0 || cfg.ConsumerBatch > 10000 || cfg.ConsumerBatchWait < 0 {
		return nil, fmt.Errorf("app: CONSUMER_BATCH must be 0 to 10000 and CONSUMER_BATCH_WAIT not negative, got %d and %s", cfg.ConsumerBatch, cfg.ConsumerBatchWait)
	}
	rt := &Runtime{Service: service, Log: log, cfg: cfg}
	_, shutdownTracing, err := telemetry.Setup(ctx, service, version)
	if err != nil {
		return nil, err
	}
	rt.shutdown = append(rt.shutdown, shutdownTracing)
	if cfg.PprofAddr != "" {
		srv, err := profiler(log, cfg.PprofAddr)
		if err != nil {
			rt.abort()
			return nil, fmt.Errorf("app: %w", err)
		}
		rt.shutdown = append(rt.shutdown, closeProfiler(srv))
	}
	if cfg.AuthIssuer == "" {
		rt.abort()
		return nil, errors.New("app: AUTH_ISSUER is required: every gRPC call is checked against the tokens of an OpenID Connect issuer (make run starts a local one; docs/security.md)")
	}
	rt.Guard = auth.NewGuard(log, nil)
	rt.Guard.SetTable(access.For(service))
	rt.Guard.SetRateLimit(auth.RateLimit{Rate: cfg.RateLimit, Burst: cfg.RateBurst})
	grpcOpts := []grpc.ServerOption{grpc.ChainUnaryInterceptor(rt.Guard.Unary), grpc.ChainStreamInterceptor(rt.Guard.Stream)}
	if cfg.GRPCMaxRecvBytes > 0 {
		grpcOpts = append(grpcOpts, grpc.MaxRecvMsgSize(cfg.GRPCMaxRecvBytes))
	}
	switch {
	case cfg.GRPCTLSCert != "" && cfg.GRPCTLSKey != "":
		files, err := grpcserver.NewCertFiles(cfg.GRPCTLSCert, cfg.GRPCTLSKey)
		if err != nil {
			rt.abort()
			return nil, err
		}
		grpcOpts = append(grpcOpts, grpc.Creds(credentials.NewTLS(files.TLSConfig())))
		rt.gatewayCreds = files.SelfTLS()
	case cfg.GRPCTLSCert != "" || cfg.GRPCTLSKey != "":
		rt.abort()
		return nil, errors.New("app: GRPC_TLS_CERT and GRPC_TLS_KEY go together")
	}
	rt.Server = grpcserver.New(log, cfg.GRPCAddr, cfg.HTTPAddr, grpcOpts...)
	rt.Server.SetHTTPLimits(cfg.HTTPLimits())
	rt.Metrics = rt.Server.Registry
	rt.Metrics.MustRegister(buildInfo(), prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "huifang_ready",
		Help: "1 when the service is ready for traffic, 0 while it starts or drains.",
	}, func() float64 {
		if rt.Server.Ready() {
			return 1
		}
		return 0
	}))
	if err := rt.Server.StartHTTP(); err != nil {
		rt.abort()
		return nil, err
	}
	log.Info("waiting for Postgres and NATS; not ready until both are up", "http", rt.Server.HTTPAddr(), "timeout", cfg.StartTimeout)

	startCtx, cancel := context.WithTimeout(ctx, cfg.StartTimeout)
	defer cancel()
	verifier, err := newVerifier(startCtx, log, cfg)
	if err != nil {
		rt.abort()
		return nil, err
	}
	rt.Guard.SetVerifier(verifier)
	pool, err := postgres.Open(startCtx, log, cfg.DatabaseURL, service, Migrations(service, migrations)...)
	if err != nil {
		rt.abort()
		return nil, err
	}
	rt.Pool = pool
	auditv1.RegisterAuditServiceServer(rt.Server.GRPC, &audit.Server{Pool: pool})
	rt.CustomerData = &customerdata.Server{Source: customerdata.Source{Service: service, Pool: pool}}
	privacyv1.RegisterCustomerDataServiceServer(rt.Server.GRPC, rt.CustomerData)
	var natsOpts []nats.Option
	if cfg.NATSUser != "" {
		natsOpts = append(natsOpts, nats.UserInfo(cfg.NATSUser, cfg.NATSPassword))
	}
	if cfg.NATSCAFile != "" {
		natsOpts = append(natsOpts, nats.RootCAs(cfg.NATSCAFile))
	}
	rt.NC, rt.JS, err = stream.Connect(startCtx, log, cfg.NATSURL, "huifang-"+service, natsOpts...)
	if err != nil {
		rt.abort()
		return nil, err
	}
	if err := ensureStreams(startCtx, log, rt.JS, stream.Config{Replicas: cfg.StreamReplicas, MaxAge: cfg.StreamMaxAge}); err != nil {
		rt.abort()
		return nil, err
	}
	rt.Watches = watch.NewHub(rt.JS, log, watch.Limits{PerCaller: cfg.WatchPerCaller, Max: cfg.WatchMax, Heartbeat: cfg.WatchHeartbeat})
	rt.Health = newHealth(log, rt.Server.SetDegraded)
	rt.Metrics.MustRegister(rt.Health)
	rt.Loop(&loop.Loop{Name: "dependencies", Every: time.Second, Round: func(ctx context.Context) (int, error) {
		rt.Health.probe(ctx, rt.Pool, rt.NC, rt.JS, 2*time.Second)
		return 0, nil
	}})
	// Streams are provisioned again whenever they are found missing (a NATS
	// server back with an empty store): every StreamCheck, and at once when a
	// consumer or the relay finds no stream.
	rt.Loop(&loop.Loop{Name: "streams", Every: streamCheck, MaxBackoff: streamCheck, Round: func(ctx context.Context) (int, error) {
		if err := rt.provision(ctx); err != nil {
			return 0, err
		}
		return 0, rt.restreamed(ctx)
	}})
	rt.Relay = outbox.NewRelay(rt.Pool, rt.JS, log, service)
	rt.Relay.Retain = cfg.OutboxRetention
	rt.Relay.NoAtomic = !cfg.OutboxAtomic
	if cfg.OutboxInFlight > 0 {
		rt.Relay.InFlight = cfg.OutboxInFlight
	}
	if cfg.OutboxPollInterval > 0 {
		rt.Relay.Interval = cfg.OutboxPollInterval
	}
	rt.Relay.Provision = rt.provision
	if cfg.OutboxRelay {
		rt.Go("outbox-relay", rt.Relay.Run)
	} else {
		log.Warn("outbox relay is off: events stay in the outbox until a service with the relay on starts")
	}
	rt.Metrics.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "huifang_outbox_pending",
		Help: "Outbox rows not yet published to NATS.",
	}, func() float64 {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		n, err := outbox.Pending(ctx, pool)
		if err != nil {
			return -1
		}
		return float64(n)
	}))
	rt.Metrics.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "huifang_outbox_quarantined",
		Help: "Outbox rows NATS refused for good (set aside with the reason; the rows behind them went on).",
	}, func() float64 {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		n, err := outbox.Quarantined(ctx, pool)
		if err != nil {
			return -1
		}
		return float64(n)
	}))
	rt.consumers = &consumerLag{js: rt.JS}
	rt.Metrics.MustRegister(rt.consumers)
	rt.retention = retention.NewMetrics()
	rt.Metrics.MustRegister(rt.retention.Collectors()...)
	rt.Retain(retention.Class{Name: "inbox", Retain: cfg.InboxRetention,
		Purge: func(ctx context.Context, cutoff time.Time, limit int) (int, error) {
			return inbox.Purge(ctx, rt.Pool, cutoff, limit)
		}})
	rt.Retain(retention.Class{Name: "outbox", Retain: cfg.OutboxRetention,
		Purge: func(ctx context.Context, cutoff time.Time, limit int) (int, error) {
			return outbox.Purge(ctx, rt.Pool, cutoff, limit)
		}})
	rt.Retain(retention.Class{Name: "rejected_events", Retain: cfg.RejectedRetention,
		Purge: func(ctx context.Context, cutoff time.Time, limit int) (int, error) {
			return inbox.PurgeRejected(ctx, rt.Pool, cutoff, limit)
		}})
	return rt, nil
}

// Retain purges a class of the service's data every RETENTION_EVERY, with
// the retention metrics (huifang_retention_*); a class kept for good
// (Retain 0) only shows its retention.
func (rt *Runtime) Retain(c retention.Class) {
	if l := rt.retention.Loop(c, rt.cfg.RetentionEvery, rt.Log, time.Now); l != nil {
		rt.Loop(l)
	}
}

// streamCheck is how often a service looks whether the streams exist.
const streamCheck = 10 * time.Second

// restreamed tells the relay which incarnation of each stream it publishes
// to, so that it publishes again what a stream created anew lost.
func (rt *Runtime) restreamed(ctx context.Context) error {
	for _, s := range []struct{ name, subjects string }{
		{stream.EventsStream, stream.EventsSubjects},
		{stream.DLQStream, stream.DLQSubjects},
	} {
		ictx, cancel := context.WithTimeout(ctx, ensureAttemptTimeout)
		info, err := rt.JS.Stream(ictx, s.name)
		cancel()
		if err != nil {
			return fmt.Errorf("app: stream %s: %w", s.name, err)
		}
		if _, err := rt.Relay.Restreamed(ctx, s.name, strings.TrimSuffix(s.subjects, ">"), info.CachedInfo().Created); err != nil {
			return err
		}
	}
	return nil
}

// provision creates or updates the streams once, bounded.
func (rt *Runtime) provision(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, ensureAttemptTimeout)
	defer cancel()
	return stream.Ensure(ctx, rt.JS, stream.Config{Replicas: rt.cfg.StreamReplicas, MaxAge: rt.cfg.StreamMaxAge})
}

// ensureStreams provisions the streams, retrying with backoff until ctx
// ends: a NATS cluster that has just started answers "no leader" or "not
// enough peers" for a few seconds, and when several services create the
// same replicated stream at once, the requests that lose the race may get
// no answer at all (nats-server 2.15), hence the bound on each attempt.
func ensureStreams(ctx context.Context, log *slog.Logger, js jetstream.JetStream, cfg stream.Config) error {
	delay := 100 * time.Millisecond
	trouble := &loop.Trouble{Log: log, What: "streams"}
	for {
		attemptCtx, cancel := context.WithTimeout(ctx, ensureAttemptTimeout)
		err := stream.Ensure(attemptCtx, js, cfg)
		cancel()
		if err == nil {
			trouble.OK(ctx)
			return nil
		}
		trouble.Fail(ctx, err)
		select {
		case <-ctx.Done():
			return fmt.Errorf("app: streams: %w", err)
		case <-time.After(delay):
		}
		delay = min(delay*2, 5*time.Second)
	}
}

// newVerifier builds the token verifier; reading the issuer's discovery
// document (no AUTH_JWKS_URL) is retried with backoff until ctx ends, as an
// issuer may start after the services.
func newVerifier(ctx context.Context, log *slog.Logger, cfg Base) (*auth.Verifier, error) {
	delay := 200 * time.Millisecond
	trouble := &loop.Trouble{Log: log, What: "token issuer"}
	for {
		v, err := auth.NewVerifier(ctx, auth.Config{Issuer: cfg.AuthIssuer, Audience: cfg.AuthAudience, JWKSURL: cfg.AuthJWKSURL})
		if err == nil {
			trouble.OK(ctx)
			return v, nil
		}
		trouble.Fail(ctx, err)
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("app: %w", err)
		case <-time.After(delay):
		}
		delay = min(delay*2, 5*time.Second)
	}
}

// migrateOnly waits for Postgres, applies the migrations and returns ErrMigrated.
func migrateOnly(ctx context.Context, log *slog.Logger, service string, cfg Base, migrations fs.FS) error {
	startCtx, cancel := context.WithTimeout(ctx, cfg.StartTimeout)
	defer cancel()
	pool, err := postgres.Open(startCtx, log, cfg.DatabaseURL, service, Migrations(service, migrations)...)
	if err != nil {
		return err
	}
	pool.Close()
	return ErrMigrated
}

// Migrations are the migration sets of a service's schema, in the order
// they are applied: the outbox's, the inbox's, the audit log's, then the
// service's own files.
func Migrations(service string, own fs.FS) []postgres.Migrations {
	return []postgres.Migrations{outbox.Migrations(), inbox.Migrations(), audit.Migrations(), {Set: service, FS: own}}
}

// ensureAttemptTimeout bounds one attempt to provision the streams.
const ensureAttemptTimeout = 3 * time.Second

func buildInfo() prometheus.Collector {
	g := prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "huifang_build_info",
		Help: "Always 1; the labels say which build runs.",
	}, []string{"version", "commit"})
	g.WithLabelValues(version, commit).Set(1)
	return g
}

// Go adds a background function that runs from Run until shutdown (its
// context ends then). Periodic work uses Loop instead.
func (rt *Runtime) Go(name string, fn func(ctx context.Context) error) {
	rt.loops = append(rt.loops, background{name: name, fn: fn})
}

// Loop adds a background loop (see package loop): rounds every interval or
// when woken, at once again while full, with backoff after failures. Its
// logger is the runtime's when unset.
func (rt *Runtime) Loop(l *loop.Loop) {
	if l.Log == nil {
		l.Log = rt.Log
	}
	rt.Go(l.Name, l.Run)
}

// Gate decides when a consumer runs: Run calls consume while this replica
// may consume (it holds a leader lock, say) and cancels its context when it
// may no longer; it returns when ctx ends.
type Gate interface {
	Run(ctx context.Context, consume func(context.Context) error) error
}

// ConsumeOption changes how Consume runs a consumer.
type ConsumeOption func(*consumeOptions)

type consumeOptions struct {
	workers int
	gate    Gate
}

// Workers runs n workers of the consumer (messages handled at once; order
// across them is not kept).
func Workers(n int) ConsumeOption { return func(o *consumeOptions) { o.workers = n } }

// Gated runs the consumer only while g lets it (analytics: one replica at a time).
func Gated(g Gate) ConsumeOption { return func(o *consumeOptions) { o.gate = g } }

// Consume registers a durable inbox consumer, the one way a service
// consumes: it fills in the runtime's parts, exports the durable's backlog
// once (huifang_consumer_pending{stream,consumer} and its siblings), and
// runs it from Run until shutdown. Registering the same durable twice is a
// programming error and panics.
func (rt *Runtime) Consume(c *inbox.Consumer, opts ...ConsumeOption) {
	var o consumeOptions
	for _, opt := range opts {
		opt(&o)
	}
	if o.workers > 0 {
		c.Workers = o.workers
	}
	if c.Batch == 0 {
		c.Batch, c.BatchWait = rt.cfg.ConsumerBatch, rt.cfg.ConsumerBatchWait
	}
	c.Service, c.Pool, c.JS, c.Log, c.Relay = rt.Service, rt.Pool, rt.JS, rt.Log, rt.Relay
	c.DatabaseUp = func() bool { return rt.Health.Up(DependencyPostgres) }
	c.Provision = rt.provision
	if !rt.consumers.add(c.Stream, c.Durable) {
		panic(fmt.Sprintf("app: consumer %s registered twice; use app.Workers to run more workers", c.Durable))
	}
	run := c.Run
	if o.gate != nil {
		run = func(ctx context.Context) error { return o.gate.Run(ctx, c.Run) }
	}
	rt.Go("consumer-"+c.Durable, run)
}

// Run serves until ctx ends (SIGTERM), then shuts down in this order:
//  1. the background loops stop claiming work (consumers fetch no new
//     messages, timers claim no new rows); what they hold in flight finishes;
//  2. readiness goes false (/readyz 503, gRPC health NOT_SERVING);
//  3. after SHUTDOWN_DELAY (load balancers stop routing here), gRPC stops
//     taking calls and the calls in flight finish, for up to SHUTDOWN_GRACE;
//  4. the outbox is flushed once more, the HTTP server and the connections
//     are closed.
//
// A background loop that fails starts the same shutdown and is returned.
func (rt *Runtime) Run(ctx context.Context) error {
	if err := rt.Guard.CoversServices(rt.Server.GRPC.GetServiceInfo()); err != nil {
		rt.Close(ctx)
		return err
	}
	// The gRPC port takes connections before readiness says so.
	if err := rt.Server.ListenGRPC(); err != nil {
		rt.Close(ctx)
		return err
	}
	loopCtx, stopLoops := context.WithCancel(context.WithoutCancel(ctx))
	defer stopLoops()
	var wg sync.WaitGroup
	errc := make(chan error, len(rt.loops))
	for _, l := range rt.loops {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := l.fn(loopCtx); err != nil && !errors.Is(err, context.Canceled) {
				errc <- fmt.Errorf("%s: %w", l.name, err)
			}
		}()
	}
	loopsDone := make(chan struct{})
	go func() { wg.Wait(); close(loopsDone) }()

	grpcCtx, stopGRPC := context.WithCancel(context.WithoutCancel(ctx))
	defer stopGRPC()
	grpcDone := make(chan error, 1)
	go func() { grpcDone <- rt.Server.ServeGRPC(grpcCtx, rt.cfg.ShutdownGrace) }()
	rt.Server.SetReady(true)
	rt.Log.Info("started", "version", Version())

	var runErr error
	grpcStopped := false
	select {
	case <-ctx.Done():
		rt.Log.Info("shutting down: not ready, no new work", "delay", rt.cfg.ShutdownDelay, "grace", rt.cfg.ShutdownGrace)
	case runErr = <-errc:
		rt.Log.Error("background loop failed; shutting down", "err", runErr)
	case runErr = <-grpcDone:
		grpcStopped = true
		rt.Log.Error("server failed; shutting down", "err", runErr)
	}
	// The loops are told first, so that whoever sees the readiness go
	// false knows that no new work will be claimed.
	stopLoops()
	rt.Server.SetReady(false)
	if rt.cfg.ShutdownDelay > 0 && !grpcStopped {
		select {
		case <-time.After(rt.cfg.ShutdownDelay):
		case err := <-grpcDone:
			grpcStopped = true
			if err != nil && runErr == nil {
				runErr = err
			}
		}
	}
	// Watches end (clients resume with their cursor elsewhere): a graceful
	// stop would wait for them until its grace ran out.
	rt.Watches.Drain()
	stopGRPC()
	if !grpcStopped {
		if err := <-grpcDone; err != nil && runErr == nil {
			runErr = err
		}
	}
	select {
	case <-loopsDone:
	case <-time.After(rt.cfg.ShutdownGrace):
		rt.Log.Warn("background work still running after the grace period; closing anyway", "grace", rt.cfg.ShutdownGrace)
	}
	flushCtx, cancel := context.WithTimeout(context.Background(), rt.cfg.ShutdownGrace)
	defer cancel()
	if rt.cfg.OutboxRelay {
		if _, err := rt.Relay.Drain(flushCtx); err != nil {
			rt.Log.Warn("final outbox flush failed; the next start publishes the rest", "err", err)
		}
	}
	rt.Close(flushCtx)
	rt.Log.Info("stopped")
	return runErr
}

// abort closes what a failed Start opened, with a bound of its own: the
// start context may be the one SIGTERM cancelled.
func (rt *Runtime) abort() {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	rt.Close(ctx)
}

// Close releases connections and flushes traces.
func (rt *Runtime) Close(ctx context.Context) {
	if rt.Server != nil {
		rt.Server.SetReady(false)
		if err := rt.Server.CloseHTTP(ctx); err != nil {
			rt.Log.Warn("closing the HTTP server", "err", err)
		}
	}
	if rt.NC != nil {
		_ = rt.NC.Drain()
	}
	if rt.Pool != nil {
		rt.Pool.Close()
	}
	for _, f := range rt.shutdown {
		_ = f(ctx)
	}
}

// Gateway serves the service's HTTP/JSON surface on its HTTP port: the
// google.api.http routes of its .proto (under /v1/) through register (the
// generated Register<Service>Handler), and its OpenAPI document (package
// openapi, generated from the same .proto) at GET /openapi.json. The gateway
// calls the service's own gRPC listener, so the guard, the request rules and
// the rate limit apply to HTTP as to gRPC (grpcserver.Server.Gateway). Call
// it after registering the gRPC services, before Run.
func (rt *Runtime) Gateway(ctx context.Context, register ...grpcserver.Registrar) error {
	doc, err := openapi.Document(rt.Service)
	if err != nil {
		return fmt.Errorf("app: %w", err)
	}
	if err := rt.Server.Gateway(ctx, doc, rt.gatewayCreds, register...); err != nil {
		return fmt.Errorf("app: %w", err)
	}
	return nil
}
