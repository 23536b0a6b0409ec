// Package consumer is intake's NATS adapter: the ingress consumer that
// decodes each message on huifang.ingress.service.completed and calls the
// app's IngestServiceTx inside the inbox's transaction.
package consumer

import (
	"context"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/nats-io/nats.go/jetstream"

	eventsv1 "github.com/huifang/huifang/proto/huifang/events/v1"

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
// message itself rather than through inbox.Of. A payload larger than the
// app's limit (MAX_EVENT_BYTES) is refused before it is decoded. A payload
// that does not decode or an event that breaks a rule is dead-lettered by
// the inbox: recorded under the tenant it names when that can be read, its
// payload sealed at rest with the app's sealer.
//
// The inbox is keyed by what names the event upstream (ID): two source
// systems or tenants that use the same Nats-Msg-Id are two events, and a
// resend of one event under another Nats-Msg-Id (or re-encoded) is one.
// That key is also the unique key of the service the event stores, which
// says the ingress stored it: the consumer writes no inbox row for such an
// event (Keyed), and its redelivery finds the service in the batch's read of
// stored services, before the event is checked, as it found its inbox row.
func Ingress(a *app.App) *inbox.Consumer {
	dec := &decodes{}
	return &inbox.Consumer{
		Service:  app.Service,
		Durable:  IngressDurable,
		Stream:   stream.IngressStream,
		Subjects: []string{stream.SubjectIngressServiceCompleted},
		// What upstream sent holds clear contacts: once stored (sealed) or
		// refused (sealed in rejected_events), it leaves the stream.
		Forget: true,
		Handle: func(ctx context.Context, tx pgx.Tx, msg jetstream.Msg) error {
			if err := ingest.CheckSize(len(msg.Data()), a.EventLimit()); err != nil {
				return err
			}
			ev, unknown, err := dec.take(msg)
			if err != nil {
				return err
			}
			in := app.IngestService{Event: ev, Unknown: unknown}
			if ingest.SourceKey(ev) != "" {
				in.Ingress = IngressDurable // Keyed
			}
			_, err = a.IngestServiceTx(ctx, tx, in)
			return err
		},
		// An event that names its source is stored as a service keyed by
		// it, which a redelivery finds: such messages keep no inbox row (a
		// duplicate that stores no service claims one, app.IngestService's
		// Ingress). The others are refused, and keep their entries as any.
		Keyed: func(msg jetstream.Msg) bool {
			ev := dec.event(a, msg)
			return ev != nil && ingest.SourceKey(ev) != ""
		},
		// A batch reads its events' services, customers and figures at
		// once, and writes what they changed at once (app.PrepareIngest).
		Prepare: func(ctx context.Context, tx pgx.Tx, msgs []jetstream.Msg) (context.Context, error) {
			evs := make([]*eventsv1.ServiceCompleted, 0, len(msgs))
			ids := make([]string, 0, len(msgs))
			for _, m := range msgs {
				if ev := dec.event(a, m); ev != nil {
					evs = append(evs, ev)
					ids = append(ids, ingressID(ev))
				}
			}
			return a.PrepareIngress(ctx, tx, IngressDurable, evs, ids)
		},
		ID: func(msg jetstream.Msg) string {
			ev := dec.event(a, msg)
			if ev == nil {
				return "" // the inbox's default: Nats-Msg-Id, else a hash of the payload
			}
			return ingressID(ev)
		},
		// The customer an event merges into is locked by its handler:
		// with several handlers, one customer's events go to one of them.
		Key: func(msg jetstream.Msg) string {
			ev := dec.event(a, msg)
			if ev == nil {
				return ""
			}
			return tenant.Or(ev.GetTenantId()) + "/" + strings.TrimSpace(ev.GetCustomer().GetExternalId())
		},
		Tenant: func(msg jetstream.Msg) string {
			var t string
			if ev := dec.event(a, msg); ev != nil {
				t = ev.GetTenantId()
			} else {
				// Too large to decode, or not of the shape: read only the tenant.
				t = ingest.PeekTenant(msg.Headers().Get(stream.HeaderContentType), msg.Data())
			}
			if t = tenant.Or(t); tenant.Valid(t) {
				return t
			}
			return ""
		},
		Seal: a.Seal,
	}
}

// IngressKeyPrefix starts the inbox key of an ingress event that names its
// source: "ingress:<tenant>/<source_system>/<source_event_id>" (ingest.SourceKey).
const IngressKeyPrefix = "ingress:"

// ingressID is the inbox key of an ingress event that names its source, ""
// for one that does not.
func ingressID(ev *eventsv1.ServiceCompleted) string {
	if key := ingest.SourceKey(ev); key != "" {
		return IngressKeyPrefix + key
	}
	return ""
}

// event reads the event a message carries, to read only; nil when it is
// larger than the limit (it is not decoded) or does not decode.
func (d *decodes) event(a *app.App, msg jetstream.Msg) *eventsv1.ServiceCompleted {
	if len(msg.Data()) > a.EventLimit() {
		return nil
	}
	return d.get(msg).ev
}
