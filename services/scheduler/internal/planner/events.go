package planner

import (
	"context"
	"errors"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/protobuf/proto"

	eventsv1 "github.com/huifang/huifang/proto/huifang/events/v1"

	"github.com/huifang/huifang/pkg/invalid"
	"github.com/huifang/huifang/services/scheduler/internal/store"
)

// Handlers consume the events that change plans besides ServiceCompleted.
type Handlers struct {
	Now func() time.Time
}

func decode(msg jetstream.Msg, m proto.Message, name string) error {
	if err := proto.Unmarshal(msg.Data(), m); err != nil {
		return invalid.New("payload", "must be a "+name+" in protobuf: "+err.Error())
	}
	return nil
}

func at(ts interface{ AsTime() time.Time }, ok bool, now func() time.Time) time.Time {
	if ok {
		return ts.AsTime()
	}
	return now()
}

// CustomerUpdated keeps the customer's contact preferences (the newest
// version wins): time zone, windows, opt-outs, dislikes calls.
func (h Handlers) CustomerUpdated(ctx context.Context, tx pgx.Tx, msg jetstream.Msg) error {
	ev := &eventsv1.CustomerUpdated{}
	if err := decode(msg, ev, "CustomerUpdated"); err != nil {
		return err
	}
	var l invalid.List
	if ev.GetTenantId() == "" {
		l.Add("tenant_id", "is required")
	}
	if ev.GetCustomer().GetId() == "" {
		l.Add("customer.id", "is required")
	}
	if ev.GetVersion() < 1 {
		l.Add("version", "must be at least 1")
	}
	if err := l.Err(); err != nil {
		return err
	}
	return store.UpsertCustomer(ctx, tx, ev.GetTenantId(), ev.GetCustomer(), ev.GetVersion(), at(ev.GetUpdatedAt(), ev.GetUpdatedAt() != nil, h.Now))
}

// ContactOptedOut records the opt-out and cancels the customer's pending visits on the channel.
func (h Handlers) ContactOptedOut(ctx context.Context, tx pgx.Tx, msg jetstream.Msg) error {
	ev := &eventsv1.ContactOptedOut{}
	if err := decode(msg, ev, "ContactOptedOut"); err != nil {
		return err
	}
	var l invalid.List
	if ev.GetTenantId() == "" {
		l.Add("tenant_id", "is required")
	}
	if ev.GetCustomerId() == "" {
		l.Add("customer_id", "is required")
	}
	if ev.GetChannel() == 0 {
		l.Add("channel", "is required")
	}
	if err := l.Err(); err != nil {
		return err
	}
	_, err := store.OptOut(ctx, tx, ev.GetTenantId(), ev.GetCustomerId(), int32(ev.GetChannel()), at(ev.GetAt(), ev.GetAt() != nil, h.Now))
	return err
}

// ComplaintResolved plans the confirmation visit (seed 003: within 48 hours after a resolved problem).
func (h Handlers) ComplaintResolved(ctx context.Context, tx pgx.Tx, msg jetstream.Msg) error {
	ev := &eventsv1.ComplaintResolved{}
	if err := decode(msg, ev, "ComplaintResolved"); err != nil {
		return err
	}
	var l invalid.List
	if ev.GetTenantId() == "" {
		l.Add("tenant_id", "is required")
	}
	if ev.GetComplaintId() == "" {
		l.Add("complaint_id", "is required")
	}
	if ev.GetResolvedAt() == nil {
		l.Add("resolved_at", "is required")
	}
	if ev.GetCustomerId() == "" && ev.GetCustomer().GetId() == "" {
		l.Add("customer_id", "is required")
	}
	if err := l.Err(); err != nil {
		return err
	}
	_, err := store.PlanComplaintResolved(ctx, tx, ev)
	return err
}

// FollowUpRequested plans the visit feedback asked for (seed 000, 004: again until settled).
func (h Handlers) FollowUpRequested(ctx context.Context, tx pgx.Tx, msg jetstream.Msg) error {
	ev := &eventsv1.FollowUpRequested{}
	if err := decode(msg, ev, "FollowUpRequested"); err != nil {
		return err
	}
	var l invalid.List
	if ev.GetTenantId() == "" {
		l.Add("tenant_id", "is required")
	}
	if ev.GetCustomerId() == "" && ev.GetCustomer().GetId() == "" {
		l.Add("customer_id", "is required")
	}
	if ev.GetServiceId() == "" && ev.GetComplaintId() == "" {
		l.Add("service_id", "is required when complaint_id is empty")
	}
	if ev.GetDueAt() != nil && ev.GetDeadline() != nil && ev.GetDeadline().AsTime().Before(ev.GetDueAt().AsTime()) {
		l.Add("deadline", "must not be before due_at")
	}
	if err := l.Err(); err != nil {
		return err
	}
	_, err := store.PlanFollowUp(ctx, tx, ev, h.Now().UTC())
	return err
}

// VisitLogged ends the rest of a series whose policy stops when the customer answered.
func (h Handlers) VisitLogged(ctx context.Context, tx pgx.Tx, msg jetstream.Msg) error {
	ev := &eventsv1.VisitLogged{}
	if err := decode(msg, ev, "VisitLogged"); err != nil {
		return err
	}
	if ev.GetTenantId() == "" || ev.GetVisitId() == "" {
		return invalid.New("visit_id", "is required, with tenant_id")
	}
	_, err := store.StopAnswered(ctx, tx, ev.GetTenantId(), ev.GetVisitId(), at(ev.GetLoggedAt(), ev.GetLoggedAt() != nil, h.Now))
	return err
}

// VisitUnreachable plans the policies triggered by a failed visit (service
// type visit_unreachable; seed 000 auto: invite again if the first invitation failed).
func (h Handlers) VisitUnreachable(ctx context.Context, tx pgx.Tx, msg jetstream.Msg) error {
	ev := &eventsv1.VisitUnreachable{}
	if err := decode(msg, ev, "VisitUnreachable"); err != nil {
		return err
	}
	if ev.GetTenantId() == "" || ev.GetVisitId() == "" {
		return invalid.New("visit_id", "is required, with tenant_id")
	}
	_, err := store.PlanUnreachable(ctx, tx, ev, h.Now().UTC())
	if errors.Is(err, store.ErrNotFound) {
		return invalid.New("visit_id", "must name a visit the scheduler planned: "+err.Error())
	}
	return err
}
