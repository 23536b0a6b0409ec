// Package consumer is dispatch's event adapter: it reads VisitDue,
// VisitCancelled and CustomerUpdated from JetStream (pkg/inbox: decoded
// once, dead-lettered when they break a rule, effects exactly once) and
// runs one app command for each inside the inbox's transaction (the
// tasks of a batch's VisitDue are then made together, before it commits).
package consumer

import (
	"context"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/protobuf/proto"

	eventsv1 "github.com/huifang/huifang/proto/huifang/events/v1"

	"github.com/huifang/huifang/pkg/inbox"
	"github.com/huifang/huifang/pkg/invalid"
	"github.com/huifang/huifang/pkg/stream"
	"github.com/huifang/huifang/pkg/tenant"
	"github.com/huifang/huifang/services/dispatch/internal/app"
	"github.com/huifang/huifang/services/dispatch/internal/task"
	"github.com/huifang/huifang/services/dispatch/internal/wire"
)

// Durable names of the consumers.
const (
	Durable          = "dispatch-visit-due"
	DurableCancelled = "dispatch-visit-cancelled"
	DurableCustomer  = "dispatch-customer-updated"
)

// New returns dispatch's consumers, for rt.Consume: VisitDue, VisitCancelled, CustomerUpdated.
func New(a *app.App) []*inbox.Consumer {
	return []*inbox.Consumer{VisitDue(a), VisitCancelled(a), CustomerUpdated(a)}
}

// VisitDue makes the open task of each due visit, those of a batch
// together (app.GatherTaskTx). It keeps no inbox entries
// (inbox.Consumer.Idempotent): a visit has one task at most (unique by
// tenant and visit, inserted ON CONFLICT DO NOTHING, its details written
// only with a task just inserted), a visit cancelled first makes none, and
// the handler publishes nothing, so a VisitDue heard again, at once in
// another transaction or after its task was worked or cancelled, changes
// nothing. The queue and wallboard watches wait for the visit's task
// instead (grpcapi's settle).
func VisitDue(a *app.App) *inbox.Consumer {
	c := inbox.Of(Durable, stream.SubjectVisitDue, func(ctx context.Context, tx pgx.Tx, ev *eventsv1.VisitDue) error {
		d, err := Due(ev)
		if err != nil {
			return err
		}
		return a.GatherTaskTx(ctx, tx, d)
	})
	c.Idempotent = true
	return c
}

// VisitCancelled withdraws the task of each cancelled visit (app.CancelVisitTx).
func VisitCancelled(a *app.App) *inbox.Consumer {
	return inbox.Of(DurableCancelled, stream.SubjectVisitCancelled, func(ctx context.Context, tx pgx.Tx, ev *eventsv1.VisitCancelled) error {
		return a.CancelVisitTx(ctx, tx, tenant.Of(ev), ev.GetVisitId(), ev.GetReason())
	})
}

// CustomerUpdated applies each new customer version: a batch's together
// before its commit (app.UpdateCustomerLaterTx), but those of a customer
// the batch erases one by one, in their order (app.UpdateCustomerTx). It
// keeps no inbox entries (inbox.Consumer.Idempotent): every effect of an
// update, an erasure's too, follows only a version newer than the kept
// one, read under the customer's lock, so an update heard again, at once
// in another batch or after newer ones, changes nothing.
func CustomerUpdated(a *app.App) *inbox.Consumer {
	c := inbox.Of(DurableCustomer, stream.SubjectCustomerUpdated, func(ctx context.Context, tx pgx.Tx, ev *eventsv1.CustomerUpdated) error {
		u := app.CustomerUpdate{Tenant: tenant.Of(ev), Customer: wire.Customer(ev.GetCustomer()), Version: ev.GetVersion(), Erased: ev.GetErased()}
		erased, _ := inbox.Memo(ctx, erasedInBatch{}, func() (map[string]bool, error) {
			return batchErased(inbox.Batch(ctx)), nil // reading the messages cannot fail
		})
		if erased[customerKey(ev)] {
			_, err := a.UpdateCustomerTx(ctx, tx, u)
			return err
		}
		return a.UpdateCustomerLaterTx(ctx, tx, u)
	})
	c.Idempotent = true
	return c
}

// erasedInBatch is the inbox.Memo key of the customers a batch of
// CustomerUpdated erases.
type erasedInBatch struct{}

// batchErased returns the customers (customerKey) the batch's
// CustomerUpdated erase.
func batchErased(msgs []jetstream.Msg) map[string]bool {
	out := map[string]bool{}
	for _, m := range msgs {
		var ev eventsv1.CustomerUpdated
		if proto.Unmarshal(m.Data(), &ev) == nil && ev.GetErased() {
			out[customerKey(&ev)] = true
		}
	}
	return out
}

// customerKey names the customer of a CustomerUpdated: tenant/id.
func customerKey(ev *eventsv1.CustomerUpdated) string {
	return tenant.Of(ev) + "/" + strings.TrimSpace(ev.GetCustomer().GetId())
}

// Due reads a VisitDue: its times must be valid timestamps (due_at,
// deadline); the customer and the tenant's contact calendar are converted.
func Due(ev *eventsv1.VisitDue) (task.Due, error) {
	var bad invalid.List
	if ev.GetDueAt() != nil && !ev.GetDueAt().IsValid() {
		bad.Add("due_at", "must be a valid time")
	}
	if ev.GetDeadline() != nil && !ev.GetDeadline().IsValid() {
		bad.Add("deadline", "must be a valid time")
	}
	if err := bad.Err(); err != nil {
		return task.Due{}, err
	}
	d := task.Due{
		Tenant: tenant.Of(ev), VisitID: ev.GetVisitId(), Channel: ev.GetChannel(), Severity: ev.GetSeverity(),
		Customer: wire.Customer(ev.GetCustomer()), Calendar: wire.Calendar(ev.GetContactCalendar()),
		Group: ev.GetGroup(), OrgUnit: ev.GetOrgUnit(), ServiceType: ev.GetServiceType(), PolicyID: ev.GetPolicyId(),
		ProductCategory: ev.GetProductCategory(),
		ServiceID:       ev.GetServiceId(), ComplaintID: ev.GetComplaintId(), Late: ev.GetLate(),
	}
	if ev.GetServiceCompletedAt() != nil {
		d.CompletedAt = ev.GetServiceCompletedAt().AsTime()
	}
	if ev.GetDueAt() != nil {
		d.DueAt = ev.GetDueAt().AsTime()
	}
	if ev.GetDeadline() != nil {
		d.Deadline = ev.GetDeadline().AsTime()
	}
	return d, nil
}
