package app

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"
	"google.golang.org/protobuf/proto"

	eventsv1 "github.com/huifang/huifang/proto/huifang/events/v1"

	"github.com/huifang/huifang/pkg/inbox"
	"github.com/huifang/huifang/pkg/invalid"
	"github.com/huifang/huifang/pkg/tenant"
	"github.com/huifang/huifang/services/analytics/internal/rollup"
	"github.com/huifang/huifang/services/analytics/internal/store"
)

// ApplyEvent applies one event to the rollups in a transaction of its own.
func (a *App) ApplyEvent(ctx context.Context, ev proto.Message) error {
	return pgx.BeginFunc(ctx, a.DB, func(tx pgx.Tx) error { return a.ApplyEventTx(ctx, tx, ev) })
}

// ApplyEventTx applies one event within the caller's tx (the consumer's,
// which holds the event's inbox row): it moves the ledger entries the event
// is about (visit, service coverage, customer buckets, complaint, customer)
// and adds the change of its contribution to the counters. An event that
// breaks a rule is refused with an *invalid.Error (it is dead-lettered) and
// changes nothing. Its first statement is the fence: when ctx carries a
// leader's term (the consumer's always does), the lease must still be held
// with that term's token, or the event is not applied and the error is
// transient (ErrLeaseLost). In a batch the consumer prepared
// (PrepareEvents), it reads nothing and writes the entries it moves with
// the batch's, before the commit (see ledgers.go).
func (a *App) ApplyEventTx(ctx context.Context, tx pgx.Tx, ev proto.Message) error {
	if err := a.fence(ctx, tx); err != nil {
		return err
	}
	l, err := ledgersFor(ctx, tx, ev)
	if err != nil {
		return err
	}
	m := &move{l: l}
	defer l.drop() // what an event that failed staged
	if err := a.applyEvent(ctx, tx, m, ev); err != nil {
		return err
	}
	// The counters are merged once, with the batch's (applyCounters).
	return a.keep(ctx, tx, l, rollup.MemberDiff(m.was, m.is))
}

// move is what one event changes: its entries and counters (staged in l)
// and the customer buckets (what its services added before and after).
type move struct {
	l       *ledgers
	was, is []rollup.MemberDelta
}

func (m *move) add(ds []rollup.Delta) { m.l.counters = append(m.l.counters, ds...) }

// addDiff adds the change of an entry's contribution to the counters:
// before and after append its contribution before and after the event to
// a slice (the state's buffer, so the batch reuses it).
func (m *move) addDiff(before, after func([]rollup.Delta) []rollup.Delta) {
	b := before(m.l.contributions[:0])
	m.l.contributions = after(b)
	m.l.counters = rollup.AppendDiff(m.l.counters, b, m.l.contributions[len(b):])
}

func (a *App) applyEvent(ctx context.Context, tx pgx.Tx, m *move, ev proto.Message) error {
	switch e := ev.(type) {
	case *eventsv1.ServiceCompleted:
		return completeService(ctx, tx, m, e)
	case *eventsv1.VisitLogged:
		if err := rollup.CheckVisitLogged(e); err != nil {
			return err
		}
		v, err := moveVisit(m, e)
		if err != nil {
			return err
		}
		if err := a.saveRound(ctx, tx, v, func(r *rollup.RoundVisit) {
			r.RecordID = e.GetRecordId()
			r.ProductMatches, r.QuantityMatches = rollup.MatchAnswers(e.GetAnswers())
		}); err != nil {
			return err
		}
		// The first record of an open churn case fills it in.
		k := store.EntryKey{Tenant: v.Tenant, ID: v.VisitID}
		churn, ok := m.l.churn.get(k)
		if !ok {
			return errNotInSet
		}
		if churn == churnOpen {
			reason, remedy := rollup.ChurnAnswers(e.GetAnswers())
			if err := store.LogChurnCase(ctx, tx, v.Tenant, v.VisitID, e.GetAgentId(), e.GetRecordId(), rollup.Timestamp(e.GetLoggedAt()), reason, remedy); err != nil {
				return err
			}
			m.l.churn.put(k, churnLogged)
		}
		m.add(rollup.FromVisitLogged(e, v.ProductCategory))
		return nil
	// By concrete type: events of one kind may carry the ids of another
	// (a complaint names its visit, a confirmation visit its complaint).
	case *eventsv1.ComplaintEscalated:
		if err := moveComplaint(m, e); err != nil {
			return err
		}
		if e.GetCategory() != rollup.MismatchCategory || e.GetVisitId() == "" {
			return nil
		}
		return store.MarkRoundComplaint(ctx, tx, tenant.Of(e), e.GetVisitId(), e.GetComplaintId())
	case *eventsv1.ComplaintAcknowledged, *eventsv1.ComplaintResolved, *eventsv1.ComplaintReopened, *eventsv1.ComplaintClosed,
		*eventsv1.ImprovementPlanSet, *eventsv1.ImprovementMeasureCompleted:
		return moveComplaint(m, e.(rollup.ComplaintEvent))
	case *eventsv1.VisitDue:
		k, err := visitKey(e)
		if err != nil {
			return err
		}
		if first, err := firstVisitEvent(ctx, tx, m, k, true); err != nil || !first {
			return err
		}
		v, err := moveVisit(m, e)
		if err != nil {
			return err
		}
		if err := a.saveRound(ctx, tx, v, func(r *rollup.RoundVisit) { r.NameMasked = e.GetCustomer().GetNameMasked() }); err != nil {
			return err
		}
		if c, ok := rollup.ChurnCaseOf(e); ok {
			k := store.EntryKey{Tenant: c.Tenant, ID: c.VisitID}
			churn, ok := m.l.churn.get(k)
			if !ok {
				return errNotInSet
			}
			if err := store.OpenChurnCase(ctx, tx, c); err != nil {
				return err
			}
			if churn == churnNone { // a call due again keeps what its record filled in
				m.l.churn.put(k, churnOpen)
			}
		}
		return nil
	case *eventsv1.VisitPlanned:
		k, err := visitKey(e)
		if err != nil {
			return err
		}
		if first, err := firstVisitEvent(ctx, tx, m, k, false); err != nil || !first {
			return err
		}
		v, err := moveVisit(m, e)
		if err != nil {
			return err
		}
		return a.saveRound(ctx, tx, v, nil)
	case *eventsv1.VisitCancelled, *eventsv1.VisitAssigned, *eventsv1.VisitAttempted, *eventsv1.VisitUnreachable:
		v, err := moveVisit(m, e.(rollup.VisitEvent))
		if err != nil {
			return err
		}
		return a.saveRound(ctx, tx, v, nil)
	case *eventsv1.CustomerUpdated:
		// Only erasures come here (stream.SubjectCustomerErased): the
		// masked names the churn table and the round reports keep go.
		if !e.GetErased() {
			return nil
		}
		if e.GetTenantId() == "" || e.GetCustomer().GetId() == "" {
			return invalid.New("customer.id", "an erasure names its tenant and customer")
		}
		return store.ForgetCustomerNames(ctx, tx, e.GetTenantId(), e.GetCustomer().GetId())
	case *eventsv1.ReviewSubmitted:
		ds, err := rollup.FromReview(e)
		if err != nil {
			return err
		}
		m.add(ds)
		return nil
	}
	return fmt.Errorf("app: no use case for %T", ev)
}

// addCounters adds deltas to the counters. In a consumer's transaction the
// deltas of all the messages it applies are gathered and written together,
// merged, just before it commits (inbox.Gather): counters are sums, so the
// order does not matter, and a batch of events touching the same counters
// writes each once.
func (a *App) addCounters(ctx context.Context, tx pgx.Tx, ds []rollup.Delta) error {
	if len(ds) == 0 {
		return nil
	}
	return inbox.Gather(ctx, tx, "analytics.counters", ds, applyCounters)
}

// applyCounters writes gathered deltas, merged (store.Apply takes distinct
// counters).
func applyCounters(ctx context.Context, tx pgx.Tx, gathered [][]rollup.Delta) error {
	n := 0
	for _, ds := range gathered {
		n += len(ds)
	}
	all := make([]rollup.Delta, 0, n)
	for _, ds := range gathered {
		all = append(all, ds...)
	}
	return store.Apply(ctx, tx, rollup.Merge(all))
}

// saveRound keeps the round visit of a delivery's visit (seed 000 cement
// logistics) in line with its ledger entry after an event; with adds what
// only that event carries. Other visits are left alone.
func (a *App) saveRound(ctx context.Context, tx pgx.Tx, v rollup.Visit, with func(*rollup.RoundVisit)) error {
	r, ok := rollup.RoundVisitOf(v)
	if !ok {
		return nil
	}
	if with != nil {
		with(&r)
	}
	return store.SaveRoundVisit(ctx, tx, r)
}

// moveVisit moves a visit's ledger entry by one event and the change of its
// contribution. It returns the entry after the event.
func moveVisit(m *move, ev rollup.VisitEvent) (rollup.Visit, error) {
	tenantID, id, err := rollup.VisitRef(ev)
	if err != nil {
		return rollup.Visit{}, err
	}
	k := store.EntryKey{Tenant: tenantID, ID: id}
	before, ok := m.l.visits.get(k)
	if !ok {
		return rollup.Visit{}, errNotInSet
	}
	after := rollup.Apply(before, ev)
	if after.ProductCategory == "" && after.ServiceID != "" {
		// The product comes with the service (seed 001: sales record the product).
		s, ok := m.l.services.get(store.EntryKey{Tenant: tenantID, ID: after.ServiceID})
		if !ok {
			return rollup.Visit{}, errNotInSet
		}
		after.ProductCategory = s.ProductCategory
	}
	m.addDiff(before.AppendContribution, after.AppendContribution)
	if err := moveServiceCoverage(m, before, after); err != nil {
		return rollup.Visit{}, err
	}
	m.l.visits.put(k, after)
	return after, nil
}

// moveServiceCoverage moves the visit within its service's coverage entry
// (or from one service to another, when its service became known) and the
// change of the services' contributions, to the counters and to the
// customer buckets (customer coverage).
func moveServiceCoverage(m *move, before, after rollup.Visit) error {
	for _, key := range rollup.CoverageKeys(before, after) {
		k := store.EntryKey{Tenant: after.Tenant, ID: key}
		old, ok := m.l.coverage.get(k)
		if !ok {
			return errNotInSet
		}
		cur := old.Move(before, after)
		m.addDiff(old.AppendContribution, cur.AppendContribution)
		m.was = append(m.was, old.Members()...)
		m.is = append(m.is, cur.Members()...)
		m.l.coverage.put(k, cur)
	}
	return nil
}

func moveComplaint(m *move, ev rollup.ComplaintEvent) error {
	tenantID, id, err := rollup.ComplaintRef(ev)
	if err != nil {
		return err
	}
	k := store.EntryKey{Tenant: tenantID, ID: id}
	c, ok := m.l.complaints.get(k)
	if !ok {
		return errNotInSet
	}
	after := rollup.ApplyComplaint(c, ev)
	m.addDiff(c.AppendContribution, after.AppendContribution)
	m.l.complaints.put(k, after)
	return nil
}

// completeService remembers the service's product (and car and advisor)
// and its customer's latest service, and counts the service and, when it
// won its customer back, the customer (seed 000).
func completeService(ctx context.Context, tx pgx.Tx, m *move, ev *eventsv1.ServiceCompleted) error {
	if err := rollup.CheckService(ev); err != nil {
		return err
	}
	tenantID := tenant.Of(ev)
	k := store.EntryKey{Tenant: tenantID, ID: ev.GetServiceId()}
	if first, err := firstService(ctx, tx, m, k); err != nil || !first {
		return err
	}
	s, ok := m.l.services.get(k)
	if !ok {
		return errNotInSet
	}
	s.ProductCategory = ev.GetProduct().GetCategory()
	// The car and the advisor, for the churned-customer table (seed 000 auto).
	if model, plate, advisor := ev.GetVehicle().GetModel(), rollup.MaskPlate(ev.GetVehicle().GetPlate()), ev.GetStaffId(); model != "" || plate != "" || advisor != "" {
		s.VehicleModel, s.PlateMasked, s.Advisor = model, plate, advisor
	}
	m.l.services.put(k, s)
	wonBack := false
	if id := ev.GetCustomer().GetId(); id != "" {
		ck := store.EntryKey{Tenant: tenantID, ID: id}
		c, ok := m.l.customers.get(ck)
		if !ok {
			return errNotInSet
		}
		before := c
		wonBack = c.Serve(rollup.Timestamp(ev.GetCompletedAt()))
		if c != before {
			m.l.customers.put(ck, c)
		}
	}
	ds, err := rollup.FromService(ev, wonBack)
	if err != nil {
		return err
	}
	m.add(ds)
	return nil
}
