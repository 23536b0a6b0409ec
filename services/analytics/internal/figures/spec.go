package figures

import (
	"slices"
	"strings"

	"github.com/huifang/huifang/services/analytics/internal/rollup"
	"github.com/huifang/huifang/services/analytics/internal/satisfaction"
)

// SatisfactionFormula is seed 003's satisfaction rate in words: item (or
// overall) satisfaction rate = Σ(satisfied + fairly satisfied votes) /
// questionnaires returned × 100 % (单项服务满意率 = ∑该项服务满意或一般满意票 /
// 回收票数 × 100%).
const SatisfactionFormula = "(satisfied + fairly satisfied) / questionnaires returned"

// SatisfactionRatedFormula is the second figure's words.
const SatisfactionRatedFormula = "(satisfied + fairly satisfied) / questionnaires that rated the aspect"

// SatisfactionRatedPrefix + aspect names the second satisfaction figure,
// over the questionnaires that rated the aspect, e.g. satisfaction_rated.parking.
const SatisfactionRatedPrefix = "satisfaction_rated."

// Satisfaction is seed 003's satisfaction rate of one aspect ("overall" for
// the overall impression) with its target: (satisfied + fairly satisfied) /
// questionnaires returned, where a questionnaire returned is a record that
// rated at least one aspect, so one that left this aspect unrated counts in
// the denominator and in no numerator. Every seed-003 satisfaction rate
// (per aspect, overall, an agent's, a trend's point, a report's line, a
// target check) is this function's.
func Satisfaction(t Targets, aspect string, v satisfaction.Votes) Ratio {
	return t.New(SatisfactionPrefix+aspect, SatisfactionFormula, v.Satisfied+v.FairlySatisfied, v.Returned)
}

// SatisfactionRated is the second, named figure beside seed 003's: the
// share of satisfied and fairly satisfied votes among the questionnaires
// that rated the aspect, (satisfied + fairly satisfied) / (satisfied +
// fairly satisfied + unsatisfied). It reads how those who answered the
// item feel, whatever share left it blank. It has no target and is never
// checked against one.
func SatisfactionRated(aspect string, v satisfaction.Votes) Ratio {
	return Ratio{Figure: SatisfactionRatedPrefix + aspect, Words: SatisfactionRatedFormula, Num: v.Satisfied + v.FairlySatisfied, Den: v.Rated()}
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

// Votes returns the votes among the counters, with the questionnaires returned.
func (c Counts) Votes() satisfaction.Votes {
	return satisfaction.Votes{Satisfied: c[rollup.MetricVoteSatisfied], FairlySatisfied: c[rollup.MetricVoteFairly],
		Unsatisfied: c[rollup.MetricVoteUnsatisfied], Returned: c[rollup.MetricRecordReturned]}
}

// WithReturned returns the counters of one aspect with the questionnaires
// returned of the whole selection (counted with no aspect: all), as a
// satisfaction figure reads them.
func WithReturned(aspect, all Counts) Counts {
	out := Counts{}
	for k, n := range aspect {
		out[k] = n
	}
	out[rollup.MetricRecordReturned] = all[rollup.MetricRecordReturned]
	return out
}

// Spec says which counters make a ratio figure: the numerator's and the
// denominator's metrics, or an aspect's votes and the questionnaires
// returned for a satisfaction figure.
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

// Ratio is the figure over counters (of its aspect, with the questionnaires
// returned of the whole selection: WithReturned), with its target from t.
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
	case Improvement:
		return sp(rollup.MetricImproved, rollup.MetricComplaint, "plan set and every measure carried out within 30 days / escalated")
	}
	if a, ok := strings.CutPrefix(figure, SatisfactionPrefix); ok && ValidFigure(figure) && a != "*" {
		return Spec{Figure: figure, Aspect: a, num: votes[:2], den: append(slices.Clone(votes), rollup.MetricRecordReturned)}, true
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
const TrendableRule = "must be one of coverage, visit_completion, response_rate, unreachable_rate, contact_success, timeliness, timeliness_48h, late_rate, resolution_rate, improvement, satisfaction.<aspect>"
