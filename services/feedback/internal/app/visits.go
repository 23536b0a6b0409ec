package app

import (
	"context"

	"github.com/jackc/pgx/v5"

	"github.com/huifang/huifang/pkg/inbox"
	"github.com/huifang/huifang/pkg/tenant"
	"github.com/huifang/huifang/services/feedback/internal/store"
	"github.com/huifang/huifang/services/feedback/internal/visit"
)

// LearnVisit stores the context of a visit that fell due (VisitDue), so
// that its record can be logged against it; see LearnVisitTx.
func (a *App) LearnVisit(ctx context.Context, v visit.Visit) error {
	_, err := inTx(ctx, a, func(tx pgx.Tx) (struct{}, error) { return struct{}{}, a.LearnVisitTx(ctx, tx, v) })
	return err
}

// LearnVisitTx is LearnVisit within the caller's transaction. A later
// VisitDue for the same visit updates its context in place; a VisitDue
// applied before changes nothing (see keyed.go). In a
// consumer's batch the visit is stored just before tx commits, together
// with the batch's other visits (inbox.Gather), in one statement however
// many (store.SaveVisits: of two VisitDue for one visit, the later wins, as
// one by one); outside one it is stored at once.
func (a *App) LearnVisitTx(ctx context.Context, tx pgx.Tx, v visit.Visit) error {
	v.TenantID = tenant.Or(v.TenantID)
	if ok, err := learns(ctx, tx, &v); err != nil || !ok {
		return err
	}
	return inbox.Gather(ctx, tx, "feedback.visits", v, func(ctx context.Context, tx pgx.Tx, vs []visit.Visit) error {
		return store.SaveVisits(ctx, tx, vs)
	})
}

// AssignVisit records the agent a visit is assigned to (VisitAssigned: an
// agent claimed its task, or a leader reassigned it); see AssignVisitTx.
func (a *App) AssignVisit(ctx context.Context, as visit.Assignment) error {
	_, err := inTx(ctx, a, func(tx pgx.Tx) (struct{}, error) { return struct{}{}, a.AssignVisitTx(ctx, tx, as) })
	return err
}

// AssignVisitTx is AssignVisit within the caller's transaction: the newest
// assignment wins (visit.Assignment.Replaces), so an older one heard late
// changes nothing, nor does one applied before (see keyed.go); it may come
// before the visit's VisitDue. In a
// consumer's batch the assignment is stored just before tx commits,
// together with the batch's other assignments (inbox.Gather), in one
// statement however many (store.SaveAssignments); outside one it is stored
// at once.
func (a *App) AssignVisitTx(ctx context.Context, tx pgx.Tx, as visit.Assignment) error {
	as.TenantID = tenant.Or(as.TenantID)
	if ok, err := assigns(ctx, tx, as); err != nil || !ok {
		return err
	}
	return inbox.Gather(ctx, tx, "feedback.assignments", as, func(ctx context.Context, tx pgx.Tx, as []visit.Assignment) error {
		return store.SaveAssignments(ctx, tx, as)
	})
}
