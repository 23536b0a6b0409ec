package app

import (
	"context"
	"slices"
	"strings"

	"github.com/huifang/huifang/services/analytics/internal/figures"
	"github.com/huifang/huifang/services/analytics/internal/rollup"
	"github.com/huifang/huifang/services/analytics/internal/satisfaction"
	"github.com/huifang/huifang/services/analytics/internal/store"
)

// Scorecards returns one scorecard per agent that had a visit, a vote or a
// review in the scope (visits not yet assigned appear under the empty
// agent), and the incentive ledger (seed 000): per agent, per org unit (its
// manager) and for the tenant (the director). A message is a due visit; it
// is in time when made by the policy's deadline, or made at all when it has
// none.
func (a *App) Scorecards(ctx context.Context, s Scope) (figures.Scorecards, error) {
	if err := unitInScope(ctx, s.Filter.OrgUnit); err != nil {
		return figures.Scorecards{}, err
	}
	t, err := a.Targets(ctx, s.Tenant)
	if err != nil {
		return figures.Scorecards{}, err
	}
	return a.scorecards(ctx, s, t)
}

func (a *App) scorecards(ctx context.Context, s Scope, t figures.Targets) (figures.Scorecards, error) {
	rule, err := a.IncentiveRule(ctx, s.Tenant)
	if err != nil {
		return figures.Scorecards{}, err
	}
	votes := []string{rollup.MetricVoteSatisfied, rollup.MetricVoteFairly, rollup.MetricVoteUnsatisfied}
	metrics := append([]string{rollup.MetricDue, rollup.MetricDone, rollup.MetricWithDeadline, rollup.MetricOnTime, rollup.MetricInTime,
		rollup.MetricAttempted, rollup.MetricContacted, rollup.MetricReview, rollup.MetricRecordReturned}, votes...)
	rows, err := store.Sum(ctx, a.DB, s.query(metrics, "agent_id", "org_unit", "aspect"))
	if err != nil {
		return figures.Scorecards{}, err
	}
	agents := map[string]sums{}
	units := map[string]*figures.Tally{}
	director := figures.Tally{Who: s.Tenant}
	for _, r := range rows {
		agent, unit, aspect := r.Group[0], r.Group[1], r.Group[2]
		// An agent's satisfaction is the overall impression's.
		if slices.Contains(votes, r.Metric) && aspect != satisfaction.Overall {
			continue
		}
		m := agents[agent]
		if m == nil {
			m = sums{}
			agents[agent] = m
		}
		m.add(r)
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
	ratio := func(figure string, c figures.Counts) figures.Ratio {
		sp, _ := figures.SpecOf(figure)
		return sp.Ratio(t, c)
	}
	out := figures.Scorecards{Rule: rule}
	var tallies []figures.Tally
	for agent, m := range agents {
		c := m.counts()
		card := figures.Scorecard{
			AgentID:        agent,
			Due:            c[rollup.MetricDue],
			Done:           c[rollup.MetricDone],
			Timeliness:     ratio(figures.Timeliness, c),
			ContactSuccess: ratio(figures.ContactSuccess, c),
			Satisfaction:   figures.Satisfaction(t, satisfaction.Overall, c.Votes()),
			Reviews:        c[rollup.MetricReview],
			ReviewScore:    m.mean(rollup.MetricReview),
		}
		if agent != "" {
			tl := figures.Tally{Who: agent, Due: card.Due, OnTime: c[rollup.MetricInTime]}
			tallies = append(tallies, tl)
			card.IncentiveFen = rule.Agent(tl)
		}
		out.Cards = append(out.Cards, card)
	}
	slices.SortFunc(out.Cards, func(a, b figures.Scorecard) int { return strings.Compare(a.AgentID, b.AgentID) })
	slices.SortFunc(tallies, func(a, b figures.Tally) int { return strings.Compare(a.Who, b.Who) })
	var unitTallies []figures.Tally
	for _, u := range units {
		unitTallies = append(unitTallies, *u)
	}
	slices.SortFunc(unitTallies, func(a, b figures.Tally) int { return strings.Compare(a.Who, b.Who) })
	out.Ledger = figures.Ledger(rule, tallies, unitTallies, director)
	return out, nil
}
