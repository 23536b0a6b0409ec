// Command scheduler runs Huifang's scheduler: it plans follow-up visits by
// policy for every completed service and fires VisitDue when they fall due.
package main

import (
	"context"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	schedulerv1 "github.com/huifang/huifang/proto/huifang/scheduler/v1"

	"github.com/huifang/huifang/pkg/app"
	"github.com/huifang/huifang/pkg/loop"
	scheduler "github.com/huifang/huifang/services/scheduler/internal/app"
	"github.com/huifang/huifang/services/scheduler/internal/consumer"
	"github.com/huifang/huifang/services/scheduler/internal/grpcapi"
	"github.com/huifang/huifang/services/scheduler/internal/store"
	"github.com/huifang/huifang/services/scheduler/migrations"
)

func main() { app.Main("scheduler", run) }

type config struct {
	app.Base
	// FireInterval is how often due visits are looked for; a zero-offset visit fires within it.
	FireInterval time.Duration `env:"FIRE_INTERVAL" default:"250ms"`
	// FireBatch is how many due visits one transaction fires.
	FireBatch int `env:"FIRE_BATCH" default:"500"`
	// PlanWorkers is how many workers plan completed services at once
	// (the ServiceCompleted consumer; one customer's services always go to
	// the same worker, in order).
	PlanWorkers int `env:"PLAN_WORKERS" default:"4"`
}

func run(ctx context.Context, log *slog.Logger) error {
	// Configuration.
	cfg := config{Base: app.Base{GRPCAddr: ":7002", HTTPAddr: ":8002"}}
	if err := app.LoadConfig(log, "scheduler", &cfg); err != nil {
		return err
	}

	// Runtime: Postgres with the migrations, NATS, the outbox relay, the servers.
	rt, err := app.Start(ctx, log, "scheduler", cfg.Base, migrations.FS)
	if err != nil {
		return err
	}

	// The use cases.
	fireFailures := prometheus.NewCounter(prometheus.CounterOpts{
		Name: "huifang_scheduler_fire_failures_total",
		Help: "Visits whose firing failed for a reason of their own (marked failed; the rest of their batch went on).",
	})
	a := &scheduler.App{DB: rt.Pool, Relay: rt.Relay, Now: time.Now, Log: log, FireFailures: fireFailures}
	if err := a.EnsureBuiltins(ctx); err != nil {
		rt.Close(ctx)
		return err
	}

	// Consumers: each applies an event once, through its inbox or, where
	// every effect is keyed by a version, without (inbox.Consumer.Idempotent).
	for _, c := range consumer.New(a) {
		if c.Durable == consumer.DurableServiceCompleted {
			rt.Consume(c, app.Workers(max(1, cfg.PlanWorkers)))
			continue
		}
		rt.Consume(c)
	}

	// The firing loop: planned visits are durable timers; a visit planned
	// due at once wakes it after its consumer's commit.
	dueNow := loop.NewSignal()
	a.DueNow = dueNow.Notify
	rt.Loop(&loop.Loop{
		Name:  "fire-due-visits",
		Every: cfg.FireInterval,
		Wake:  dueNow,
		Batch: cfg.FireBatch,
		Round: func(ctx context.Context) (int, error) { return a.FireDue(ctx, cfg.FireBatch) },
		Done:  func(int) { rt.Relay.Notify() },
	})
	rt.Metrics.MustRegister(dueLag(a), fireFailures, failedVisits(a))

	// The API.
	rt.CustomerData.Source.Related = store.CustomerRows()
	schedulerv1.RegisterSchedulerServiceServer(rt.Server.GRPC, &grpcapi.Server{App: a})
	// The HTTP/JSON surface (/v1/..., GET /openapi.json) on the HTTP port.
	if err := rt.Gateway(ctx, schedulerv1.RegisterSchedulerServiceHandler); err != nil {
		rt.Close(ctx)
		return err
	}
	return rt.Run(ctx)
}

// dueLag exports huifang_scheduler_due_lag_seconds: how long the oldest due
// visit has waited to fire (-1 when it cannot be read).
func dueLag(a *scheduler.App) prometheus.Collector {
	return prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "huifang_scheduler_due_lag_seconds",
		Help: "How long the oldest due visit has waited to fire (0 when none waits).",
	}, func() float64 {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		lag, err := a.DueLag(ctx)
		if err != nil {
			return -1
		}
		return lag.Seconds()
	})
}

// failedVisits exports huifang_scheduler_failed_visits: how many visits
// failed to fire and wait for an operator (-1 when it cannot be read).
func failedVisits(a *scheduler.App) prometheus.Collector {
	return prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "huifang_scheduler_failed_visits",
		Help: "Visits that failed to fire and wait for an operator: retry (ReschedulePlannedVisit) or cancel them.",
	}, func() float64 {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		n, err := a.FailedVisits(ctx)
		if err != nil {
			return -1
		}
		return float64(n)
	})
}
