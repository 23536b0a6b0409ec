package consumer

import (
	"context"
	"maps"
	"slices"

	"github.com/jackc/pgx/v5"
	"google.golang.org/protobuf/proto"

	eventsv1 "github.com/huifang/huifang/proto/huifang/events/v1"

	"github.com/huifang/huifang/pkg/inbox"
	"github.com/huifang/huifang/pkg/stream"
	"github.com/huifang/huifang/services/intake/internal/app"
)

// LedgerDurable is the durable name of the contact ledger's consumer.
const LedgerDurable = "intake-ledger"

// LedgerEvents are the events the contact ledger keeps (GetCustomerTimeline),
// by subject: every service's events about a customer's contacts.
func LedgerEvents() inbox.Events {
	return inbox.Events{
		stream.SubjectServiceCompleted:      func() proto.Message { return &eventsv1.ServiceCompleted{} },
		stream.SubjectVisitPlanned:          func() proto.Message { return &eventsv1.VisitPlanned{} },
		stream.SubjectVisitDue:              func() proto.Message { return &eventsv1.VisitDue{} },
		stream.SubjectVisitAssigned:         func() proto.Message { return &eventsv1.VisitAssigned{} },
		stream.SubjectVisitAttempted:        func() proto.Message { return &eventsv1.VisitAttempted{} },
		stream.SubjectMessageSent:           func() proto.Message { return &eventsv1.MessageSent{} },
		stream.SubjectAppointmentChanged:    func() proto.Message { return &eventsv1.AppointmentChanged{} },
		stream.SubjectVisitLogged:           func() proto.Message { return &eventsv1.VisitLogged{} },
		stream.SubjectVisitUnreachable:      func() proto.Message { return &eventsv1.VisitUnreachable{} },
		stream.SubjectVisitCancelled:        func() proto.Message { return &eventsv1.VisitCancelled{} },
		stream.SubjectComplaintEscalated:    func() proto.Message { return &eventsv1.ComplaintEscalated{} },
		stream.SubjectComplaintAcknowledged: func() proto.Message { return &eventsv1.ComplaintAcknowledged{} },
		stream.SubjectComplaintResolved:     func() proto.Message { return &eventsv1.ComplaintResolved{} },
		stream.SubjectComplaintReopened:     func() proto.Message { return &eventsv1.ComplaintReopened{} },
		stream.SubjectComplaintClosed:       func() proto.Message { return &eventsv1.ComplaintClosed{} },
		stream.SubjectContactOptedOut:       func() proto.Message { return &eventsv1.ContactOptedOut{} },
		stream.SubjectFollowUpRequested:     func() proto.Message { return &eventsv1.FollowUpRequested{} },
		stream.SubjectCustomerErased:        func() proto.Message { return &eventsv1.CustomerUpdated{} },
	}
}

// LedgerSubjects are the subjects of LedgerEvents, sorted.
func LedgerSubjects() []string { return slices.Sorted(maps.Keys(LedgerEvents())) }

// Ledger is the consumer of the contact ledger (durable intake-ledger): one
// durable over the subjects of LedgerEvents, each event decoded once and
// added by app.ApplyLedgerTx in the consumer's transaction (idempotent by
// event id: the consumer keeps no inbox entries). To be registered once with the runtime (app.Runtime.Consume).
func Ledger(a *app.App) *inbox.Consumer {
	c := inbox.OfEvents(LedgerDurable, LedgerEvents(), func(ctx context.Context, tx pgx.Tx, ev proto.Message) error {
		return a.ApplyLedgerTx(ctx, tx, ev)
	})
	c.Service = app.Service
	// Entries are keyed by their event's id and links by what they link,
	// both inserted ON CONFLICT DO NOTHING, and attaching sets a customer
	// id: a message applied twice changes nothing, so no inbox entries.
	c.Idempotent = true
	return c
}
