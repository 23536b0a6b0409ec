package app

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	typesv1 "github.com/huifang/huifang/proto/huifang/types/v1"

	"github.com/huifang/huifang/pkg/enum"
	"github.com/huifang/huifang/pkg/inbox"
	"github.com/huifang/huifang/pkg/outbox"
	"github.com/huifang/huifang/services/scheduler/internal/contact"
	"github.com/huifang/huifang/services/scheduler/internal/engine"
	"github.com/huifang/huifang/services/scheduler/internal/policy"
	"github.com/huifang/huifang/services/scheduler/internal/store"
	"github.com/huifang/huifang/services/scheduler/internal/visit"
)

// Completed is a completed service (ServiceCompleted).
type Completed struct {
	Service  policy.Service
	Customer Customer
	// The complaint a closed-complaint service was about: its reference
	// and severity (carried on to VisitDue), and whether it was anonymous or
	// asked for a written reply only (seed 000: then no follow-up).
	ComplaintID      string
	Severity         int32
	Anonymous        bool
	WrittenReplyOnly bool
}

// PlanService plans a completed service in a transaction of its own.
func (a *App) PlanService(ctx context.Context, in Completed) (n int, err error) {
	err = a.inTx(ctx, func(tx pgx.Tx) error {
		n, err = a.PlanServiceTx(ctx, tx, in)
		return err
	})
	return n, err
}

// PlanServiceTx plans a completed service within tx: it records the service
// (for SimulatePolicy) and the customer's snapshot, ends the customer's
// pending visits whose policy stops when the customer comes in for a
// service of this type, moves those of a mileage anchor when the service
// carries a later odometer reading of the car (remileage), and plans every
// matching policy's steps, placed by the contact policy. Planning is idempotent per (service, policy, step,
// occurrence); each planned visit is announced (VisitPlanned). Within a
// consumer, an event planned before changes nothing (firstOf). It returns
// how many visits it planned.
func (a *App) PlanServiceTx(ctx context.Context, tx pgx.Tx, in Completed) (n int, err error) {
	if b := batchOf(ctx); b != nil {
		// A message that fails is rolled back to its savepoint: what it
		// changed of the batch goes with it, and so it does when a
		// statement it held back fails after it returned (OnRollback).
		mark := len(b.undo)
		inbox.OnRollback(ctx, func() { b.rollback(mark) })
		defer func() {
			if err != nil {
				b.rollback(mark)
			}
		}()
	}
	svc := in.Service
	apply, first, err := firstOf(ctx, tx, svc)
	if err != nil || !apply {
		return 0, err
	}
	ctx = a.withDueNow(ctx)
	ctx, prefs, err := recordAndSnapshot(ctx, tx, svc, in.Customer, "intake: ServiceCompleted "+svc.ID, first)
	if err != nil {
		return 0, err
	}
	if in.Customer.ID != svc.CustomerID {
		if prefs, err = batchPrefsOf(ctx, tx, svc.Tenant, svc.CustomerID); err != nil {
			return 0, err
		}
	}
	pending, err := batchLockPending(ctx, tx, svc)
	if err != nil {
		return 0, err
	}
	var stopped []visit.Visit
	pending, stopped = splitStopped(pending, func(v *visit.Visit) bool { return v.StopCameIn(svc) })
	if err := cancelled(ctx, tx, stopped, svc.CompletedAt); err != nil {
		return 0, err
	}
	if pending, err = remileage(ctx, tx, svc, pending, prefs); err != nil {
		return 0, err
	}
	return plan(ctx, tx, svc, prefs, pending, in.Customer.Snapshot, in.ComplaintID, in.Severity, engine.NoFollowUp(in.Anonymous, in.WrittenReplyOnly))
}

// ComplaintResolved is a complaint its owning department resolved.
type ComplaintResolved struct {
	Tenant, ComplaintID, OrgUnit, ProductCategory string
	// CustomerID names the customer when Customer carries no id.
	CustomerID string
	Customer   Customer
	ResolvedAt time.Time
	Severity   int32
	// NoFollowUp: the complaint was anonymous or asked for a written reply only.
	NoFollowUp bool
}

// PlanComplaintResolved plans a resolved complaint's confirmation in a transaction of its own.
func (a *App) PlanComplaintResolved(ctx context.Context, in ComplaintResolved) (n int, err error) {
	err = a.inTx(ctx, func(tx pgx.Tx) error {
		n, err = a.PlanComplaintResolvedTx(ctx, tx, in)
		return err
	})
	return n, err
}

// PlanComplaintResolvedTx plans the confirmation visits of a resolved
// complaint within tx (seed 003: within 48 hours after a resolved problem):
// every active policy triggered by complaint_resolved applies, the built-in
// one included.
func (a *App) PlanComplaintResolvedTx(ctx context.Context, tx pgx.Tx, in ComplaintResolved) (int, error) {
	ctx = a.withDueNow(ctx)
	at := in.ResolvedAt
	svc := policy.Service{
		Tenant: in.Tenant, ID: "complaint:" + in.ComplaintID + "@" + at.UTC().Format(time.RFC3339Nano), Type: policy.TypeComplaintResolved,
		OrgUnit: in.OrgUnit, CompletedAt: at, CustomerID: in.CustomerID, Tier: in.Customer.Tier,
		ProductCategory: in.ProductCategory, Severity: enum.Name(typesv1.Severity(in.Severity)),
	}
	if svc.CustomerID == "" {
		svc.CustomerID = in.Customer.ID
	}
	if _, err := updateCustomer(ctx, tx, svc.Tenant, in.Customer, 0, at, "feedback: ComplaintResolved "+in.ComplaintID); err != nil {
		return 0, err
	}
	prefs, err := prefsOf(ctx, tx, svc.Tenant, svc.CustomerID)
	if err != nil {
		return 0, err
	}
	pending, err := lockPending(ctx, tx, svc)
	if err != nil {
		return 0, err
	}
	none := ""
	if in.NoFollowUp {
		none = engine.NoFollowUpResolved
	}
	return plan(ctx, tx, svc, prefs, pending, in.Customer.Snapshot, in.ComplaintID, in.Severity, none)
}

// Unreachable is a visit dispatch could not make (VisitUnreachable).
type Unreachable struct {
	Tenant, VisitID string
	Attempts        int32
	Reason          string
	// At is when it failed; zero: now.
	At time.Time
}

// PlanUnreachable handles a failed visit in a transaction of its own.
func (a *App) PlanUnreachable(ctx context.Context, in Unreachable) (n int, err error) {
	err = a.inTx(ctx, func(tx pgx.Tx) error {
		n, err = a.PlanUnreachableTx(ctx, tx, in)
		return err
	})
	return n, err
}

// PlanUnreachableTx records the failure on the visit (decision
// unreachable) and plans the policies triggered by it within tx (service
// type visit_unreachable; seed 000 auto: "invite again if the first
// invitation failed"): the failed visit becomes a service completed when it
// failed, carrying the service it followed and, as attributes, the failed
// visit's policy name, step, id and service type. An unknown visit is
// store.ErrNotFound.
func (a *App) PlanUnreachableTx(ctx context.Context, tx pgx.Tx, in Unreachable) (int, error) {
	ctx = a.withDueNow(ctx)
	at := or(in.At, a.Now().UTC())
	failed, err := store.UpdateVisit(ctx, tx, in.Tenant, in.VisitID, func(v *visit.Visit) error {
		v.Unreachable(in.Attempts, in.Reason, at)
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("visit %s of tenant %s: %w", in.VisitID, in.Tenant, err)
	}
	orig, err := store.FollowedService(ctx, tx, failed)
	if err != nil {
		return 0, err
	}
	name := failed.PolicyID
	if failed.PolicyID != policy.FollowUpID {
		p, err := store.GetPolicy(ctx, tx, in.Tenant, failed.PolicyID, 0)
		switch {
		case err == nil:
			name = p.Name
		case !errors.Is(err, store.ErrNotFound):
			return 0, err
		}
	}
	customer := failed.Customer
	if customer == nil {
		customer = []byte("{}")
	}
	svc := policy.Unreachable(orig, name, failed.Step, failed.ID, at)
	prefs, err := prefsOf(ctx, tx, svc.Tenant, svc.CustomerID)
	if err != nil {
		return 0, err
	}
	pending, err := lockPending(ctx, tx, svc)
	if err != nil {
		return 0, err
	}
	return plan(ctx, tx, svc, prefs, pending, customer, failed.ComplaintID, failed.Severity, "")
}

// plan plans every active policy that applies to the service (engine.Plan:
// matching, once per customer, placed; policy.Effective: a starter built-in
// only for a tenant that has not configured the service) and stores and
// announces the visits.
// A non-empty noFollowUp keeps every visit as suppressed with that reason.
func plan(ctx context.Context, tx pgx.Tx, svc policy.Service, prefs contact.Prefs, pending []visit.Visit, snapshot []byte, complaintID string, severity int32, noFollowUp string) (int, error) {
	active, err := activePolicies(ctx, tx, svc.Tenant)
	if err != nil {
		return 0, err
	}
	// A starter built-in steps aside for a tenant that configured its
	// services (a pack, or a policy of its own for the same service type).
	policies := policy.Effective(active)
	rules, err := planningRules(ctx, tx, svc.Tenant)
	if err != nil {
		return 0, err
	}
	enrolled := make([]string, len(pending))
	for i, v := range pending {
		enrolled[i] = v.PolicyID
	}
	quota := &txQuota{ctx: ctx, tx: tx}
	all, err := engine.Plan(policies, svc, rules, prefs, enrolled, noFollowUp, quota)
	if err != nil {
		return 0, err
	}
	planned := 0
	for _, pl := range all {
		v := visit.New(outbox.NewEventID(), pl.Visit, svc, &pl.Policy, snapshot, complaintID, severity)
		ok, err := insert(ctx, tx, v)
		if err != nil {
			return planned, err
		}
		if !ok {
			// Planned already (the same service sent twice): it counts once.
			if err := quota.untake(pl.Policy.ID, pl.Visit.Step); err != nil {
				return planned, err
			}
		}
		if ok && v.Status == visit.StatusPlanned {
			planned++
		}
	}
	if w := writeOf(ctx); w != nil {
		w.samples = append(w.samples, quota.taken...)
	}
	return planned, nil
}

// txQuota counts a service in the sampling quotas of its steps
// (store.TakeQuota) within the planning transaction, and remembers what it
// counted so that a visit planned before can be taken back.
type txQuota struct {
	ctx   context.Context
	tx    pgx.Tx
	taken []policy.Sample
}

// Take counts the service in the stratum's row.
func (q *txQuota) Take(st policy.Stratum, rate float64) (policy.Sample, error) {
	s, err := store.TakeQuota(q.ctx, q.tx, st, rate)
	if err == nil {
		q.taken = append(q.taken, s)
	}
	return s, err
}

// untake takes back what Take counted for the policy's step, if anything.
func (q *txQuota) untake(policyID string, step int) error {
	for i, s := range q.taken {
		if s.Stratum.PolicyID == policyID && s.Stratum.Step == step {
			q.taken = append(q.taken[:i], q.taken[i+1:]...)
			return store.UntakeQuota(q.ctx, q.tx, s)
		}
	}
	return nil
}

// insert stores a new visit and announces it when it is planned; it tells
// whether the visit was new. A planned visit due already is fired in the
// planning transaction: stored fired when planned alone (insertFired) or
// with its consumer batch's visits (Batch.write: those of a customer with
// one service in the batch fired together then, those of a customer with
// more fired at their message, fireHeld); stored planned and fired with the
// batch's others in one round (fireNow) when a firing round planned it, or
// it has no customer.
func insert(ctx context.Context, tx pgx.Tx, v visit.Visit) (bool, error) {
	if d, ok := ctx.Value(dueNowKey{}).(dueNow); ok && v.Status == visit.StatusPlanned && !v.DueAt.After(d.now()) &&
		writeOf(ctx) == nil && inbox.Batch(ctx) == nil {
		if _, round := ctx.Value(eventsKey{}).(*events); !round {
			return insertFired(ctx, tx, v, d)
		}
	}
	ok, err := insertVisit(ctx, tx, v)
	if ok && v.CustomerID != "" && writeOf(ctx) == nil {
		batchOf(ctx).planned(store.CustomerKey{Tenant: v.Tenant, Customer: v.CustomerID})
	}
	if err != nil || !ok || v.Status != visit.StatusPlanned {
		return ok, err
	}
	if err := addPlanned(ctx, tx, v); err != nil {
		return true, err
	}
	if d, ok := ctx.Value(dueNowKey{}).(dueNow); ok && !v.DueAt.After(d.now()) {
		if w := writeOf(ctx); w != nil {
			if b := batchOf(ctx); b.repeated[customerKey(v)] {
				// Its customer's later services in the batch see it as
				// fired (or moved, or suppressed), as one by one.
				return true, b.fireHeld(ctx, tx, v.ID, d)
			}
			// Due already and not stored yet: fired with the batch's
			// visits just before they are stored (Batch.write), and stored
			// fired.
			w.instant = append(w.instant, v.ID)
			w.due = d
			return true, nil
		}
		// Due already, stored at once (the next visit of a series a
		// firing round planned, a visit of no customer): fire it in this
		// transaction, once every message of the consumer's batch is
		// planned (inbox.Gather: one round for the batch), rather than at
		// the firing loop's next round; and wake the loop after the commit
		// for a visit a concurrent round held.
		inbox.AfterCommit(ctx, d.fire)
		if err := inbox.Gather(ctx, tx, "scheduler.fire-now", v.ID, d.fireNow); err != nil {
			return true, err
		}
	}
	return true, nil
}

// insertFired stores a new visit due already in the state firing leaves
// it in (fired, moved, suppressed or failed: d.fireNew, as a round of the
// firing loop would) and announces it, VisitPlanned then the firing's
// events: one insert rather than an insert and the firing's update. A
// visit planned before is not new: nothing is done. One planned by a
// concurrent transaction meanwhile fails tx (errPlannedMeanwhile): the
// message is tried again.
func insertFired(ctx context.Context, tx pgx.Tx, v visit.Visit, d dueNow) (bool, error) {
	before, err := store.ExistingVisits(ctx, tx, []visit.Visit{v})
	if err != nil || before[v.ID] {
		return false, err
	}
	fctx, evs, _ := withEvents(ctx)
	decided, failed, err := d.fireNew(fctx, tx, []visit.Visit{v})
	if err != nil {
		return false, err
	}
	if err := insertNew(ctx, tx, decided); err != nil {
		return false, err
	}
	if v.CustomerID != "" {
		batchOf(ctx).planned(store.CustomerKey{Tenant: v.Tenant, Customer: v.CustomerID})
	}
	if err := addPlanned(ctx, tx, v); err != nil {
		return true, err
	}
	for _, m := range evs.msgs {
		if err := emit(ctx, tx, m); err != nil {
			return true, err
		}
	}
	d.report(failed)
	return true, nil
}

// errPlannedMeanwhile: a visit fired before it was stored was planned by a
// concurrent transaction meanwhile; what the firing did is not kept (the
// transaction fails, and its message is tried again).
var errPlannedMeanwhile = errors.New("app: a visit due at once was planned by a concurrent transaction meanwhile; tried again")

// lockPending locks the pending visits of the service's customer (none
// without a customer).
func lockPending(ctx context.Context, tx pgx.Tx, svc policy.Service) ([]visit.Visit, error) {
	if svc.CustomerID == "" {
		return nil, nil
	}
	return store.LockPending(ctx, tx, svc.Tenant, svc.CustomerID)
}

// splitStopped applies stop to each visit and returns those it left
// pending and those it ended.
func splitStopped(vs []visit.Visit, stop func(v *visit.Visit) bool) (pending, stopped []visit.Visit) {
	for _, v := range vs {
		if stop(&v) {
			stopped = append(stopped, v)
		} else {
			pending = append(pending, v)
		}
	}
	return pending, stopped
}

// cancelled saves visits a stop condition or an opt-out ended and announces
// them (VisitCancelled).
func cancelled(ctx context.Context, tx pgx.Tx, vs []visit.Visit, at time.Time) error {
	if err := saveVisits(ctx, tx, vs); err != nil {
		return err
	}
	for _, v := range vs {
		if err := addCancelled(ctx, tx, v, at); err != nil {
			return err
		}
	}
	return nil
}
