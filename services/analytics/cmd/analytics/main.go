// Command analytics runs Huifang's analytics service: it keeps daily
// rollups of every follow-up event and reports the figures the policies
// demand (coverage, timeliness, satisfaction, problems, agent scorecards,
// reports), checks them against their targets and publishes breaches.
package main

import (
	"context"
	"log/slog"
	"time"

	analyticsv1 "github.com/huifang/huifang/proto/huifang/analytics/v1"

	"github.com/huifang/huifang/pkg/app"
	"github.com/huifang/huifang/services/analytics/internal/alert"
	"github.com/huifang/huifang/services/analytics/internal/consumer"
	"github.com/huifang/huifang/services/analytics/internal/grpcapi"
	"github.com/huifang/huifang/services/analytics/internal/kpi"
	"github.com/huifang/huifang/services/analytics/internal/store"
	"github.com/huifang/huifang/services/analytics/migrations"
)

func main() { app.Main("analytics", run) }

type config struct {
	app.Base
	// CheckInterval is how often every tenant's figures are checked against their targets.
	CheckInterval time.Duration `env:"CHECK_INTERVAL" default:"5m"`
}

func run(ctx context.Context, log *slog.Logger) error {
	// Configuration.
	cfg := config{Base: app.Base{GRPCAddr: ":7005", HTTPAddr: ":8005"}}
	if err := app.LoadConfig(log, "analytics", &cfg); err != nil {
		return err
	}

	// Runtime: Postgres, NATS, outbox relay, gRPC server.
	rt, err := app.Start(ctx, log, "analytics", cfg.Base, migrations.FS)
	if err != nil {
		return err
	}
	st := &store.Store{Pool: rt.Pool}

	// The consumer of every event, run so that it can be rebuilt.
	c := consumer.New()
	c.Service, c.Pool, c.JS, c.Log, c.Relay = rt.Service, rt.Pool, rt.JS, rt.Log, rt.Relay
	runner := consumer.NewRunner(c)
	rt.Go("consumer-"+c.Durable, runner.Run)

	// Target checks.
	breaches := alert.NewBreachesCounter()
	rt.Metrics.MustRegister(breaches)
	checker := &alert.Checker{Calc: &kpi.Calc{Store: st}, Pool: rt.Pool, Log: log, Notify: rt.Relay.Notify, Interval: cfg.CheckInterval, Breaches: breaches}
	rt.Go("target-check", checker.Run)

	// API.
	analyticsv1.RegisterAnalyticsServiceServer(rt.Server.GRPC, grpcapi.New(st, checker, runner))
	return rt.Run(ctx)
}
