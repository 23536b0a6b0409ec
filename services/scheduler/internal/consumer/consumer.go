// Package consumer turns the events the scheduler reads into its use
// cases: each consumer decodes its event (pkg/inbox), checks the fields the
// use case needs (a bad event is dead-lettered with the field named) and
// runs one command of package app inside the inbox's transaction.
package consumer

import (
	"context"
	"errors"

	"github.com/jackc/pgx/v5"
	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/protobuf/proto"

	eventsv1 "github.com/huifang/huifang/proto/huifang/events/v1"

	"github.com/huifang/huifang/pkg/inbox"
	"github.com/huifang/huifang/pkg/invalid"
	"github.com/huifang/huifang/pkg/stream"
	"github.com/huifang/huifang/services/scheduler/internal/app"
	"github.com/huifang/huifang/services/scheduler/internal/store"
)

// Durable names of the consumers.
const (
	DurableServiceCompleted  = "scheduler-service-completed"
	DurableCustomerUpdated   = "scheduler-customer-updated"
	DurableContactOptedOut   = "scheduler-contact-opted-out"
	DurableComplaintResolved = "scheduler-complaint-resolved"
	DurableFollowUpRequested = "scheduler-followup-requested"
	DurableVisitLogged       = "scheduler-visit-logged"
	DurableVisitUnreachable  = "scheduler-visit-unreachable"
)

// planningBatch is the inbox.Memo key of a planning batch's app.Batch.
type planningBatch struct{}

// batchCompleted reads the completed services of a batch's messages, those
// that can be read.
func batchCompleted(msgs []jetstream.Msg) []app.Completed {
	ins := make([]app.Completed, 0, len(msgs))
	for _, m := range msgs {
		var ev eventsv1.ServiceCompleted
		if proto.Unmarshal(m.Data(), &ev) != nil {
			continue
		}
		if in, err := completed(&ev); err == nil {
			ins = append(ins, in)
		}
	}
	return ins
}

// erasedInBatch is the inbox.Memo key of the customers a batch of
// CustomerUpdated erases.
type erasedInBatch struct{}

// batchErased returns the customers (tenant/customer) that the batch's
// CustomerUpdated erase.
func batchErased(msgs []jetstream.Msg) map[string]bool {
	out := map[string]bool{}
	for _, m := range msgs {
		var ev eventsv1.CustomerUpdated
		if proto.Unmarshal(m.Data(), &ev) == nil && ev.GetErased() {
			out[ev.GetTenantId()+"/"+ev.GetCustomer().GetId()] = true
		}
	}
	return out
}

// New returns the scheduler's consumers; the runtime (rt.Consume) or a test
// fills in the pool, JetStream, logger and relay.
func New(a *app.App) []*inbox.Consumer {
	planning := inbox.Of(DurableServiceCompleted, stream.SubjectServiceCompleted, func(ctx context.Context, tx pgx.Tx, ev *eventsv1.ServiceCompleted) error {
		in, err := completed(ev)
		if err != nil {
			return err
		}
		// What planning reads of the batch's customers, it reads once.
		b, err := inbox.Memo(ctx, planningBatch{}, func() (*app.Batch, error) {
			return a.Prepare(ctx, tx, batchCompleted(inbox.Batch(ctx)))
		})
		if err != nil {
			return err
		}
		_, err = a.PlanServiceTx(app.WithBatch(ctx, b), tx, in)
		return err
	})
	// A completed service's record keeps the id of the event that
	// recorded it: that event heard again, at once in another
	// transaction or after later ones, finds it and changes nothing;
	// another event of a recorded service is claimed in the inbox
	// (app.PlanServiceTx). So planning keeps no inbox entry of its own.
	planning.Idempotent = true
	// Planning locks the customer's pending visits: with several workers,
	// one customer's services go to one of them, in order.
	planning.Key = func(msg jetstream.Msg) string {
		var ev eventsv1.ServiceCompleted
		if err := proto.Unmarshal(msg.Data(), &ev); err != nil {
			return ""
		}
		return ev.GetTenantId() + "/" + ev.GetCustomer().GetId()
	}
	updated := inbox.Of(DurableCustomerUpdated, stream.SubjectCustomerUpdated, func(ctx context.Context, tx pgx.Tx, ev *eventsv1.CustomerUpdated) error {
		in, err := customerUpdated(ev)
		if err != nil {
			return err
		}
		if in.Erased {
			// An erasure opts the customer out of every channel and
			// cancels its pending visits whatever the versions: once.
			if first, err := inbox.Claim(ctx, tx); err != nil || !first {
				return err
			}
		}
		// A batch's updates are written together before its commit,
		// but those of a customer the batch erases, in their order.
		erased, _ := inbox.Memo(ctx, erasedInBatch{}, func() (map[string]bool, error) {
			return batchErased(inbox.Batch(ctx)), nil // reading the messages cannot fail
		})
		if erased[ev.GetTenantId()+"/"+ev.GetCustomer().GetId()] {
			return a.UpdateCustomerTx(ctx, tx, in)
		}
		return a.UpdateCustomerLaterTx(ctx, tx, in)
	})
	// An update that erases no one is kept only when its version is newer
	// than the customer's (read under the customer's row lock) and writes
	// no event: heard again, at once in another batch or after newer ones,
	// it changes nothing, so only erasures keep an inbox entry.
	updated.Idempotent = true
	return []*inbox.Consumer{
		planning,
		updated,
		inbox.Of(DurableContactOptedOut, stream.SubjectContactOptedOut, func(ctx context.Context, tx pgx.Tx, ev *eventsv1.ContactOptedOut) error {
			in, err := optedOut(ev)
			if err != nil {
				return err
			}
			_, err = a.OptOutTx(ctx, tx, in)
			return err
		}),
		inbox.Of(DurableComplaintResolved, stream.SubjectComplaintResolved, func(ctx context.Context, tx pgx.Tx, ev *eventsv1.ComplaintResolved) error {
			in, err := complaintResolved(ev)
			if err != nil {
				return err
			}
			_, err = a.PlanComplaintResolvedTx(ctx, tx, in)
			return err
		}),
		inbox.Of(DurableFollowUpRequested, stream.SubjectFollowUpRequested, func(ctx context.Context, tx pgx.Tx, ev *eventsv1.FollowUpRequested) error {
			in, err := followUpRequested(ev)
			if err != nil {
				return err
			}
			_, err = a.PlanFollowUpTx(ctx, tx, in)
			return err
		}),
		inbox.Of(DurableVisitLogged, stream.SubjectVisitLogged, func(ctx context.Context, tx pgx.Tx, ev *eventsv1.VisitLogged) error {
			if ev.GetTenantId() == "" || ev.GetVisitId() == "" {
				return invalid.New("visit_id", "is required, with tenant_id")
			}
			_, err := a.StopAnsweredTx(ctx, tx, app.Answered{Tenant: ev.GetTenantId(), VisitID: ev.GetVisitId(), At: at(ev.GetLoggedAt())})
			return err
		}),
		inbox.Of(DurableVisitUnreachable, stream.SubjectVisitUnreachable, func(ctx context.Context, tx pgx.Tx, ev *eventsv1.VisitUnreachable) error {
			if ev.GetTenantId() == "" || ev.GetVisitId() == "" {
				return invalid.New("visit_id", "is required, with tenant_id")
			}
			_, err := a.PlanUnreachableTx(ctx, tx, app.Unreachable{Tenant: ev.GetTenantId(), VisitID: ev.GetVisitId(),
				Attempts: ev.GetAttempts(), Reason: ev.GetReason(), At: at(ev.GetAt())})
			if errors.Is(err, store.ErrNotFound) {
				return invalid.New("visit_id", "must name a visit the scheduler planned: "+err.Error())
			}
			return err
		}),
	}
}
