package app

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/huifang/huifang/pkg/outbox"
	"github.com/huifang/huifang/services/scheduler/internal/contact"
	"github.com/huifang/huifang/services/scheduler/internal/engine"
	"github.com/huifang/huifang/services/scheduler/internal/policy"
	"github.com/huifang/huifang/services/scheduler/internal/store"
	"github.com/huifang/huifang/services/scheduler/internal/visit"
)

// FireDue fires up to limit visits due now, in a transaction of its own:
// one round of the firing loop. It returns how many visits it handled
// (fired, moved or suppressed), so the loop goes on at once after a full
// round.
func (a *App) FireDue(ctx context.Context, limit int) (n int, err error) {
	now := a.Now()
	err = a.inTx(ctx, func(tx pgx.Tx) error {
		n, err = a.FireDueTx(ctx, tx, now, limit)
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("app: fire due visits: %w", err)
	}
	return n, nil
}

// FireDueTx claims up to limit visits due at or before now within tx (no
// other transaction claims them: replicas never fire a visit twice) and asks
// the contact policy about each: it fires (marked due; VisitDue with the
// tenant's contact calendar), moves (a window, quiet hours, a holiday or a
// cap; the reason is kept) or is suppressed (an opt-out, or a cap past the
// deadline; VisitCancelled). A fired or suppressed visit of a recurring step
// plans the next one with the policy version it came from.
func (a *App) FireDueTx(ctx context.Context, tx pgx.Tx, now time.Time, limit int) (int, error) {
	due, err := store.ClaimDue(ctx, tx, now, limit)
	if err != nil || len(due) == 0 {
		return 0, err
	}
	tenants := map[string]bool{}
	keys := map[store.CustomerKey]bool{}
	for _, v := range due {
		tenants[v.Tenant] = true
		if v.CustomerID != "" {
			keys[store.CustomerKey{Tenant: v.Tenant, Customer: v.CustomerID}] = true
		}
	}
	rules, err := store.ContactRules(ctx, tx, setKeys(tenants))
	if err != nil {
		return 0, err
	}
	customers, err := store.Customers(ctx, tx, setKeys(keys))
	if err != nil {
		return 0, err
	}
	// The contact ledger, for the customers whose caps look back at it.
	var ledger []store.CustomerKey
	var back time.Duration
	for k := range keys {
		if r := rules[k.Tenant]; r.NeedsHistory(customers[k].Effective()) {
			ledger, back = append(ledger, k), max(back, r.MaxPer())
		}
	}
	history, err := store.ContactHistory(ctx, tx, ledger, now.Add(-back))
	if err != nil {
		return 0, err
	}
	policies := map[string]*policy.Policy{}
	for i := range due {
		v := &due[i]
		k := store.CustomerKey{Tenant: v.Tenant, Customer: v.CustomerID}
		r, prefs := rules[v.Tenant], customers[k].Effective()
		out := r.Check(now, v.Pending(), prefs, history[k])
		v.Due(out, now)
		switch out.Action {
		case contact.Move:
			continue
		case contact.Suppress:
			err = addCancelled(ctx, tx, *v, now)
		case contact.Fire:
			history[k] = append(history[k], contact.Contact{Channel: v.Channel, At: now})
			err = addDue(ctx, tx, *v, r)
		}
		if err != nil {
			return 0, err
		}
		if err := planNext(ctx, tx, policies, *v, out, r, prefs); err != nil {
			return 0, err
		}
	}
	return len(due), store.SaveVisits(ctx, tx, due)
}

// planNext plans the next visit of a recurring series after v fell due,
// with the policy version the series came from (engine.AfterDue).
func planNext(ctx context.Context, tx pgx.Tx, cache map[string]*policy.Policy, v visit.Visit, out contact.Outcome, r contact.Rules, prefs contact.Prefs) error {
	if v.Service == nil {
		return nil
	}
	key := fmt.Sprintf("%s@%d", v.PolicyID, v.PolicyVersion)
	p, ok := cache[key]
	if !ok {
		got, err := store.GetPolicy(ctx, tx, v.Tenant, v.PolicyID, v.PolicyVersion)
		switch {
		case err == nil:
			p = &got
		case !errors.Is(err, store.ErrNotFound):
			return err
		}
		cache[key] = p
	}
	if p == nil {
		return nil
	}
	next, ok := engine.AfterDue(*p, v.Visit, out, *v.Service, r, prefs)
	if !ok {
		return nil
	}
	snapshot := v.Customer
	if len(snapshot) == 0 {
		snapshot = []byte("{}")
	}
	_, err := insert(ctx, tx, visit.New(outbox.NewEventID(), next, *v.Service, p, snapshot, v.ComplaintID, v.Severity))
	return err
}

// DueLag is how long the oldest visit due now has waited to fire; zero when
// none waits. The firing loop keeps it near its interval; a growing lag
// means the scheduler is down or cannot keep up.
func (a *App) DueLag(ctx context.Context) (time.Duration, error) {
	now := a.Now()
	oldest, ok, err := store.OldestDue(ctx, a.DB, now)
	if err != nil || !ok {
		return 0, err
	}
	return now.Sub(oldest), nil
}

func setKeys[K comparable](m map[K]bool) []K {
	out := make([]K, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	return out
}
