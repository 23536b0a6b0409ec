// Package consumer holds feedback's JetStream handlers: it learns the visits
// that fell due from VisitDue, so that records can be logged against them,
// and who each visit is assigned to from VisitAssigned, so that only that
// agent logs it.
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

// Durable names of the consumers.
const (
	VisitDueDurable      = "feedback-visit-due"
	VisitAssignedDurable = "feedback-visit-assigned"
)

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

// VisitAssigned returns the inbox consumer that records the agent each
// visit is assigned to (dispatch publishes VisitAssigned when an agent
// claims the visit's task and when a leader reassigns it). Undecodable
// events and events without a visit, an agent or a time are dead-lettered.
func VisitAssigned() *inbox.Consumer {
	return &inbox.Consumer{
		Durable:  VisitAssignedDurable,
		Stream:   stream.EventsStream,
		Subjects: []string{stream.SubjectVisitAssigned},
		Handle:   HandleVisitAssigned,
		Tenant:   assignedTenant,
	}
}

// HandleVisitAssigned stores the assignment a VisitAssigned tells of within tx.
func HandleVisitAssigned(ctx context.Context, tx pgx.Tx, msg jetstream.Msg) error {
	ev, err := visit.DecodeAssigned(msg.Data())
	if err != nil {
		return err
	}
	id := ev.GetEventId()
	if id == "" {
		id = inbox.EventID(msg)
	}
	a, err := visit.FromAssigned(ev, id)
	if err != nil {
		return err
	}
	return store.SaveAssignment(ctx, tx, a)
}

func assignedTenant(msg jetstream.Msg) string {
	if ev, err := visit.DecodeAssigned(msg.Data()); err == nil {
		return visit.Tenant(ev.GetTenantId())
	}
	return ""
}
