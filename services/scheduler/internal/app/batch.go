package app

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"

	eventsv1 "github.com/huifang/huifang/proto/huifang/events/v1"

	calendar "github.com/huifang/huifang/pkg/contact"
	"github.com/huifang/huifang/pkg/inbox"
	"github.com/huifang/huifang/pkg/outbox"
	"github.com/huifang/huifang/services/scheduler/internal/contact"
	"github.com/huifang/huifang/services/scheduler/internal/policy"
	"github.com/huifang/huifang/services/scheduler/internal/store"
	"github.com/huifang/huifang/services/scheduler/internal/visit"
)

// Batch is what the planning of a consumer's batch of completed services
// reads once for all of them (Prepare): what the scheduler knew of their
// customers when the batch began, and each tenant's policies and contact
// policy, read when a message of the tenant first needs them. It also
// remembers what the batch's messages changed since (the customers' new
// snapshots, the customers given planned visits, the services recorded but
// not yet written), so that a message never takes what was read before for
// what is.
//
// What the batch's messages write is written for all of them just before
// the commit (inbox.Gather; Batch.write): the services, the customers'
// snapshots and the visits, a statement each, and then their events. A
// customer with more than one service in the batch is no exception: its
// visits are held (Batch.held) until then, and its later services see
// them as one service after the other would (batchLockPending: those still
// planned are its pending visits; saveVisits: a stop condition or a later
// odometer reading changes the held visit). Its visits due at once are
// fired, moved or suppressed at their message, as a round of the firing
// loop would then (fireHeld: the batch's one round, its contacts counted
// by the caps of the visits after them), and held in that state; their
// events follow their VisitPlanned, so that the customer's events come in
// the order its services one by one would give.
//
// known is kept as the batch's messages change it: a message's snapshot of
// its customer is stored, with the others', just before the commit
// (store.StoreSnapshots, one statement, the customers in a stable order,
// their rows locked only from then on), and the messages after it see it.
// What a message changed of the batch (known, the held visits, the
// round's contacts) is undone when its planning fails (PlanServiceTx:
// the message is rolled back to its savepoint and handled alone).
//
// A Batch is used by one goroutine, the batch's, message after message.
type Batch struct {
	known    map[store.CustomerKey]store.Known
	policies map[string][]policy.Policy
	rules    map[string]contact.Rules
	// zones is where the rules read look their time zones up (App.zones).
	zones *calendar.Zones
	// plannedFor are the customers a message of the batch planned visits
	// for (a message rolled back keeps its mark: the customer's pending
	// visits are then locked and read, which is always right).
	plannedFor map[store.CustomerKey]bool
	// repeated are the customers of more than one of the batch's services.
	repeated map[store.CustomerKey]bool
	// rejected are the visits the batch took for new that were not.
	rejected map[string]bool
	// services are the services the batch recorded (written just before
	// the commit, inbox.Gather), by tenant and id.
	services map[[2]string]policy.Service
	// read are the batch's services whose records Prepare read, and
	// recorded those of them recorded then, by the id of the event that
	// recorded each ("" none: firstOf).
	read     map[store.ServiceKey]bool
	recorded map[store.ServiceKey]string
	// held are the visits the batch's messages planned, stored just before
	// the commit (Batch.write), by id: where each is in the planningWrite
	// of its message. heldFor lists their ids by customer, in the order
	// planned; heldKeys are their keys (the table's: a visit planned
	// twice by the batch is not new the second time).
	held     map[string]heldVisit
	heldFor  map[store.CustomerKey][]string
	heldKeys map[visitKey]bool
	// round fires the held visits due at once of the customers with more
	// than one service in the batch (fireHeld), loaded at its first use.
	round *round
	// undo reverts what the batch's messages changed of it, newest last
	// (rollback).
	undo []func()
	// fired are the events of the visits due at once that write fired
	// within the transaction firedIn, written after the batch's VisitPlanned
	// (addEvents); eventsIn is the transaction whose visit events were
	// written already (then write writes them at once, after those).
	fired             []outbox.Message
	firedIn, eventsIn pgx.Tx
}

type batchKey struct{}

// Prepare reads, in one statement, what planning the services ins (the
// batch's) needs of their customers, and which of the services are
// recorded, by which event (store.KnownCustomers; firstOf); PlanServiceTx
// plans within it when its context carries it (WithBatch). Prepare within
// a consumer's handler (inbox.Memo) to read it once per batch.
func (a *App) Prepare(ctx context.Context, tx pgx.Tx, ins []Completed) (*Batch, error) {
	keys := make([]store.CustomerKey, 0, 2*len(ins))
	for _, in := range ins {
		if in.Customer.ID != "" {
			keys = append(keys, store.CustomerKey{Tenant: in.Service.Tenant, Customer: in.Customer.ID})
		}
		if in.Service.CustomerID != "" && in.Service.CustomerID != in.Customer.ID {
			keys = append(keys, store.CustomerKey{Tenant: in.Service.Tenant, Customer: in.Service.CustomerID})
		}
	}
	services := map[store.CustomerKey]int{}
	for _, in := range ins {
		services[store.CustomerKey{Tenant: in.Service.Tenant, Customer: in.Service.CustomerID}]++
	}
	repeated := map[store.CustomerKey]bool{}
	for k, n := range services {
		repeated[k] = n > 1
	}
	read := make(map[store.ServiceKey]bool, len(ins))
	svcs := make([]store.ServiceKey, 0, len(ins))
	for _, in := range ins {
		k := store.ServiceKey{in.Service.Tenant, in.Service.ID}
		if !read[k] {
			read[k] = true
			svcs = append(svcs, k)
		}
	}
	known, recorded, err := store.KnownCustomers(ctx, tx, keys, svcs)
	if err != nil {
		return nil, err
	}
	return &Batch{known: known, read: read, recorded: recorded, policies: map[string][]policy.Policy{}, rules: map[string]contact.Rules{}, zones: &a.zones,
		plannedFor: map[store.CustomerKey]bool{}, repeated: repeated, rejected: map[string]bool{}, services: map[[2]string]policy.Service{},
		held: map[string]heldVisit{}, heldFor: map[store.CustomerKey][]string{}, heldKeys: map[visitKey]bool{}}, nil
}

// heldVisit is where a held visit is: the i-th visit of w.
type heldVisit struct {
	w *planningWrite
	i int
}

// visitKey is what identifies a visit in planned_visits besides its id:
// planning is idempotent per (service, policy, step, occurrence).
type visitKey struct {
	tenant, service, policy string
	step, occurrence        int
}

func keyOf(v visit.Visit) visitKey {
	return visitKey{tenant: v.Tenant, service: v.ServiceID, policy: v.PolicyID, step: v.Step, occurrence: v.Occurrence}
}

// hold adds v to the visits w stores just before the commit; false when
// the batch holds a visit of its key already (the same service again).
func (b *Batch) hold(w *planningWrite, v visit.Visit) bool {
	k := keyOf(v)
	if b.heldKeys[k] {
		return false
	}
	c, id := customerKey(v), v.ID // the undo keeps these, not v (which would move to the heap)
	b.heldKeys[k], b.held[id] = true, heldVisit{w: w, i: len(w.visits)}
	b.heldFor[c] = append(b.heldFor[c], id)
	w.visits = append(w.visits, v)
	b.undo = append(b.undo, func() {
		delete(b.heldKeys, k)
		delete(b.held, id)
		b.heldFor[c] = b.heldFor[c][:len(b.heldFor[c])-1]
		w.visits = w.visits[:len(w.visits)-1]
	})
	return true
}

// replace puts v in place of the held visit of its id.
func (b *Batch) replace(v visit.Visit) {
	h := b.held[v.ID]
	was := h.w.visits[h.i]
	h.w.visits[h.i] = v
	b.undo = append(b.undo, func() { h.w.visits[h.i] = was })
}

// heldPending returns the held visits of the customer still planned: its
// pending visits that are not stored yet, in the order planned.
func (b *Batch) heldPending(k store.CustomerKey) []visit.Visit {
	var out []visit.Visit
	for _, id := range b.heldFor[k] {
		h := b.held[id]
		if v := h.w.visits[h.i]; v.Status == visit.StatusPlanned {
			out = append(out, v)
		}
	}
	return out
}

// rollback undoes what the batch's messages changed of it since mark (a
// length of undo).
func (b *Batch) rollback(mark int) {
	for i := len(b.undo) - 1; i >= mark; i-- {
		b.undo[i]()
	}
	b.undo = b.undo[:mark]
}

// WithBatch returns ctx planning within b.
func WithBatch(ctx context.Context, b *Batch) context.Context {
	return context.WithValue(ctx, batchKey{}, b)
}

func batchOf(ctx context.Context) *Batch {
	b, _ := ctx.Value(batchKey{}).(*Batch)
	return b
}

// planned marks the customer as given planned visits by the batch.
func (b *Batch) planned(k store.CustomerKey) {
	if b != nil {
		b.plannedFor[k] = true
	}
}

// activePolicies returns the tenant's active policies, read once per batch.
func activePolicies(ctx context.Context, tx pgx.Tx, tenant string) ([]policy.Policy, error) {
	b := batchOf(ctx)
	if b == nil {
		return store.ActivePolicies(ctx, tx, tenant)
	}
	if ps, ok := b.policies[tenant]; ok {
		return ps, nil
	}
	ps, err := store.ActivePolicies(ctx, tx, tenant)
	if err == nil {
		b.policies[tenant] = ps
	}
	return ps, err
}

// planningRules returns the tenant's contact policy, read once per batch.
func planningRules(ctx context.Context, tx pgx.Tx, tenant string) (contact.Rules, error) {
	b := batchOf(ctx)
	if b == nil {
		return rulesOf(ctx, tx, tenant)
	}
	if r, ok := b.rules[tenant]; ok {
		return r, nil
	}
	r, err := rulesOf(ctx, tx, tenant)
	if err == nil {
		r.Zones = b.zones
		b.rules[tenant] = r
	}
	return r, err
}

func hasService(b *Batch, k [2]string) bool {
	_, ok := b.services[k]
	return ok
}

// followedService is store.FollowedService, which also knows the services
// the batch recorded and has not written yet.
func followedService(ctx context.Context, tx pgx.Tx, v visit.Visit) (policy.Service, error) {
	if b := batchOf(ctx); b != nil && v.Service == nil {
		if s, ok := b.services[[2]string{v.Tenant, v.ServiceID}]; ok {
			spec, err := json.Marshal(s)
			if err != nil {
				return policy.Service{}, fmt.Errorf("app: service %s: %w", s.ID, err)
			}
			return store.FollowedRecorded(v, spec)
		}
	}
	return store.FollowedService(ctx, tx, v)
}

// batchPrefsOf is prefsOf, from what the batch read of the customer when
// it is still so.
func batchPrefsOf(ctx context.Context, tx pgx.Tx, tenant, customerID string) (contact.Prefs, error) {
	if b := batchOf(ctx); b != nil {
		if kn, ok := b.known[store.CustomerKey{Tenant: tenant, Customer: customerID}]; ok {
			return kn.Customer.Effective(), nil
		}
	}
	return prefsOf(ctx, tx, tenant, customerID)
}

// batchLockPending is lockPending within a batch: the customer's stored
// pending visits, locked (none read when the batch read it without any
// and has stored none for it since: the statement would lock nothing),
// followed by those the batch holds for it.
func batchLockPending(ctx context.Context, tx pgx.Tx, svc policy.Service) ([]visit.Visit, error) {
	b := batchOf(ctx)
	if b == nil {
		return lockPending(ctx, tx, svc)
	}
	k := store.CustomerKey{Tenant: svc.Tenant, Customer: svc.CustomerID}
	var stored []visit.Visit
	if kn, ok := b.known[k]; !ok || kn.Pending || b.plannedFor[k] {
		var err error
		if stored, err = lockPending(ctx, tx, svc); err != nil {
			return nil, err
		}
	}
	return append(stored, b.heldPending(k)...), nil
}

// saveVisits saves visits planning changed (store.SaveVisits): within a
// batch, a visit it holds is changed where it is held.
func saveVisits(ctx context.Context, tx pgx.Tx, vs []visit.Visit) error {
	if b := batchOf(ctx); b != nil {
		var stored []visit.Visit
		for _, v := range vs {
			if _, ok := b.held[v.ID]; ok {
				b.replace(v)
			} else {
				stored = append(stored, v)
			}
		}
		vs = stored
	}
	return store.SaveVisits(ctx, tx, vs)
}

// planningWrite is what planning one completed service writes just before
// its batch commits: the service, the customer's snapshot when it changes
// the customer, and the visits planned.
type planningWrite struct {
	service policy.Service
	// event is the id of the event whose planning records the service
	// first (its row keeps it: firstOf); stored: the row is written
	// already.
	event    string
	stored   bool
	snapshot *store.Snapshot
	// visits are the visits planned for the service (insertVisit; held:
	// Batch.held), samples what they counted in the sampling quotas.
	visits  []visit.Visit
	samples []policy.Sample
	// instant are the ids of the visits due at once (insert), to be fired
	// before they are stored, with due's fireNew.
	instant []string
	due     dueNow
}

type writeKey struct{}

// writeOf is the planningWrite of the message ctx plans, nil outside a
// batch or for a service without a customer.
func writeOf(ctx context.Context) *planningWrite {
	w, _ := ctx.Value(writeKey{}).(*planningWrite)
	return w
}

// insertVisit stores a new visit: at once (store.InsertVisit), or, within
// a batch, held with the batch's visits until just before the commit,
// taken for new until then (a visit that turns out planned before takes
// back its quota and its VisitPlanned, or fails the batch when its
// customer has another service in it: Batch.write). A visit the batch
// holds already (its key) is not new.
func insertVisit(ctx context.Context, tx pgx.Tx, v visit.Visit) (bool, error) {
	w := writeOf(ctx)
	if w == nil {
		return store.InsertVisit(ctx, tx, v)
	}
	return batchOf(ctx).hold(w, v), nil
}

// recordAndSnapshot records the service and applies the snapshot of the
// customer it carries (version 0, updateCustomer), and returns the
// customer's effective preferences. Within a batch both are written for all
// its services just before the commit (inbox.Gather, Batch.write), the
// snapshot decided on what the batch knows of the customer; the context
// returned then gathers the service's visits too (insertVisit).
func recordAndSnapshot(ctx context.Context, tx pgx.Tx, svc policy.Service, c Customer, source string, first record) (context.Context, contact.Prefs, error) {
	b := batchOf(ctx)
	if b == nil {
		if err := store.RecordService(ctx, tx, svc); err != nil {
			return ctx, contact.Prefs{}, err
		}
		prefs, err := updateCustomer(ctx, tx, svc.Tenant, c, 0, svc.CompletedAt, source)
		return ctx, prefs, err
	}
	if k := [2]string{svc.Tenant, svc.ID}; !hasService(b, k) {
		b.services[k] = svc // the first record wins, as in the table
		b.undo = append(b.undo, func() { delete(b.services, k) })
	}
	w := &planningWrite{service: svc, event: first.event, stored: first.stored}
	var prefs contact.Prefs
	if c.ID != "" {
		k := store.CustomerKey{Tenant: svc.Tenant, Customer: c.ID}
		kn, ok := b.known[k]
		if !ok {
			// Not read with the batch: as alone.
			var err error
			if prefs, err = updateCustomer(ctx, tx, svc.Tenant, c, 0, svc.CompletedAt, source); err != nil {
				return ctx, prefs, err
			}
		} else {
			cur := kn.Customer
			next := cur
			next.OptedOut = slices.Clone(cur.OptedOut)
			// A customer stored that holds the snapshot already (its
			// snapshot before, unchanged) is not written again.
			if !(kn.Found && cur.Holds(0, c.Prefs, c.Tier)) && next.Update(0, c.Prefs, c.Tier, svc.CompletedAt) {
				before := cur.Effective().OptedOut
				var added []int32
				for _, ch := range next.Effective().OptedOut {
					if !slices.Contains(before, ch) {
						added = append(added, ch)
					}
				}
				w.snapshot = &store.Snapshot{Key: k, Prefs: c.Prefs, Tier: c.Tier, At: svc.CompletedAt, OptedOut: added, Source: source}
				b.known[k] = store.Known{Customer: next, Found: true, Pending: kn.Pending}
				b.undo = append(b.undo, func() { b.known[k] = kn })
				cur = next
			}
			prefs = cur.Effective()
		}
	}
	if inbox.Batch(ctx) != nil && svc.CustomerID != "" {
		ctx = context.WithValue(ctx, writeKey{}, w)
	}
	return ctx, prefs, inbox.Gather(ctx, tx, "scheduler.planning", w, b.write)
}

// write writes what the batch's planning gathered: its services, its
// customers' snapshots and its visits, in a statement each. A visit planned
// before (the same service again, planned meanwhile by another transaction)
// is not new: its quota is taken back and its VisitPlanned dropped
// (addEvents); one of a customer with another service in the batch fails
// the batch instead (errPlannedMeanwhile: its messages are then handled one
// by one), since the customer's later services took it for new, and so
// does a service the batch took for not recorded that was recorded
// meanwhile (errRecordedMeanwhile). Each service the batch records first
// keeps the id of its event (firstOf).
func (b *Batch) write(ctx context.Context, tx pgx.Tx, ws []*planningWrite) error {
	svcs := make([]policy.Service, 0, len(ws))
	events := make([]string, 0, len(ws))
	var snaps []store.Snapshot
	n := 0
	for _, w := range ws {
		n += len(w.visits)
	}
	vs := make([]visit.Visit, 0, n) // a Visit is large: no copies while growing
	instant := map[string]bool{}
	var d dueNow
	for _, w := range ws {
		if !w.stored {
			svcs, events = append(svcs, w.service), append(events, w.event)
		}
		if w.snapshot != nil {
			snaps = append(snaps, *w.snapshot)
		}
		vs = append(vs, w.visits...)
		for _, id := range w.instant {
			instant[id], d = true, w.due
		}
	}
	recorded, err := store.RecordServices(ctx, tx, svcs, events)
	if err != nil {
		return err
	}
	for _, w := range ws {
		k := store.ServiceKey{w.service.Tenant, w.service.ID}
		switch {
		case w.stored:
			recorded[k] = true
		case w.event != "" && !recorded[k]:
			return errRecordedMeanwhile
		}
	}
	if err := store.StoreSnapshots(ctx, tx, snaps); err != nil {
		return err
	}
	made, err := b.insertVisits(ctx, tx, vs, recorded, instant, d)
	if err != nil {
		return err
	}
	if slices.ContainsFunc(vs, func(v visit.Visit) bool { return !made[v.ID] && b.repeated[customerKey(v)] }) {
		// Its customer's later services saw it as new.
		return errPlannedMeanwhile
	}
	for _, w := range ws {
		for _, v := range w.visits {
			if made[v.ID] {
				continue
			}
			b.rejected[v.ID] = true
			for i, s := range w.samples {
				if s.Stratum.PolicyID == v.PolicyID && s.Stratum.Step == v.Step {
					w.samples = append(w.samples[:i], w.samples[i+1:]...)
					if err := store.UntakeQuota(ctx, tx, s); err != nil {
						return err
					}
					break
				}
			}
		}
	}
	return nil
}

// insertVisits stores the batch's new visits and returns their ids. A
// visit planned before (the same service again) is not new: which are is
// read first (store.ExistingVisits), of the services that the batch did
// not record for the first time (recorded: store.RecordServices) only, so
// that a batch of new services runs no such read; the new visits are then
// inserted without an arbiter (store.InsertNewVisits). One planned by a
// concurrent transaction meanwhile fails the batch (errPlannedMeanwhile):
// its messages are then handled one by one. Those due at once (instant)
// are first fired, moved or suppressed as a round of the firing loop
// would (d.fireNew) and stored in that state: one insert each rather than
// an insert and the firing's update. Their events follow the batch's
// VisitPlanned (addEvents).
func (b *Batch) insertVisits(ctx context.Context, tx pgx.Tx, vs []visit.Visit, recorded map[[2]string]bool, instant map[string]bool,
	d dueNow) (map[string]bool, error) {
	var seen []visit.Visit
	for _, v := range vs {
		if !recorded[[2]string{v.Tenant, v.ServiceID}] {
			seen = append(seen, v)
		}
	}
	before, err := store.ExistingVisits(ctx, tx, seen)
	if err != nil {
		return nil, err
	}
	due := make([]visit.Visit, 0, len(instant))
	fresh := make([]visit.Visit, 0, len(vs))
	for _, v := range vs {
		if before[v.ID] {
			continue
		}
		fresh = append(fresh, v)
		if instant[v.ID] {
			due = append(due, v)
		}
	}
	firing := len(instant) > 0 && d.a != nil
	var evs *events
	var failed []Failure
	if firing {
		var fctx context.Context
		fctx, evs, _ = withEvents(ctx)
		decided, fs, err := d.fireNew(fctx, tx, due)
		if err != nil {
			return nil, err
		}
		failed = fs
		byID := make(map[string]int, len(decided))
		for i, v := range decided {
			byID[v.ID] = i
		}
		for i, v := range fresh {
			if j, ok := byID[v.ID]; ok {
				fresh[i] = decided[j]
			}
		}
	}
	made := make(map[string]bool, len(fresh))
	for _, v := range fresh {
		made[v.ID] = true
	}
	if err := insertNew(ctx, tx, fresh); err != nil {
		return nil, err
	}
	if !firing {
		return made, nil
	}
	d.report(failed)
	return made, b.written(ctx, tx, evs.msgs)
}

// insertNew stores visits that were not planned before within tx
// (store.InsertNewVisits): one that a concurrent transaction planned
// meanwhile fails tx (errPlannedMeanwhile).
func insertNew(ctx context.Context, tx pgx.Tx, vs []visit.Visit) error {
	err := store.InsertNewVisits(ctx, tx, vs)
	if errors.Is(err, store.ErrConflict) {
		return fmt.Errorf("%w: %w", errPlannedMeanwhile, err)
	}
	return err
}

// fireHeld fires, moves or suppresses the held visit id, due at once, of a
// customer with another service in the batch, as a round of the firing loop
// would right after its message (one round for the batch: Batch.firingRound;
// the customer as the batch knows it then; the contacts the round made
// counted by the caps), holds it in that state, and emits the firing's
// events after the visit's VisitPlanned, with the message's. A visit whose
// firing fails fails its message, which is then handled alone (and the
// visit fired, or marked failed, as when planned alone: insertFired).
func (b *Batch) fireHeld(ctx context.Context, tx pgx.Tx, id string, d dueNow) error {
	h := b.held[id]
	v := h.w.visits[h.i]
	r, err := b.firingRound(ctx, tx, d.now())
	if err != nil {
		return err
	}
	r.now = d.now()
	k := customerKey(v)
	if kn, ok := b.known[k]; ok {
		r.customers[k] = kn.Customer
	}
	fctx, evs, own := withEvents(ctx)
	contacted, err := r.fire(fctx, tx, &v)
	if err != nil {
		return err
	}
	if contacted {
		n := len(r.fired[k])
		r.contacted(v)
		b.undo = append(b.undo, func() { r.fired[k] = r.fired[k][:n] })
	}
	if v.Nominal.IsZero() {
		v.Nominal = v.DueAt // as store.SaveVisits writes it
	}
	b.replace(v)
	if !own {
		return nil // the events join those of the visit whose firing planned this one
	}
	for _, m := range evs.msgs {
		if err := emit(ctx, tx, m); err != nil {
			return err
		}
	}
	return nil
}

// firingRound is the batch's round for fireHeld, loaded at its first use:
// the contact policies of the tenants of the customers with more than one
// service in the batch (read once per batch for planning already), and the
// contact ledger of those of them whose caps look back at it (one
// statement). The customers themselves are what the batch knows of them.
func (b *Batch) firingRound(ctx context.Context, tx pgx.Tx, now time.Time) (*round, error) {
	if b.round != nil {
		return b.round, nil
	}
	r := newRound(now, b.zones)
	var capped []store.CustomerKey
	var back time.Duration
	for k, more := range b.repeated {
		if !more {
			continue
		}
		rl, err := planningRules(ctx, tx, k.Tenant)
		if err != nil {
			return nil, err
		}
		r.rules[k.Tenant] = rl
		if rl.NeedsHistory(b.known[k].Customer.Effective()) {
			capped, back = append(capped, k), max(back, rl.MaxPer())
		}
	}
	history, err := store.ContactHistory(ctx, tx, capped, now.Add(-back))
	if err != nil {
		return nil, err
	}
	for _, k := range capped {
		r.history[k] = history[k]
	}
	b.round = r
	return r, nil
}

// written keeps the events of visits fired before they were stored for
// addEvents, or writes them at once when the batch's visit events were
// written already.
func (b *Batch) written(ctx context.Context, tx pgx.Tx, msgs []outbox.Message) error {
	if b.eventsIn == tx {
		if len(msgs) == 0 {
			return nil
		}
		return addEvents(ctx, tx, msgs)
	}
	b.fired, b.firedIn = msgs, tx
	return nil
}

// addEvents writes the batch's visit events, but the VisitPlanned of a
// visit that was not new (write), each visit write fired before it stored
// it with its firing's events right after its VisitPlanned (afterPlanned),
// as when planned alone.
func (b *Batch) addEvents(ctx context.Context, tx pgx.Tx, msgs []outbox.Message) error {
	if b.firedIn == tx {
		msgs = afterPlanned(msgs, b.fired)
	}
	b.fired, b.firedIn, b.eventsIn = nil, nil, tx
	if len(b.rejected) > 0 {
		kept := msgs[:0:0]
		for _, m := range msgs {
			if p, ok := m.Payload.(*eventsv1.VisitPlanned); ok && b.rejected[p.GetVisitId()] {
				continue
			}
			kept = append(kept, m)
		}
		msgs = kept
	}
	return addEvents(ctx, tx, msgs)
}

// afterPlanned puts the events of a firing round (fired) among the
// planning's events (msgs): the events of each visit's firing (its VisitDue
// or VisitCancelled, then the VisitPlanned of the next visit of its series
// and that one's firing) right after the visit's VisitPlanned; those of a
// visit with no VisitPlanned among them at the end, in their order.
func afterPlanned(msgs, fired []outbox.Message) []outbox.Message {
	var owners []string
	groups := map[string][]outbox.Message{}
	owner := ""
	for _, m := range fired {
		switch p := m.Payload.(type) {
		case *eventsv1.VisitDue:
			owner = p.GetVisitId()
		case *eventsv1.VisitCancelled:
			owner = p.GetVisitId()
		}
		if _, ok := groups[owner]; !ok {
			owners = append(owners, owner)
		}
		groups[owner] = append(groups[owner], m)
	}
	out := make([]outbox.Message, 0, len(msgs)+len(fired))
	var place func(ms []outbox.Message)
	place = func(ms []outbox.Message) {
		for _, m := range ms {
			out = append(out, m)
			if p, ok := m.Payload.(*eventsv1.VisitPlanned); ok {
				if g, ok := groups[p.GetVisitId()]; ok {
					delete(groups, p.GetVisitId())
					place(g)
				}
			}
		}
	}
	place(msgs)
	for _, o := range owners {
		if g, ok := groups[o]; ok {
			delete(groups, o)
			place(g)
		}
	}
	return out
}

// UpdateCustomerLaterTx is UpdateCustomerTx for an update that does not
// erase the customer, written with the other updates of the consumer's
// batch just before its commit (inbox.Gather, store.UpdateCustomers: the
// customers locked in a stable order, only from then to the commit, the
// updates applied in their order). A batch that also erases the customer
// must apply its updates of that customer with UpdateCustomerTx, in order.
func (a *App) UpdateCustomerLaterTx(ctx context.Context, tx pgx.Tx, in CustomerUpdate) error {
	if in.Erased || in.Customer.ID == "" {
		return a.UpdateCustomerTx(ctx, tx, in)
	}
	at := or(in.At, a.Now())
	c := in.Customer
	u := store.Update{Key: store.CustomerKey{Tenant: in.Tenant, Customer: c.ID},
		Source: fmt.Sprintf("intake: CustomerUpdated, archive version %d", in.Version),
		Apply:  func(cust *contact.Customer) bool { return cust.Update(in.Version, c.Prefs, c.Tier, at) }}
	return inbox.Gather(ctx, tx, "scheduler.customer-updates", u, func(ctx context.Context, tx pgx.Tx, us []store.Update) error {
		return store.UpdateCustomers(ctx, tx, us)
	})
}
