package app

import (
	"context"
	"time"

	"github.com/jackc/pgx/v5"
	"google.golang.org/protobuf/types/known/timestamppb"

	eventsv1 "github.com/huifang/huifang/proto/huifang/events/v1"
	typesv1 "github.com/huifang/huifang/proto/huifang/types/v1"

	"github.com/huifang/huifang/pkg/outbox"
	"github.com/huifang/huifang/pkg/stream"
	"github.com/huifang/huifang/services/dispatch/internal/task"
)

// The events dispatch writes, each through the outbox in the transaction of
// its change.

// assigned writes VisitAssigned for t (held by t.AgentID).
func assigned(ctx context.Context, tx pgx.Tx, t task.Task, now time.Time) error {
	ev := &eventsv1.VisitAssigned{EventId: outbox.NewEventID(), TenantId: t.Tenant, VisitId: t.VisitID, AgentId: t.AgentID,
		AssignedAt: timestamppb.New(now)}
	_, err := outbox.Add(ctx, tx, outbox.Message{ID: ev.EventId, Subject: stream.SubjectVisitAssigned, Payload: ev})
	return err
}

// attempted writes VisitAttempted: attempt n of t with disposition d by
// agentID ("" for an automatic one), next when it is retried.
func attempted(ctx context.Context, tx pgx.Tx, t task.Task, agentID string, d typesv1.Disposition, n int, now, next time.Time) error {
	ev := &eventsv1.VisitAttempted{
		EventId: outbox.NewEventID(), TenantId: t.Tenant, VisitId: t.VisitID, TaskId: t.ID, AgentId: agentID,
		Channel: t.Channel, Disposition: d, Attempt: int32(n), AttemptedAt: timestamppb.New(now),
		CustomerId: t.CustomerID(), OrgUnit: t.OrgUnit, Deadline: ts(t.Deadline), NextAttemptAt: ts(next),
	}
	_, err := outbox.Add(ctx, tx, outbox.Message{ID: ev.EventId, Subject: stream.SubjectVisitAttempted, Payload: ev})
	return err
}

// unreachable writes VisitUnreachable (无效回访) after n attempts.
func unreachable(ctx context.Context, tx pgx.Tx, t task.Task, n int, reason string, now time.Time) error {
	ev := &eventsv1.VisitUnreachable{
		EventId: outbox.NewEventID(), TenantId: t.Tenant, VisitId: t.VisitID, CustomerId: t.CustomerID(),
		Attempts: int32(n), Reason: reason, At: timestamppb.New(now), OrgUnit: t.OrgUnit,
	}
	_, err := outbox.Add(ctx, tx, outbox.Message{ID: ev.EventId, Subject: stream.SubjectVisitUnreachable, Payload: ev})
	return err
}

// optedOut writes ContactOptedOut: the customer of t asked to stop on its channel.
func optedOut(ctx context.Context, tx pgx.Tx, t task.Task, now time.Time) error {
	ev := &eventsv1.ContactOptedOut{
		EventId: outbox.NewEventID(), TenantId: t.Tenant, CustomerId: t.CustomerID(), Channel: t.Channel,
		Source: "dispatch: asked to stop during visit " + t.VisitID, At: timestamppb.New(now),
	}
	_, err := outbox.Add(ctx, tx, outbox.Message{ID: ev.EventId, Subject: stream.SubjectContactOptedOut, Payload: ev})
	return err
}

// overdue writes VisitOverdue: t reached the SLA stage at now.
func overdue(ctx context.Context, tx pgx.Tx, t task.Task, stage string, now time.Time) error {
	ev := &eventsv1.VisitOverdue{
		EventId: outbox.NewEventID(), TenantId: t.Tenant, VisitId: t.VisitID, TaskId: t.ID, Stage: stage,
		Deadline: timestamppb.New(t.Deadline), At: timestamppb.New(now), OrgUnit: t.OrgUnit, Group: t.Group,
		AgentId: t.AgentID, CustomerId: t.CustomerID(),
	}
	_, err := outbox.Add(ctx, tx, outbox.Message{ID: ev.EventId, Subject: stream.SubjectVisitOverdue, Payload: ev})
	return err
}

func ts(t time.Time) *timestamppb.Timestamp {
	if t.IsZero() {
		return nil
	}
	return timestamppb.New(t)
}
