package app

import (
	"context"
	"time"

	"github.com/jackc/pgx/v5"
	"google.golang.org/protobuf/types/known/timestamppb"

	eventsv1 "github.com/huifang/huifang/proto/huifang/events/v1"

	"github.com/huifang/huifang/pkg/outbox"
	"github.com/huifang/huifang/pkg/stream"
	"github.com/huifang/huifang/services/dispatch/internal/message"
	"github.com/huifang/huifang/services/dispatch/internal/task"
)

// The events of the customer's contact ledger dispatch writes (issue 17),
// through the outbox in the transaction of their change: no text, no
// address.

// messageSent writes MessageSent: message m of the customer reached status
// (sent, delivered, failed) at now. template_id stays empty: dispatch does
// not keep which template rendered a message.
func messageSent(ctx context.Context, tx pgx.Tx, m message.Message, customerID, orgUnit, status string, now time.Time) error {
	ev := &eventsv1.MessageSent{
		EventId: outbox.NewEventID(), TenantId: m.Tenant, MessageId: m.ID, CustomerId: customerID, VisitId: m.VisitID,
		TaskId: m.TaskID, Channel: m.Channel, Status: status, At: timestamppb.New(now), OrgUnit: orgUnit,
		AppointmentId: m.AppointmentID,
	}
	_, err := outbox.Add(ctx, tx, outbox.Message{ID: ev.EventId, Subject: stream.SubjectMessageSent, Payload: ev})
	return err
}

// appointmentChanged writes AppointmentChanged: agentID booked, moved or
// cancelled a (as it is after the change) at now, for reason (a code).
func appointmentChanged(ctx context.Context, tx pgx.Tx, a task.Appointment, agentID string, change eventsv1.AppointmentChange,
	reason string, now time.Time) error {
	ev := &eventsv1.AppointmentChanged{
		EventId: outbox.NewEventID(), TenantId: a.Tenant, AppointmentId: a.ID, TaskId: a.TaskID, VisitId: a.VisitID,
		CustomerId: a.CustomerID, AgentId: agentID, Change: change, StartsAt: timestamppb.New(a.StartsAt),
		EndsAt: timestamppb.New(a.EndsAt), Reason: reason, At: timestamppb.New(now), OrgUnit: a.OrgUnit,
	}
	_, err := outbox.Add(ctx, tx, outbox.Message{ID: ev.EventId, Subject: stream.SubjectAppointmentChanged, Payload: ev})
	return err
}
