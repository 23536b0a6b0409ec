// Package consumer turns Huifang's events into rollup deltas, once per
// event: the deltas and the ledger entries are written in the same
// transaction as the event's inbox row. One durable consumer reads every
// subject analytics needs in stream order, so a replay from the start of the
// stream rebuilds the same rollups.
package consumer

import (
	"context"
	"fmt"

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
const Durable = "analytics-events"

// Subjects are the events analytics rolls up.
var Subjects = []string{
	stream.SubjectServiceCompleted,
	stream.SubjectVisitPlanned,
	stream.SubjectVisitDue,
	stream.SubjectVisitCancelled,
	stream.SubjectVisitAssigned,
	stream.SubjectVisitAttempted,
	stream.SubjectVisitUnreachable,
	stream.SubjectVisitLogged,
	stream.SubjectComplaintEscalated,
	stream.SubjectComplaintAcknowledged,
	stream.SubjectComplaintResolved,
	stream.SubjectComplaintReopened,
	stream.SubjectComplaintClosed,
	stream.SubjectReviewSubmitted,
}

// New returns the durable consumer; the runtime (or a test) fills in its
// service, pool, JetStream and logger.
func New() *inbox.Consumer {
	return &inbox.Consumer{
		Durable:  Durable,
		Stream:   stream.EventsStream,
		Subjects: Subjects,
		Handle:   Handle,
		Tenant: func(msg jetstream.Msg) string {
			if ev, err := decode(msg.Subject(), msg.Data()); err == nil {
				if t, ok := ev.(interface{ GetTenantId() string }); ok {
					return t.GetTenantId()
				}
			}
			return ""
		},
	}
}

// Handle applies one event within tx. An undecodable or malformed event is
// refused with an *invalid.Error, which dead-letters it.
func Handle(ctx context.Context, tx pgx.Tx, msg jetstream.Msg) error {
	ev, err := decode(msg.Subject(), msg.Data())
	if err != nil {
		return err
	}
	return Apply(ctx, tx, ev)
}

// Apply applies one decoded event within tx.
func Apply(ctx context.Context, tx pgx.Tx, ev proto.Message) error {
	switch e := ev.(type) {
	case *eventsv1.ServiceCompleted:
		return service(ctx, tx, e)
	case *eventsv1.VisitLogged:
		if err := rollup.CheckVisitLogged(e); err != nil {
			return err
		}
		v, err := visit(ctx, tx, e)
		if err != nil {
			return err
		}
		return store.Apply(ctx, tx, rollup.FromVisitLogged(e, v.ProductCategory))
	// By concrete type: events of one kind may carry the ids of another
	// (a complaint names its visit, a confirmation visit its complaint).
	case *eventsv1.ComplaintEscalated, *eventsv1.ComplaintAcknowledged, *eventsv1.ComplaintResolved, *eventsv1.ComplaintReopened, *eventsv1.ComplaintClosed:
		return complaint(ctx, tx, e.(rollup.ComplaintEvent))
	case *eventsv1.VisitPlanned, *eventsv1.VisitDue, *eventsv1.VisitCancelled, *eventsv1.VisitAssigned, *eventsv1.VisitAttempted, *eventsv1.VisitUnreachable:
		_, err := visit(ctx, tx, e.(rollup.VisitEvent))
		return err
	case *eventsv1.ReviewSubmitted:
		ds, err := rollup.FromReview(e)
		if err != nil {
			return err
		}
		return store.Apply(ctx, tx, ds)
	}
	return fmt.Errorf("consumer: no handler for %T", ev)
}

// visit moves a visit's ledger entry by one event and applies the change
// of its contribution. It returns the entry after the event.
func visit(ctx context.Context, tx pgx.Tx, ev rollup.VisitEvent) (rollup.Visit, error) {
	tenant, id, err := rollup.VisitRef(ev)
	if err != nil {
		return rollup.Visit{}, err
	}
	before, _, err := store.Visit(ctx, tx, tenant, id)
	if err != nil {
		return before, err
	}
	after := rollup.Apply(before, ev)
	if after.ProductCategory == "" {
		// The product comes with the service (seed 001: sales record the product).
		if after.ProductCategory, err = store.ServiceProduct(ctx, tx, tenant, after.ServiceID); err != nil {
			return after, err
		}
	}
	if err := store.Apply(ctx, tx, rollup.Diff(before.Contribution(), after.Contribution())); err != nil {
		return after, err
	}
	if err := serviceCoverage(ctx, tx, before, after); err != nil {
		return after, err
	}
	return after, store.SaveVisit(ctx, tx, after)
}

// serviceCoverage moves the visit within its service's coverage entry (or
// from one service to another, when its service became known) and applies
// the change of the services' contributions, to the counters and to the
// customer buckets (customer coverage). Entries are taken in key order.
func serviceCoverage(ctx context.Context, tx pgx.Tx, before, after rollup.Visit) error {
	var was, is []rollup.MemberDelta
	for _, k := range rollup.CoverageKeys(before, after) {
		old, err := store.ServiceCoverage(ctx, tx, after.Tenant, k)
		if err != nil {
			return err
		}
		cur := old.Move(before, after)
		if err := store.Apply(ctx, tx, rollup.Diff(old.Contribution(), cur.Contribution())); err != nil {
			return err
		}
		if err := store.SaveServiceCoverage(ctx, tx, cur); err != nil {
			return err
		}
		was = append(was, old.Members()...)
		is = append(is, cur.Members()...)
	}
	return store.ApplyMembers(ctx, tx, rollup.MemberDiff(was, is))
}

func complaint(ctx context.Context, tx pgx.Tx, ev rollup.ComplaintEvent) error {
	tenant, id, err := rollup.ComplaintRef(ev)
	if err != nil {
		return err
	}
	before, err := store.Complaint(ctx, tx, tenant, id)
	if err != nil {
		return err
	}
	after := rollup.ApplyComplaint(before, ev)
	if err := store.Apply(ctx, tx, rollup.Diff(before.Contribution(), after.Contribution())); err != nil {
		return err
	}
	return store.SaveComplaint(ctx, tx, after)
}

func service(ctx context.Context, tx pgx.Tx, ev *eventsv1.ServiceCompleted) error {
	if _, err := rollup.FromService(ev, false); err != nil {
		return err
	}
	tenant := ev.GetTenantId()
	if tenant == "" {
		tenant = rollup.DefaultTenant
	}
	at := rollup.Timestamp(ev.GetCompletedAt())
	prev, err := store.RecordService(ctx, tx, tenant, ev.GetServiceId(), ev.GetProduct().GetCategory(), ev.GetCustomer().GetId(), at)
	if err != nil {
		return err
	}
	ds, err := rollup.FromService(ev, rollup.WonBack(prev, at))
	if err != nil {
		return err
	}
	return store.Apply(ctx, tx, ds)
}

// decode reads an event in protobuf binary, as the outbox publishes it, by its subject.
func decode(subject string, data []byte) (proto.Message, error) {
	var ev proto.Message
	switch subject {
	case stream.SubjectServiceCompleted:
		ev = &eventsv1.ServiceCompleted{}
	case stream.SubjectVisitPlanned:
		ev = &eventsv1.VisitPlanned{}
	case stream.SubjectVisitDue:
		ev = &eventsv1.VisitDue{}
	case stream.SubjectVisitCancelled:
		ev = &eventsv1.VisitCancelled{}
	case stream.SubjectVisitAssigned:
		ev = &eventsv1.VisitAssigned{}
	case stream.SubjectVisitAttempted:
		ev = &eventsv1.VisitAttempted{}
	case stream.SubjectVisitUnreachable:
		ev = &eventsv1.VisitUnreachable{}
	case stream.SubjectVisitLogged:
		ev = &eventsv1.VisitLogged{}
	case stream.SubjectComplaintEscalated:
		ev = &eventsv1.ComplaintEscalated{}
	case stream.SubjectComplaintAcknowledged:
		ev = &eventsv1.ComplaintAcknowledged{}
	case stream.SubjectComplaintResolved:
		ev = &eventsv1.ComplaintResolved{}
	case stream.SubjectComplaintReopened:
		ev = &eventsv1.ComplaintReopened{}
	case stream.SubjectComplaintClosed:
		ev = &eventsv1.ComplaintClosed{}
	case stream.SubjectReviewSubmitted:
		ev = &eventsv1.ReviewSubmitted{}
	default:
		return nil, invalid.New("subject", "is not one analytics reads: "+subject)
	}
	if err := proto.Unmarshal(data, ev); err != nil {
		return nil, invalid.New("payload", fmt.Sprintf("must be a %s in protobuf: %v", ev.ProtoReflect().Descriptor().FullName(), err))
	}
	return ev, nil
}
