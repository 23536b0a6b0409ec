// Command analytics runs Huifang's analytics service: it rolls the ratings
// of logged follow-ups up into daily buckets and reports seed 003's
// satisfaction figures.
package main

import (
	"context"
	"log/slog"

	analyticsv1 "github.com/huifang/huifang/proto/huifang/analytics/v1"

	"github.com/huifang/huifang/pkg/app"
	"github.com/huifang/huifang/services/analytics/internal/consumer"
	"github.com/huifang/huifang/services/analytics/internal/grpcapi"
	"github.com/huifang/huifang/services/analytics/internal/store"
	"github.com/huifang/huifang/services/analytics/migrations"
)

func main() { app.Main("analytics", run) }

type config struct {
	app.Base
}

func run(ctx context.Context, log *slog.Logger) error {
	cfg := config{Base: app.Base{GRPCAddr: ":7005", HTTPAddr: ":8005"}}
	if err := app.LoadConfig(log, "analytics", &cfg); err != nil {
		return err
	}
	rt, err := app.Start(ctx, log, "analytics", cfg.Base, migrations.FS)
	if err != nil {
		return err
	}
	rt.Consume(consumer.VisitLogged())
	analyticsv1.RegisterAnalyticsServiceServer(rt.Server.GRPC, &grpcapi.Server{Store: &store.Store{Pool: rt.Pool}})
	return rt.Run(ctx)
}
