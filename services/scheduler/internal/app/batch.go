package app

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"

	"github.com/jackc/pgx/v5"

	eventsv1 "github.com/huifang/huifang/proto/huifang/events/v1"

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
// snapshots and the visits, a statement each, and then their events. The
// visits of a customer with more than one service in the batch are the
// exception: they are inserted at once, so that the customer's later
// services see them (once per customer, stop conditions).
//
// known is kept as the batch's messages change it: a message's snapshot of
// its customer is stored, with the others', just before the commit
// (store.StoreSnapshots, one statement, the customers in a stable order,
// their rows locked only from then on), and the messages after it see it.
// A message rolled back to its savepoint leaves its snapshot in known:
// the next snapshot of the customer replaces its preferences, and only an
// opt-out it carried (never stored) would be seen by the customer's later
// services in the batch, which then would not use that channel.
//
// A Batch is used by one goroutine, the batch's, message after message.
type Batch struct {
	known    map[store.CustomerKey]store.Known
	policies map[string][]policy.Policy
	rules    map[string]contact.Rules
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
	// fired are the events of the visits due at once that write fired
	// within the transaction firedIn, written after the batch's VisitPlanned
	// (addEvents); eventsIn is the transaction whose visit events were
	// written already (then write writes them at once, after those).
	fired             []outbox.Message
	firedIn, eventsIn pgx.Tx
}

type batchKey struct{}

// Prepare reads, in one statement, what planning the services ins (the
// batch's) needs of their customers (store.KnownCustomers); PlanServiceTx
// plans within it when its context carries it (WithBatch). Prepare within
// a consumer's handler (inbox.Memo) to read it once per batch.
func Prepare(ctx context.Context, tx pgx.Tx, ins []Completed) (*Batch, error) {
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
	known, err := store.KnownCustomers(ctx, tx, keys)
	if err != nil {
		return nil, err
	}
	return &Batch{known: known, policies: map[string][]policy.Policy{}, rules: map[string]contact.Rules{},
		plannedFor: map[store.CustomerKey]bool{}, repeated: repeated, rejected: map[string]bool{}, services: map[[2]string]policy.Service{}}, nil
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

// batchLockPending is lockPending, which takes the batch's word that a
// customer it read without planned visits, and planned none for since,
// still has none (locking no row, the statement would lock nothing).
func batchLockPending(ctx context.Context, tx pgx.Tx, svc policy.Service) ([]visit.Visit, error) {
	b := batchOf(ctx)
	k := store.CustomerKey{Tenant: svc.Tenant, Customer: svc.CustomerID}
	if b != nil && !b.plannedFor[k] {
		if kn, ok := b.known[k]; ok && !kn.Pending {
			return nil, nil
		}
	}
	return lockPending(ctx, tx, svc)
}

// planningWrite is what planning one completed service writes just before
// its batch commits: the service, the customer's snapshot when it changes
// the customer, and the visits planned.
type planningWrite struct {
	service  policy.Service
	snapshot *store.Snapshot
	// visits are the visits planned for the service (insertVisit), samples
	// what they counted in the sampling quotas.
	visits  []visit.Visit
	samples []policy.Sample
	// instant are the ids of the visits due at once (insert), to be fired
	// before they are stored, with due's fireNew.
	instant []string
	due     *dueNow
}

type writeKey struct{}

// writeOf is the planningWrite of the message ctx plans, nil outside a
// batch or for a service whose customer has another service in the batch
// (whose visits the later one must see: they are inserted at once).
func writeOf(ctx context.Context) *planningWrite {
	w, _ := ctx.Value(writeKey{}).(*planningWrite)
	return w
}

// insertVisit stores a new visit: at once (store.InsertVisit), or, for a
// service of a batch whose customer has no other service in it, with the
// batch's visits just before the commit, taken for new until then (a
// visit that turns out planned before takes back its quota and its
// VisitPlanned: Batch.write, Batch.addEvents).
func insertVisit(ctx context.Context, tx pgx.Tx, v visit.Visit) (bool, error) {
	w := writeOf(ctx)
	if w == nil {
		return store.InsertVisit(ctx, tx, v)
	}
	w.visits = append(w.visits, v)
	return true, nil
}

// recordAndSnapshot records the service and applies the snapshot of the
// customer it carries (version 0, updateCustomer), and returns the
// customer's effective preferences. Within a batch both are written for all
// its services just before the commit (inbox.Gather, Batch.write), the
// snapshot decided on what the batch knows of the customer; the context
// returned then gathers the service's visits too (insertVisit), unless its
// customer has another service in the batch.
func recordAndSnapshot(ctx context.Context, tx pgx.Tx, svc policy.Service, c Customer, source string) (context.Context, contact.Prefs, error) {
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
	}
	w := &planningWrite{service: svc}
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
			if next.Update(0, c.Prefs, c.Tier, svc.CompletedAt) {
				before := cur.Effective().OptedOut
				var added []int32
				for _, ch := range next.Effective().OptedOut {
					if !slices.Contains(before, ch) {
						added = append(added, ch)
					}
				}
				w.snapshot = &store.Snapshot{Key: k, Prefs: c.Prefs, Tier: c.Tier, At: svc.CompletedAt, OptedOut: added, Source: source}
				b.known[k] = store.Known{Customer: next, Found: true, Pending: kn.Pending}
				cur = next
			}
			prefs = cur.Effective()
		}
	}
	if inbox.Batch(ctx) != nil && svc.CustomerID != "" && !b.repeated[store.CustomerKey{Tenant: svc.Tenant, Customer: svc.CustomerID}] {
		ctx = context.WithValue(ctx, writeKey{}, w)
	}
	return ctx, prefs, inbox.Gather(ctx, tx, "scheduler.planning", w, b.write)
}

// write writes what the batch's planning gathered: its services, its
// customers' snapshots and its visits, in a statement each. A visit planned
// before (the same service again, planned meanwhile by another transaction)
// is not new: its quota is taken back and its VisitPlanned dropped
// (addEvents).
func (b *Batch) write(ctx context.Context, tx pgx.Tx, ws []*planningWrite) error {
	svcs := make([]policy.Service, 0, len(ws))
	var snaps []store.Snapshot
	var vs []visit.Visit
	instant := map[string]bool{}
	var d *dueNow
	for _, w := range ws {
		svcs = append(svcs, w.service)
		if w.snapshot != nil {
			snaps = append(snaps, *w.snapshot)
		}
		vs = append(vs, w.visits...)
		for _, id := range w.instant {
			instant[id], d = true, w.due
		}
	}
	if err := store.RecordServices(ctx, tx, svcs); err != nil {
		return err
	}
	if err := store.StoreSnapshots(ctx, tx, snaps); err != nil {
		return err
	}
	made, err := b.insertVisits(ctx, tx, vs, instant, d)
	if err != nil {
		return err
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

// insertVisits stores the batch's new visits (store.InsertVisits). Those due
// at once (instant) and not planned before are first fired, moved or
// suppressed as a round of the firing loop would (d.fireNew) and stored in
// that state: one insert each rather than an insert and the firing's
// update. Their events follow the batch's VisitPlanned (addEvents). One
// planned by a concurrent transaction meanwhile fails the batch
// (errPlannedMeanwhile): its messages are then handled one by one.
func (b *Batch) insertVisits(ctx context.Context, tx pgx.Tx, vs []visit.Visit, instant map[string]bool, d *dueNow) (map[string]bool, error) {
	if len(instant) == 0 || d == nil {
		return store.InsertVisits(ctx, tx, vs)
	}
	var due []visit.Visit
	for _, v := range vs {
		if instant[v.ID] {
			due = append(due, v)
		}
	}
	before, err := store.ExistingVisits(ctx, tx, due)
	if err != nil {
		return nil, err
	}
	due = slices.DeleteFunc(due, func(v visit.Visit) bool { return before[v.ID] })
	fctx, evs, _ := withEvents(ctx)
	decided, failed, err := d.fireNew(fctx, tx, due)
	if err != nil {
		return nil, err
	}
	byID := make(map[string]visit.Visit, len(decided))
	for _, v := range decided {
		byID[v.ID] = v
	}
	all := make([]visit.Visit, len(vs))
	for i, v := range vs {
		if x, ok := byID[v.ID]; ok {
			v = x
		}
		all[i] = v
	}
	made, err := store.InsertVisits(ctx, tx, all)
	if err != nil {
		return nil, err
	}
	if slices.ContainsFunc(due, func(v visit.Visit) bool { return !made[v.ID] }) {
		return nil, errPlannedMeanwhile
	}
	d.report(failed)
	return made, b.written(ctx, tx, evs.msgs)
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
// visit that was not new (write), followed by the events of the visits
// write fired before it stored them.
func (b *Batch) addEvents(ctx context.Context, tx pgx.Tx, msgs []outbox.Message) error {
	if b.firedIn == tx {
		msgs = append(msgs[:len(msgs):len(msgs)], b.fired...)
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
