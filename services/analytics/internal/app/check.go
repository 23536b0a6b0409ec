package app

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/protobuf/types/known/timestamppb"

	eventsv1 "github.com/huifang/huifang/proto/huifang/events/v1"

	"github.com/huifang/huifang/pkg/outbox"
	"github.com/huifang/huifang/pkg/stream"
	"github.com/huifang/huifang/services/analytics/internal/figures"
	"github.com/huifang/huifang/services/analytics/internal/rollup"
	"github.com/huifang/huifang/services/analytics/internal/store"
)

// BreachesMetricName is the name of the counter of recorded breaches; the deploy's alerts use it.
const BreachesMetricName = "huifang_target_breaches_total"

// NewBreachesCounter returns the counter of recorded target breaches, by figure.
func NewBreachesCounter() *prometheus.CounterVec {
	return prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: BreachesMetricName,
		Help: "Target breaches recorded (and published as TargetBreached), by figure.",
	}, []string{"figure"})
}

// checked are the ratio figures a target check evaluates when they have a
// target, besides every rated aspect's satisfaction, the 30-day
// improvement (over its own period) and customer coverage (over the last
// whole month).
var checked = []string{figures.Coverage, figures.VisitCompletion, figures.ResponseRate, figures.ContactSuccess, figures.Timeliness, figures.Timeliness48h, figures.ResolutionRate}

// CheckAllTargets checks every tenant that has counters as of now: one
// round of the target-check loop. It returns how many breaches it found
// for the first time; a tenant whose check fails does not stop the others.
func (a *App) CheckAllTargets(ctx context.Context) (int, error) {
	tenants, err := store.Tenants(ctx, a.DB)
	if err != nil {
		return 0, err
	}
	n := 0
	var errs []error
	for _, t := range tenants {
		fresh, err := a.CheckTargets(ctx, t, time.Time{})
		if err != nil {
			errs = append(errs, fmt.Errorf("tenant %s: %w", t, err))
		}
		n += len(fresh)
	}
	return n, errors.Join(errs...)
}

// CheckTargets evaluates every figure with a target for the tenant and
// each of its org units as of asOf (now when zero), and records the
// breaches not recorded before for the same figure, org unit and period:
// each one once in `breaches`, published as TargetBreached through the
// outbox and counted in huifang_target_breaches_total. It returns the new ones.
func (a *App) CheckTargets(ctx context.Context, tenant string, asOf time.Time) ([]figures.Breach, error) {
	if asOf.IsZero() {
		asOf = a.now()
	}
	found, err := a.breaches(ctx, tenant, asOf)
	if err != nil {
		return nil, err
	}
	var fresh []figures.Breach
	err = pgx.BeginFunc(ctx, a.DB, func(tx pgx.Tx) error {
		fresh = fresh[:0]
		for _, b := range found {
			err := store.AddBreach(ctx, tx, b)
			if errors.Is(err, store.ErrConflict) {
				continue // recorded and published before: once per figure, org unit and period
			}
			if err != nil {
				return err
			}
			if _, err := outbox.Add(ctx, tx, outbox.Message{ID: b.ID, Subject: stream.SubjectTargetBreached, Payload: &eventsv1.TargetBreached{
				EventId: b.ID, TenantId: b.Tenant, Figure: b.Figure, Value: b.Value, Target: b.Target, OrgUnit: b.OrgUnit,
				PeriodStart: timestamppb.New(b.PeriodStart), PeriodEnd: timestamppb.New(b.PeriodEnd), At: timestamppb.New(b.DetectedAt),
			}}); err != nil {
				return err
			}
			fresh = append(fresh, b)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("app: record breaches: %w", err)
	}
	if a.Breaches != nil {
		for _, b := range fresh {
			a.Breaches.WithLabelValues(b.Figure).Inc()
		}
	}
	if len(fresh) > 0 {
		a.notify()
	}
	return fresh, nil
}

// breaches returns the figures of the tenant and of each of its org units
// that fall short of their targets as of asOf (not yet recorded or not).
func (a *App) breaches(ctx context.Context, tenant string, asOf time.Time) ([]figures.Breach, error) {
	t, err := a.Targets(ctx, tenant)
	if err != nil {
		return nil, err
	}
	from, to := figures.CheckPeriod(asOf)
	ifrom, ito := figures.ImprovementCheckPeriod(asOf)
	units, err := a.orgUnits(ctx, tenant, ifrom, to)
	if err != nil {
		return nil, err
	}
	breach := func(unit string, from, to time.Time, r figures.Ratio) figures.Breach {
		return figures.NewBreach(outbox.NewEventID(), tenant, unit, from, to, r, asOf)
	}
	var found []figures.Breach
	for _, unit := range append([]string{""}, units...) {
		s := Scope{Tenant: tenant, From: from, To: to, Filter: rollup.Dims{OrgUnit: unit}}
		names := []string{}
		for _, f := range checked {
			if _, ok := t.For(f); ok {
				names = append(names, f)
			}
		}
		rs, err := a.figures(ctx, s, t, names...)
		if err != nil {
			return nil, err
		}
		sat, err := a.satisfaction(ctx, s, t)
		if err != nil {
			return nil, err
		}
		for _, v := range sat.Aspects {
			rs = append(rs, v.Rate)
		}
		is := s
		is.From, is.To = ifrom, ito
		imp, err := a.figures(ctx, is, t, figures.Improvement)
		if err != nil {
			return nil, err
		}
		for _, r := range rs {
			if r.Breached() {
				found = append(found, breach(unit, from, to, r))
			}
		}
		if imp[0].Breached() {
			found = append(found, breach(unit, ifrom, ito, imp[0]))
		}
		// Customer coverage is kept per calendar month, and a month's
		// follow-ups are due throughout it: check the last whole month.
		cs := s
		cs.From, cs.To = figures.CustomerCheckPeriod(asOf)
		if cc, ok, err := a.customerCoverage(ctx, cs, t); err != nil {
			return nil, err
		} else if ok && cc.Breached() {
			found = append(found, breach(unit, cs.From, cs.To, cc))
		}
	}
	return found, nil
}

// orgUnits are the org units with visits, records or complaints in [from, to).
func (a *App) orgUnits(ctx context.Context, tenant string, from, to time.Time) ([]string, error) {
	rows, err := store.Sum(ctx, a.DB, store.Query{Tenant: tenant, From: from, To: to,
		Metrics: []string{rollup.MetricDue, rollup.MetricLogged, rollup.MetricComplaint}, GroupBy: []string{"org_unit"}})
	if err != nil {
		return nil, err
	}
	var out []string
	for _, r := range rows {
		if r.Group[0] != "" && !slices.Contains(out, r.Group[0]) {
			out = append(out, r.Group[0])
		}
	}
	slices.Sort(out)
	return out, nil
}
