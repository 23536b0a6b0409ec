package app

import (
	"context"
	"slices"
	"strings"

	"github.com/huifang/huifang/services/analytics/internal/figures"
	"github.com/huifang/huifang/services/analytics/internal/rollup"
	"github.com/huifang/huifang/services/analytics/internal/satisfaction"
)

// Satisfaction are the seed-003 satisfaction figures of a scope.
type Satisfaction struct {
	// Returned is the questionnaires returned (records that rated at least
	// one aspect): the denominator of every aspect's seed-003 rate.
	Returned int64
	// Aspect is the aspect asked for, with no votes when none was rated.
	Aspect figures.AspectVotes
	// Aspects holds every rated aspect, by name, with its votes.
	Aspects []figures.AspectVotes
	NPS     figures.NPS
}

// Satisfaction returns every aspect's votes and rate, the one of aspect
// (rated or not), and the NPS answers of a scope.
func (a *App) Satisfaction(ctx context.Context, s Scope, aspect string) (Satisfaction, error) {
	if err := unitInScope(ctx, s.Filter.OrgUnit); err != nil {
		return Satisfaction{}, err
	}
	t, err := a.Targets(ctx, s.Tenant)
	if err != nil {
		return Satisfaction{}, err
	}
	out, err := a.satisfaction(ctx, s, t)
	if err != nil {
		return out, err
	}
	none := satisfaction.Votes{Returned: out.Returned}
	out.Aspect = figures.AspectVotes{Aspect: aspect, Votes: none, Rate: figures.Satisfaction(t, aspect, none), RatedRate: figures.SatisfactionRated(aspect, none)}
	for _, v := range out.Aspects {
		if v.Aspect == aspect {
			out.Aspect = v
		}
	}
	return out, nil
}

func (a *App) satisfaction(ctx context.Context, s Scope, t figures.Targets) (Satisfaction, error) {
	metrics := []string{rollup.MetricVoteSatisfied, rollup.MetricVoteFairly, rollup.MetricVoteUnsatisfied, rollup.MetricRecordReturned,
		rollup.MetricNPSPromoter, rollup.MetricNPSPassive, rollup.MetricNPSDetractor}
	rows, err := a.sumBy(ctx, s.query(metrics, "aspect"))
	if err != nil {
		return Satisfaction{}, err
	}
	var out Satisfaction
	// The questionnaires returned, counted with no aspect: every aspect's denominator.
	out.Returned = rows[""].counts()[rollup.MetricRecordReturned]
	for aspect, m := range rows {
		out.NPS.Promoters += m[rollup.MetricNPSPromoter].N
		out.NPS.Passives += m[rollup.MetricNPSPassive].N
		out.NPS.Detractors += m[rollup.MetricNPSDetractor].N
		v := m.counts().Votes()
		if v.Rated() == 0 {
			continue
		}
		v.Returned = out.Returned
		out.Aspects = append(out.Aspects, figures.AspectVotes{Aspect: aspect, Votes: v, Rate: figures.Satisfaction(t, aspect, v), RatedRate: figures.SatisfactionRated(aspect, v)})
	}
	slices.SortFunc(out.Aspects, func(a, b figures.AspectVotes) int { return strings.Compare(a.Aspect, b.Aspect) })
	return out, nil
}
