package app

import (
	"context"

	"github.com/huifang/huifang/services/analytics/internal/figures"
	"github.com/huifang/huifang/services/analytics/internal/rollup"
	"github.com/huifang/huifang/services/analytics/internal/store"
)

// Coverage are the visit-flow figures of a scope.
type Coverage struct {
	Coverage, VisitCompletion, ResponseRate, UnreachableRate, ContactSuccess figures.Ratio
	WonBack, Services                                                        int64
	// CustomerCoverage is per served customer; set (HasCustomerCoverage)
	// only for one calendar month or year filtered at most by org unit.
	CustomerCoverage    figures.Ratio
	HasCustomerCoverage bool
}

// Coverage returns coverage (per service, and per customer for one calendar
// month or year), visit completion, response rate, unreachable rate, contact
// success, won-back customers and services of a scope.
func (a *App) Coverage(ctx context.Context, s Scope) (Coverage, error) {
	if err := unitInScope(ctx, s.Filter.OrgUnit); err != nil {
		return Coverage{}, err
	}
	t, err := a.Targets(ctx, s.Tenant)
	if err != nil {
		return Coverage{}, err
	}
	return a.coverage(ctx, s, t)
}

func (a *App) coverage(ctx context.Context, s Scope, t figures.Targets) (Coverage, error) {
	rs, err := a.figures(ctx, s, t, figures.Coverage, figures.VisitCompletion, figures.ResponseRate, figures.UnreachableRate, figures.ContactSuccess)
	if err != nil {
		return Coverage{}, err
	}
	// Services and won-back customers carry no policy, channel or agent.
	ss := s
	ss.Filter = rollup.Dims{OrgUnit: s.Filter.OrgUnit, ServiceType: s.Filter.ServiceType, ProductCategory: s.Filter.ProductCategory}
	m, err := a.sum(ctx, ss.query([]string{rollup.MetricService, rollup.MetricWonBack}))
	if err != nil {
		return Coverage{}, err
	}
	cc, hasCC, err := a.customerCoverage(ctx, s, t)
	if err != nil {
		return Coverage{}, err
	}
	return Coverage{Coverage: rs[0], VisitCompletion: rs[1], ResponseRate: rs[2], UnreachableRate: rs[3], ContactSuccess: rs[4],
		Services: m[rollup.MetricService].N, WonBack: m[rollup.MetricWonBack].N, CustomerCoverage: cc, HasCustomerCoverage: hasCC}, nil
}

// CustomerCoverage returns seed 003's coverage of served customers over a
// scope that is one calendar month or year and filters at most by org
// unit, and false for any other scope: distinct customers are kept per
// month and year, by org unit, and cannot be added up across buckets.
func (a *App) CustomerCoverage(ctx context.Context, s Scope) (figures.Ratio, bool, error) {
	t, err := a.Targets(ctx, s.Tenant)
	if err != nil {
		return figures.Ratio{}, false, err
	}
	return a.customerCoverage(ctx, s, t)
}

func (a *App) customerCoverage(ctx context.Context, s Scope, t figures.Targets) (figures.Ratio, bool, error) {
	span, period, ok := rollup.Bucket(s.From, s.To)
	if !ok || s.Filter != (rollup.Dims{OrgUnit: s.Filter.OrgUnit}) {
		return figures.Ratio{}, false, nil
	}
	eligible, covered, err := store.CustomerCoverage(ctx, a.DB, s.Tenant, span, period, s.Filter.OrgUnit)
	if err != nil {
		return figures.Ratio{}, false, err
	}
	return figures.CustomerCoverageRatio(t, covered, eligible), true, nil
}
