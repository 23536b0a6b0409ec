// Package report builds the periodic report the policies ask for (seed 004:
// a monthly report to the director; seed 001: trends and problem
// distribution; seed 003: figures against the quality standard) for a period
// and an org unit, and renders it as CSV or as an HTML page with inline SVG
// charts. A report reads only rollups and the complaint ledger as of the
// period's end, so the same period gives the same bytes, today or later.
package report

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/huifang/huifang/services/analytics/internal/figures"
	"github.com/huifang/huifang/services/analytics/internal/kpi"
	"github.com/huifang/huifang/services/analytics/internal/rollup"
)

// TrendFigures are the figures whose trend a report shows.
var TrendFigures = []string{figures.Coverage, figures.Timeliness, figures.Timeliness48h, figures.SatisfactionPrefix + figures.OverallAspect, figures.ResolutionRate}

// Report is everything a report shows.
type Report struct {
	Tenant, OrgUnit string
	From, To        time.Time
	Figures         []figures.Ratio
	Aspects         []kpi.AspectVotes
	NPS             kpi.NPS
	WonBack         int64
	Services        int64
	MeanResolutionH float64
	// Acknowledged complaints and their mean hours to acknowledgement (seed 004).
	Acknowledged     int64
	MeanAcknowledgeH float64
	// Periods are the earlier periods and this one, oldest first.
	Periods []Period
	// Trend holds, per figure of TrendFigures, its value in each period.
	Trend    map[string][]figures.Ratio
	Problems []kpi.ProblemCount
	Products []figures.ProductRate
	Overdue  []rollup.Complaint
	Agents   []kpi.Scorecard
	Ledger   []figures.Line
}

// Period is one period of the trend.
type Period struct{ From, To time.Time }

// Previous returns n periods before [from, to), oldest first: calendar months
// when [from, to) is one calendar month, else periods of the same length.
func Previous(from, to time.Time, n int) []Period {
	out := make([]Period, n)
	month := from.Day() == 1 && from.AddDate(0, 1, 0).Equal(to)
	for i := n - 1; i >= 0; i-- {
		if month {
			from, to = from.AddDate(0, -1, 0), from
		} else {
			d := to.Sub(from)
			from, to = from.Add(-d), from
		}
		out[i] = Period{From: from, To: to}
	}
	return out
}

// MaxOverdue bounds the overdue complaints a report lists.
const MaxOverdue = 200

// Build computes the report of [from, to) for tenant and org unit ("" for all).
func Build(ctx context.Context, c *kpi.Calc, tenant, orgUnit string, from, to time.Time, previous int) (*Report, error) {
	t, err := c.Targets(ctx, tenant)
	if err != nil {
		return nil, err
	}
	s := kpi.Scope{Tenant: tenant, From: from, To: to, Filter: rollup.Dims{OrgUnit: orgUnit}}
	r := &Report{Tenant: tenant, OrgUnit: orgUnit, From: from, To: to, Trend: map[string][]figures.Ratio{}}
	r.Figures, err = c.Figures(ctx, s, t, figures.Coverage, figures.VisitCompletion, figures.ResponseRate, figures.UnreachableRate, figures.ContactSuccess,
		figures.Timeliness, figures.Timeliness48h, figures.ResolutionRate, figures.Improvement30d)
	if err != nil {
		return nil, err
	}
	sat, err := c.Satisfaction(ctx, s, t)
	if err != nil {
		return nil, err
	}
	r.Aspects, r.NPS = sat.Aspects, sat.NPS
	cov, err := c.Coverage(ctx, s, t)
	if err != nil {
		return nil, err
	}
	r.WonBack, r.Services = cov.WonBack, cov.Services
	if cov.HasCustomerCoverage {
		// Per served customer, right after per served service.
		r.Figures = slices.Insert(r.Figures, 1, cov.CustomerCoverage)
	}
	pb, err := c.Problems(ctx, s, t)
	if err != nil {
		return nil, err
	}
	r.Problems, r.Products, r.MeanResolutionH = pb.Counts, pb.Products, pb.MeanResolutionHours
	r.Acknowledged, r.MeanAcknowledgeH = pb.Acknowledged, pb.MeanAcknowledgeHours
	if len(r.Problems) > 10 {
		r.Problems = r.Problems[:10]
	}
	r.Periods = append(Previous(from, to, previous), Period{From: from, To: to})
	for _, p := range r.Periods {
		ps := s
		ps.From, ps.To = p.From, p.To
		rs, err := c.Figures(ctx, ps, t, TrendFigures...)
		if err != nil {
			return nil, err
		}
		for i, f := range TrendFigures {
			r.Trend[f] = append(r.Trend[f], rs[i])
		}
	}
	if r.Overdue, err = c.Store.Overdue(ctx, tenant, orgUnit, to, MaxOverdue); err != nil {
		return nil, err
	}
	sc, err := c.Scorecards(ctx, s, t)
	if err != nil {
		return nil, err
	}
	r.Agents, r.Ledger = sc.Cards, sc.Ledger
	return r, nil
}

// Name is the report's file name without extension.
func (r *Report) Name() string {
	unit := r.OrgUnit
	if unit == "" {
		unit = "all"
	}
	return fmt.Sprintf("huifang-%s-%s-%s-%s", r.Tenant, unit, r.From.Format(time.DateOnly), r.To.Format(time.DateOnly))
}
