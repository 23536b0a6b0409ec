package app

import (
	"context"
	"fmt"
	"slices"

	"github.com/huifang/huifang/services/analytics/internal/figures"
	"github.com/huifang/huifang/services/analytics/internal/store"
)

// sums are summed counters by metric, with their totals.
type sums map[string]store.Row

func (m sums) add(r store.Row) {
	x := m[r.Metric]
	x.N += r.N
	x.Total += r.Total
	m[r.Metric] = x
}

// counts are the sums without their totals, as the figures read them.
func (m sums) counts() figures.Counts {
	c := figures.Counts{}
	for k, r := range m {
		c[k] = r.N
	}
	return c
}

// mean is a metric's mean total per counted item, 0 when none was counted.
func (m sums) mean(metric string) float64 {
	if r := m[metric]; r.N > 0 {
		return float64(r.Total) / float64(r.N)
	}
	return 0
}

func (a *App) sum(ctx context.Context, q store.Query) (sums, error) {
	rows, err := store.Sum(ctx, a.DB, q)
	if err != nil {
		return nil, err
	}
	m := sums{}
	for _, r := range rows {
		m.add(r)
	}
	return m, nil
}

// sumBy sums q's counters per value of its first GroupBy column.
func (a *App) sumBy(ctx context.Context, q store.Query) (map[string]sums, error) {
	rows, err := store.Sum(ctx, a.DB, q)
	if err != nil {
		return nil, err
	}
	out := map[string]sums{}
	for _, r := range rows {
		m := out[r.Group[0]]
		if m == nil {
			m = sums{}
			out[r.Group[0]] = m
		}
		m.add(r)
	}
	return out, nil
}

// Figures computes ratio figures (figures.SpecOf) over one scope, with the
// tenant's targets.
func (a *App) Figures(ctx context.Context, s Scope, names ...string) ([]figures.Ratio, error) {
	t, err := a.Targets(ctx, s.Tenant)
	if err != nil {
		return nil, err
	}
	return a.figures(ctx, s, t, names...)
}

// figures computes several ratio figures over one scope with one query.
func (a *App) figures(ctx context.Context, s Scope, t figures.Targets, names ...string) ([]figures.Ratio, error) {
	var metrics []string
	specs := make([]figures.Spec, len(names))
	for i, f := range names {
		sp, ok := figures.SpecOf(f)
		if !ok {
			return nil, fmt.Errorf("app: unknown figure %q", f)
		}
		specs[i] = sp
		metrics = append(metrics, sp.Metrics()...)
	}
	slices.Sort(metrics)
	metrics = slices.Compact(metrics)
	// Satisfaction figures need the votes per aspect.
	byAspect, err := a.sumBy(ctx, s.query(metrics, "aspect"))
	if err != nil {
		return nil, err
	}
	out := make([]figures.Ratio, len(names))
	for i, sp := range specs {
		out[i] = sp.Ratio(t, figures.WithReturned(byAspect[sp.Aspect].counts(), byAspect[""].counts()))
	}
	return out, nil
}

// Timeliness are seed 003's and the policies' timeliness figures.
type Timeliness struct {
	// PolicyDeadline: made by the policy's deadline; Within48h: within 48 h
	// of the service (seed 003); Late: fired after the policy's deadline
	// (issue 16).
	PolicyDeadline, Within48h, Late figures.Ratio
}

// Timeliness returns the policy-deadline and 48-hour timeliness of a scope.
func (a *App) Timeliness(ctx context.Context, s Scope) (Timeliness, error) {
	if err := unitInScope(ctx, s.Filter.OrgUnit); err != nil {
		return Timeliness{}, err
	}
	rs, err := a.Figures(ctx, s, figures.Timeliness, figures.Timeliness48h, figures.LateRate)
	if err != nil {
		return Timeliness{}, err
	}
	return Timeliness{PolicyDeadline: rs[0], Within48h: rs[1], Late: rs[2]}, nil
}
