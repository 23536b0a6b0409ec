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
// which holds the event's inbox row): it moves the ledger entry the event is
// about (visit, service coverage, customer buckets, complaint, customer)
// and adds the change of its contribution to the counters. An event that
// breaks a rule is refused with an *invalid.Error (it is dead-lettered) and
// changes nothing. Its first statement is the fence: when ctx carries a
// leader's term (the consumer's always does), the lease must still be held
// with that term's token, or the event is not applied and the error is
// transient (ErrLeaseLost).
func (a *App) ApplyEventTx(ctx context.Context, tx pgx.Tx, ev proto.Message) error {
	if err := a.fence(ctx, tx); err != nil {
		return err
	}
	switch e := ev.(type) {
	case *eventsv1.ServiceCompleted:
		return a.completeService(ctx, tx, e)
	case *eventsv1.VisitLogged:
		if err := rollup.CheckVisitLogged(e); err != nil {
			return err
		}
		v, err := a.moveVisit(ctx, tx, e)
		if err != nil {
			return err
		}
		if err := a.saveRound(ctx, tx, v, func(r *rollup.RoundVisit) {
			r.RecordID = e.GetRecordId()
			r.ProductMatches, r.QuantityMatches = rollup.MatchAnswers(e.GetAnswers())
		}); err != nil {
			return err
		}
		reason, remedy := rollup.ChurnAnswers(e.GetAnswers())
		if err := store.LogChurnCase(ctx, tx, v.Tenant, v.VisitID, e.GetAgentId(), e.GetRecordId(), rollup.Timestamp(e.GetLoggedAt()), reason, remedy); err != nil {
			return err
		}
		return a.addCounters(ctx, tx, rollup.FromVisitLogged(e, v.ProductCategory))
	// By concrete type: events of one kind may carry the ids of another
	// (a complaint names its visit, a confirmation visit its complaint).
	case *eventsv1.ComplaintEscalated:
		if err := a.moveComplaint(ctx, tx, e); err != nil {
			return err
		}
		if e.GetCategory() != rollup.MismatchCategory || e.GetVisitId() == "" {
			return nil
		}
		return store.MarkRoundComplaint(ctx, tx, tenant.Of(e), e.GetVisitId(), e.GetComplaintId())
	case *eventsv1.ComplaintAcknowledged, *eventsv1.ComplaintResolved, *eventsv1.ComplaintReopened, *eventsv1.ComplaintClosed,
		*eventsv1.ImprovementPlanSet, *eventsv1.ImprovementMeasureCompleted:
		return a.moveComplaint(ctx, tx, e.(rollup.ComplaintEvent))
	case *eventsv1.VisitDue:
		v, err := a.moveVisit(ctx, tx, e)
		if err != nil {
			return err
		}
		if err := a.saveRound(ctx, tx, v, func(r *rollup.RoundVisit) { r.NameMasked = e.GetCustomer().GetNameMasked() }); err != nil {
			return err
		}
		if c, ok := rollup.ChurnCaseOf(e); ok {
			return store.OpenChurnCase(ctx, tx, c)
		}
		return nil
	case *eventsv1.VisitPlanned, *eventsv1.VisitCancelled, *eventsv1.VisitAssigned, *eventsv1.VisitAttempted, *eventsv1.VisitUnreachable:
		v, err := a.moveVisit(ctx, tx, e.(rollup.VisitEvent))
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
		return a.addCounters(ctx, tx, ds)
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
	var all []rollup.Delta
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

// moveVisit moves a visit's ledger entry by one event and applies the
// change of its contribution. It returns the entry after the event.
func (a *App) moveVisit(ctx context.Context, tx pgx.Tx, ev rollup.VisitEvent) (rollup.Visit, error) {
	tenantID, id, err := rollup.VisitRef(ev)
	if err != nil {
		return rollup.Visit{}, err
	}
	var after rollup.Visit
	err = store.UpdateVisit(ctx, tx, tenantID, id, func(v *rollup.Visit) error {
		before := *v
		after = rollup.Apply(before, ev)
		if after.ProductCategory == "" {
			// The product comes with the service (seed 001: sales record the product).
			var err error
			if after.ProductCategory, err = store.ServiceProduct(ctx, tx, tenantID, after.ServiceID); err != nil {
				return err
			}
		}
		if err := a.addCounters(ctx, tx, rollup.Diff(before.Contribution(), after.Contribution())); err != nil {
			return err
		}
		if err := a.moveServiceCoverage(ctx, tx, before, after); err != nil {
			return err
		}
		*v = after
		return nil
	})
	return after, err
}

// moveServiceCoverage moves the visit within its service's coverage entry
// (or from one service to another, when its service became known) and
// applies the change of the services' contributions, to the counters and to
// the customer buckets (customer coverage). Entries are taken in key order.
func (a *App) moveServiceCoverage(ctx context.Context, tx pgx.Tx, before, after rollup.Visit) error {
	var was, is []rollup.MemberDelta
	for _, k := range rollup.CoverageKeys(before, after) {
		err := store.UpdateServiceCoverage(ctx, tx, after.Tenant, k, func(c *rollup.ServiceCoverage) error {
			old := *c
			cur := old.Move(before, after)
			if err := a.addCounters(ctx, tx, rollup.Diff(old.Contribution(), cur.Contribution())); err != nil {
				return err
			}
			was = append(was, old.Members()...)
			is = append(is, cur.Members()...)
			*c = cur
			return nil
		})
		if err != nil {
			return err
		}
	}
	return store.ApplyMembers(ctx, tx, rollup.MemberDiff(was, is))
}

func (a *App) moveComplaint(ctx context.Context, tx pgx.Tx, ev rollup.ComplaintEvent) error {
	tenantID, id, err := rollup.ComplaintRef(ev)
	if err != nil {
		return err
	}
	return store.UpdateComplaint(ctx, tx, tenantID, id, func(c *rollup.Complaint) error {
		after := rollup.ApplyComplaint(*c, ev)
		if err := a.addCounters(ctx, tx, rollup.Diff(c.Contribution(), after.Contribution())); err != nil {
			return err
		}
		*c = after
		return nil
	})
}

// completeService remembers the service's product and its customer's latest
// service, and counts the service and, when it won its customer back, the
// customer (seed 000).
func (a *App) completeService(ctx context.Context, tx pgx.Tx, ev *eventsv1.ServiceCompleted) error {
	if err := rollup.CheckService(ev); err != nil {
		return err
	}
	tenantID := tenant.Of(ev)
	if err := store.SaveServiceProduct(ctx, tx, tenantID, ev.GetServiceId(), ev.GetProduct().GetCategory()); err != nil {
		return err
	}
	// The car and the advisor, for the churned-customer table (seed 000 auto).
	if err := store.SaveServiceVehicle(ctx, tx, tenantID, ev.GetServiceId(), ev.GetVehicle().GetModel(),
		rollup.MaskPlate(ev.GetVehicle().GetPlate()), ev.GetStaffId()); err != nil {
		return err
	}
	wonBack := false
	if id := ev.GetCustomer().GetId(); id != "" {
		at := rollup.Timestamp(ev.GetCompletedAt())
		if err := store.UpdateCustomer(ctx, tx, tenantID, id, func(c *rollup.Customer) error {
			wonBack = c.Serve(at)
			return nil
		}); err != nil {
			return err
		}
	}
	ds, err := rollup.FromService(ev, wonBack)
	if err != nil {
		return err
	}
	return a.addCounters(ctx, tx, ds)
}
