package app

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/nats-io/nats.go"
	"google.golang.org/protobuf/proto"

	eventsv1 "github.com/huifang/huifang/proto/huifang/events/v1"
	typesv1 "github.com/huifang/huifang/proto/huifang/types/v1"

	"github.com/huifang/huifang/pkg/inbox"
	"github.com/huifang/huifang/pkg/outbox"
	"github.com/huifang/huifang/pkg/stream"
	"github.com/huifang/huifang/pkg/tenant"
	"github.com/huifang/huifang/services/intake/internal/archive"
	"github.com/huifang/huifang/services/intake/internal/ingest"
	"github.com/huifang/huifang/services/intake/internal/store"
	"github.com/huifang/huifang/services/intake/internal/tier"
)

// Ingesting a batch of events set-wise (the NATS ingress's batches): what
// the events need is read for all of them at once (PrepareIngest: the
// services their source ids name, their customers and referrers locked,
// with the figures the tier rules read), each event is then decided in
// memory on that state (IngestServiceTx, in its own savepoint as always,
// but sending no statement), and what the events that applied changed is
// written once before the commit (inbox.Gather): the customers in one merge,
// the services in one insert, the outbox rows in one insert. A change is
// made to a copy of the state and kept only when the event's decision is
// complete, so that an event that fails or is refused leaves the state as
// it found it. What the batch's state cannot answer (a tenant or customer
// it did not read) fails the event, which the inbox then handles alone, the
// one-event way; a write that fails (a customer or service a concurrent
// writer created meanwhile) fails the batch, whose events are then handled
// one by one.

// ingestSetKey is the context key of an *ingestSet.
type ingestSetKey struct{}

// ingestSet is a batch's state: by tenant, and the services its events'
// source ids name (stored before, or by an event of the batch). The
// tenants' own service types are read once per batch, when an event names
// one that is not built in (RegisterServiceType takes effect with the next
// batch).
type ingestSet struct {
	// durable is the ingress consumer's whose inbox entries the batch read
	// with its services (PrepareIngress), "" when it read none.
	durable string
	now     time.Time
	scope   tier.Scope
	tenants map[string]*tenantSet
	sources map[store.SourceKey]store.StoredService
}

// tenantSet is a batch's customers of one tenant.
type tenantSet struct {
	set *store.CustomerSet
	// exists: the customer is in the archive (read, or created by an
	// event of the batch that applied).
	exists map[string]bool
	// vins are the vehicles each customer's count of cars holds, by id.
	vins map[string][]string
	// complaints are the services of the batch by customer id and
	// complaint reference.
	complaints map[[2]string]string
	// absent are referrers the events name that the archive does not hold.
	absent map[string]bool
	// types are the tenant's own service types, read when an event names
	// one that is not built in (nil: not read).
	types []string
}

// PrepareIngest reads what the events need for a set-wise ingest within tx
// (their customers, and the referrers they newly name, locked; the
// customers' figures; the services their source ids name) and returns ctx
// carrying it: IngestServiceTx called with that context
// decides in memory and writes through inbox.Gather. The events are read
// as they come (not yet validated); ones that name no customer are left to
// IngestServiceTx's checks.
func (a *App) PrepareIngest(ctx context.Context, tx pgx.Tx, events []*eventsv1.ServiceCompleted) (context.Context, error) {
	return a.PrepareIngress(ctx, tx, "", events, nil)
}

// PrepareIngress is PrepareIngest for the NATS ingress consumer durable,
// whose handlers apply the events with IngestService.Ingress set: ids[i] is
// the inbox key of events[i], and the read of the services their source ids
// name also reads which of those keys the consumer's inbox holds.
func (a *App) PrepareIngress(ctx context.Context, tx pgx.Tx, durable string, events []*eventsv1.ServiceCompleted, ids []string) (context.Context, error) {
	now := a.Now()
	b := &ingestSet{durable: durable, now: now, scope: tier.ScopeAt(now), tenants: map[string]*tenantSet{}}
	type wanted struct {
		exts    []string
		seen    map[string]bool
		firstAt map[string]time.Time
		// refs are the referrers the events name, by the customer naming.
		refs  [][2]string
		cars  bool
		types bool
	}
	want := map[string]*wanted{}
	var tenants []string
	var keys []store.IngressKey
	for i, ev := range events {
		ev = proto.CloneOf(ev)
		ingest.Normalize(ev)
		if ev.SourceSystem != "" && ev.SourceEventId != "" {
			k := store.IngressKey{SourceKey: sourceKey(ev)}
			if i < len(ids) {
				k.Inbox = ids[i]
			}
			keys = append(keys, k)
		}
		if !tenant.Valid(ev.TenantId) || ev.GetCustomer().GetExternalId() == "" {
			continue
		}
		w := want[ev.TenantId]
		if w == nil {
			w = &wanted{seen: map[string]bool{}, firstAt: map[string]time.Time{}}
			want[ev.TenantId] = w
			tenants = append(tenants, ev.TenantId)
		}
		if ext := ev.Customer.ExternalId; !w.seen[ext] {
			w.seen[ext] = true
			w.exts = append(w.exts, ext)
		}
		if ref := ev.Customer.ReferredBy; ref != "" {
			w.refs = append(w.refs, [2]string{ev.Customer.ExternalId, ref})
		}
		if _, ok := w.firstAt[ev.Customer.ExternalId]; !ok {
			w.firstAt[ev.Customer.ExternalId] = ingest.SourceTime(ev)
		}
		if ev.GetVehicle().GetVin() != "" {
			w.cars = true
		}
		if ev.ServiceType != "" && !slices.Contains(ingest.ServiceTypes(), ev.ServiceType) {
			w.types = true
		}
	}
	var err error
	if b.sources, err = a.Store.ServicesBySource(ctx, tx, durable, keys); err != nil {
		return nil, err
	}
	for _, t := range tenants {
		w := want[t]
		set, err := a.Store.LockCustomerSet(ctx, tx, t, w.exts)
		if err != nil {
			return nil, err
		}
		// The referrers an event may newly name (not the one its customer
		// names already), locked too: a new referral re-evaluates its
		// referrer (seed 000), as announce does.
		var refs []string
		for _, r := range w.refs {
			if c, ok := set.Customer(r[0]); (!ok || c.ReferredBy != r[1]) && !slices.Contains(refs, r[1]) {
				refs = append(refs, r[1])
			}
		}
		if err := a.Store.LockMore(ctx, tx, set, refs); err != nil {
			return nil, err
		}
		ts := &tenantSet{set: set, exists: map[string]bool{}, complaints: map[[2]string]string{}, absent: map[string]bool{}}
		for _, ref := range refs {
			if _, ok := set.Customer(ref); !ok {
				ts.absent[ref] = true
			}
		}
		var ids []string
		for _, c := range set.Customers() {
			ts.exists[c.ExternalID] = true
			ids = append(ids, c.ID)
		}
		// The customers the archive does not hold yet: those the events
		// name (not their referrers), created by the first that applies.
		for _, ext := range w.exts {
			if !ts.exists[ext] {
				set.Add(ext, w.firstAt[ext])
			}
		}
		if err := a.Store.Figures(ctx, tx, t, b.scope, set.Customers()); err != nil {
			return nil, err
		}
		ts.vins = map[string][]string{}
		if w.cars && len(ids) > 0 {
			if ts.vins, err = a.Store.CarVINs(ctx, tx, b.scope, ids); err != nil {
				return nil, err
			}
		}
		if w.types {
			own, err := a.Store.ServiceTypes(ctx, tx, t)
			if err != nil {
				return nil, err
			}
			ts.types = make([]string, 0, len(own))
			for _, st := range own {
				ts.types = append(ts.types, st.Name)
			}
		}
		b.tenants[t] = ts
	}
	return context.WithValue(ctx, ingestSetKey{}, b), nil
}

// errNotInSet is an event the batch's state cannot answer: it is handled
// alone.
var errNotInSet = errors.New("app: the event's customer is not in the batch's state")

// ingestInSet is ingestTx on a batch's state (PrepareIngest), deciding in
// memory; its writes are gathered for the end of the transaction.
func (a *App) ingestInSet(ctx context.Context, tx pgx.Tx, b *ingestSet, in IngestService) (Ingested, error) {
	ev := in.Event
	if err := ingest.CheckSize(proto.Size(ev), a.EventLimit()); err != nil {
		return Ingested{}, err
	}
	ingest.Normalize(ev)
	keyed := in.Ingress != "" && in.Ingress == b.durable
	stored, found := b.sources[sourceKey(ev)]
	if keyed && (stored.ViaIngress || stored.Claimed) {
		// Applied by the ingress before (IngestService.Ingress).
		return Ingested{ServiceID: stored.ServiceID, CustomerID: stored.CustomerID, Duplicate: true}, nil
	}
	if ts := b.tenants[ev.TenantId]; ts != nil && ts.types != nil {
		if err := ingest.Validate(ev, a.Now(), ts.types...); err != nil {
			return Ingested{}, err
		}
	} else if err := a.validate(ctx, tx, ev); err != nil {
		return Ingested{}, err
	}
	var out Ingested
	if found && stored.ServiceID != "" {
		out.ServiceID, out.CustomerID, out.Duplicate = stored.ServiceID, stored.CustomerID, true
		return a.claimed(ctx, tx, keyed, out)
	}
	ts := b.tenants[ev.TenantId]
	if ts == nil {
		return Ingested{}, errNotInSet
	}
	ext := ev.Customer.ExternalId
	cur, ok := ts.set.Customer(ext)
	if !ok {
		return Ingested{}, errNotInSet
	}
	if ev.Customer.ReferredBy == ext {
		// A customer naming itself as referrer is re-evaluated on its own
		// saved row (announce): the one-event way.
		return Ingested{}, errNotInSet
	}
	created := !ts.exists[ext]
	out.CustomerID = cur.ID
	input, ref := ingest.CustomerInput(ev), ingest.ComplaintRef(ev)
	if ref != "" && !created {
		if id, ok := ts.complaints[[2]string{cur.ID, ref}]; ok {
			out.ServiceID, out.Duplicate = id, true
			return a.claimed(ctx, tx, keyed, out)
		}
		id, err := a.Store.ServiceByComplaint(ctx, tx, ev.TenantId, cur.ID, ref)
		if err == nil {
			out.ServiceID, out.Duplicate = id, true
			return a.claimed(ctx, tx, keyed, out)
		}
		if !errors.Is(err, store.ErrNotFound) {
			return Ingested{}, err
		}
	}

	// The decision, on copies.
	c := cloneCustomer(cur)
	if created {
		c.SourceUpdatedAt = input.SourceUpdatedAt // as UpsertCustomer creates it
	}
	changed := archive.Merge(&c.Record, input)
	if created {
		changed = append([]string{archive.FieldCreated}, changed...)
	}
	out.ServiceID = outbox.NewEventID()
	vins := b.count(ts, c, ev)
	if ref := c.ReferredBy; ref != cur.ReferredBy && ref != "" && !ts.absent[ref] {
		if _, ok := ts.set.Customer(ref); !ok {
			// A referrer the batch did not read (its customer named it
			// before the batch and another event of it named another
			// since): the one-event way.
			return Ingested{}, errNotInSet
		}
	}
	// The referrers whose count of referrals moves (seed 000).
	moved := map[string]*archive.Customer{}
	if c.ReferredBy != cur.ReferredBy {
		for ext, d := range map[string]int64{cur.ReferredBy: -1, c.ReferredBy: +1} {
			if r, ok := ts.set.Customer(ext); ok && ext != "" && ext != c.ExternalID {
				rc := cloneCustomer(r)
				rc.Metrics.Referrals += d
				moved[ext] = rc
			}
		}
	}
	changed = c.Settle(a.Rules, changed, b.now)
	var msgs []outbox.Message
	type save struct{ to, from *archive.Customer }
	saves := []save{{cur, c}}
	var snapshot *typesv1.Customer // c's, in its CustomerUpdated and its ServiceCompleted alike
	if len(changed) > 0 {
		up := customerUpdated(c, changed)
		snapshot = up.GetCustomer()
		if err := a.fits(up); err != nil {
			return out, refusedAs("payload", err)
		}
		msgs = append(msgs, outbox.Message{ID: up.EventId, Subject: stream.SubjectCustomerUpdated, Payload: up})
		// As announce re-evaluates a referrer c newly names that the
		// archive holds.
		if ref := c.NewReferrer(changed); ref != "" && ts.exists[ref] {
			if rc := moved[ref]; rc != nil {
				if refChanged := rc.Settle(a.Rules, nil, b.now); len(refChanged) > 0 {
					rup := customerUpdated(rc, refChanged)
					if err := a.fits(rup); err != nil {
						return out, refusedAs("payload", err)
					}
					msgs = append(msgs, outbox.Message{ID: rup.EventId, Subject: stream.SubjectCustomerUpdated, Payload: rup})
					r, _ := ts.set.Customer(ref)
					saves = append(saves, save{r, rc})
				}
			}
		}
	}
	done := proto.CloneOf(ev)
	done.ServiceId = out.ServiceID
	done.EventId = outbox.NewEventID()
	if snapshot == nil {
		snapshot = c.Proto()
	}
	done.Customer = snapshot
	if err := a.fits(done); err != nil {
		return out, refusedAs("payload", err)
	}
	msgs = append(msgs, outbox.Message{ID: done.EventId, Subject: stream.SubjectServiceCompleted, Payload: done})

	// The decision is complete: it is kept, and its writes gathered.
	var dirty []*archive.Customer
	for _, s := range saves {
		*s.to = *s.from
		dirty = append(dirty, s.to)
	}
	for ext, rc := range moved {
		r, _ := ts.set.Customer(ext)
		if r.Version == rc.Version { // not saved above: only its figures moved
			r.Metrics = rc.Metrics
		}
	}
	if len(changed) == 0 {
		dirty = dirty[1:] // c is unchanged: not saved (its figures are kept)
	}
	ts.exists[ext] = true
	ts.vins[cur.ID] = vins
	if ref != "" {
		ts.complaints[[2]string{cur.ID, ref}] = out.ServiceID
	}
	b.sources[sourceKey(ev)] = store.StoredService{ServiceID: out.ServiceID, CustomerID: cur.ID, ViaIngress: keyed}
	// The customers first (a service names its customer), even when none
	// changed: the keys are written in the order first gathered.
	if err := inbox.Gather(ctx, tx, "intake.customers", savedCustomer{ts: ts, cs: dirty}, a.saveCustomers); err != nil {
		return out, err
	}
	if err := inbox.Gather(ctx, tx, "intake.services", store.NewService{ID: out.ServiceID, CustomerID: cur.ID, Event: ev, ViaIngress: keyed}, a.addServices); err != nil {
		return out, err
	}
	for _, m := range msgs {
		// The event's trace travels with it: the batch's rows are
		// written outside the event's context.
		m.Header = nats.Header{}
		stream.InjectTrace(ctx, m.Header)
		if err := inbox.Gather(ctx, tx, "intake.outbox", m, addOutbox); err != nil {
			return out, err
		}
	}
	out.Warnings = warnings(in, c)
	return out, nil
}

// claimed is out, a duplicate: for an event of the ingress keyed by its
// source (keyed), once its inbox entry is claimed (claimDuplicate).
func (a *App) claimed(ctx context.Context, tx pgx.Tx, keyed bool, out Ingested) (Ingested, error) {
	if !keyed {
		return out, nil
	}
	return a.claimDuplicate(ctx, tx, out)
}

// count adds the service of ev to c's figures as Figures would count it
// once stored, and returns the vehicles c's count of cars then holds.
func (b *ingestSet) count(ts *tenantSet, c *archive.Customer, ev *eventsv1.ServiceCompleted) []string {
	vins := ts.vins[c.ID]
	if !ev.CompletedAt.AsTime().After(b.scope.Since) {
		return vins
	}
	c.Metrics.SpendYearMinor += ev.AmountMinor
	c.Metrics.ClaimsYearMinor += ev.ClaimAmountMinor
	if vin := ev.GetVehicle().GetVin(); vin != "" && slices.Contains(b.scope.CarServiceTypes, ev.ServiceType) && !slices.Contains(vins, vin) {
		c.Metrics.CarsYear++
		vins = append(slices.Clone(vins), vin)
	}
	return vins
}

// fits refuses an outgoing event larger than the limit, as add does.
func (a *App) fits(ev proto.Message) error {
	if n, limit := proto.Size(ev), a.EventLimit(); n > limit {
		return &tooLargeError{event: string(ev.ProtoReflect().Descriptor().Name()), size: n, limit: limit}
	}
	return nil
}

// cloneCustomer is a copy of c that shares nothing with it.
func cloneCustomer(c *archive.Customer) *archive.Customer {
	out := *c
	out.Owners = slices.Clone(c.Owners)
	out.Preferences = c.Preferences.Clone()
	return &out
}

// savedCustomer is a customer of a batch's state to save.
type savedCustomer struct {
	ts *tenantSet
	cs []*archive.Customer
}

// saveCustomers saves the batch's changed customers, each once, tenant by
// tenant, set-wise. A new customer a concurrent writer created meanwhile
// fails the batch (ErrConflict): its events are handled one by one.
func (a *App) saveCustomers(ctx context.Context, tx pgx.Tx, vs []savedCustomer) error {
	var order []*tenantSet
	byTenant := map[*tenantSet][]*archive.Customer{}
	seen := map[*archive.Customer]bool{}
	for _, v := range vs {
		for _, c := range v.cs {
			if seen[c] {
				continue
			}
			seen[c] = true
			if _, ok := byTenant[v.ts]; !ok {
				order = append(order, v.ts)
			}
			byTenant[v.ts] = append(byTenant[v.ts], c)
		}
	}
	for _, ts := range order {
		// Only writes follow (the services, the outbox rows): the merge may
		// leave plan_cache_mode at auto (SaveCustomerSetWritesAfter).
		taken, err := a.Store.SaveCustomerSetWritesAfter(ctx, tx, ts.set, byTenant[ts])
		if err != nil {
			return err
		}
		if len(taken) > 0 {
			return fmt.Errorf("%d new customers were created by a concurrent writer: %w", len(taken), ErrConflict)
		}
	}
	return nil
}

// addServices stores the batch's services in one statement.
func (a *App) addServices(ctx context.Context, tx pgx.Tx, vs []store.NewService) error {
	return a.Store.AddServices(ctx, tx, vs)
}

// addOutbox writes the batch's events in one statement (one alone as
// outbox.Add does, riding along with the next round trip).
func addOutbox(ctx context.Context, tx pgx.Tx, msgs []outbox.Message) error {
	if len(msgs) == 1 {
		_, err := outbox.Add(ctx, tx, msgs[0])
		return err
	}
	_, err := outbox.AddMany(ctx, tx, msgs)
	return err
}
