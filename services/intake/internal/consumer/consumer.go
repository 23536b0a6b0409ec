// Package consumer is intake's NATS adapter: the ingress consumer that
// decodes each message on huifang.ingress.service.completed and calls the
// app's IngestServiceTx inside the inbox's transaction.
package consumer

import (
	"context"

	"github.com/jackc/pgx/v5"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/huifang/huifang/pkg/inbox"
	"github.com/huifang/huifang/pkg/stream"
	"github.com/huifang/huifang/pkg/tenant"
	"github.com/huifang/huifang/services/intake/internal/app"
	"github.com/huifang/huifang/services/intake/internal/ingest"
)

// IngressDurable is the durable name of the ingress consumer.
const IngressDurable = "intake-ingress"

// Ingress is the consumer of the NATS ingress (durable intake-ingress), to
// be registered once with the runtime (app.Runtime.Consume, with
// app.Workers for INGRESS_WORKERS handlers at once).
// Upstream systems send JSON or protobuf, told apart by Content-Type (a
// payload without one that starts with '{' is JSON), so it reads the
// message itself rather than through inbox.Of. A payload that does not
// decode or an event that breaks a rule is dead-lettered by the inbox:
// recorded under the tenant it names when that can be read, its payload
// sealed at rest with the app's sealer.
func Ingress(a *app.App) *inbox.Consumer {
	return &inbox.Consumer{
		Service:  app.Service,
		Durable:  IngressDurable,
		Stream:   stream.IngressStream,
		Subjects: []string{stream.SubjectIngressServiceCompleted},
		Handle: func(ctx context.Context, tx pgx.Tx, msg jetstream.Msg) error {
			ev, err := ingest.Decode(msg.Headers().Get(stream.HeaderContentType), msg.Data())
			if err != nil {
				return err
			}
			_, err = a.IngestServiceTx(ctx, tx, app.IngestService{Event: ev})
			return err
		},
		Tenant: func(msg jetstream.Msg) string {
			ev, err := ingest.Decode(msg.Headers().Get(stream.HeaderContentType), msg.Data())
			if err != nil {
				return ""
			}
			if t := tenant.Or(ev.GetTenantId()); tenant.Valid(t) {
				return t
			}
			return ""
		},
		Seal: a.Seal,
	}
}
