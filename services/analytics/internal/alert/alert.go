// Package alert checks the figures against their targets and publishes a
// TargetBreached event, through the outbox, the first time a figure of a
// tenant (or one of its org units) falls short in a period.
package alert

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/protobuf/types/known/timestamppb"

	eventsv1 "github.com/huifang/huifang/proto/huifang/events/v1"

	"github.com/huifang/huifang/pkg/outbox"
	"github.com/huifang/huifang/pkg/stream"
	"github.com/huifang/huifang/services/analytics/internal/figures"
	"github.com/huifang/huifang/services/analytics/internal/kpi"
	"github.com/huifang/huifang/services/analytics/internal/rollup"
	"github.com/huifang/huifang/services/analytics/internal/store"
)

// Checker evaluates targets.
type Checker struct {
	Calc *kpi.Calc
	Pool *pgxpool.Pool
	Log  *slog.Logger
	// Notify wakes the outbox relay after a breach was written; may be nil.
	Notify func()
	// Interval is how often Run checks every tenant.
	Interval time.Duration
	// Now is the clock; time.Now when nil.
	Now func() time.Time
	// Breaches counts the breaches recorded, by figure; may be nil.
	Breaches *prometheus.CounterVec
}

// BreachesMetricName is the name of the counter of recorded breaches; the deploy's alerts use it.
const BreachesMetricName = "huifang_target_breaches_total"

// NewBreachesCounter returns the counter of recorded target breaches, by figure.
func NewBreachesCounter() *prometheus.CounterVec {
	return prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: BreachesMetricName,
		Help: "Target breaches recorded (and published as TargetBreached), by figure.",
	}, []string{"figure"})
}

// Period returns the period checked as of asOf: the whole UTC days of
// asOf's month before asOf's day, or the whole previous month on the 1st.
// Today is left out: its visits may still be made.
func Period(asOf time.Time) (from, to time.Time) {
	to = rollup.Day(asOf)
	y, m, _ := to.Date()
	from = time.Date(y, m, 1, 0, 0, 0, 0, time.UTC)
	if from.Equal(to) {
		from = from.AddDate(0, -1, 0)
	}
	return from, to
}

// CustomerPeriod returns the calendar month before asOf's month: the latest
// whole month, the period customer coverage is checked over (a month in
// progress still has follow-ups planned later in it).
func CustomerPeriod(asOf time.Time) (from, to time.Time) {
	to = rollup.Month(rollup.Day(asOf))
	return to.AddDate(0, -1, 0), to
}

// ImprovementPeriod returns the latest whole UTC month whose complaints have
// all had seed 003's 30 days by asOf's day: the improvement rate of a
// fresher month would count complaints still inside their window.
func ImprovementPeriod(asOf time.Time) (from, to time.Time) {
	day := rollup.Day(asOf)
	y, m, _ := day.Date()
	to = time.Date(y, m, 1, 0, 0, 0, 0, time.UTC)
	for to.Add(rollup.ImprovementWindow).After(day) {
		to = to.AddDate(0, -1, 0)
	}
	return to.AddDate(0, -1, 0), to
}

// Run checks every tenant each Interval until ctx ends.
func (c *Checker) Run(ctx context.Context) error {
	tick := time.NewTicker(c.Interval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		}
		tenants, err := c.Calc.Store.Tenants(ctx)
		if err != nil {
			c.Log.WarnContext(ctx, "target check failed", "err", err)
			continue
		}
		for _, t := range tenants {
			if _, err := c.Check(ctx, t, c.now()); err != nil && ctx.Err() == nil {
				c.Log.WarnContext(ctx, "target check failed", "tenant", t, "err", err)
			}
		}
	}
}

func (c *Checker) now() time.Time {
	if c.Now != nil {
		return c.Now()
	}
	return time.Now()
}

// Check evaluates every figure with a target for the tenant and each of its
// org units as of asOf, and records and publishes the breaches not seen
// before in the same period. It returns the new ones.
func (c *Checker) Check(ctx context.Context, tenant string, asOf time.Time) ([]store.Breach, error) {
	t, err := c.Calc.Targets(ctx, tenant)
	if err != nil {
		return nil, err
	}
	from, to := Period(asOf)
	ifrom, ito := ImprovementPeriod(asOf)
	units, err := c.orgUnits(ctx, tenant, ifrom, to)
	if err != nil {
		return nil, err
	}
	var found []store.Breach
	for _, unit := range append([]string{""}, units...) {
		s := kpi.Scope{Tenant: tenant, From: from, To: to, Filter: rollup.Dims{OrgUnit: unit}}
		names := []string{}
		for _, f := range []string{figures.Coverage, figures.VisitCompletion, figures.ResponseRate, figures.ContactSuccess, figures.Timeliness, figures.Timeliness48h, figures.ResolutionRate} {
			if _, ok := t.For(f); ok {
				names = append(names, f)
			}
		}
		rs, err := c.Calc.Figures(ctx, s, t, names...)
		if err != nil {
			return nil, err
		}
		sat, err := c.Calc.Satisfaction(ctx, s, t)
		if err != nil {
			return nil, err
		}
		for _, a := range sat.Aspects {
			rs = append(rs, a.Rate)
		}
		is := s
		is.From, is.To = ifrom, ito
		imp, err := c.Calc.Figures(ctx, is, t, figures.Improvement30d)
		if err != nil {
			return nil, err
		}
		for _, r := range rs {
			if r.Breached() {
				found = append(found, breach(tenant, unit, from, to, r, asOf))
			}
		}
		if imp[0].Breached() {
			found = append(found, breach(tenant, unit, ifrom, ito, imp[0], asOf))
		}
		// Customer coverage is kept per calendar month, and a month's
		// follow-ups are due throughout it: check the last whole month.
		cs := s
		cs.From, cs.To = CustomerPeriod(asOf)
		if cc, ok, err := c.Calc.CustomerCoverage(ctx, cs, t); err != nil {
			return nil, err
		} else if ok && cc.Breached() {
			found = append(found, breach(tenant, unit, cs.From, cs.To, cc, asOf))
		}
	}
	var fresh []store.Breach
	err = pgx.BeginFunc(ctx, c.Pool, func(tx pgx.Tx) error {
		fresh = fresh[:0]
		for _, b := range found {
			isNew, err := store.AddBreach(ctx, tx, b)
			if err != nil {
				return err
			}
			if !isNew {
				continue
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
		return nil, fmt.Errorf("alert: record breaches: %w", err)
	}
	if c.Breaches != nil {
		for _, b := range fresh {
			c.Breaches.WithLabelValues(b.Figure).Inc()
		}
	}
	if len(fresh) > 0 && c.Notify != nil {
		c.Notify()
	}
	return fresh, nil
}

func breach(tenant, unit string, from, to time.Time, r figures.Ratio, at time.Time) store.Breach {
	return store.Breach{ID: outbox.NewEventID(), Tenant: tenant, Figure: r.Figure, OrgUnit: unit,
		PeriodStart: from, PeriodEnd: to, Value: r.Value(), Target: r.Target(), DetectedAt: at.UTC()}
}

func (c *Checker) orgUnits(ctx context.Context, tenant string, from, to time.Time) ([]string, error) {
	rows, err := c.Calc.Store.Sum(ctx, store.Query{Tenant: tenant, From: from, To: to,
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
