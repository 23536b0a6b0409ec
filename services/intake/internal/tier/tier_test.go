package tier

import (
	"time"

	"testing"

	"github.com/stretchr/testify/require"
)

// seed 000 (auto dealer): key customers buy 2 cars a year, refer 5 customers,
// spend over 5,000 a year on service (individual) or over 20,000 (fleet), or
// have accident claims over 50,000 a year (individual) or over 500,000 (fleet).
func TestDefaultRulesKeyCustomer(t *testing.T) {
	rules, err := Parse(DefaultRules)
	require.NoError(t, err)
	tests := []struct {
		name string
		m    Metrics
		want string
	}{
		{"nothing", Metrics{}, ""},
		{"one car", Metrics{CarsYear: 1}, ""},
		{"two cars", Metrics{CarsYear: 2}, "key"},
		{"four referrals", Metrics{Referrals: 4}, ""},
		{"five referrals", Metrics{Referrals: 5}, "key"},
		{"individual spends exactly 5,000", Metrics{Kind: "individual", SpendYearMinor: 500000}, ""},
		{"individual spends 5,000.01", Metrics{Kind: "individual", SpendYearMinor: 500001}, "key"},
		{"kind defaults to individual", Metrics{SpendYearMinor: 600000}, "key"},
		{"fleet spends 6,000", Metrics{Kind: "fleet", SpendYearMinor: 600000}, ""},
		{"fleet spends 20,000.01", Metrics{Kind: "fleet", SpendYearMinor: 2000001}, "key"},
		{"individual claims exactly 50,000", Metrics{Kind: "individual", ClaimsYearMinor: 5000000}, ""},
		{"individual claims 50,000.01", Metrics{Kind: "individual", ClaimsYearMinor: 5000001}, "key"},
		{"fleet claims 60,000", Metrics{Kind: "fleet", ClaimsYearMinor: 6000000}, ""},
		{"fleet claims exactly 500,000", Metrics{Kind: "fleet", ClaimsYearMinor: 50000000}, ""},
		{"fleet claims 500,000.01", Metrics{Kind: "fleet", ClaimsYearMinor: 50000001}, "key"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			require.Equal(t, tc.want, Evaluate(rules, tc.m))
		})
	}
}

func TestRulesInOrder(t *testing.T) {
	rules, err := Parse(`[{"tier":"vip","any":[{"metric":"referrals","min":10}]},{"tier":"key","any":[{"metric":"referrals","min":5}]}]`)
	require.NoError(t, err)
	require.Equal(t, "vip", Evaluate(rules, Metrics{Referrals: 12}))
	require.Equal(t, "key", Evaluate(rules, Metrics{Referrals: 6}))
}

func TestBadRules(t *testing.T) {
	for _, js := range []string{
		`{`,
		`[{"tier":"","any":[{"metric":"referrals","min":1}]}]`,
		`[{"tier":"key","any":[]}]`,
		`[{"tier":"key","any":[{"metric":"height","min":1}]}]`,
		`[{"tier":"key","any":[{"metric":"referrals","min":1,"kind":"alien"}]}]`,
		`[{"tier":"key","any":[{"metric":"referrals","min":1}],"extra":1}]`,
	} {
		_, err := Parse(js)
		require.Error(t, err, js)
	}
}

// Figures count the last year, and cars from purchases and deliveries only.
func TestScopeAt(t *testing.T) {
	now := time.Date(2026, 11, 28, 12, 0, 0, 0, time.UTC)
	s := ScopeAt(now)
	require.Equal(t, time.Date(2025, 11, 28, 12, 0, 0, 0, time.UTC), s.Since)
	require.ElementsMatch(t, []string{"purchase", "vehicle_delivery"}, s.CarServiceTypes)
}
