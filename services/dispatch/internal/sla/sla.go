// Package sla runs dispatch's SLA clock: it tells, once per task and
// stage, that an active task is near its deadline or past it
// (VisitOverdue on huifang.events.visit.overdue), for leaders' alerts and
// analytics' timeliness figures (seed 003: a follow-up within 48 hours).
package sla

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"google.golang.org/protobuf/types/known/timestamppb"

	eventsv1 "github.com/huifang/huifang/proto/huifang/events/v1"

	"github.com/huifang/huifang/pkg/outbox"
	"github.com/huifang/huifang/pkg/stream"
	"github.com/huifang/huifang/services/dispatch/internal/store"
	"github.com/huifang/huifang/services/dispatch/internal/task"
)

// SubjectVisitOverdue is where VisitOverdue goes.
const SubjectVisitOverdue = stream.SubjectVisitOverdue

// Stages of the clock.
const (
	StageNear = "near"
	StagePast = "past"
)

// Notifier is told when events were committed (the outbox relay).
type Notifier interface{ Notify() }

// Clock marks tasks near (within Warn of) or past their deadline.
type Clock struct {
	Pool  *pgxpool.Pool
	Relay Notifier
	Log   *slog.Logger
	Now   func() time.Time
	Warn  time.Duration
	Every time.Duration
	Batch int
}

// Run ticks until ctx ends.
func (c *Clock) Run(ctx context.Context) error {
	ticker := time.NewTicker(c.Every)
	defer ticker.Stop()
	for {
		for {
			n, err := c.RunOnce(ctx)
			if err != nil && ctx.Err() == nil {
				c.Log.ErrorContext(ctx, "sla: round failed", "err", err)
			}
			if err != nil || n < c.Batch {
				break
			}
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-ticker.C:
		}
	}
}

// RunOnce marks one batch and returns how many tasks changed stage.
func (c *Clock) RunOnce(ctx context.Context) (int, error) {
	now := c.Now()
	var n int
	err := pgx.BeginFunc(ctx, c.Pool, func(tx pgx.Tx) error {
		tasks, _, err := store.SLADue(ctx, tx, now, now.Add(c.Warn), max(c.Batch, 1))
		if err != nil {
			return err
		}
		for _, t := range tasks {
			stage := StageNear
			if !t.Deadline.After(now) {
				stage = StagePast
			}
			if err := store.SetSLAStage(ctx, tx, t.ID, stage); err != nil {
				return err
			}
			if err := add(ctx, tx, t, stage, now); err != nil {
				return err
			}
			n++
		}
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("sla: %w", err)
	}
	if n > 0 {
		c.Relay.Notify()
	}
	return n, nil
}

func add(ctx context.Context, tx pgx.Tx, t task.Task, stage string, now time.Time) error {
	ev := &eventsv1.VisitOverdue{
		EventId: outbox.NewEventID(), TenantId: t.Tenant, VisitId: t.VisitID, TaskId: t.ID, Stage: stage,
		Deadline: timestamppb.New(t.Deadline), At: timestamppb.New(now), OrgUnit: t.OrgUnit, Group: t.Group,
		AgentId: t.AgentID, CustomerId: t.CustomerID(),
	}
	_, err := outbox.Add(ctx, tx, outbox.Message{ID: ev.EventId, Subject: SubjectVisitOverdue, Payload: ev})
	return err
}
