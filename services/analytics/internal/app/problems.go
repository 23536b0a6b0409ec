package app

import (
	"context"
	"slices"
	"strings"

	"github.com/huifang/huifang/services/analytics/internal/figures"
	"github.com/huifang/huifang/services/analytics/internal/rollup"
	"github.com/huifang/huifang/services/analytics/internal/store"
)

// Problems are the problem and complaint figures of a scope.
type Problems struct {
	// Counts are problems raised in visits, by category and product, most first.
	Counts                  []figures.ProblemCount
	Products                []figures.ProductRate
	Resolution, Improvement figures.Ratio
	MeanResolutionHours     float64
	Closed                  int64
	// Acknowledged counts the complaints acknowledged; MeanAcknowledgeHours
	// is their mean time from escalation to the first acknowledgement (seed 004).
	Acknowledged         int64
	MeanAcknowledgeHours float64
	// NoShows are the invited customers who did not come, by reason, most
	// first (seed 000, auto dealer: for no-shows record the reason).
	NoShows []NoShowCount
}

// NoShowCount is how many no-shows had a reason (its short name).
type NoShowCount struct {
	Reason string
	Count  int64
}

// Problems returns problem counts, seed 001's product flags and complaint
// resolution of a scope.
func (a *App) Problems(ctx context.Context, s Scope) (Problems, error) {
	if err := unitInScope(ctx, s.Filter.OrgUnit); err != nil {
		return Problems{}, err
	}
	t, err := a.Targets(ctx, s.Tenant)
	if err != nil {
		return Problems{}, err
	}
	return a.problems(ctx, s, t)
}

func (a *App) problems(ctx context.Context, s Scope, t figures.Targets) (Problems, error) {
	var out Problems
	rows, err := store.Sum(ctx, a.DB, s.query([]string{rollup.MetricProblem, rollup.MetricLogged}, "category", "product_category"))
	if err != nil {
		return out, err
	}
	products := map[string]*figures.Product{}
	noShows, err := store.Sum(ctx, a.DB, s.query([]string{rollup.MetricNoShow}, "category"))
	if err != nil {
		return out, err
	}
	for _, r := range noShows {
		out.NoShows = append(out.NoShows, NoShowCount{Reason: r.Group[0], Count: r.N})
	}
	slices.SortFunc(out.NoShows, func(a, b NoShowCount) int {
		if a.Count != b.Count {
			return int(b.Count - a.Count)
		}
		return strings.Compare(a.Reason, b.Reason)
	})
	for _, r := range rows {
		p := products[r.Group[1]]
		if p == nil {
			p = &figures.Product{Category: r.Group[1]}
			products[r.Group[1]] = p
		}
		if r.Metric == rollup.MetricProblem {
			out.Counts = append(out.Counts, figures.ProblemCount{Category: r.Group[0], ProductCategory: r.Group[1], Count: r.N})
			p.Problems += r.N
		} else {
			p.Logged += r.N
		}
	}
	slices.SortFunc(out.Counts, func(a, b figures.ProblemCount) int {
		if a.Count != b.Count {
			return int(b.Count - a.Count)
		}
		return strings.Compare(a.Category+"\x00"+a.ProductCategory, b.Category+"\x00"+b.ProductCategory)
	})
	var ps []figures.Product
	for _, p := range products {
		if p.Category != "" {
			ps = append(ps, *p)
		}
	}
	slices.SortFunc(ps, func(a, b figures.Product) int { return strings.Compare(a.Category, b.Category) })
	out.Products = figures.FlagProducts(ps)

	// Complaints carry no policy, service type or channel.
	cs := s
	cs.Filter = rollup.Dims{OrgUnit: s.Filter.OrgUnit, ProductCategory: s.Filter.ProductCategory, AgentID: s.Filter.AgentID}
	m, err := a.sum(ctx, cs.query([]string{rollup.MetricComplaint, rollup.MetricResolved, rollup.MetricImproved, rollup.MetricComplaintClosed, rollup.MetricAcknowledged}))
	if err != nil {
		return out, err
	}
	for _, f := range []struct {
		name string
		dst  *figures.Ratio
	}{{figures.ResolutionRate, &out.Resolution}, {figures.Improvement, &out.Improvement}} {
		sp, _ := figures.SpecOf(f.name)
		*f.dst = sp.Ratio(t, m.counts())
	}
	out.MeanResolutionHours = m.mean(rollup.MetricResolved) / 3600
	out.Closed = m[rollup.MetricComplaintClosed].N
	out.Acknowledged = m[rollup.MetricAcknowledged].N
	out.MeanAcknowledgeHours = m.mean(rollup.MetricAcknowledged) / 3600
	return out, nil
}
