package app

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"google.golang.org/protobuf/types/known/timestamppb"

	eventsv1 "github.com/huifang/huifang/proto/huifang/events/v1"

	"github.com/huifang/huifang/pkg/audit"
	"github.com/huifang/huifang/pkg/auth"
	"github.com/huifang/huifang/pkg/invalid"
	"github.com/huifang/huifang/pkg/stream"
	"github.com/huifang/huifang/pkg/tenant"
	"github.com/huifang/huifang/services/feedback/internal/complaint"
	"github.com/huifang/huifang/services/feedback/internal/improvement"
	"github.com/huifang/huifang/services/feedback/internal/record"
	"github.com/huifang/huifang/services/feedback/internal/store"
)

// SetPlan is the owning department's improvement plan for a problem a
// follow-up found (seed 003, 改进落实率).
type SetPlan struct {
	Tenant      string
	ComplaintID string
	// Measures: text, owner and due date of each; ids are given here.
	Measures []improvement.Measure
	// By is who sets it: the caller of the token, else (no principal:
	// consumers, tests of the application) this, else system:feedback.
	By string
}

// CompleteMeasure says that one measure of a plan was carried out.
type CompleteMeasure struct {
	Tenant      string
	ComplaintID string
	MeasureID   string
	Note        string
	// OccurredAt is when, as the department states it; zero: now.
	OccurredAt time.Time
	By         string
}

// actor is who acts: the caller ctx carries, else by, else feedback
// itself (a call without a principal).
func actor(ctx context.Context, by string) string {
	if p, ok := auth.From(ctx); ok && p.Actor() != "" {
		return p.Actor()
	}
	if by = strings.TrimSpace(by); by != "" {
		return by
	}
	return "system:" + service
}

// improvementInScope: a director acts on every complaint of the tenant; a
// leader on those of the org units it leads; a department owner on those
// routed to its departments.
func improvementInScope(ctx context.Context, c complaint.Complaint) error {
	p, ok := auth.Restricted(ctx, auth.Director)
	if !ok || (p.Has(auth.Leader) && p.InUnits(c.OrgUnit)) || (p.Has(auth.DepartmentOwner) && p.InDepartments(c.Department)) {
		return nil
	}
	return auth.Deny("complaint_id", fmt.Sprintf("the complaint is routed to department %q of org unit %q: neither one of the caller's departments nor an org unit it leads",
		c.Department, c.OrgUnit))
}

// SetImprovementPlan sets a complaint's plan; see SetImprovementPlanTx.
func (a *App) SetImprovementPlan(ctx context.Context, in SetPlan) (improvement.Plan, error) {
	return inTx(ctx, a, func(tx pgx.Tx) (improvement.Plan, error) { return a.SetImprovementPlanTx(ctx, tx, in) })
}

// SetImprovementPlanTx sets (or remakes, while none of its measures is
// carried out) the improvement plan of a complaint within the caller's
// transaction: each measure's due date within improvement.Window of the
// problem (the complaint's escalation). It audits improvement.set and
// writes ImprovementPlanSet (counts and times, no text).
func (a *App) SetImprovementPlanTx(ctx context.Context, tx pgx.Tx, in SetPlan) (improvement.Plan, error) {
	var l invalid.List
	by := actor(ctx, in.By)
	required(&l, [2]string{"complaint_id", in.ComplaintID})
	if len(in.Measures) == 0 {
		l.Add("measures", "at least one measure is required")
	}
	if err := l.Err(); err != nil {
		return improvement.Plan{}, err
	}
	c, err := a.lockForImprovement(ctx, tx, in.Tenant, in.ComplaintID)
	if err != nil {
		return improvement.Plan{}, err
	}
	measures := improvement.CheckMeasures(&l, in.Measures, c.CreatedAt)
	if err := l.Err(); err != nil {
		return improvement.Plan{}, err
	}
	old, found, err := store.GetPlan(ctx, tx, c.TenantID, c.ID)
	if err != nil {
		return improvement.Plan{}, err
	}
	var prev *improvement.Plan
	if found {
		prev = &old
	}
	now := a.now().UTC()
	p, err := improvement.Set(prev, c.TenantID, c.ID, measures, by, now, newID)
	if err != nil {
		return improvement.Plan{}, err
	}
	if err := store.SavePlan(ctx, tx, p); err != nil {
		return improvement.Plan{}, err
	}
	if err := a.auditTx(ctx, tx, c.TenantID, "improvement.set", audit.Target{Kind: "complaint", ID: c.ID},
		audit.Detail{"by": by, "measures": len(p.Measures), "remade": found}); err != nil {
		return improvement.Plan{}, err
	}
	return p, publish(ctx, tx, stream.SubjectImprovementPlanSet, &eventsv1.ImprovementPlanSet{
		EventId: newID(), TenantId: c.TenantID, ComplaintId: c.ID, Measures: int32(len(p.Measures)),
		SetAt: timestamppb.New(p.SetAt), By: by, Department: c.Department, OrgUnit: c.OrgUnit, Category: c.Category,
		EscalatedAt: timestamppb.New(c.CreatedAt), DueAt: timestamppb.New(p.LatestDue()),
	})
}

// CompleteImprovementMeasure marks a measure carried out; see CompleteImprovementMeasureTx.
func (a *App) CompleteImprovementMeasure(ctx context.Context, in CompleteMeasure) (improvement.Plan, error) {
	return inTx(ctx, a, func(tx pgx.Tx) (improvement.Plan, error) { return a.CompleteImprovementMeasureTx(ctx, tx, in) })
}

// CompleteImprovementMeasureTx marks one measure of a complaint's plan
// carried out within the caller's transaction, at OccurredAt (at most
// record.ClockSkew in the future, not before the plan was set) or now,
// with an optional note. It audits improvement.complete and writes
// ImprovementMeasureCompleted (ids, counts and times, no note).
func (a *App) CompleteImprovementMeasureTx(ctx context.Context, tx pgx.Tx, in CompleteMeasure) (improvement.Plan, error) {
	var l invalid.List
	by, note := actor(ctx, in.By), strings.TrimSpace(in.Note)
	required(&l, [2]string{"complaint_id", in.ComplaintID}, [2]string{"measure_id", in.MeasureID})
	if len([]rune(note)) > improvement.MaxNote {
		l.Add("note", fmt.Sprintf("at most %d characters", improvement.MaxNote))
	}
	now := a.now().UTC()
	record.CheckFuture(&l, "occurred_at", in.OccurredAt, now)
	if err := l.Err(); err != nil {
		return improvement.Plan{}, err
	}
	c, err := a.lockForImprovement(ctx, tx, in.Tenant, in.ComplaintID)
	if err != nil {
		return improvement.Plan{}, err
	}
	p, found, err := store.GetPlan(ctx, tx, c.TenantID, c.ID)
	if err != nil {
		return improvement.Plan{}, err
	}
	if !found {
		return improvement.Plan{}, refuse(ErrNotFound, "complaint %s has no improvement plan", c.ID)
	}
	at := now
	if !in.OccurredAt.IsZero() {
		record.CheckNotBefore(&l, "occurred_at", in.OccurredAt, p.SetAt, "the improvement plan of complaint "+c.ID)
		if err := l.Err(); err != nil {
			return improvement.Plan{}, err
		}
		at = in.OccurredAt.UTC()
	}
	i, err := p.Complete(strings.TrimSpace(in.MeasureID), by, note, at, now)
	if errors.Is(err, improvement.ErrNoMeasure) {
		return improvement.Plan{}, refuse(ErrNotFound, "%s", err.Error())
	}
	if err != nil {
		return improvement.Plan{}, err
	}
	if err := store.SavePlan(ctx, tx, p); err != nil {
		return improvement.Plan{}, err
	}
	m := p.Measures[i]
	if err := a.auditTx(ctx, tx, c.TenantID, "improvement.complete", audit.Target{Kind: "complaint", ID: c.ID},
		audit.Detail{"measure_id": m.ID, "by": by, "completed_at": at.Format(time.RFC3339Nano), "done": p.Done(), "measures": len(p.Measures)}); err != nil {
		return improvement.Plan{}, err
	}
	return p, publish(ctx, tx, stream.SubjectImprovementMeasureCompleted, &eventsv1.ImprovementMeasureCompleted{
		EventId: newID(), TenantId: c.TenantID, ComplaintId: c.ID, MeasureId: m.ID, CompletedAt: timestamppb.New(at), By: by,
		MeasuresDone: int32(p.Done()), Measures: int32(len(p.Measures)), EscalatedAt: timestamppb.New(c.CreatedAt),
	})
}

// lockForImprovement holds the complaint whose plan changes until tx ends
// and checks the caller's scope.
func (a *App) lockForImprovement(ctx context.Context, tx pgx.Tx, tenantID, id string) (complaint.Complaint, error) {
	id = strings.TrimSpace(id)
	c, err := store.LockComplaint(ctx, tx, tenant.Or(tenantID), id)
	if errors.Is(err, store.ErrNotFound) {
		return complaint.Complaint{}, refuse(ErrNotFound, "complaint %s not found", id)
	}
	if err != nil {
		return complaint.Complaint{}, err
	}
	return c, improvementInScope(ctx, c)
}
