package app

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/huifang/huifang/pkg/inbox"
	"github.com/huifang/huifang/services/scheduler/internal/contact"
	"github.com/huifang/huifang/services/scheduler/internal/policy"
	"github.com/huifang/huifang/services/scheduler/internal/store"
	"github.com/huifang/huifang/services/scheduler/internal/visit"
)

// Batch is what the planning of a consumer's batch of completed services
// reads once for all of them (Prepare): what the scheduler knew of their
// customers when the batch began, and each tenant's policies and contact
// policy, read when a message of the tenant first needs them. It also
// remembers what the batch's messages changed since (the customers written,
// those given planned visits, the services recorded but not yet written),
// so that a message never takes what was read before for what is.
//
// A Batch is used by one goroutine, the batch's, message after message.
type Batch struct {
	known    map[store.CustomerKey]store.Known
	policies map[string][]policy.Policy
	rules    map[string]contact.Rules
	// touched are the customers a message of the batch wrote, plannedFor
	// those it planned visits for (a message rolled back keeps its marks:
	// its customer is then read again, which is always right).
	touched, plannedFor map[store.CustomerKey]bool
	// services are the services the batch recorded (written just before
	// the commit, inbox.Gather), by tenant and id.
	services map[[2]string]policy.Service
}

type batchKey struct{}

// Prepare reads, in one statement, what planning the services ins needs
// of their customers (store.KnownCustomers) and returns ctx carrying it for
// PlanServiceTx. Prepare within a consumer's handler (inbox.Memo) to read it
// once per batch.
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
	known, err := store.KnownCustomers(ctx, tx, keys)
	if err != nil {
		return nil, err
	}
	return &Batch{known: known, policies: map[string][]policy.Policy{}, rules: map[string]contact.Rules{},
		touched: map[store.CustomerKey]bool{}, plannedFor: map[store.CustomerKey]bool{}, services: map[[2]string]policy.Service{}}, nil
}

// WithBatch returns ctx planning within b.
func WithBatch(ctx context.Context, b *Batch) context.Context {
	return context.WithValue(ctx, batchKey{}, b)
}

func batchOf(ctx context.Context) *Batch {
	b, _ := ctx.Value(batchKey{}).(*Batch)
	return b
}

// knownAsRead returns what the batch read of the customer when it began,
// when no message of the batch has changed it since.
func (b *Batch) knownAsRead(k store.CustomerKey) (store.Known, bool) {
	if b == nil || b.touched[k] {
		return store.Known{}, false
	}
	kn, ok := b.known[k]
	return kn, ok
}

// touch marks the customer as changed by the batch.
func (b *Batch) touch(k store.CustomerKey) {
	if b != nil {
		b.touched[k] = true
	}
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

// recordService records the service: within a batch once for all its
// services, just before the commit (inbox.Gather).
func recordService(ctx context.Context, tx pgx.Tx, svc policy.Service) error {
	b := batchOf(ctx)
	if b == nil {
		return store.RecordService(ctx, tx, svc)
	}
	if k := [2]string{svc.Tenant, svc.ID}; !hasService(b, k) {
		b.services[k] = svc // the first record wins, as in the table
	}
	return inbox.Gather(ctx, tx, "scheduler.services", svc, func(ctx context.Context, tx pgx.Tx, ss []policy.Service) error {
		return store.RecordServices(ctx, tx, ss)
	})
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

// snapshotCustomer is updateCustomer for the snapshot of the customer a
// completed service carries (version 0). Within a batch, it decides on what
// the batch read of the customer when it is still so (no lock, no read),
// and stores a customer the scheduler never heard of in one statement.
func snapshotCustomer(ctx context.Context, tx pgx.Tx, tenant string, c Customer, at time.Time, source string) (contact.Prefs, error) {
	if c.ID == "" {
		return contact.Prefs{}, nil
	}
	b := batchOf(ctx)
	k := store.CustomerKey{Tenant: tenant, Customer: c.ID}
	kn, ok := b.knownAsRead(k)
	if !ok {
		return updateCustomer(ctx, tx, tenant, c, 0, at, source)
	}
	got := kn.Customer
	if kn.Found {
		probe := got
		probe.OptedOut = slices.Clone(got.OptedOut)
		if !probe.Update(0, c.Prefs, c.Tier, at) {
			return got.Effective(), nil
		}
		b.touch(k)
		return updateCustomer(ctx, tx, tenant, c, 0, at, source)
	}
	b.touch(k)
	got.Update(0, c.Prefs, c.Tier, at)
	made, err := store.InsertCustomer(ctx, tx, tenant, c.ID, source, got)
	if err != nil || made {
		return got.Effective(), err
	}
	// Another transaction made the customer meanwhile.
	return updateCustomer(ctx, tx, tenant, c, 0, at, source)
}

// batchPrefsOf is prefsOf, from what the batch read of the customer when
// it is still so.
func batchPrefsOf(ctx context.Context, tx pgx.Tx, tenant, customerID string) (contact.Prefs, error) {
	if kn, ok := batchOf(ctx).knownAsRead(store.CustomerKey{Tenant: tenant, Customer: customerID}); ok {
		return kn.Customer.Effective(), nil
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
