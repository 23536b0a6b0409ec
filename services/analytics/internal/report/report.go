// Package report is the periodic report the policies ask for (seed 004: a
// monthly report to the director; seed 001: trends and problem
// distribution; seed 003: figures against the quality standard) for a period
// and an org unit: what it shows, which earlier periods its trend covers,
// and its rendering as CSV or as an HTML page with inline SVG charts. The
// report query (app.Report) fills it from rollups and the complaint ledger
// as of the period's end only, so the same period gives the same bytes,
// today or later. It does no I/O.
package report

import (
	"fmt"
	"time"

	"github.com/huifang/huifang/services/analytics/internal/figures"
	"github.com/huifang/huifang/services/analytics/internal/rollup"
	"github.com/huifang/huifang/services/analytics/internal/satisfaction"
)

// TrendFigures are the figures whose trend a report shows.
var TrendFigures = []string{figures.Coverage, figures.Timeliness, figures.Timeliness48h, figures.SatisfactionPrefix + satisfaction.Overall, figures.ResolutionRate}

// Report is everything a report shows.
type Report struct {
	Tenant, OrgUnit string
	From, To        time.Time
	Figures         []figures.Ratio
	Aspects         []figures.AspectVotes
	NPS             figures.NPS
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
	Problems []figures.ProblemCount
	Products []figures.ProductRate
	Overdue  []rollup.Complaint
	Agents   []figures.Scorecard
	Ledger   []figures.Line
	// Churn is seed 000's churned-customer analysis table (auto dealer):
	// the churn calls due in the period, longest absent first, with the
	// reason and remedy their records give. Names and plates are masked.
	Churn []rollup.ChurnCase
}

// MaxChurn bounds the churn cases a report lists.
const MaxChurn = 1000

// MaxOverdue bounds the overdue complaints a report lists.
const MaxOverdue = 200

// MaxProblems bounds the problems a report lists (the most frequent).
const MaxProblems = 10

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

// Name is the report's file name without extension.
func (r *Report) Name() string {
	unit := r.OrgUnit
	if unit == "" {
		unit = "all"
	}
	return fmt.Sprintf("huifang-%s-%s-%s-%s", r.Tenant, unit, r.From.Format(time.DateOnly), r.To.Format(time.DateOnly))
}
