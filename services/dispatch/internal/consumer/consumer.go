// Package consumer turns VisitDue events from JetStream into open tasks.
package consumer

import (
	"context"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/protobuf/proto"

	eventsv1 "github.com/huifang/huifang/proto/huifang/events/v1"

	"github.com/huifang/huifang/pkg/inbox"
	"github.com/huifang/huifang/pkg/invalid"
	"github.com/huifang/huifang/pkg/outbox"
	"github.com/huifang/huifang/pkg/stream"
	"github.com/huifang/huifang/services/dispatch/internal/store"
	"github.com/huifang/huifang/services/dispatch/internal/task"
)

// Durable is the durable name of the VisitDue consumer.
const Durable = "dispatch-visit-due"

// VisitDue creates a task for each VisitDue event.
type VisitDue struct {
	Now func() time.Time
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
// visit that already has a task changes nothing.
func (v *VisitDue) Handle(ctx context.Context, tx pgx.Tx, msg jetstream.Msg) error {
	ev, err := decode(msg.Data())
	if err != nil {
		return err
	}
	t, err := task.FromVisitDue(ev, outbox.NewEventID(), v.Now())
	if err != nil {
		return err
	}
	_, err = store.CreateTask(ctx, tx, t)
	return err
}

// Tenant finds the tenant of a message for its dead-letter row.
func Tenant(msg jetstream.Msg) string {
	if ev, err := decode(msg.Data()); err == nil {
		return ev.GetTenantId()
	}
	return ""
}

func decode(data []byte) (*eventsv1.VisitDue, error) {
	ev := &eventsv1.VisitDue{}
	if err := proto.Unmarshal(data, ev); err != nil {
		return nil, invalid.New("payload", "must be a VisitDue in protobuf: "+err.Error())
	}
	return ev, nil
}
