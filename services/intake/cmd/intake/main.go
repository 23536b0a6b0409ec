// Command intake runs Huifang's intake service: it takes completed services
// from upstream systems (NATS ingress and gRPC), keeps the customer archive
// and publishes ServiceCompleted.
package main

import (
	"context"
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/nats-io/nats.go/jetstream"

	intakev1 "github.com/huifang/huifang/proto/huifang/intake/v1"

	"github.com/huifang/huifang/pkg/app"
	"github.com/huifang/huifang/pkg/inbox"
	"github.com/huifang/huifang/pkg/stream"
	"github.com/huifang/huifang/services/intake/internal/grpcapi"
	"github.com/huifang/huifang/services/intake/internal/ingest"
	"github.com/huifang/huifang/services/intake/internal/store"
	"github.com/huifang/huifang/services/intake/migrations"
)

func main() { app.Main("intake", run) }

type config struct {
	app.Base
}

func run(ctx context.Context, log *slog.Logger) error {
	cfg := config{Base: app.Base{GRPCAddr: ":7001", HTTPAddr: ":8001"}}
	if err := app.LoadConfig(log, "intake", &cfg); err != nil {
		return err
	}
	rt, err := app.Start(ctx, log, "intake", cfg.Base, migrations.FS)
	if err != nil {
		return err
	}
	st := &store.Store{Pool: rt.Pool}
	rt.Consume(&inbox.Consumer{
		Durable:  "intake-ingress",
		Stream:   stream.IngressStream,
		Subjects: []string{stream.SubjectIngressServiceCompleted},
		Handle: func(ctx context.Context, tx pgx.Tx, msg jetstream.Msg) error {
			ev, err := ingest.Parse(msg.Headers().Get(stream.HeaderContentType), msg.Data(), time.Now())
			if err != nil {
				return err
			}
			_, err = store.Ingest(ctx, tx, ev)
			return err
		},
		Tenant: func(msg jetstream.Msg) string {
			if ev, err := ingest.Decode(msg.Headers().Get(stream.HeaderContentType), msg.Data()); err == nil {
				return ev.TenantId
			}
			return ""
		},
	})
	intakev1.RegisterIntakeServiceServer(rt.Server.GRPC, &grpcapi.Server{Store: st, Relay: rt.Relay, Now: time.Now})
	return rt.Run(ctx)
}
