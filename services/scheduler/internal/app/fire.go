package app

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime/debug"
	"time"

	"github.com/jackc/pgx/v5"

	calendar "github.com/huifang/huifang/pkg/contact"
	"github.com/huifang/huifang/pkg/outbox"
	"github.com/huifang/huifang/pkg/postgres"
	"github.com/huifang/huifang/services/scheduler/internal/contact"
	"github.com/huifang/huifang/services/scheduler/internal/engine"
	"github.com/huifang/huifang/services/scheduler/internal/policy"
	"github.com/huifang/huifang/services/scheduler/internal/store"
	"github.com/huifang/huifang/services/scheduler/internal/visit"
)

// FireDue fires up to limit visits due now, in a transaction of its own:
// one round of the firing loop. It returns how many visits it handled
// (fired, moved, suppressed or failed), so the loop goes on at once after a
// full round. The visits it marked failed are reported after the commit:
// one ERROR line each and FireFailures.
func (a *App) FireDue(ctx context.Context, limit int) (int, error) {
	now := a.Now()
	var round Fired
	err := pgx.BeginFunc(ctx, a.DB, func(tx pgx.Tx) (err error) {
		round, err = a.FireDueTx(ctx, tx, now, limit)
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("app: fire due visits: %w", err)
	}
	if round.Handled > 0 && a.Relay != nil {
		// A round that handled nothing wrote nothing: the relay sleeps on.
		a.Relay.Notify()
	}
	a.reportFailed(round.Failed)
	return round.Handled, nil
}

// Fired is what a round of firing did.
type Fired struct {
	// Handled is how many visits were claimed and handled: fired, moved,
	// suppressed or failed.
	Handled int
	// Failed are the visits marked failed, each with its error.
	Failed []Failure
}

// Failure is a visit whose firing failed for a reason of its own.
type Failure struct {
	Visit visit.Visit
	Err   error
}

// FireDueTx claims up to limit visits due at or before now within tx (no
// other transaction claims them: replicas never fire a visit twice) and asks
// the contact policy about each: it fires (marked due; VisitDue with the
// tenant's contact calendar), moves (a window, quiet hours, a holiday or a
// cap; the reason is kept) or is suppressed (an opt-out, or a cap past the
// deadline; VisitCancelled). A fired or suppressed visit of a recurring step
// plans the next one with the policy version it came from.
//
// A visit whose firing fails for a reason of its own (its stored customer
// snapshot or service cannot be read, its policy or its tenant's contact
// policy cannot be loaded, its event cannot be built, the database refuses
// one of its statements, a panic) is rolled back to its savepoint and
// marked failed (visit.Fail) in tx, and the rest of the batch goes on: one
// bad visit never holds the head of the due queue. A failure that says the
// database is away (store.Unavailable: connection lost, statement timeout,
// shutdown, serialization failure, deadlock) or that ctx ended fails the
// whole round instead, and nothing is marked failed by an outage: the loop
// retries. The caller reports the failures after its commit (FireDue does).
//
// A round is first fired in one savepoint (fireAll): most rounds have no
// failing visit, and a savepoint per visit costs a third of the firing
// rate. When a visit fails for a reason of its own, that savepoint is
// rolled back and the round is fired again with a savepoint per visit
// (fireEach), which isolates the failing ones.
func (a *App) FireDueTx(ctx context.Context, tx pgx.Tx, now time.Time, limit int) (Fired, error) {
	claimed, err := store.ClaimDue(ctx, tx, now, limit)
	if err != nil {
		return Fired{}, err
	}
	return a.fireClaimed(ctx, tx, now, claimed)
}

// fireNow fires, within tx, the visits of ids still planned and due by now:
// visits planned due at once fire in the transaction that planned them. A
// visit a concurrent round holds is left to it (SKIP LOCKED). The visits it
// marked failed are reported at once.
func (a *App) fireNow(ctx context.Context, tx pgx.Tx, ids []string) error {
	now := a.Now()
	claimed, err := store.ClaimDueByID(ctx, tx, ids, now)
	if err != nil {
		return err
	}
	round, err := a.fireClaimed(ctx, tx, now, claimed)
	if err != nil {
		return fmt.Errorf("app: fire visits due at once: %w", err)
	}
	a.reportFailed(round.Failed)
	return nil
}

// fireClaimed fires, moves or suppresses the claimed visits (FireDueTx).
func (a *App) fireClaimed(ctx context.Context, tx pgx.Tx, now time.Time, claimed []store.Claimed) (Fired, error) {
	due, out, err := decide(ctx, tx, now, claimed, &a.zones)
	if err != nil {
		return Fired{}, err
	}
	return out, store.SaveVisits(ctx, tx, due)
}

// fireNew fires, moves or suppresses, within tx, new visits due by now that
// are not stored yet, as a round of the firing loop would once they were:
// it returns them in the state to store them in (store.InsertNewVisits), so
// that a visit due at once is inserted fired rather than inserted planned
// and then updated. Its events join those of ctx's round (withEvents).
func (a *App) fireNew(ctx context.Context, tx pgx.Tx, vs []visit.Visit) ([]visit.Visit, []Failure, error) {
	claimed := make([]store.Claimed, len(vs))
	for i, v := range vs {
		claimed[i] = store.Claimed{Visit: v}
	}
	due, out, err := decide(ctx, tx, a.Now(), claimed, &a.zones)
	if err != nil {
		return nil, nil, err
	}
	for i := range due {
		if due[i].Nominal.IsZero() {
			due[i].Nominal = due[i].DueAt // as store.SaveVisits writes it
		}
	}
	return due, out.Failed, nil
}

// decide fires, moves or suppresses the claimed visits within tx and
// returns them as they are to be saved; the caller saves them. The contact
// policies it reads look their time zones up in zones.
func decide(ctx context.Context, tx pgx.Tx, now time.Time, claimed []store.Claimed, zones *calendar.Zones) ([]visit.Visit, Fired, error) {
	if len(claimed) == 0 {
		return nil, Fired{}, nil
	}
	r := newRound(now, zones)
	if err := r.load(ctx, tx, claimed); err != nil {
		return nil, Fired{}, err
	}
	// The round's events are written together, after its visits fired.
	ctx, evs, own := withEvents(ctx)
	out := Fired{Handled: len(claimed)}
	due, ok, err := r.fireAll(ctx, tx, claimed)
	if err == nil && !ok {
		due, out.Failed, err = r.fireEach(ctx, tx, claimed)
	}
	if err != nil {
		return nil, Fired{}, err
	}
	if own {
		if err := evs.write(ctx, tx); err != nil {
			return nil, Fired{}, err
		}
	}
	return due, out, nil
}

// fireAll fires the claimed visits in one savepoint of tx. ok is false when
// a visit failed for a reason of its own (or is damaged): the savepoint is
// rolled back, nothing of the attempt is kept, and the round is to be fired
// again visit by visit. err fails the round.
func (r *round) fireAll(ctx context.Context, tx pgx.Tx, claimed []store.Claimed) (due []visit.Visit, ok bool, err error) {
	for _, c := range claimed {
		if c.Damage != nil {
			return nil, false, nil
		}
	}
	sp, err := tx.Begin(ctx)
	if err != nil {
		return nil, false, err
	}
	_, evs, _ := withEvents(ctx)
	mark := evs.mark()
	due = make([]visit.Visit, len(claimed))
	for i, c := range claimed {
		due[i] = c.Visit
		contacted, own := r.fire(ctx, sp, &due[i])
		if own != nil {
			if away(ctx, own) {
				return nil, false, own
			}
			r.fired = map[store.CustomerKey][]contact.Contact{}
			evs.rollback(mark)
			return nil, false, sp.Rollback(ctx)
		}
		if contacted {
			r.contacted(due[i])
		}
	}
	return due, true, sp.Commit(ctx)
}

// fireEach fires the claimed visits each in a savepoint of its own; a visit
// that fails for a reason of its own is rolled back to its savepoint and
// marked failed. err fails the round.
func (r *round) fireEach(ctx context.Context, tx pgx.Tx, claimed []store.Claimed) ([]visit.Visit, []Failure, error) {
	due := make([]visit.Visit, len(claimed))
	var failed []Failure
	for i, c := range claimed {
		due[i] = c.Visit
		own := c.Damage
		if own == nil {
			var err error
			if own, err = r.fireIsolated(ctx, tx, &due[i]); err != nil {
				return nil, nil, err
			}
		}
		if own != nil {
			// What the failed attempt changed was rolled back with its savepoint.
			due[i] = c.Visit
			due[i].Fail(own.Error(), r.now)
			failed = append(failed, Failure{Visit: due[i], Err: own})
		}
	}
	return due, failed, nil
}

// fireIsolated fires v in a savepoint of tx (pgx: tx.Begin). own is v's own
// failure (the savepoint rolled back, v to be marked failed); err fails the
// round: the database is away, ctx ended, or the savepoint itself cannot be
// handled.
func (r *round) fireIsolated(ctx context.Context, tx pgx.Tx, v *visit.Visit) (own, err error) {
	sp, err := tx.Begin(ctx)
	if err != nil {
		return nil, err
	}
	_, evs, _ := withEvents(ctx)
	mark := evs.mark()
	contacted, own := r.fire(ctx, sp, v)
	if own == nil {
		// Releasing a savepoint checks nothing of the visit's: a failure
		// here is the transaction's, and fails the round.
		if err := sp.Commit(ctx); err != nil {
			return nil, err
		}
		if contacted {
			r.contacted(*v)
		}
		return nil, nil
	}
	if away(ctx, own) {
		return nil, own
	}
	evs.rollback(mark)
	if err := sp.Rollback(ctx); err != nil {
		return nil, err
	}
	return own, nil
}

// away tells whether err fails the round rather than the visit: the
// database is away or ctx ended.
func away(ctx context.Context, err error) bool {
	return ctx.Err() != nil || store.Unavailable(err)
}

// reportFailed logs each failed visit (ids, policy and the error; no
// customer data) and counts it.
func (a *App) reportFailed(fs []Failure) {
	log := a.Log
	if log == nil {
		log = slog.Default()
	}
	for _, f := range fs {
		v := f.Visit
		attrs := []any{"visit_id", v.ID, "tenant_id", v.Tenant, "policy_id", v.PolicyID, "policy_version", v.PolicyVersion, "err", f.Err}
		var p *panicError
		if errors.As(f.Err, &p) {
			attrs = append(attrs, "stack", string(p.stack))
		}
		log.Error("visit failed to fire: marked failed, its batch went on without it; "+
			"retry it with ReschedulePlannedVisit or cancel it", attrs...)
		if a.FireFailures != nil {
			a.FireFailures.Inc()
		}
	}
}

// panicError is a panic while firing a visit: that visit's failure.
type panicError struct {
	value any
	stack []byte
}

func (p *panicError) Error() string { return fmt.Sprintf("panic: %v", p.value) }

// round is what one round of firing reads once: the tenants' contact
// policies, the customers' preferences and contact ledgers, the policies of
// recurring series, and the contacts fired in the round so far. An entry
// present in a map is loaded (the zero value when there is nothing stored).
type round struct {
	now       time.Time
	rules     map[string]contact.Rules
	customers map[store.CustomerKey]contact.Customer
	history   map[store.CustomerKey][]contact.Contact
	fired     map[store.CustomerKey][]contact.Contact
	policies  map[string]*policy.Policy
	// zones is where the rules read look their time zones up (App.zones).
	zones *calendar.Zones
}

func newRound(now time.Time, zones *calendar.Zones) *round {
	r := &round{now: now, fired: map[store.CustomerKey][]contact.Contact{}, policies: map[string]*policy.Policy{}, zones: zones}
	r.reset()
	return r
}

func (r *round) reset() {
	r.rules, r.customers, r.history = map[string]contact.Rules{}, map[store.CustomerKey]contact.Customer{}, map[store.CustomerKey][]contact.Contact{}
}

// contacted records that v fell due in this round: a contact the caps of
// the visits after it count.
func (r *round) contacted(v visit.Visit) {
	k := customerKey(v)
	r.fired[k] = append(r.fired[k], contact.Contact{Channel: v.Channel, At: r.now})
}

func customerKey(v visit.Visit) store.CustomerKey {
	return store.CustomerKey{Tenant: v.Tenant, Customer: v.CustomerID}
}

// load reads what the batch needs in three statements, in a savepoint. When
// something of it cannot be read for a reason of its own (one tenant's
// contact policy, one customer's preferences), nothing is kept and each
// visit reads its own in its savepoint (rulesOf, customerOf, historyOf), so
// that only the visits it concerns fail.
func (r *round) load(ctx context.Context, tx pgx.Tx, claimed []store.Claimed) error {
	sp, err := tx.Begin(ctx)
	if err != nil {
		return err
	}
	if err := r.loadBatch(ctx, sp, claimed); err != nil {
		if away(ctx, err) {
			return err
		}
		r.reset()
		return sp.Rollback(ctx)
	}
	return sp.Commit(ctx)
}

// capsInput is what the frequency caps read for some customers: their
// tenants' contact policies, the customers, and the contact ledger of those
// whose caps look back at it (capped), since the longest cap period.
type capsInput struct {
	rules     map[string]contact.Rules
	customers map[store.CustomerKey]contact.Customer
	capped    []store.CustomerKey
	history   map[store.CustomerKey][]contact.Contact
}

// loadCaps reads the capsInput of keys (of tenants) at now, in three
// statements.
func loadCaps(ctx context.Context, q postgres.Querier, tenants map[string]bool, keys map[store.CustomerKey]bool, now time.Time) (capsInput, error) {
	var in capsInput
	var err error
	if in.rules, err = store.ContactRules(ctx, q, setKeys(tenants)); err != nil {
		return in, err
	}
	if in.customers, err = store.Customers(ctx, q, setKeys(keys)); err != nil {
		return in, err
	}
	var back time.Duration
	for k := range keys {
		if rl := in.rules[k.Tenant]; rl.NeedsHistory(in.customers[k].Effective()) {
			in.capped, back = append(in.capped, k), max(back, rl.MaxPer())
		}
	}
	in.history, err = store.ContactHistory(ctx, q, in.capped, now.Add(-back))
	return in, err
}

func (r *round) loadBatch(ctx context.Context, tx pgx.Tx, claimed []store.Claimed) error {
	tenants := map[string]bool{}
	keys := map[store.CustomerKey]bool{}
	for _, c := range claimed {
		tenants[c.Tenant] = true
		if c.CustomerID != "" {
			keys[customerKey(c.Visit)] = true
		}
	}
	in, err := loadCaps(ctx, tx, tenants, keys, r.now)
	if err != nil {
		return err
	}
	rules, customers, history := in.rules, in.customers, in.history
	for t := range tenants {
		rl := rules[t]
		rl.Zones = r.zones
		r.rules[t] = rl
	}
	for k := range keys {
		r.customers[k] = customers[k]
		r.history[k] = history[k]
	}
	return nil
}

func (r *round) rulesOf(ctx context.Context, tx pgx.Tx, tenant string) (contact.Rules, error) {
	if rl, ok := r.rules[tenant]; ok {
		return rl, nil
	}
	rl, err := rulesOf(ctx, tx, tenant)
	if err == nil {
		rl.Zones = r.zones
		r.rules[tenant] = rl
	}
	return rl, err
}

func (r *round) customerOf(ctx context.Context, tx pgx.Tx, k store.CustomerKey) (contact.Customer, error) {
	if c, ok := r.customers[k]; ok || k.Customer == "" {
		return c, nil
	}
	cs, err := store.Customers(ctx, tx, []store.CustomerKey{k})
	if err == nil {
		r.customers[k] = cs[k]
	}
	return cs[k], err
}

// historyOf is the customer's contact ledger: what was loaded, and what
// this round fired.
func (r *round) historyOf(ctx context.Context, tx pgx.Tx, k store.CustomerKey, rl contact.Rules, prefs contact.Prefs) ([]contact.Contact, error) {
	h, ok := r.history[k]
	if !ok && k.Customer != "" && rl.NeedsHistory(prefs) {
		hs, err := store.ContactHistory(ctx, tx, []store.CustomerKey{k}, r.now.Add(-rl.MaxPer()))
		if err != nil {
			return nil, err
		}
		h, r.history[k] = hs[k], hs[k]
	}
	return append(h[:len(h):len(h)], r.fired[k]...), nil
}

// fire asks the contact policy about v within tx and fires, moves or
// suppresses it (events, the next visit of a series); contacted tells
// whether v fell due (a contact the caps count). A panic is v's failure.
func (r *round) fire(ctx context.Context, tx pgx.Tx, v *visit.Visit) (contacted bool, err error) {
	defer func() {
		if p := recover(); p != nil {
			contacted, err = false, &panicError{value: p, stack: debug.Stack()}
		}
	}()
	k := customerKey(*v)
	rl, err := r.rulesOf(ctx, tx, v.Tenant)
	if err != nil {
		return false, err
	}
	c, err := r.customerOf(ctx, tx, k)
	if err != nil {
		return false, err
	}
	prefs := c.Effective()
	history, err := r.historyOf(ctx, tx, k, rl, prefs)
	if err != nil {
		return false, err
	}
	out := rl.Check(r.now, v.Pending(), prefs, history)
	v.Due(out, r.now)
	switch out.Action {
	case contact.Move:
		return false, nil
	case contact.Suppress:
		err = addCancelled(ctx, tx, *v, r.now)
	case contact.Fire:
		err = addDue(ctx, tx, *v, rl)
	}
	if err != nil {
		return false, err
	}
	return out.Action == contact.Fire, planNext(ctx, tx, r.policies, *v, out, rl, prefs)
}

// policyVersion is the policy version v was planned by, read once per
// version into cache; nil when it no longer exists.
func policyVersion(ctx context.Context, tx pgx.Tx, cache map[string]*policy.Policy, v visit.Visit) (*policy.Policy, error) {
	key := fmt.Sprintf("%s@%d", v.PolicyID, v.PolicyVersion)
	if p, ok := cache[key]; ok {
		return p, nil
	}
	var p *policy.Policy
	got, err := store.GetPolicy(ctx, tx, v.Tenant, v.PolicyID, v.PolicyVersion)
	switch {
	case err == nil:
		p = &got
	case !errors.Is(err, store.ErrNotFound):
		return nil, err
	}
	cache[key] = p
	return p, nil
}

// planNext plans the next visit of a recurring series after v fell due,
// with the policy version the series came from (engine.AfterDue).
func planNext(ctx context.Context, tx pgx.Tx, cache map[string]*policy.Policy, v visit.Visit, out contact.Outcome, r contact.Rules, prefs contact.Prefs) error {
	if v.Service == nil {
		return nil
	}
	p, err := policyVersion(ctx, tx, cache, v)
	if err != nil {
		return err
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
	_, err = insert(ctx, tx, visit.New(outbox.NewEventID(), next, *v.Service, p, snapshot, v.ComplaintID, v.Severity))
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

// FailedVisits is how many visits failed to fire and wait for an operator
// (retry with Reschedule, or Cancel).
func (a *App) FailedVisits(ctx context.Context) (int, error) {
	return store.FailedVisits(ctx, a.DB)
}

func setKeys[K comparable](m map[K]bool) []K {
	out := make([]K, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	return out
}
