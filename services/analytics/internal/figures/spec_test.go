package figures_test

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/huifang/huifang/services/analytics/internal/figures"
	"github.com/huifang/huifang/services/analytics/internal/rollup"
	"github.com/huifang/huifang/services/analytics/internal/satisfaction"
)

// Seed 003: item satisfaction rate = Σ(satisfied + fairly satisfied votes
// for the item) / returned × 100 %; overall the same over the overall
// votes; targets overall ≥ 85 %, any specific item ≥ 80 %.
func TestSatisfaction(t *testing.T) {
	tg := figures.NewTargets(nil)
	for _, tc := range []struct {
		name     string
		aspect   string
		votes    satisfaction.Votes
		num, den int64
		target   int64
		meets    bool
		formula  string
	}{
		{"overall: 12 A + 5 B of 20 returned = 85 %, meets exactly", "overall", satisfaction.Votes{Satisfied: 12, FairlySatisfied: 5, Unsatisfied: 3, Returned: 20}, 17, 20, 85, true,
			"(satisfied + fairly satisfied) / questionnaires returned = 17 / 20 = 85.00% (target ≥ 85%)"},
		{"overall: 16 of 20 falls short of 85 %", "overall", satisfaction.Votes{Satisfied: 10, FairlySatisfied: 6, Unsatisfied: 4, Returned: 20}, 16, 20, 85, false, ""},
		{"fairly satisfied counts as satisfied", "cleaning", satisfaction.Votes{FairlySatisfied: 8, Unsatisfied: 2, Returned: 10}, 8, 10, 80, true,
			"(satisfied + fairly satisfied) / questionnaires returned = 8 / 10 = 80.00% (target ≥ 80%)"},
		{"a specific aspect below 80 %", "staff_attitude", satisfaction.Votes{Satisfied: 1, Unsatisfied: 1, Returned: 2}, 1, 2, 80, false,
			"(satisfied + fairly satisfied) / questionnaires returned = 1 / 2 = 50.00% (target ≥ 80%)"},
		{"all unsatisfied", "parking", satisfaction.Votes{Unsatisfied: 3, Returned: 3}, 0, 3, 80, false, ""},
		{"seed 003 line 69: 回收票数 is the denominator: 4 of 10 returned left the item unrated", "cleaning", satisfaction.Votes{Satisfied: 5, FairlySatisfied: 1, Returned: 10}, 6, 10, 80, false,
			"(satisfied + fairly satisfied) / questionnaires returned = 6 / 10 = 60.00% (target ≥ 80%)"},
		{"nothing returned: 0 / 0, not met, no breach", "parking", satisfaction.Votes{}, 0, 0, 80, false,
			"(satisfied + fairly satisfied) / questionnaires returned = 0 / 0 = 0.00% (target ≥ 80%)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := figures.Satisfaction(tg, tc.aspect, tc.votes)
			require.Equal(t, "satisfaction."+tc.aspect, r.Figure)
			require.Equal(t, [2]int64{tc.num, tc.den}, [2]int64{r.Num, r.Den})
			require.Equal(t, figures.SatisfactionFormula, r.Words)
			require.True(t, r.HasTarget)
			require.Equal(t, tc.target, r.TargetPercent)
			require.Equal(t, tc.meets, r.MeetsTarget())
			require.False(t, r.Breached() && tc.den == 0)
			if tc.formula != "" {
				require.Equal(t, tc.formula, r.Formula())
			}
			// A satisfaction figure from counters is the same function's.
			sp, ok := figures.SpecOf("satisfaction." + tc.aspect)
			require.True(t, ok)
			require.Equal(t, r, sp.Ratio(tg, figures.Counts{
				rollup.MetricVoteSatisfied: tc.votes.Satisfied, rollup.MetricVoteFairly: tc.votes.FairlySatisfied,
				rollup.MetricVoteUnsatisfied: tc.votes.Unsatisfied, rollup.MetricDue: 99, rollup.MetricRecordReturned: tc.votes.Returned,
			}))
			// The second figure: over the questionnaires that rated the item, no target.
			rated := figures.SatisfactionRated(tc.aspect, tc.votes)
			require.Equal(t, [2]int64{tc.num, tc.votes.Rated()}, [2]int64{rated.Num, rated.Den})
			require.Equal(t, "satisfaction_rated."+tc.aspect, rated.Figure)
			require.False(t, rated.HasTarget)
		})
	}
}

func TestSpecs(t *testing.T) {
	c := figures.Counts{rollup.MetricDue: 5, rollup.MetricDone: 4, rollup.MetricServiceEligible: 4, rollup.MetricServiceCovered: 3,
		rollup.MetricComplaint: 2, rollup.MetricResolved: 1}
	tg := figures.NewTargets(nil)
	for figure, want := range map[string][2]int64{
		figures.Coverage:        {3, 4},
		figures.VisitCompletion: {4, 5},
		figures.ResolutionRate:  {1, 2},
		figures.Improvement:     {0, 2},
		figures.ContactSuccess:  {0, 0},
	} {
		sp, ok := figures.SpecOf(figure)
		require.True(t, ok, figure)
		r := sp.Ratio(tg, c)
		require.Equal(t, figure, r.Figure)
		require.Equal(t, want, [2]int64{r.Num, r.Den}, figure)
	}
	sp, _ := figures.SpecOf(figures.Coverage)
	require.Equal(t, []string{rollup.MetricServiceCovered, rollup.MetricServiceEligible}, sp.Metrics())
	for _, f := range []string{"customer_coverage", "satisfaction.*", "satisfaction.Bad", "happiness", ""} {
		require.False(t, figures.Trendable(f), f)
	}
	require.True(t, figures.Trendable("satisfaction.staff_attitude"))
}
