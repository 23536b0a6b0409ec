package figures

import (
	"slices"
	"strings"

	"github.com/huifang/huifang/services/analytics/internal/rollup"
	"github.com/huifang/huifang/services/analytics/internal/satisfaction"
)

// SatisfactionFormula is seed 003's satisfaction rate in words: item (or
// overall) satisfaction rate = Σ(satisfied + fairly satisfied votes) /
// returned × 100 %.
const SatisfactionFormula = "(satisfied + fairly satisfied) / returned"

// Satisfaction is seed 003's satisfaction rate of one aspect ("overall" for
// the overall impression) from its votes, with its target: (satisfied +
// fairly satisfied) / returned, where every rated answer on the aspect is
// one returned vote. Every satisfaction rate (per aspect, overall, an
// agent's, a trend's point, a report's line) is this function's.
func Satisfaction(t Targets, aspect string, v satisfaction.Votes) Ratio {
	favourable := v.Satisfied + v.FairlySatisfied
	return t.New(SatisfactionPrefix+aspect, SatisfactionFormula, favourable, favourable+v.Unsatisfied)
}

// CustomerCoverageRatio is seed 003's coverage of served customers: the
// customers with a follow-up made over those with an eligible one.
func CustomerCoverageRatio(t Targets, covered, eligible int64) Ratio {
	return t.New(CustomerCoverage, "customers followed up / customers with an eligible follow-up", covered, eligible)
}

// Counts are summed counters, by metric.
type Counts map[string]int64

// Sum adds up the counters of metrics.
func (c Counts) Sum(metrics ...string) int64 {
	var n int64
	for _, m := range metrics {
		n += c[m]
	}
	return n
}

// votes are the counters of one aspect's votes.
var votes = []string{rollup.MetricVoteSatisfied, rollup.MetricVoteFairly, rollup.MetricVoteUnsatisfied}

// Votes returns the votes among the counters.
func (c Counts) Votes() satisfaction.Votes {
	return satisfaction.Votes{Satisfied: c[rollup.MetricVoteSatisfied], FairlySatisfied: c[rollup.MetricVoteFairly], Unsatisfied: c[rollup.MetricVoteUnsatisfied]}
}

// Spec says which counters make a ratio figure: the numerator's and the
// denominator's metrics, or an aspect's votes for a satisfaction figure.
type Spec struct {
	Figure string
	// Aspect is the aspect whose votes a satisfaction figure counts; "" for
	// every other figure (their counters carry no aspect).
	Aspect   string
	num, den []string
	words    string
}

// Metrics are the counters the figure reads, sorted.
func (sp Spec) Metrics() []string {
	m := append(slices.Clone(sp.num), sp.den...)
	slices.Sort(m)
	return slices.Compact(m)
}

// Ratio is the figure over counters (of its aspect), with its target from t.
func (sp Spec) Ratio(t Targets, c Counts) Ratio {
	if strings.HasPrefix(sp.Figure, SatisfactionPrefix) {
		return Satisfaction(t, sp.Aspect, c.Votes())
	}
	return t.New(sp.Figure, sp.words, c.Sum(sp.num...), c.Sum(sp.den...))
}

// SpecOf returns the counters of a figure, and false for a figure that is
// not a ratio of counters (customer coverage is kept per bucket, not summed).
func SpecOf(figure string) (Spec, bool) {
	sp := func(num, den, words string) (Spec, bool) {
		return Spec{Figure: figure, num: []string{num}, den: []string{den}, words: words}, true
	}
	switch figure {
	case Coverage:
		return sp(rollup.MetricServiceCovered, rollup.MetricServiceEligible, "services followed up / eligible services")
	case VisitCompletion:
		return sp(rollup.MetricDone, rollup.MetricDue, "visits made / visits due")
	case ResponseRate:
		return sp(rollup.MetricReturned, rollup.MetricDue, "returned / sent")
	case UnreachableRate:
		return sp(rollup.MetricUnreachable, rollup.MetricDue, "unreachable / due")
	case ContactSuccess:
		return sp(rollup.MetricContacted, rollup.MetricAttempted, "contacted / attempted")
	case Timeliness:
		return sp(rollup.MetricOnTime, rollup.MetricWithDeadline, "made by the policy deadline / due with a deadline")
	case LateRate:
		return sp(rollup.MetricLate, rollup.MetricWithDeadline, "fired after the policy deadline / due with a deadline")
	case Timeliness48h:
		return sp(rollup.MetricWithin48h, rollup.MetricWithBase, "made within 48 h of the service / due with a known service time")
	case ResolutionRate:
		return sp(rollup.MetricResolved, rollup.MetricComplaint, "resolved / escalated")
	case Improvement30d:
		return sp(rollup.MetricImproved30d, rollup.MetricComplaint, "resolved within 30 days / escalated")
	}
	if a, ok := strings.CutPrefix(figure, SatisfactionPrefix); ok && ValidFigure(figure) && a != "*" {
		return Spec{Figure: figure, Aspect: a, num: votes[:2], den: votes}, true
	}
	return Spec{}, false
}

// Trendable reports whether figure is a ratio of counters, which can be
// computed over any period and trended.
func Trendable(figure string) bool {
	_, ok := SpecOf(figure)
	return ok
}

// TrendableRule says in words which figures Trendable accepts.
const TrendableRule = "must be one of coverage, visit_completion, response_rate, unreachable_rate, contact_success, timeliness, timeliness_48h, late_rate, resolution_rate, improvement_30d, satisfaction.<aspect>"
