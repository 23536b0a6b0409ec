package app

import (
	"context"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/huifang/huifang/pkg/audit"

	"github.com/huifang/huifang/services/analytics/internal/figures"
	"github.com/huifang/huifang/services/analytics/internal/report"
	"github.com/huifang/huifang/services/analytics/internal/rollup"
	"github.com/huifang/huifang/services/analytics/internal/store"
)

// ReportOf names a report: a tenant's (org unit's, "" for all) period
// [From, To) and how many earlier periods its trend shows.
type ReportOf struct {
	Tenant, OrgUnit string
	From, To        time.Time
	Previous        int
	// Format is how the caller has it rendered ("csv", "html"): the audit
	// log records it.
	Format string
}

// Report computes a report (see report) and records it in the audit log
// (report.generate) in the transaction that read it: a report is not
// handed out without its entry.
func (a *App) Report(ctx context.Context, of ReportOf) (r *report.Report, err error) {
	err = pgx.BeginFunc(ctx, a.DB, func(tx pgx.Tx) error {
		in := *a
		in.DB = tx
		if r, err = in.report(ctx, of); err != nil {
			return err
		}
		d := audit.Detail{"org_unit": of.OrgUnit, "from": day(of.From), "to": day(of.To), "previous": of.Previous}
		if of.Format != "" {
			d["format"] = of.Format
		}
		return a.auditTx(ctx, tx, of.Tenant, "report.generate", audit.Target{Kind: "report", ID: r.Name()}, d)
	})
	if err != nil {
		return nil, err
	}
	return r, nil
}

// day is a report bound as the audit log shows it ("" when open).
func day(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format(time.DateOnly)
}

// report computes a report: the figures with their targets (customer
// coverage when the period is one calendar month or year), every aspect,
// NPS, the trend, the top problems, products, the complaints overdue as of
// its end, the agents and the incentive ledger, and the churned-customer
// analysis table of the churn calls due in the period (seed 000 auto). It reads nothing that
// depends on when it runs, so the same period renders to the same bytes.
func (a *App) report(ctx context.Context, of ReportOf) (*report.Report, error) {
	if err := unitInScope(ctx, of.OrgUnit); err != nil {
		return nil, err
	}
	t, err := a.Targets(ctx, of.Tenant)
	if err != nil {
		return nil, err
	}
	s := Scope{Tenant: of.Tenant, From: of.From, To: of.To, Filter: rollup.Dims{OrgUnit: of.OrgUnit}}
	r := &report.Report{Tenant: of.Tenant, OrgUnit: of.OrgUnit, From: of.From, To: of.To, Trend: map[string][]figures.Ratio{}}
	r.Figures, err = a.figures(ctx, s, t, figures.Coverage, figures.VisitCompletion, figures.ResponseRate, figures.UnreachableRate, figures.ContactSuccess,
		figures.Timeliness, figures.Timeliness48h, figures.ResolutionRate, figures.Improvement)
	if err != nil {
		return nil, err
	}
	sat, err := a.satisfaction(ctx, s, t)
	if err != nil {
		return nil, err
	}
	r.Aspects, r.NPS = sat.Aspects, sat.NPS
	cov, err := a.coverage(ctx, s, t)
	if err != nil {
		return nil, err
	}
	r.WonBack, r.Services = cov.WonBack, cov.Services
	if cov.HasCustomerCoverage {
		// Per served customer, right after per served service.
		r.Figures = slices.Insert(r.Figures, 1, cov.CustomerCoverage)
	}
	pb, err := a.problems(ctx, s, t)
	if err != nil {
		return nil, err
	}
	r.Problems, r.Products, r.MeanResolutionH = pb.Counts, pb.Products, pb.MeanResolutionHours
	r.Acknowledged, r.MeanAcknowledgeH = pb.Acknowledged, pb.MeanAcknowledgeHours
	if len(r.Problems) > report.MaxProblems {
		r.Problems = r.Problems[:report.MaxProblems]
	}
	r.Periods = append(report.Previous(of.From, of.To, of.Previous), report.Period{From: of.From, To: of.To})
	for _, p := range r.Periods {
		ps := s
		ps.From, ps.To = p.From, p.To
		rs, err := a.figures(ctx, ps, t, report.TrendFigures...)
		if err != nil {
			return nil, err
		}
		for i, f := range report.TrendFigures {
			r.Trend[f] = append(r.Trend[f], rs[i])
		}
	}
	if r.Overdue, err = store.Overdue(ctx, a.DB, of.Tenant, of.OrgUnit, of.To, report.MaxOverdue); err != nil {
		return nil, err
	}
	sc, err := a.scorecards(ctx, s, t)
	if err != nil {
		return nil, err
	}
	r.Agents, r.Ledger = sc.Cards, sc.Ledger
	if r.Churn, err = store.ChurnCases(ctx, a.DB, of.Tenant, of.OrgUnit, of.From, of.To, report.MaxChurn); err != nil {
		return nil, err
	}
	return r, nil
}
