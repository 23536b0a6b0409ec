// Command dispatch runs Huifang's dispatch service: it turns due visits
// into tasks and hands them to call-center agents, most urgent first.
package main

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	dispatchv1 "github.com/huifang/huifang/proto/huifang/dispatch/v1"

	"github.com/huifang/huifang/pkg/app"
	"github.com/huifang/huifang/services/dispatch/internal/consumer"
	"github.com/huifang/huifang/services/dispatch/internal/grpcapi"
	"github.com/huifang/huifang/services/dispatch/internal/store"
	"github.com/huifang/huifang/services/dispatch/migrations"
)

func main() { app.Main("dispatch", run) }

type config struct {
	app.Base
	// Lease is how long a claimed task stays with its agent before it goes
	// back to the queue.
	Lease time.Duration `env:"LEASE" default:"15m"`
}

func run(ctx context.Context, log *slog.Logger) error {
	cfg := config{Base: app.Base{GRPCAddr: ":7003", HTTPAddr: ":8003"}}
	if err := app.LoadConfig(log, "dispatch", &cfg); err != nil {
		return err
	}
	if cfg.Lease <= 0 {
		return fmt.Errorf("config: LEASE must be positive, got %s", cfg.Lease)
	}
	rt, err := app.Start(ctx, log, "dispatch", cfg.Base, migrations.FS)
	if err != nil {
		return err
	}
	visitDue := &consumer.VisitDue{Now: time.Now}
	rt.Consume(visitDue.Consumer())
	api := &grpcapi.Server{Store: &store.Store{Pool: rt.Pool}, Relay: rt.Relay, Now: time.Now, Lease: cfg.Lease}
	dispatchv1.RegisterDispatchServiceServer(rt.Server.GRPC, api)
	return rt.Run(ctx)
}
