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
	"github.com/huifang/huifang/pkg/inbox"
	"github.com/huifang/huifang/pkg/stream"
	"github.com/huifang/huifang/services/scheduler/internal/grpcapi"
	"github.com/huifang/huifang/services/scheduler/internal/planner"
	"github.com/huifang/huifang/services/scheduler/internal/store"
	"github.com/huifang/huifang/services/scheduler/internal/timer"
	"github.com/huifang/huifang/services/scheduler/migrations"
)

func main() { app.Main("scheduler", run) }

type config struct {
	app.Base
	// FireInterval is how often due visits are looked for; a zero-offset visit fires within it.
	FireInterval time.Duration `env:"FIRE_INTERVAL" default:"250ms"`
	// FireBatch is how many due visits one transaction fires.
	FireBatch int `env:"FIRE_BATCH" default:"500"`
}

func run(ctx context.Context, log *slog.Logger) error {
	cfg := config{Base: app.Base{GRPCAddr: ":7002", HTTPAddr: ":8002"}}
	if err := app.LoadConfig(log, "scheduler", &cfg); err != nil {
		return err
	}
	rt, err := app.Start(ctx, log, "scheduler", cfg.Base, migrations.FS)
	if err != nil {
		return err
	}
	st := &store.Store{Pool: rt.Pool}
	if err := st.EnsureBuiltins(ctx); err != nil {
		rt.Close(ctx)
		return err
	}

	// Consumers: every one idempotent through the inbox.
	h := planner.Handlers{Now: time.Now}
	for _, c := range []struct {
		durable, subject string
		handle           inbox.Handler
	}{
		{"scheduler-service-completed", stream.SubjectServiceCompleted, planner.HandleServiceCompleted},
		{"scheduler-customer-updated", stream.SubjectCustomerUpdated, h.CustomerUpdated},
		{"scheduler-contact-opted-out", stream.SubjectContactOptedOut, h.ContactOptedOut},
		{"scheduler-complaint-resolved", stream.SubjectComplaintResolved, h.ComplaintResolved},
		{"scheduler-followup-requested", stream.SubjectFollowUpRequested, h.FollowUpRequested},
		{"scheduler-visit-logged", stream.SubjectVisitLogged, h.VisitLogged},
		{"scheduler-visit-unreachable", stream.SubjectVisitUnreachable, h.VisitUnreachable},
	} {
		rt.Consume(&inbox.Consumer{Durable: c.durable, Stream: stream.EventsStream, Subjects: []string{c.subject}, Handle: c.handle})
	}

	// The firing loop: durable timers.
	loop := &timer.Loop{Store: st, Now: time.Now, Log: log, Interval: cfg.FireInterval, Batch: cfg.FireBatch, Fired: rt.Relay.Notify}
	rt.Go("fire-due-visits", loop.Run)
	rt.Metrics.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "huifang_scheduler_due_lag_seconds",
		Help: "How long the oldest due visit has waited to fire (0 when none waits).",
	}, func() float64 {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		lag, err := st.DueLag(ctx, time.Now())
		if err != nil {
			return -1
		}
		return lag.Seconds()
	}))

	schedulerv1.RegisterSchedulerServiceServer(rt.Server.GRPC, &grpcapi.Server{Store: st, Now: time.Now})
	return rt.Run(ctx)
}
