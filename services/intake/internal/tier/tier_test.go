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
	require.Equal(t, "VIP", Evaluate(rules, Metrics{Referrals: 12}), "spelled as the packs spell it")
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

// How tiers arrive (docs/policies.md): the upstream tier unless no upstream
// tier or an override rule; rules may be one tenant's; rules produce any
// tier the packs test (seed 002's A–D and VIP, seed 000's key).
func TestDecidePrecedence(t *testing.T) {
	rules, err := Parse(`[
 {"tier":"vip","tenants":["estate"],"override":true,"any":[{"metric":"referrals","min":3}]},
 {"tier":"key","any":[{"metric":"cars_year","min":2}]}]`)
	require.NoError(t, err)
	require.Equal(t, "VIP", rules[0].Tier, "known tiers are spelled as the packs spell them")
	tests := []struct {
		name, tenant, upstream string
		m                      Metrics
		want                   Decision
	}{
		{"nothing sent, no rule met: ordinary", "estate", "", Metrics{}, Decision{Tier: "", Rule: -1}},
		{"class A sent, no rule met", "estate", "A", Metrics{}, Decision{Tier: "A", Rule: -1}},
		{"nothing sent, a rule derives", "auto", "", Metrics{CarsYear: 2}, Decision{Tier: "key", Rule: 1}},
		{"class B sent beats a rule without override", "auto", "B", Metrics{CarsYear: 2}, Decision{Tier: "B", Rule: -1}},
		{"an override rule replaces class C", "estate", "C", Metrics{Referrals: 3}, Decision{Tier: "VIP", Rule: 0, Overrode: true}},
		{"an override rule that agrees overrides nothing", "estate", "VIP", Metrics{Referrals: 3}, Decision{Tier: "VIP", Rule: 0}},
		{"another tenant's rule does not apply", "auto", "C", Metrics{Referrals: 3}, Decision{Tier: "C", Rule: -1}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			require.Equal(t, tc.want, Decide(rules, tc.tenant, tc.upstream, tc.m))
		})
	}
}

func TestCanonicalAndCheck(t *testing.T) {
	for in, want := range map[string]string{"a": "A", " b ": "B", "vip": "VIP", "Vip": "VIP", "KEY": "key", "gold": "gold", "": ""} {
		require.Equal(t, want, Canonical(in), in)
	}
	for _, ok := range []string{"A", "VIP", "key", "gold-2", "tier_3"} {
		require.NoError(t, Check(ok), ok)
	}
	for _, bad := range []string{"", "A B", "-A", "类A", "a/b", "x234567890123456789012345678901234"} {
		require.Error(t, Check(bad), bad)
	}
	_, err := Parse(`[{"tier":"A B","any":[{"metric":"referrals","min":1}]}]`)
	require.Error(t, err)
}
