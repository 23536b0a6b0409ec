// Package consumer turns VisitLogged events into satisfaction votes, once
// per event: the votes are added in the same transaction as the event's
// inbox row.
package consumer

import (
	"context"

	"github.com/jackc/pgx/v5"
	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/protobuf/proto"

	eventsv1 "github.com/huifang/huifang/proto/huifang/events/v1"

	"github.com/huifang/huifang/pkg/inbox"
	"github.com/huifang/huifang/pkg/invalid"
	"github.com/huifang/huifang/pkg/stream"
	"github.com/huifang/huifang/services/analytics/internal/rollup"
	"github.com/huifang/huifang/services/analytics/internal/store"
)

// Durable is the consumer's durable name and its key in the inbox.
const Durable = "analytics-visit-logged"

// VisitLogged returns the durable consumer of VisitLogged events; the
// runtime (or a test) fills in its service, pool, JetStream and logger.
func VisitLogged() *inbox.Consumer {
	return &inbox.Consumer{
		Durable:  Durable,
		Stream:   stream.EventsStream,
		Subjects: []string{stream.SubjectVisitLogged},
		Handle:   Handle,
		Tenant: func(msg jetstream.Msg) string {
			if ev, err := Decode(msg.Data()); err == nil {
				return ev.GetTenantId()
			}
			return ""
		},
	}
}

// Handle adds the votes of one VisitLogged within tx. An undecodable or
// malformed event is refused with an *invalid.Error, which dead-letters it.
func Handle(ctx context.Context, tx pgx.Tx, msg jetstream.Msg) error {
	ev, err := Decode(msg.Data())
	if err != nil {
		return err
	}
	incs, err := rollup.FromVisit(ev)
	if err != nil {
		return err
	}
	return store.Add(ctx, tx, incs)
}

// Decode reads a VisitLogged in protobuf binary, as the outbox publishes it.
func Decode(data []byte) (*eventsv1.VisitLogged, error) {
	ev := &eventsv1.VisitLogged{}
	if err := proto.Unmarshal(data, ev); err != nil {
		return nil, invalid.New("payload", "must be a huifang.events.v1.VisitLogged in protobuf: "+err.Error())
	}
	return ev, nil
}
