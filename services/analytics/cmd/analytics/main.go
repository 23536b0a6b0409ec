// Command analytics runs Huifang's analytics service: it keeps daily
// rollups of every follow-up event and reports the figures the policies
// demand (coverage, timeliness, satisfaction, problems, agent scorecards,
// reports), checks them against their targets and publishes breaches.
package main

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	analyticsv1 "github.com/huifang/huifang/proto/huifang/analytics/v1"

	"github.com/huifang/huifang/pkg/app"
	"github.com/huifang/huifang/pkg/loop"
	analytics "github.com/huifang/huifang/services/analytics/internal/app"
	"github.com/huifang/huifang/services/analytics/internal/consumer"
	"github.com/huifang/huifang/services/analytics/internal/grpcapi"
	"github.com/huifang/huifang/services/analytics/migrations"
)

func main() { app.Main("analytics", run) }

type config struct {
	app.Base
	// CheckInterval is how often every tenant's figures are checked against their targets.
	CheckInterval time.Duration `env:"CHECK_INTERVAL" default:"5m"`
	// LeaderLease is how long the consumer's lease holds without renewal:
	// a dead or cut-off leader is replaced within it. Renewed every third.
	LeaderLease time.Duration `env:"LEADER_LEASE" default:"15s"`
}

func run(ctx context.Context, log *slog.Logger) error {
	// Configuration.
	cfg := config{Base: app.Base{GRPCAddr: ":7005", HTTPAddr: ":8005"}}
	if err := app.LoadConfig(log, "analytics", &cfg); err != nil {
		return err
	}
	if cfg.LeaderLease < time.Second {
		return fmt.Errorf("config: LEADER_LEASE must be at least 1s (got %s): it is renewed every third of it", cfg.LeaderLease)
	}

	// Runtime: Postgres, NATS, outbox relay, gRPC server.
	rt, err := app.Start(ctx, log, "analytics", cfg.Base, migrations.FS)
	if err != nil {
		return err
	}

	// Use cases.
	a := &analytics.App{DB: rt.Pool, Relay: rt.Relay, Breaches: analytics.NewBreachesCounter()}
	rt.Metrics.MustRegister(a.Breaches)

	// The consumer of every event, on the replica holding its lease; its gate also rebuilds.
	gate := consumer.NewGate(a, rt.Pool, rt.JS, log)
	gate.Leader.Lease = cfg.LeaderLease
	gate.Refused = consumer.NewRebuildRefusedGauge()
	rt.Metrics.MustRegister(gate.Refused)
	a.Rebuilder = gate
	rt.Consume(consumer.New(a), app.Gated(gate))

	// Target checks.
	rt.Loop(&loop.Loop{Name: "target-check", Every: cfg.CheckInterval, Round: a.CheckAllTargets})

	// API.
	analyticsv1.RegisterAnalyticsServiceServer(rt.Server.GRPC, grpcapi.New(a))
	// The HTTP/JSON surface (/v1/..., GET /openapi.json) on the HTTP port.
	if err := rt.Gateway(ctx, analyticsv1.RegisterAnalyticsServiceHandler); err != nil {
		rt.Close(ctx)
		return err
	}
	return rt.Run(ctx)
}
