// Package consumer turns VisitDue events from JetStream into open tasks,
// VisitCancelled events into withdrawn ones, and CustomerUpdated events
// into fresh customer snapshots on the customer's active tasks.
package consumer

import (
	"context"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/protobuf/proto"

	eventsv1 "github.com/huifang/huifang/proto/huifang/events/v1"

	"github.com/huifang/huifang/pkg/inbox"
	"github.com/huifang/huifang/pkg/invalid"
	"github.com/huifang/huifang/pkg/outbox"
	"github.com/huifang/huifang/pkg/stream"
	"github.com/huifang/huifang/services/dispatch/internal/queue"
	"github.com/huifang/huifang/services/dispatch/internal/store"
	"github.com/huifang/huifang/services/dispatch/internal/task"
)

// Durable names of the consumers.
const (
	Durable          = "dispatch-visit-due"
	DurableCancelled = "dispatch-visit-cancelled"
	DurableCustomer  = "dispatch-customer-updated"
)

// VisitDue creates a task for each VisitDue event.
type VisitDue struct {
	Now   func() time.Time
	Rules task.Rules
	// Waker, when set, wakes long-polling claims.
	Waker *queue.Waker
}

// Consumer returns the inbox consumer of VisitDue; the runtime (or a test)
// fills in the pool, JetStream, logger and relay.
func (v *VisitDue) Consumer() *inbox.Consumer {
	return &inbox.Consumer{
		Service:  "dispatch",
		Durable:  Durable,
		Stream:   stream.EventsStream,
		Subjects: []string{stream.SubjectVisitDue},
		Handle:   v.Handle,
		Tenant:   Tenant,
	}
}

// Handle creates the open task of one VisitDue within tx. A payload that is
// not a VisitDue, or lacks the visit id, is refused (dead-lettered); a
// visit that already has a task, or was cancelled, changes nothing.
func (v *VisitDue) Handle(ctx context.Context, tx pgx.Tx, msg jetstream.Msg) error {
	ev := &eventsv1.VisitDue{}
	if err := decode(msg.Data(), ev, "VisitDue"); err != nil {
		return err
	}
	// A newer snapshot of the customer from CustomerUpdated wins over the
	// one the scheduler took when it planned the visit.
	if id := strings.TrimSpace(ev.GetCustomer().GetId()); id != "" {
		latest, _, ok, err := store.LatestCustomer(ctx, tx, task.Tenant(ev.GetTenantId()), id)
		if err != nil {
			return err
		}
		if ok {
			ev.Customer = latest
		}
	}
	t, err := task.FromVisitDue(ev, outbox.NewEventID(), v.Now(), v.Rules)
	if err != nil {
		return err
	}
	created, err := store.CreateTask(ctx, tx, t)
	if created && v.Waker != nil {
		v.Waker.Notify() // early: a claim that misses the uncommitted row polls again
	}
	return err
}

// VisitCancelled withdraws the task of each cancelled visit.
type VisitCancelled struct {
	Now func() time.Time
}

// Consumer returns the inbox consumer of VisitCancelled.
func (v *VisitCancelled) Consumer() *inbox.Consumer {
	return &inbox.Consumer{
		Service:  "dispatch",
		Durable:  DurableCancelled,
		Stream:   stream.EventsStream,
		Subjects: []string{stream.SubjectVisitCancelled},
		Handle:   v.Handle,
		Tenant:   TenantCancelled,
	}
}

// Handle cancels the visit's task within tx (or remembers the visit when
// its task does not exist yet).
func (v *VisitCancelled) Handle(ctx context.Context, tx pgx.Tx, msg jetstream.Msg) error {
	ev := &eventsv1.VisitCancelled{}
	if err := decode(msg.Data(), ev, "VisitCancelled"); err != nil {
		return err
	}
	visitID := strings.TrimSpace(ev.GetVisitId())
	if visitID == "" {
		return invalid.New("visit_id", "is required")
	}
	return queue.Withdraw(ctx, tx, task.Tenant(ev.GetTenantId()), visitID, ev.GetReason(), v.Now())
}

// CustomerUpdated keeps the newest version of each customer and refreshes
// the snapshot of the customer's active tasks.
type CustomerUpdated struct {
	Now   func() time.Time
	Rules task.Rules
	// Waker, when set, wakes long-polling claims (new owners may claim now).
	Waker *queue.Waker
}

// Consumer returns the inbox consumer of CustomerUpdated.
func (v *CustomerUpdated) Consumer() *inbox.Consumer {
	return &inbox.Consumer{
		Service:  "dispatch",
		Durable:  DurableCustomer,
		Stream:   stream.EventsStream,
		Subjects: []string{stream.SubjectCustomerUpdated},
		Handle:   v.Handle,
		Tenant:   TenantCustomer,
	}
}

// Handle applies one CustomerUpdated within tx (queue.UpdateCustomer). Not
// a CustomerUpdated, no customer.id or a version below 1: dead-lettered. A
// version not newer than the kept one changes nothing.
func (v *CustomerUpdated) Handle(ctx context.Context, tx pgx.Tx, msg jetstream.Msg) error {
	ev := &eventsv1.CustomerUpdated{}
	if err := decode(msg.Data(), ev, "CustomerUpdated"); err != nil {
		return err
	}
	if err := task.CheckCustomerUpdated(ev); err != nil {
		return err
	}
	c := ev.GetCustomer()
	c.Id = strings.TrimSpace(c.GetId())
	res, err := queue.UpdateCustomer(ctx, tx, task.Tenant(ev.GetTenantId()), c, ev.GetVersion(), v.Rules, v.Now())
	if res.Refreshed > 0 && v.Waker != nil {
		v.Waker.Notify() // early, as VisitDue: a claim that misses the uncommitted change polls again
	}
	return err
}

// TenantCustomer finds the tenant of a CustomerUpdated for its dead-letter row.
func TenantCustomer(msg jetstream.Msg) string {
	ev := &eventsv1.CustomerUpdated{}
	if decode(msg.Data(), ev, "CustomerUpdated") == nil {
		return ev.GetTenantId()
	}
	return ""
}

// Tenant finds the tenant of a VisitDue for its dead-letter row.
func Tenant(msg jetstream.Msg) string {
	ev := &eventsv1.VisitDue{}
	if decode(msg.Data(), ev, "VisitDue") == nil {
		return ev.GetTenantId()
	}
	return ""
}

// TenantCancelled finds the tenant of a VisitCancelled for its dead-letter row.
func TenantCancelled(msg jetstream.Msg) string {
	ev := &eventsv1.VisitCancelled{}
	if decode(msg.Data(), ev, "VisitCancelled") == nil {
		return ev.GetTenantId()
	}
	return ""
}

func decode(data []byte, m proto.Message, name string) error {
	if err := proto.Unmarshal(data, m); err != nil {
		return invalid.New("payload", "must be a "+name+" in protobuf: "+err.Error())
	}
	return nil
}
