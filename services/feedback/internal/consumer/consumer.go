// Package consumer holds feedback's JetStream handlers: it learns the visits
// that fell due from VisitDue, so that records can be logged against them.
package consumer

import (
	"context"

	"github.com/jackc/pgx/v5"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/huifang/huifang/pkg/inbox"
	"github.com/huifang/huifang/pkg/stream"
	"github.com/huifang/huifang/services/feedback/internal/store"
	"github.com/huifang/huifang/services/feedback/internal/visit"
)

// VisitDueDurable is the durable name of the VisitDue consumer.
const VisitDueDurable = "feedback-visit-due"

// VisitDue returns the inbox consumer that stores the context of each visit
// that fell due. Undecodable events and events without a visit id are
// dead-lettered. The runtime fills in the pool, JetStream and logger.
func VisitDue() *inbox.Consumer {
	return &inbox.Consumer{
		Durable:  VisitDueDurable,
		Stream:   stream.EventsStream,
		Subjects: []string{stream.SubjectVisitDue},
		Handle:   HandleVisitDue,
		Tenant:   tenant,
	}
}

// HandleVisitDue stores the visit a VisitDue tells of within tx.
func HandleVisitDue(ctx context.Context, tx pgx.Tx, msg jetstream.Msg) error {
	ev, err := visit.Decode(msg.Data())
	if err != nil {
		return err
	}
	v, err := visit.FromDue(ev)
	if err != nil {
		return err
	}
	return store.SaveVisit(ctx, tx, v)
}

func tenant(msg jetstream.Msg) string {
	if ev, err := visit.Decode(msg.Data()); err == nil {
		return visit.Tenant(ev.GetTenantId())
	}
	return ""
}
