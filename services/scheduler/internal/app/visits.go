package app

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/huifang/huifang/pkg/invalid"
	"github.com/huifang/huifang/services/scheduler/internal/contact"
	"github.com/huifang/huifang/services/scheduler/internal/policy"
	"github.com/huifang/huifang/services/scheduler/internal/store"
	"github.com/huifang/huifang/services/scheduler/internal/visit"
)

// Reschedule moves a planned visit to the time the customer asked for (not
// in the past); the deadline moves with it, and the contact policy will not
// move it again. A failed visit is retried: back to planned at at, the
// contact policy applying again when it falls due (visit.Retry).
// VisitPlanned is published again with the new time. Any other visit is
// visit.ErrState.
func (a *App) Reschedule(ctx context.Context, tenant, id string, at time.Time, reason string) (visit.Visit, error) {
	now := a.now()
	if at.Before(now.Add(-time.Minute)) {
		return visit.Visit{}, invalid.New("due_at", "must not be in the past")
	}
	err := a.inTx(ctx, func(tx pgx.Tx) error {
		v, err := store.UpdateVisit(ctx, tx, tenant, id, func(v *visit.Visit) error {
			if err := visitsInScope(ctx, "visit_id", v.OrgUnit); err != nil {
				return err
			}
			return v.Reschedule(at, reason, now)
		})
		if err != nil {
			return err
		}
		return addPlanned(ctx, tx, v)
	})
	if err != nil {
		return visit.Visit{}, fmt.Errorf("visit %s: %w", id, err)
	}
	return store.GetVisit(ctx, a.DB, tenant, id)
}

// Cancel cancels a planned, due or failed visit and publishes VisitCancelled.
func (a *App) Cancel(ctx context.Context, tenant, id, reason string) (visit.Visit, error) {
	now := a.now()
	err := a.inTx(ctx, func(tx pgx.Tx) error {
		v, err := store.UpdateVisit(ctx, tx, tenant, id, func(v *visit.Visit) error {
			if err := visitsInScope(ctx, "visit_id", v.OrgUnit); err != nil {
				return err
			}
			return v.Cancel(reason, now)
		})
		if err != nil {
			return err
		}
		return addCancelled(ctx, tx, v, now)
	})
	if err != nil {
		return visit.Visit{}, fmt.Errorf("visit %s: %w", id, err)
	}
	return store.GetVisit(ctx, a.DB, tenant, id)
}

// VisitQuery selects planned visits; empty fields match any.
type VisitQuery struct {
	Tenant, ServiceID, Status, CustomerID, PolicyID, Group, OrgUnit string
	Channel                                                         int32
	// DueFrom and DueTo bound the due time, [DueFrom, DueTo).
	DueFrom, DueTo time.Time
	// AfterDue and AfterID: the page starts after this visit.
	AfterDue time.Time
	AfterID  string
	Limit    int
}

// ListVisits lists planned visits soonest due first; each planned one says
// what the caps will do to it when it falls due (Forecast).
func (a *App) ListVisits(ctx context.Context, q VisitQuery) ([]visit.Visit, error) {
	if err := visitsInScope(ctx, "org_unit", q.OrgUnit); err != nil {
		return nil, err
	}
	vs, err := store.ListVisits(ctx, a.DB, store.VisitFilter{
		Tenant: q.Tenant, ServiceID: q.ServiceID, Status: q.Status, CustomerID: q.CustomerID, PolicyID: q.PolicyID,
		Group: q.Group, OrgUnit: q.OrgUnit, Channel: q.Channel, DueFrom: q.DueFrom, DueTo: q.DueTo,
		AfterDue: q.AfterDue, AfterID: q.AfterID, Limit: q.Limit,
	})
	if err != nil {
		return nil, err
	}
	return vs, a.forecast(ctx, vs)
}

// forecast sets Forecast on the planned visits of vs: the tenant's caps
// (and a customer's dislike of calls) checked as at firing, at each visit's
// due time, with the customer's contacts so far and their planned visits
// due before it counted as made (contact.Rules.Forecast). Four statements
// for the whole list: the contact policies, the customers, the ledger and
// the customers' planned visits.
func (a *App) forecast(ctx context.Context, vs []visit.Visit) error {
	tenants, keys := map[string]bool{}, map[store.CustomerKey]bool{}
	var until time.Time
	for _, v := range vs {
		if v.Status == visit.StatusPlanned && v.CustomerID != "" {
			tenants[v.Tenant], keys[customerKey(v)] = true, true
			until = maxTime(until, v.DueAt)
		}
	}
	if len(keys) == 0 {
		return nil
	}
	in, err := loadCaps(ctx, a.DB, tenants, keys, a.now())
	if err != nil {
		return err
	}
	rules, customers, history := in.rules, in.customers, in.history
	if len(in.capped) == 0 {
		return nil
	}
	pending, err := store.PendingOf(ctx, a.DB, in.capped, until)
	if err != nil {
		return err
	}
	byCustomer := map[store.CustomerKey][]visit.Visit{}
	for _, p := range pending {
		byCustomer[customerKey(p)] = append(byCustomer[customerKey(p)], p)
	}
	foreseen := map[string]contact.Outcome{}
	for k, ps := range byCustomer {
		planned := make([]contact.Planned, len(ps))
		for i, p := range ps {
			planned[i] = contact.Planned{DueAt: p.DueAt, Pending: p.Pending()}
		}
		for i, o := range rules[k.Tenant].Forecast(planned, customers[k].Effective(), history[k]) {
			foreseen[ps[i].ID] = o
		}
	}
	for i := range vs {
		if o, ok := foreseen[vs[i].ID]; ok && vs[i].Status == visit.StatusPlanned {
			vs[i].Forecast = &o
		}
	}
	return nil
}

func maxTime(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}

// Explanation is a visit with the policy version that planned it (nil for
// a requested follow-up, or a policy gone).
type Explanation struct {
	Visit  visit.Visit
	Policy *policy.Policy
}

// Explain returns the visit and the policy version that planned it; the
// visit's decisions say the rest.
func (a *App) Explain(ctx context.Context, tenant, id string) (Explanation, error) {
	v, err := store.GetVisit(ctx, a.DB, tenant, id)
	if err != nil {
		return Explanation{}, fmt.Errorf("visit %s: %w", id, err)
	}
	if err := visitsInScope(ctx, "visit_id", v.OrgUnit); err != nil {
		return Explanation{}, err
	}
	one := []visit.Visit{v}
	if err := a.forecast(ctx, one); err != nil {
		return Explanation{}, err
	}
	out := Explanation{Visit: one[0]}
	if v.PolicyID == policy.FollowUpID {
		return out, nil
	}
	p, err := store.GetPolicy(ctx, a.DB, tenant, v.PolicyID, v.PolicyVersion)
	switch {
	case err == nil:
		out.Policy = &p
	case !errors.Is(err, store.ErrNotFound):
		return Explanation{}, err
	}
	return out, nil
}
