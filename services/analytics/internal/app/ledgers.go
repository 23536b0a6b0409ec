package app

import (
	"context"
	"errors"
	"slices"

	"github.com/jackc/pgx/v5"
	"google.golang.org/protobuf/proto"

	eventsv1 "github.com/huifang/huifang/proto/huifang/events/v1"

	"github.com/huifang/huifang/pkg/inbox"
	"github.com/huifang/huifang/pkg/tenant"
	"github.com/huifang/huifang/services/analytics/internal/rollup"
	"github.com/huifang/huifang/services/analytics/internal/store"
)

// Applying events set-wise (the consumer's batches): the ledger entries a
// batch's events touch (visits, their services' coverage and products,
// complaints, customers) are locked and read at once (PrepareEvents), each
// event then moves them in memory (ApplyEventTx, in its own savepoint as
// always), and what the events that applied left is written once before
// the commit (inbox.Gather): one statement per table, rows in key order,
// with the counters and customer buckets the events changed summed up. A
// change is made on the side and kept only once the event applied whole,
// so that an event that fails or is refused leaves the batch's state as
// it found it. An event applied alone (a message handled by itself, a
// rebuild's replay, ApplyEvent) goes the same way with a state of its own.
// What the batch's state does not hold fails the event, which the inbox
// then handles alone.

// ledgersKey is the context key of a batch's *ledgers.
type ledgersKey struct{}

// errNotInSet is an event the batch's state cannot answer: it is handled alone.
var errNotInSet = errors.New("app: an entry the event moves is not in the batch's state")

// ledgers is the ledger entries a batch (or one event) reads and moves.
type ledgers struct {
	visits   table[rollup.Visit]
	coverage table[rollup.ServiceCoverage]
	services table[store.Service]
	// newServices are the services not stored when the state was read:
	// no ServiceCompleted of theirs was applied before (keyed.go).
	newServices map[store.EntryKey]bool
	customers   table[rollup.Customer]
	complaints  table[rollup.Complaint]
	// churn is whether the visits of the batch's records and churn calls
	// are churn cases and whether their record is filled in: a record of a
	// visit that is not an open churn case fills in nothing, and sends
	// nothing.
	churn table[churnState]
	// contributions is where an event's moves build an entry's
	// contributions before and after (move.addDiff); the batch reuses it.
	contributions []rollup.Delta
	// counters are the counter deltas of the events applied (each event's
	// gathered as a slice of its own, see keep), then from counted on
	// those the event being applied staged: the batch's events share one
	// array as it grows.
	counters []rollup.Delta
	counted  int
}

// churnState is a visit's churn case: none, open (its record not filled
// in yet) or logged.
type churnState int8

const (
	churnNone churnState = iota
	churnOpen
	churnLogged
)

// table is the entries of one kind: as read or as the events that applied
// left them, and what the event being applied changed (staged), kept when
// it applied and dropped when it failed.
type table[T any] struct {
	rows   map[store.EntryKey]T
	staged map[store.EntryKey]T
	order  []store.EntryKey
}

// get returns the entry of k as the event being applied sees it; false
// when the state does not hold it.
func (t *table[T]) get(k store.EntryKey) (T, bool) {
	if v, ok := t.staged[k]; ok {
		return v, true
	}
	v, ok := t.rows[k]
	return v, ok
}

// put stages v as the entry of k.
func (t *table[T]) put(k store.EntryKey, v T) {
	if t.staged == nil { // emptied, not dropped, after each event: a batch makes it once
		t.staged = map[store.EntryKey]T{}
	}
	if _, ok := t.staged[k]; !ok {
		t.order = append(t.order, k)
	}
	t.staged[k] = v
}

// keep makes what was staged the state and returns the keys it wrote.
func (t *table[T]) keep() []store.EntryKey {
	keys := t.order
	for _, k := range keys {
		t.rows[k] = t.staged[k]
	}
	clear(t.staged)
	t.order = nil
	return keys
}

// drop forgets what was staged.
func (t *table[T]) drop() {
	clear(t.staged)
	t.order = nil
}

// values returns the entries of keys (each once, as the state holds them).
func (t *table[T]) values(keys []store.EntryKey) []T {
	out := make([]T, 0, len(keys))
	seen := make(map[store.EntryKey]bool, len(keys))
	for _, k := range keys {
		if !seen[k] {
			seen[k] = true
			out = append(out, t.rows[k])
		}
	}
	return out
}

// PrepareEvents locks and reads within tx the ledger entries the events
// (a batch's, in order; ones that do not decode are left out) will move,
// and returns ctx carrying them: ApplyEventTx called with that context
// moves them in memory and writes through inbox.Gather.
func (a *App) PrepareEvents(ctx context.Context, tx pgx.Tx, evs []proto.Message) (context.Context, error) {
	l, err := loadLedgers(ctx, tx, evs)
	if err != nil {
		return nil, err
	}
	return context.WithValue(ctx, ledgersKey{}, l), nil
}

// ledgersFor returns the batch's state ctx carries, or a state of ev's own
// read within tx.
func ledgersFor(ctx context.Context, tx pgx.Tx, ev proto.Message) (*ledgers, error) {
	if l, ok := ctx.Value(ledgersKey{}).(*ledgers); ok {
		return l, nil
	}
	return loadLedgers(ctx, tx, []proto.Message{ev})
}

// loadLedgers locks and reads the entries evs move: first their visits,
// complaints and customers, then the services the visits name (stored or
// in an event) with their coverage entries, in the order of their keys.
func loadLedgers(ctx context.Context, tx pgx.Tx, evs []proto.Message) (*ledgers, error) {
	var visits, complaints, customers, services, churn []store.EntryKey
	// The services each visit may name after an event of the batch.
	named := map[store.EntryKey][]string{}
	for _, ev := range evs {
		switch e := ev.(type) {
		case *eventsv1.ServiceCompleted:
			t := tenant.Of(e)
			if e.GetServiceId() != "" {
				services = append(services, store.EntryKey{Tenant: t, ID: e.GetServiceId()})
			}
			if id := e.GetCustomer().GetId(); id != "" {
				customers = append(customers, store.EntryKey{Tenant: t, ID: id})
			}
		case *eventsv1.VisitPlanned, *eventsv1.VisitDue, *eventsv1.VisitCancelled, *eventsv1.VisitAssigned,
			*eventsv1.VisitAttempted, *eventsv1.VisitUnreachable, *eventsv1.VisitLogged:
			// By concrete type, as ApplyEventTx: a complaint names its visit too.
			t, id, err := rollup.VisitRef(e.(rollup.VisitEvent))
			if err != nil {
				continue
			}
			k := store.EntryKey{Tenant: t, ID: id}
			visits = append(visits, k)
			if due, ok := e.(*eventsv1.VisitDue); ok {
				if _, churned := rollup.ChurnCaseOf(due); churned {
					churn = append(churn, k)
				}
			} else if _, ok := e.(*eventsv1.VisitLogged); ok {
				churn = append(churn, k)
			}
			if s, ok := e.(interface{ GetServiceId() string }); ok && s.GetServiceId() != "" {
				named[k] = append(named[k], s.GetServiceId())
			}
		case *eventsv1.ComplaintEscalated, *eventsv1.ComplaintAcknowledged, *eventsv1.ComplaintResolved, *eventsv1.ComplaintReopened,
			*eventsv1.ComplaintClosed, *eventsv1.ImprovementPlanSet, *eventsv1.ImprovementMeasureCompleted:
			t, id, err := rollup.ComplaintRef(e.(rollup.ComplaintEvent))
			if err == nil {
				complaints = append(complaints, store.EntryKey{Tenant: t, ID: id})
			}
		}
	}
	var locks []store.Lock
	for _, x := range []struct {
		kind string
		keys []store.EntryKey
	}{{store.KindVisit, visits}, {store.KindComplaint, complaints}, {store.KindCustomer, customers}} {
		for _, k := range x.keys {
			locks = append(locks, store.Lock{Kind: x.kind, EntryKey: k})
		}
	}
	if err := store.LockEntries(ctx, tx, locks); err != nil {
		return nil, err
	}
	l := &ledgers{}
	var err error
	if l.visits.rows, err = store.Visits(ctx, tx, visits); err != nil {
		return nil, err
	}
	if l.complaints.rows, err = store.Complaints(ctx, tx, complaints); err != nil {
		return nil, err
	}
	if l.customers.rows, err = store.Customers(ctx, tx, customers); err != nil {
		return nil, err
	}
	open, err := store.OpenChurnCases(ctx, tx, churn)
	if err != nil {
		return nil, err
	}
	l.churn.rows = make(map[store.EntryKey]churnState, len(churn))
	for _, k := range churn {
		switch o, ok := open[k]; {
		case !ok:
			l.churn.rows[k] = churnNone
		case o:
			l.churn.rows[k] = churnOpen
		default:
			l.churn.rows[k] = churnLogged
		}
	}
	// The coverage entries a visit may move: its own (a visit naming no
	// service) and those of the services it names, stored or in an event.
	var coverage []store.EntryKey
	locks = locks[:0]
	// The services of ServiceCompleted events too: whether one is stored
	// decides whether its event was applied before (keyed.go), so two
	// transactions applying it at once read it in turn.
	for _, k := range services {
		locks = append(locks, store.Lock{Kind: store.KindService, EntryKey: k})
	}
	for k, v := range l.visits.rows {
		ids := append([]string{"visit:" + k.ID}, named[k]...)
		if v.ServiceID != "" {
			ids = append(ids, v.ServiceID)
		}
		for _, id := range ids {
			ck := store.EntryKey{Tenant: k.Tenant, ID: id}
			coverage = append(coverage, ck)
			locks = append(locks, store.Lock{Kind: store.KindService, EntryKey: ck})
			if id != "visit:"+k.ID {
				services = append(services, ck)
			}
		}
	}
	slices.SortFunc(coverage, store.EntryKey.Compare)
	coverage = slices.Compact(coverage)
	if err := store.LockEntries(ctx, tx, locks); err != nil {
		return nil, err
	}
	if l.coverage.rows, err = store.ServiceCoverages(ctx, tx, coverage); err != nil {
		return nil, err
	}
	stored, err := store.Services(ctx, tx, services)
	if err != nil {
		return nil, err
	}
	// A service not stored is known, with no product.
	l.services.rows = make(map[store.EntryKey]store.Service, len(services))
	l.newServices = make(map[store.EntryKey]bool, len(services))
	for _, k := range services {
		l.services.rows[k] = store.Service{EntryKey: k}
		l.newServices[k] = true
	}
	for k, s := range stored {
		l.services.rows[k] = s
		delete(l.newServices, k)
	}
	return l, nil
}

// drop forgets what the event being applied staged.
func (l *ledgers) drop() {
	l.visits.drop()
	l.coverage.drop()
	l.services.drop()
	l.customers.drop()
	l.complaints.drop()
	l.churn.drop()
	l.counters = l.counters[:l.counted]
}

// keep makes what the event staged the state and gathers its writes for
// the end of the transaction: the entries it moved, the counters and
// customer buckets it changed.
func (a *App) keep(ctx context.Context, tx pgx.Tx, l *ledgers, members []rollup.MemberDelta) error {
	n := len(l.counters)
	counters := l.counters[l.counted:n:n] // later events append after it
	l.counted = n
	w := written{l: l, visits: l.visits.keep(), coverage: l.coverage.keep(), services: l.services.keep(),
		customers: l.customers.keep(), complaints: l.complaints.keep(), members: members}
	l.churn.keep() // its statements were sent
	if len(w.visits)+len(w.coverage)+len(w.services)+len(w.customers)+len(w.complaints)+len(w.members) > 0 {
		if err := inbox.Gather(ctx, tx, "analytics.ledgers", w, writeLedgers); err != nil {
			return err
		}
	}
	return a.addCounters(ctx, tx, counters)
}

// written is what one event that applied moved.
type written struct {
	l                                                 *ledgers
	visits, coverage, services, customers, complaints []store.EntryKey
	members                                           []rollup.MemberDelta
}

// writeLedgers writes the entries the events ws moved, as the state holds
// them now, one statement per table, and the sum of their changes of the
// customer buckets.
func writeLedgers(ctx context.Context, tx pgx.Tx, ws []written) error {
	byState := map[*ledgers]*written{}
	var states []*ledgers
	var members []rollup.MemberDelta
	for _, w := range ws {
		m := byState[w.l]
		if m == nil {
			m = &written{l: w.l}
			byState[w.l] = m
			states = append(states, w.l)
		}
		m.visits = append(m.visits, w.visits...)
		m.coverage = append(m.coverage, w.coverage...)
		m.services = append(m.services, w.services...)
		m.customers = append(m.customers, w.customers...)
		m.complaints = append(m.complaints, w.complaints...)
		members = append(members, w.members...)
	}
	for _, l := range states {
		w := byState[l]
		if err := store.SaveVisits(ctx, tx, l.visits.values(w.visits)); err != nil {
			return err
		}
		if err := store.SaveServiceCoverages(ctx, tx, l.coverage.values(w.coverage)); err != nil {
			return err
		}
		if err := store.SaveServices(ctx, tx, l.services.values(w.services)); err != nil {
			return err
		}
		if err := store.SaveCustomers(ctx, tx, l.customers.values(w.customers)); err != nil {
			return err
		}
		if err := store.SaveComplaints(ctx, tx, l.complaints.values(w.complaints)); err != nil {
			return err
		}
	}
	return store.ApplyMembers(ctx, tx, rollup.MemberDiff(nil, members))
}
