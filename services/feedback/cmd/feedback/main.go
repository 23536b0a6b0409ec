// Command feedback runs Huifang's feedback service: it learns visits from
// VisitDue, records what customers answered, opens complaints for their
// problems and publishes VisitLogged and ComplaintEscalated.
package main

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	feedbackv1 "github.com/huifang/huifang/proto/huifang/feedback/v1"

	"github.com/huifang/huifang/pkg/app"
	"github.com/huifang/huifang/services/feedback/internal/consumer"
	"github.com/huifang/huifang/services/feedback/internal/grpcapi"
	"github.com/huifang/huifang/services/feedback/internal/store"
	"github.com/huifang/huifang/services/feedback/migrations"
)

func main() { app.Main("feedback", run) }

type config struct {
	app.Base
	// ComplaintDeadline is how long the owning department has to answer a
	// complaint (seed 003: 48 hours).
	ComplaintDeadline time.Duration `env:"COMPLAINT_DEADLINE" default:"48h"`
}

func run(ctx context.Context, log *slog.Logger) error {
	cfg := config{Base: app.Base{GRPCAddr: ":7004", HTTPAddr: ":8004"}}
	if err := app.LoadConfig(log, "feedback", &cfg); err != nil {
		return err
	}
	if cfg.ComplaintDeadline <= 0 {
		return fmt.Errorf("COMPLAINT_DEADLINE must be positive, got %s", cfg.ComplaintDeadline)
	}
	rt, err := app.Start(ctx, log, "feedback", cfg.Base, migrations.FS)
	if err != nil {
		return err
	}
	rt.Consume(consumer.VisitDue())
	feedbackv1.RegisterFeedbackServiceServer(rt.Server.GRPC, &grpcapi.Server{
		Store:             &store.Store{Pool: rt.Pool},
		Relay:             rt.Relay,
		Now:               time.Now,
		ComplaintDeadline: cfg.ComplaintDeadline,
	})
	return rt.Run(ctx)
}
