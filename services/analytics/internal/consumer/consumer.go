// Package consumer is analytics' event adapter: one durable consumer
// (analytics-events) reads every subject analytics rolls up, in stream
// order, decodes each event once and has app.ApplyEventTx apply it inside
// the inbox transaction, so a replay from the start of the stream rebuilds
// the same rollups. It also holds the Gate the runtime runs it behind: the
// lease (one replica consumes at a time, its writes fenced) and the rebuild.
package consumer

import (
	"context"
	"maps"
	"slices"

	"github.com/jackc/pgx/v5"
	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/protobuf/proto"

	eventsv1 "github.com/huifang/huifang/proto/huifang/events/v1"

	"github.com/huifang/huifang/pkg/inbox"
	"github.com/huifang/huifang/pkg/stream"
	"github.com/huifang/huifang/services/analytics/internal/app"
)

// Durable is the consumer's durable name and its key in the inbox.
const Durable = "analytics-events"

// Events are the events analytics rolls up, by subject.
var Events = inbox.Events{
	stream.SubjectServiceCompleted:            func() proto.Message { return &eventsv1.ServiceCompleted{} },
	stream.SubjectVisitPlanned:                func() proto.Message { return &eventsv1.VisitPlanned{} },
	stream.SubjectVisitDue:                    func() proto.Message { return &eventsv1.VisitDue{} },
	stream.SubjectVisitCancelled:              func() proto.Message { return &eventsv1.VisitCancelled{} },
	stream.SubjectVisitAssigned:               func() proto.Message { return &eventsv1.VisitAssigned{} },
	stream.SubjectVisitAttempted:              func() proto.Message { return &eventsv1.VisitAttempted{} },
	stream.SubjectVisitUnreachable:            func() proto.Message { return &eventsv1.VisitUnreachable{} },
	stream.SubjectVisitLogged:                 func() proto.Message { return &eventsv1.VisitLogged{} },
	stream.SubjectComplaintEscalated:          func() proto.Message { return &eventsv1.ComplaintEscalated{} },
	stream.SubjectComplaintAcknowledged:       func() proto.Message { return &eventsv1.ComplaintAcknowledged{} },
	stream.SubjectComplaintResolved:           func() proto.Message { return &eventsv1.ComplaintResolved{} },
	stream.SubjectComplaintReopened:           func() proto.Message { return &eventsv1.ComplaintReopened{} },
	stream.SubjectComplaintClosed:             func() proto.Message { return &eventsv1.ComplaintClosed{} },
	stream.SubjectReviewSubmitted:             func() proto.Message { return &eventsv1.ReviewSubmitted{} },
	stream.SubjectImprovementPlanSet:          func() proto.Message { return &eventsv1.ImprovementPlanSet{} },
	stream.SubjectImprovementMeasureCompleted: func() proto.Message { return &eventsv1.ImprovementMeasureCompleted{} },
	stream.SubjectCustomerErased:              func() proto.Message { return &eventsv1.CustomerUpdated{} },
}

// Subjects are the subjects of Events, sorted.
var Subjects = slices.Sorted(maps.Keys(Events))

// Keyed tells whether the events of subject keep no inbox row: every
// ingested event brings one of each of these, and their effects are keyed
// by the event (app/keyed.go: the entry they move keeps their id, or they
// are claimed in the inbox when it cannot).
func Keyed(subject string) bool {
	switch subject {
	case stream.SubjectServiceCompleted, stream.SubjectVisitPlanned, stream.SubjectVisitDue:
		return true
	}
	return false
}

// New returns the durable consumer of Events: each event goes to
// a.ApplyEventTx in the inbox's transaction; one that does not decode, or
// that the use case refuses, is dead-lettered. A batch locks and reads the
// ledger entries its events move at once, and writes them at once before
// its commit (app.PrepareEvents). The events of the Keyed subjects keep no
// inbox row. The runtime (rt.Consume) or a test fills
// in its service, pool, JetStream and logger. Every transaction it opens, a
// dead letter's included, is fenced by the leader's lease (a.Fence).
func New(a *app.App) *inbox.Consumer {
	c := inbox.OfEvents(Durable, Events, func(ctx context.Context, tx pgx.Tx, ev proto.Message) error {
		return a.ApplyEventTx(app.Fenced(ctx), tx, ev) // c.Fence fenced tx
	})
	c.Prepare = func(ctx context.Context, tx pgx.Tx, msgs []jetstream.Msg) (context.Context, error) {
		evs := make([]proto.Message, 0, len(msgs))
		for _, m := range msgs {
			if ev, err := Events.Decode(m.Subject(), m.Data()); err == nil {
				evs = append(evs, ev)
			}
		}
		return a.PrepareEvents(ctx, tx, evs)
	}
	c.Fence = a.Fence
	c.Keyed = func(msg jetstream.Msg) bool { return Keyed(msg.Subject()) }
	return c
}
