// Package kpi computes the figures of a tenant, period and filter from the
// daily rollups, with the tenant's targets: every figure is a ratio of
// counters, so a query reads rollup rows only, never raw records.
package kpi

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/huifang/huifang/services/analytics/internal/figures"
	"github.com/huifang/huifang/services/analytics/internal/rollup"
	"github.com/huifang/huifang/services/analytics/internal/store"
)

// Calc computes figures.
type Calc struct {
	Store *store.Store
}

// Scope is what a figure is computed over.
type Scope struct {
	Tenant string
	// From and To bound the days as [From, To); zero leaves a side open.
	From, To time.Time
	Filter   rollup.Dims
}

func (s Scope) query(metrics []string, groupBy ...string) store.Query {
	return store.Query{Tenant: s.Tenant, Metrics: metrics, From: s.From, To: s.To, Filter: s.Filter, GroupBy: groupBy}
}

// spec says which counters make a ratio figure.
type spec struct {
	num, den []string
	words    string
	aspect   string
}

var votes = []string{rollup.MetricVoteSatisfied, rollup.MetricVoteFairly, rollup.MetricVoteUnsatisfied}

func (sp spec) metrics() []string {
	m := append(slices.Clone(sp.num), sp.den...)
	slices.Sort(m)
	return slices.Compact(m)
}

// specOf returns the counters of a figure.
func specOf(figure string) (spec, bool) {
	switch figure {
	case figures.Coverage:
		return spec{num: []string{rollup.MetricServiceCovered}, den: []string{rollup.MetricServiceEligible}, words: "services followed up / eligible services"}, true
	case figures.VisitCompletion:
		return spec{num: []string{rollup.MetricDone}, den: []string{rollup.MetricDue}, words: "visits made / visits due"}, true
	case figures.ResponseRate:
		return spec{num: []string{rollup.MetricReturned}, den: []string{rollup.MetricDue}, words: "returned / sent"}, true
	case figures.UnreachableRate:
		return spec{num: []string{rollup.MetricUnreachable}, den: []string{rollup.MetricDue}, words: "unreachable / due"}, true
	case figures.ContactSuccess:
		return spec{num: []string{rollup.MetricContacted}, den: []string{rollup.MetricAttempted}, words: "contacted / attempted"}, true
	case figures.Timeliness:
		return spec{num: []string{rollup.MetricOnTime}, den: []string{rollup.MetricWithDeadline}, words: "made by the policy deadline / due with a deadline"}, true
	case figures.Timeliness48h:
		return spec{num: []string{rollup.MetricWithin48h}, den: []string{rollup.MetricWithBase}, words: "made within 48 h of the service / due with a known service time"}, true
	case figures.ResolutionRate:
		return spec{num: []string{rollup.MetricResolved}, den: []string{rollup.MetricComplaint}, words: "resolved / escalated"}, true
	case figures.Improvement30d:
		return spec{num: []string{rollup.MetricImproved30d}, den: []string{rollup.MetricComplaint}, words: "resolved within 30 days / escalated"}, true
	}
	if a, ok := strings.CutPrefix(figure, figures.SatisfactionPrefix); ok && figures.ValidFigure(figure) && a != "*" {
		return spec{num: votes[:2], den: votes, words: "(satisfied + fairly satisfied) / returned", aspect: a}, true
	}
	return spec{}, false
}

// ValidFigure reports whether figure can be computed (and trended).
func ValidFigure(figure string) bool {
	_, ok := specOf(figure)
	return ok
}

// Targets returns the targets in force for tenant.
func (c *Calc) Targets(ctx context.Context, tenant string) (figures.Targets, error) {
	own, err := c.Store.Targets(ctx, tenant)
	if err != nil {
		return figures.Targets{}, err
	}
	return figures.NewTargets(own), nil
}

// counts sums metrics into metric → (n, total).
type counts map[string]store.Row

func (m counts) n(metrics ...string) int64 {
	var s int64
	for _, k := range metrics {
		s += m[k].N
	}
	return s
}

func (c *Calc) sum(ctx context.Context, q store.Query) (counts, error) {
	rows, err := c.Store.Sum(ctx, q)
	if err != nil {
		return nil, err
	}
	m := counts{}
	for _, r := range rows {
		x := m[r.Metric]
		x.N += r.N
		x.Total += r.Total
		m[r.Metric] = x
	}
	return m, nil
}

// Figures computes several ratio figures over one scope with one query.
func (c *Calc) Figures(ctx context.Context, s Scope, t figures.Targets, names ...string) ([]figures.Ratio, error) {
	var metrics []string
	specs := make([]spec, len(names))
	for i, f := range names {
		sp, ok := specOf(f)
		if !ok {
			return nil, fmt.Errorf("kpi: unknown figure %q", f)
		}
		specs[i] = sp
		metrics = append(metrics, sp.metrics()...)
	}
	slices.Sort(metrics)
	metrics = slices.Compact(metrics)
	// Satisfaction figures need the votes per aspect.
	rows, err := c.Store.Sum(ctx, s.query(metrics, "aspect"))
	if err != nil {
		return nil, err
	}
	out := make([]figures.Ratio, len(names))
	for i, sp := range specs {
		var num, den int64
		for _, r := range rows {
			if r.Group[0] != sp.aspect {
				continue
			}
			if slices.Contains(sp.num, r.Metric) {
				num += r.N
			}
			if slices.Contains(sp.den, r.Metric) {
				den += r.N
			}
		}
		out[i] = t.New(names[i], sp.words, num, den)
	}
	return out, nil
}

// Satisfaction are the seed-003 satisfaction figures of a scope.
type Satisfaction struct {
	// Aspects holds every rated aspect, by name, with its votes.
	Aspects []AspectVotes
	NPS     NPS
}

// AspectVotes are one aspect's votes and rate.
type AspectVotes struct {
	Aspect                                  string
	Satisfied, FairlySatisfied, Unsatisfied int64
	Rate                                    figures.Ratio
}

// NPS counts net-promoter answers.
type NPS struct {
	Promoters, Passives, Detractors int64
}

// Score is figures.NPS of the counts.
func (n NPS) Score() float64 { return figures.NPS(n.Promoters, n.Passives, n.Detractors) }

// Satisfaction returns every aspect's votes and the NPS answers of a scope.
func (c *Calc) Satisfaction(ctx context.Context, s Scope, t figures.Targets) (Satisfaction, error) {
	rows, err := c.Store.Sum(ctx, s.query(append(slices.Clone(votes), rollup.MetricNPSPromoter, rollup.MetricNPSPassive, rollup.MetricNPSDetractor), "aspect"))
	if err != nil {
		return Satisfaction{}, err
	}
	var out Satisfaction
	byAspect := map[string]*AspectVotes{}
	for _, r := range rows {
		switch r.Metric {
		case rollup.MetricNPSPromoter:
			out.NPS.Promoters += r.N
			continue
		case rollup.MetricNPSPassive:
			out.NPS.Passives += r.N
			continue
		case rollup.MetricNPSDetractor:
			out.NPS.Detractors += r.N
			continue
		}
		a := byAspect[r.Group[0]]
		if a == nil {
			a = &AspectVotes{Aspect: r.Group[0]}
			byAspect[r.Group[0]] = a
		}
		switch r.Metric {
		case rollup.MetricVoteSatisfied:
			a.Satisfied += r.N
		case rollup.MetricVoteFairly:
			a.FairlySatisfied += r.N
		case rollup.MetricVoteUnsatisfied:
			a.Unsatisfied += r.N
		}
	}
	for _, a := range byAspect {
		a.Rate = t.New(figures.SatisfactionPrefix+a.Aspect, "(satisfied + fairly satisfied) / returned", a.Satisfied+a.FairlySatisfied, a.Satisfied+a.FairlySatisfied+a.Unsatisfied)
		out.Aspects = append(out.Aspects, *a)
	}
	slices.SortFunc(out.Aspects, func(a, b AspectVotes) int { return strings.Compare(a.Aspect, b.Aspect) })
	return out, nil
}

// Coverage are the visit-flow figures of a scope.
type Coverage struct {
	Coverage, VisitCompletion, ResponseRate, UnreachableRate, ContactSuccess figures.Ratio
	WonBack, Services                                                        int64
	// CustomerCoverage is per served customer; set (HasCustomerCoverage)
	// only for one calendar month or year filtered at most by org unit.
	CustomerCoverage    figures.Ratio
	HasCustomerCoverage bool
}

// Coverage returns coverage, response rate, unreachable rate, contact success, won-back customers and services.
func (c *Calc) Coverage(ctx context.Context, s Scope, t figures.Targets) (Coverage, error) {
	rs, err := c.Figures(ctx, s, t, figures.Coverage, figures.VisitCompletion, figures.ResponseRate, figures.UnreachableRate, figures.ContactSuccess)
	if err != nil {
		return Coverage{}, err
	}
	// Services and won-back customers carry no policy, channel or agent.
	ss := s
	ss.Filter = rollup.Dims{OrgUnit: s.Filter.OrgUnit, ServiceType: s.Filter.ServiceType, ProductCategory: s.Filter.ProductCategory}
	m, err := c.sum(ctx, ss.query([]string{rollup.MetricService, rollup.MetricWonBack}))
	if err != nil {
		return Coverage{}, err
	}
	cc, hasCC, err := c.CustomerCoverage(ctx, s, t)
	if err != nil {
		return Coverage{}, err
	}
	return Coverage{Coverage: rs[0], VisitCompletion: rs[1], ResponseRate: rs[2], UnreachableRate: rs[3], ContactSuccess: rs[4],
		Services: m.n(rollup.MetricService), WonBack: m.n(rollup.MetricWonBack), CustomerCoverage: cc, HasCustomerCoverage: hasCC}, nil
}

// Problems are the problem and complaint figures of a scope.
type Problems struct {
	// Counts are problems raised in visits, by category and product, most first.
	Counts                     []ProblemCount
	Products                   []figures.ProductRate
	Resolution, Improvement30d figures.Ratio
	MeanResolutionHours        float64
	Closed                     int64
	// Acknowledged counts the complaints acknowledged; MeanAcknowledgeHours
	// is their mean time from escalation to the first acknowledgement (seed 004).
	Acknowledged         int64
	MeanAcknowledgeHours float64
}

// ProblemCount is how often a problem category was raised about a product.
type ProblemCount struct {
	Category, ProductCategory string
	Count                     int64
}

// Problems returns problem counts, seed 001's product flags and complaint resolution.
func (c *Calc) Problems(ctx context.Context, s Scope, t figures.Targets) (Problems, error) {
	var out Problems
	rows, err := c.Store.Sum(ctx, s.query([]string{rollup.MetricProblem, rollup.MetricLogged}, "category", "product_category"))
	if err != nil {
		return out, err
	}
	products := map[string]*figures.Product{}
	for _, r := range rows {
		p := products[r.Group[1]]
		if p == nil {
			p = &figures.Product{Category: r.Group[1]}
			products[r.Group[1]] = p
		}
		if r.Metric == rollup.MetricProblem {
			out.Counts = append(out.Counts, ProblemCount{Category: r.Group[0], ProductCategory: r.Group[1], Count: r.N})
			p.Problems += r.N
		} else {
			p.Logged += r.N
		}
	}
	slices.SortFunc(out.Counts, func(a, b ProblemCount) int {
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

	cs := s
	cs.Filter = rollup.Dims{OrgUnit: s.Filter.OrgUnit, ProductCategory: s.Filter.ProductCategory, AgentID: s.Filter.AgentID}
	m, err := c.sum(ctx, cs.query([]string{rollup.MetricComplaint, rollup.MetricResolved, rollup.MetricImproved30d, rollup.MetricComplaintClosed, rollup.MetricAcknowledged}))
	if err != nil {
		return out, err
	}
	out.Resolution = t.New(figures.ResolutionRate, "resolved / escalated", m.n(rollup.MetricResolved), m.n(rollup.MetricComplaint))
	out.Improvement30d = t.New(figures.Improvement30d, "resolved within 30 days / escalated", m.n(rollup.MetricImproved30d), m.n(rollup.MetricComplaint))
	if r := m[rollup.MetricResolved]; r.N > 0 {
		out.MeanResolutionHours = float64(r.Total) / float64(r.N) / 3600
	}
	out.Closed = m.n(rollup.MetricComplaintClosed)
	if a := m[rollup.MetricAcknowledged]; a.N > 0 {
		out.Acknowledged = a.N
		out.MeanAcknowledgeHours = float64(a.Total) / float64(a.N) / 3600
	}
	return out, nil
}
