package figures_test

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/huifang/huifang/services/analytics/internal/figures"
)

func TestRatioAndSeed003Targets(t *testing.T) {
	tg := figures.NewTargets(nil)
	for _, tc := range []struct {
		name     string
		figure   string
		num, den int64
		value    float64
		target   int64
		meets    bool
		formula  string
	}{
		// Seed 003: overall satisfaction rate = Σ(satisfied + fairly satisfied) / returned; ≥ 85 %.
		// 12 A + 5 B of 20 returned = 17 / 20 = 85 %: meets, compared in integers.
		{"seed 003 overall, exactly at 85 %", "satisfaction.overall", 17, 20, 0.85, 85, true, "(satisfied + fairly satisfied) / returned = 17 / 20 = 85.00% (target ≥ 85%)"},
		{"seed 003 overall, just below", "satisfaction.overall", 16, 20, 0.80, 85, false, ""},
		// Seed 003: any specific item ≥ 80 %: 8 / 10.
		{"seed 003 specific aspect at 80 %", "satisfaction.cleaning", 8, 10, 0.8, 80, true, ""},
		// Seed 003: coverage ≥ 90 % of served customers: 45 made of 50 due.
		{"seed 003 coverage 45 / 50", "coverage", 45, 50, 0.9, 90, true, "done / due = 45 / 50 = 90.00% (target ≥ 90%)"},
		{"seed 003 coverage 44 / 50", "coverage", 44, 50, 0.88, 90, false, ""},
		// Seed 003: improvement plans within 30 days carried out ≥ 90 %.
		{"seed 003 improvement 9 / 10", "improvement", 9, 10, 0.9, 90, true, ""},
		{"nothing due: value 0, no breach, target not met", "coverage", 0, 0, 0, 90, false, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			words := "done / due"
			if tc.figure[0] == 's' {
				words = "(satisfied + fairly satisfied) / returned"
			}
			r := tg.New(tc.figure, words, tc.num, tc.den)
			require.InDelta(t, tc.value, r.Value(), 1e-12)
			require.True(t, r.HasTarget)
			require.Equal(t, tc.target, r.TargetPercent)
			require.Equal(t, tc.meets, r.MeetsTarget())
			require.Equal(t, !tc.meets && tc.den > 0, r.Breached())
			if tc.formula != "" {
				require.Equal(t, tc.formula, r.Formula())
			}
		})
	}
	_, ok := tg.For(figures.Timeliness)
	require.False(t, ok, "seed 003 gives the 48 h limit but no share: no default target")
}

func TestTenantTargets(t *testing.T) {
	tg := figures.NewTargets(map[string]int64{"satisfaction.*": 75, "satisfaction.parking": 60, "timeliness_48h": 95})
	for figure, want := range map[string]int64{
		"satisfaction.overall":  85, // the default stays: satisfaction.* is for specific aspects
		"satisfaction.cleaning": 75,
		"satisfaction.parking":  60,
		"timeliness_48h":        95,
		"coverage":              90,
	} {
		got, ok := tg.For(figure)
		require.True(t, ok, figure)
		require.Equal(t, want, got.Percent, figure)
	}
	require.Len(t, tg.All(), 7)
}

func TestNPS(t *testing.T) {
	// 5 promoters, 3 passives, 2 detractors: (5 − 2) / 10 × 100 = 30.
	require.InDelta(t, 30.0, figures.NPS{Promoters: 5, Passives: 3, Detractors: 2}.Score(), 1e-12)
	require.InDelta(t, -100.0, figures.NPS{Detractors: 4}.Score(), 1e-12)
	require.Zero(t, figures.NPS{}.Score())
	require.Equal(t, int64(10), figures.NPS{Promoters: 5, Passives: 3, Detractors: 2}.Answered())
}

// Seed 001: a product with a high complaint rate is flagged. Washers: 6
// problems in 40 logged visits (15 %); fridges 2 in 50 (4 %); TVs 1 in 10
// (10 %). Washers' peers: 3 in 60 (5 %) → flagged. TVs' peers: 8 in 90
// (8.9 %) → 10 % is above: flagged. Fridges' peers: 7 in 50 (14 %) → not.
func TestFlagProducts(t *testing.T) {
	got := figures.FlagProducts([]figures.Product{
		{Category: "fridge", Problems: 2, Logged: 50},
		{Category: "tv", Problems: 1, Logged: 10},
		{Category: "washer", Problems: 6, Logged: 40},
	})
	flags := map[string]bool{}
	for _, p := range got {
		flags[p.Category] = p.Flagged
	}
	require.Equal(t, map[string]bool{"fridge": false, "tv": true, "washer": true}, flags)
	require.Equal(t, [2]int64{3, 60}, [2]int64{got[2].Peers.Num, got[2].Peers.Den})
	require.False(t, figures.FlagProducts([]figures.Product{{Category: "only", Problems: 5, Logged: 5}})[0].Flagged, "no peers, no flag")
}

// Seed 000 (auto dealer): 0.5 yuan per message on time for the agent, 100
// for the department manager and 200 for the director; late or missed ones
// cost the same. Agent a1: 40 due, 38 in time → 38 × 0.5 − 2 × 0.5 = 18
// yuan. Agent a2: 10 of 10 → 5 yuan. Unit north (a1) missed some → −100;
// unit south (a2) all in time → +100; the director: 48 of 50 → −200.
func TestIncentiveLedger(t *testing.T) {
	lines := figures.Ledger(figures.AutoDealerRule,
		[]figures.Tally{{Who: "a1", Due: 40, OnTime: 38}, {Who: "a2", Due: 10, OnTime: 10}},
		[]figures.Tally{{Who: "north", Due: 40, OnTime: 38}, {Who: "south", Due: 10, OnTime: 10}},
		figures.Tally{Who: "default", Due: 50, OnTime: 48})
	got := map[string]int64{}
	for _, l := range lines {
		got[l.Role+" "+l.Who] = l.AmountFen
	}
	require.Equal(t, map[string]int64{
		"agent a1": 1800, "agent a2": 500, "manager north": -10000, "manager south": 10000, "director default": -20000,
	}, got)
	require.Equal(t, "38 on time × 0.50 yuan − 2 late or missed × 0.50 yuan", lines[0].Explanation)
	require.Empty(t, figures.Ledger(figures.AutoDealerRule, nil, nil, figures.Tally{Who: "t"}), "nothing due, nothing earned")
}
