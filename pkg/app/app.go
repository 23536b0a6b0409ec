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
	"sync"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/huifang/huifang/pkg/config"
	"github.com/huifang/huifang/pkg/grpcserver"
	"github.com/huifang/huifang/pkg/inbox"
	"github.com/huifang/huifang/pkg/logging"
	"github.com/huifang/huifang/pkg/outbox"
	"github.com/huifang/huifang/pkg/postgres"
	"github.com/huifang/huifang/pkg/stream"
	"github.com/huifang/huifang/pkg/telemetry"
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
	GRPCAddr    string `env:"GRPC_ADDR"`
	HTTPAddr    string `env:"HTTP_ADDR"`
	LogLevel    string `env:"LOG_LEVEL" default:"info"`
	// StartTimeout is how long the service waits for Postgres and NATS at start.
	StartTimeout time.Duration `env:"START_TIMEOUT" default:"2m"`
	// ShutdownGrace is how long in-flight work may take after SIGTERM.
	ShutdownGrace time.Duration `env:"SHUTDOWN_GRACE" default:"10s"`
	// StreamReplicas is 1 on one NATS server, 3 in a cluster.
	StreamReplicas int `env:"STREAM_REPLICAS" default:"1"`
	// OutboxRelay can be switched off to hold events in the outbox (fault drills).
	OutboxRelay bool `env:"OUTBOX_RELAY" default:"true"`
}

// Main runs a service: it handles --version, builds the logger, cancels the
// context on SIGINT or SIGTERM, and exits non-zero when run fails.
func Main(service string, run func(ctx context.Context, log *slog.Logger) error) {
	showVersion := flag.Bool("version", false, "print the version and exit")
	flag.Parse()
	if *showVersion {
		fmt.Printf("huifang-%s %s\n", service, Version())
		return
	}
	log := logging.New(os.Stdout, service, os.Getenv("LOG_LEVEL"))
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, log); err != nil {
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

	cfg      Base
	shutdown []func(context.Context) error
	loops    []loop
}

type loop struct {
	name string
	fn   func(ctx context.Context) error
}

// Start connects everything: tracing, Postgres (schema = service, with the
// outbox, inbox and the service's own migrations), NATS with the streams,
// and builds the gRPC server. It waits for Postgres and NATS with backoff.
func Start(ctx context.Context, log *slog.Logger, service string, cfg Base, migrations fs.FS) (*Runtime, error) {
	rt := &Runtime{Service: service, Log: log, cfg: cfg}
	_, shutdownTracing, err := telemetry.Setup(ctx, service, version)
	if err != nil {
		return nil, err
	}
	rt.shutdown = append(rt.shutdown, shutdownTracing)

	startCtx, cancel := context.WithTimeout(ctx, cfg.StartTimeout)
	defer cancel()
	rt.Pool, err = postgres.Open(startCtx, log, cfg.DatabaseURL, service,
		outbox.Migrations(), inbox.Migrations(), postgres.Migrations{Set: service, FS: migrations})
	if err != nil {
		rt.Close(ctx)
		return nil, err
	}
	rt.NC, rt.JS, err = stream.Connect(startCtx, log, cfg.NATSURL, "huifang-"+service)
	if err != nil {
		rt.Close(ctx)
		return nil, err
	}
	if err := stream.Ensure(startCtx, rt.JS, stream.Config{Replicas: cfg.StreamReplicas}); err != nil {
		rt.Close(ctx)
		return nil, err
	}
	rt.Relay = outbox.NewRelay(rt.Pool, rt.JS, log, service)
	if cfg.OutboxRelay {
		rt.Go("outbox-relay", rt.Relay.Run)
	} else {
		log.Warn("outbox relay is off: events stay in the outbox until a service with the relay on starts")
	}
	rt.Server = grpcserver.New(log, cfg.GRPCAddr, cfg.HTTPAddr)
	rt.Metrics = rt.Server.Registry
	rt.Metrics.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "huifang_outbox_pending",
		Help: "Outbox rows not yet published to NATS.",
	}, func() float64 {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		n, err := outbox.Pending(ctx, rt.Pool)
		if err != nil {
			return -1
		}
		return float64(n)
	}))
	return rt, nil
}

// Go adds a background loop that runs from Run until shutdown.
func (rt *Runtime) Go(name string, fn func(ctx context.Context) error) {
	rt.loops = append(rt.loops, loop{name: name, fn: fn})
}

// Consume adds a durable inbox consumer, filling in the runtime's parts.
func (rt *Runtime) Consume(c *inbox.Consumer) {
	c.Service, c.Pool, c.JS, c.Log, c.Relay = rt.Service, rt.Pool, rt.JS, rt.Log, rt.Relay
	rt.Go("consumer-"+c.Durable, c.Run)
}

// Run serves until ctx ends, then shuts down in order: readiness off, gRPC
// drained, loops stopped (in-flight messages finish), outbox flushed,
// connections closed.
func (rt *Runtime) Run(ctx context.Context) error {
	loopCtx, stopLoops := context.WithCancel(context.WithoutCancel(ctx))
	var wg sync.WaitGroup
	errc := make(chan error, len(rt.loops)+1)
	for _, l := range rt.loops {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := l.fn(loopCtx); err != nil && !errors.Is(err, context.Canceled) {
				errc <- fmt.Errorf("%s: %w", l.name, err)
			}
		}()
	}
	serveCtx, stopServe := context.WithCancel(ctx)
	defer stopServe()
	serveDone := make(chan error, 1)
	go func() { serveDone <- rt.Server.Serve(serveCtx, rt.cfg.ShutdownGrace) }()
	rt.Server.SetReady(true)
	rt.Log.Info("started", "version", Version())

	var runErr error
	select {
	case <-ctx.Done():
		rt.Log.Info("shutting down")
	case runErr = <-errc:
		rt.Log.Error("background loop failed", "err", runErr)
	}
	rt.Server.SetReady(false)
	stopServe()
	if err := <-serveDone; err != nil && runErr == nil {
		runErr = err
	}
	stopLoops()
	wg.Wait()
	flushCtx, cancel := context.WithTimeout(context.Background(), rt.cfg.ShutdownGrace)
	defer cancel()
	if rt.cfg.OutboxRelay {
		if _, err := rt.Relay.RunOnce(flushCtx); err != nil {
			rt.Log.Warn("final outbox flush failed; the next start publishes the rest", "err", err)
		}
	}
	rt.Close(flushCtx)
	return runErr
}

// Close releases connections and flushes traces.
func (rt *Runtime) Close(ctx context.Context) {
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
