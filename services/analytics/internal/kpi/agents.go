package kpi

import (
	"context"
	"slices"
	"strings"

	"github.com/huifang/huifang/services/analytics/internal/figures"
	"github.com/huifang/huifang/services/analytics/internal/rollup"
)

// Scorecard is one agent's figures in a scope (seed 004: agent scorecards).
type Scorecard struct {
	AgentID        string
	Due, Done      int64
	Timeliness     figures.Ratio
	ContactSuccess figures.Ratio
	// Satisfaction is the overall satisfaction of the visits the agent logged.
	Satisfaction figures.Ratio
	Reviews      int64
	// ReviewScore is the mean QA score, 0–100.
	ReviewScore  float64
	IncentiveFen int64
}

// Scorecards are the scorecards and incentive ledger of a scope.
type Scorecards struct {
	Cards  []Scorecard
	Ledger []figures.Line
	Rule   figures.IncentiveRule
}

// Scorecards returns one scorecard per agent that had a visit, a vote or a
// review in the scope (visits not yet assigned appear under the empty
// agent), and the incentive ledger: per agent, per org unit (its manager)
// and for the tenant (the director). A message is a due visit; it is in time
// when made by the policy's deadline, or made at all when it has none.
func (c *Calc) Scorecards(ctx context.Context, s Scope, t figures.Targets) (Scorecards, error) {
	rule, err := c.Store.IncentiveRule(ctx, s.Tenant)
	if err != nil {
		return Scorecards{}, err
	}
	metrics := []string{rollup.MetricDue, rollup.MetricDone, rollup.MetricWithDeadline, rollup.MetricOnTime, rollup.MetricInTime,
		rollup.MetricAttempted, rollup.MetricContacted, rollup.MetricReview}
	metrics = append(metrics, votes...)
	rows, err := c.Store.Sum(ctx, s.query(metrics, "agent_id", "org_unit", "aspect"))
	if err != nil {
		return Scorecards{}, err
	}
	agents := map[string]counts{}
	units := map[string]*figures.Tally{}
	director := figures.Tally{Who: s.Tenant}
	for _, r := range rows {
		agent, unit, aspect := r.Group[0], r.Group[1], r.Group[2]
		if slices.Contains(votes, r.Metric) && aspect != figures.OverallAspect {
			continue
		}
		m := agents[agent]
		if m == nil {
			m = counts{}
			agents[agent] = m
		}
		x := m[r.Metric]
		x.N += r.N
		x.Total += r.Total
		m[r.Metric] = x
		if unit != "" && units[unit] == nil {
			units[unit] = &figures.Tally{Who: unit}
		}
		for _, tl := range []*figures.Tally{units[unit], &director} {
			if tl == nil {
				continue
			}
			switch r.Metric {
			case rollup.MetricDue:
				tl.Due += r.N
			case rollup.MetricInTime:
				tl.OnTime += r.N
			}
		}
	}
	out := Scorecards{Rule: rule}
	var tallies []figures.Tally
	for agent, m := range agents {
		card := Scorecard{
			AgentID:        agent,
			Due:            m.n(rollup.MetricDue),
			Done:           m.n(rollup.MetricDone),
			Timeliness:     t.New(figures.Timeliness, "made by the policy deadline / due with a deadline", m.n(rollup.MetricOnTime), m.n(rollup.MetricWithDeadline)),
			ContactSuccess: t.New(figures.ContactSuccess, "contacted / attempted", m.n(rollup.MetricContacted), m.n(rollup.MetricAttempted)),
			Satisfaction:   t.New(figures.SatisfactionPrefix+figures.OverallAspect, "(satisfied + fairly satisfied) / returned", m.n(votes[:2]...), m.n(votes...)),
			Reviews:        m.n(rollup.MetricReview),
		}
		if r := m[rollup.MetricReview]; r.N > 0 {
			card.ReviewScore = float64(r.Total) / float64(r.N)
		}
		if agent != "" {
			tl := figures.Tally{Who: agent, Due: card.Due, OnTime: m.n(rollup.MetricInTime)}
			tallies = append(tallies, tl)
			card.IncentiveFen = tl.OnTime*rule.AgentRewardFen - tl.Missed()*rule.AgentPenaltyFen
		}
		out.Cards = append(out.Cards, card)
	}
	slices.SortFunc(out.Cards, func(a, b Scorecard) int { return strings.Compare(a.AgentID, b.AgentID) })
	slices.SortFunc(tallies, func(a, b figures.Tally) int { return strings.Compare(a.Who, b.Who) })
	var unitTallies []figures.Tally
	for _, u := range units {
		unitTallies = append(unitTallies, *u)
	}
	slices.SortFunc(unitTallies, func(a, b figures.Tally) int { return strings.Compare(a.Who, b.Who) })
	out.Ledger = figures.Ledger(rule, tallies, unitTallies, director)
	return out, nil
}
