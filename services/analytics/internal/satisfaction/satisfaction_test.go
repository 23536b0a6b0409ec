package satisfaction_test

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/huifang/huifang/services/analytics/internal/satisfaction"
)

// Seed 003: item satisfaction rate = Σ(satisfied + fairly satisfied) / returned × 100 %;
// overall ≥ 85 %, any specific aspect ≥ 80 %.
func TestEvaluate(t *testing.T) {
	for _, tc := range []struct {
		name     string
		aspect   string
		counts   satisfaction.Counts
		returned int64
		rate     float64
		target   float64
		meets    bool
	}{
		{"seed 003 example: 20 returned, 12 A + 5 B = 85 % meets overall", "overall", satisfaction.Counts{Satisfied: 12, FairlySatisfied: 5, Unsatisfied: 3}, 20, 0.85, 0.85, true},
		{"overall one vote short: 16 of 20 = 80 %", "overall", satisfaction.Counts{Satisfied: 11, FairlySatisfied: 5, Unsatisfied: 4}, 20, 0.80, 0.85, false},
		{"overall just under: 84 of 100", "overall", satisfaction.Counts{Satisfied: 80, FairlySatisfied: 4, Unsatisfied: 16}, 100, 0.84, 0.85, false},
		{"specific aspect at the 80 % boundary: 8 of 10", "staff_attitude", satisfaction.Counts{Satisfied: 6, FairlySatisfied: 2, Unsatisfied: 2}, 10, 0.80, 0.80, true},
		{"specific aspect just under: 79 of 100", "cleaning", satisfaction.Counts{Satisfied: 70, FairlySatisfied: 9, Unsatisfied: 21}, 100, 0.79, 0.80, false},
		{"fairly satisfied counts as satisfied", "parking", satisfaction.Counts{FairlySatisfied: 4, Unsatisfied: 1}, 5, 0.80, 0.80, true},
		{"all unsatisfied", "security", satisfaction.Counts{Unsatisfied: 3}, 3, 0, 0.80, false},
		{"nothing returned: rate 0, target not met", "overall", satisfaction.Counts{}, 0, 0, 0.85, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := satisfaction.Evaluate(tc.aspect, tc.counts)
			require.Equal(t, tc.aspect, f.Aspect)
			require.Equal(t, tc.returned, f.Returned())
			require.InDelta(t, tc.rate, f.Rate, 1e-12)
			require.Equal(t, tc.target, f.Target)
			require.Equal(t, tc.meets, f.MeetsTarget)
		})
	}
}

func TestCountsAdd(t *testing.T) {
	got := satisfaction.Counts{Satisfied: 1, FairlySatisfied: 2, Unsatisfied: 3}.Add(satisfaction.Counts{Satisfied: 10, Unsatisfied: 1})
	require.Equal(t, satisfaction.Counts{Satisfied: 11, FairlySatisfied: 2, Unsatisfied: 4}, got)
}

func TestValidAspect(t *testing.T) {
	for s, want := range map[string]bool{
		"overall":        true,
		"staff_attitude": true,
		"a":              true,
		"fire2":          true,
		"":               false,
		"Overall":        false,
		"2fire":          false,
		"_x":             false,
		"staff-attitude": false,
		"a123456789012345678901234567890123456789012345678901234567890123":  true,
		"a1234567890123456789012345678901234567890123456789012345678901234": false,
	} {
		require.Equal(t, want, satisfaction.ValidAspect(s), "%q", s)
	}
}
