// Package tier decides a customer's tier (or class): the one its upstream
// system sent, or one the rules given in configuration derive from the
// customer's figures, by the precedence of Decide. It does no I/O.
package tier

import (
	"encoding/json"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"time"
)

// Known are the tiers the policy packs test (docs/policies.md): seed 002's
// real-estate classes A to D and its VIPs, seed 000's key customers. A
// tier spelled as one of them in another case is spelled as here
// (Canonical): the scheduler compares tiers exactly, and the seed itself
// writes "a、b类".
func Known() []string { return []string{"A", "B", "C", "D", "VIP", "key"} }

var nameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_-]{0,31}$`)

// Canonical trims a tier and spells a known one as Known does; others are
// kept as they are.
func Canonical(t string) string {
	t = strings.TrimSpace(t)
	for _, k := range Known() {
		if strings.EqualFold(t, k) {
			return k
		}
	}
	return t
}

// Check says why t (canonical) is not a tier name, nil when it is: 1–32
// letters, digits, '_' or '-', starting with a letter or digit.
func Check(t string) error {
	if !nameRE.MatchString(t) {
		return fmt.Errorf("must be a tier or class: 1–32 letters, digits, '_' or '-', starting with a letter or digit (e.g. %s)", strings.Join(Known(), ", "))
	}
	return nil
}

// Metrics are the figures of one customer that rules read.
type Metrics struct {
	// Kind is "individual" or "fleet".
	Kind string
	// SpendYearMinor is the amount of the customer's services in the last 365 days, in minor units.
	SpendYearMinor int64
	// CarsYear counts the distinct vehicles bought or delivered in the last 365 days.
	CarsYear int64
	// Referrals counts the customers who name this one as referrer.
	Referrals int64
	// ClaimsYearMinor is the amount of the customer's accident claims in the last 365 days, in minor units.
	ClaimsYearMinor int64
}

// Scope is what the figures of Metrics count: services completed after
// Since (the last 365 days), and as cars the distinct vehicles of services
// of CarServiceTypes (bought or delivered).
type Scope struct {
	Since           time.Time
	CarServiceTypes []string
}

// ScopeAt is the scope of the figures at now: rules read the last year,
// so figures age out of it (and tiers are re-evaluated as they do).
func ScopeAt(now time.Time) Scope {
	return Scope{Since: now.AddDate(-1, 0, 0), CarServiceTypes: []string{"purchase", "vehicle_delivery"}}
}

// Condition is one test of a metric: metric >= Min, for customers of Kind
// (any kind when empty).
type Condition struct {
	Metric string `json:"metric"`
	Min    int64  `json:"min"`
	Kind   string `json:"kind,omitempty"`
}

// Rule gives Tier to a customer who meets any of its conditions.
type Rule struct {
	Tier string      `json:"tier"`
	Any  []Condition `json:"any"`
	// Tenants, when not empty, limits the rule to the customers of these
	// tenants.
	Tenants []string `json:"tenants,omitempty"`
	// Override: the rule's tier replaces the one the upstream system sent.
	// Without it, a tier the upstream system sent wins over the rule's.
	Override bool `json:"override,omitempty"`
}

// The metrics a condition may name.
const (
	MetricSpendYear  = "service_spend_year_minor"
	MetricCarsYear   = "cars_year"
	MetricReferrals  = "referrals"
	MetricClaimsYear = "accident_claims_year_minor"
)

// DefaultRules is the auto dealer's key-customer rule (seed 000): 2 cars in a
// year, 5 referrals, service spend over 5,000 a year (individual) or over
// 20,000 (fleet), or accident claims over 50,000 a year (individual) or over
// 500,000 (fleet). Amounts are in fen, so "over 5,000 yuan" is >= 500,001.
const DefaultRules = `[{"tier":"key","any":[
 {"metric":"cars_year","min":2},
 {"metric":"referrals","min":5},
 {"metric":"service_spend_year_minor","min":500001,"kind":"individual"},
 {"metric":"service_spend_year_minor","min":2000001,"kind":"fleet"},
 {"metric":"accident_claims_year_minor","min":5000001,"kind":"individual"},
 {"metric":"accident_claims_year_minor","min":50000001,"kind":"fleet"}]}]`

// Parse reads rules from JSON and checks them. Rules are tried in order; the
// first that matches gives the tier; none gives "" (ordinary).
func Parse(js string) ([]Rule, error) {
	var rules []Rule
	dec := json.NewDecoder(strings.NewReader(js))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&rules); err != nil {
		return nil, fmt.Errorf("tier: rules: %w", err)
	}
	metrics := []string{MetricSpendYear, MetricCarsYear, MetricReferrals, MetricClaimsYear}
	for i := range rules {
		r := &rules[i]
		r.Tier = Canonical(r.Tier)
		if r.Tier == "" {
			return nil, fmt.Errorf("tier: rule %d: tier is required", i+1)
		}
		if err := Check(r.Tier); err != nil {
			return nil, fmt.Errorf("tier: rule %d: tier %q %w", i+1, r.Tier, err)
		}
		for _, t := range r.Tenants {
			if strings.TrimSpace(t) == "" {
				return nil, fmt.Errorf("tier: rule %d (%s): tenants must not be empty names", i+1, r.Tier)
			}
		}
		if len(r.Any) == 0 {
			return nil, fmt.Errorf("tier: rule %d (%s): needs at least one condition", i+1, r.Tier)
		}
		for j, c := range r.Any {
			if !slices.Contains(metrics, c.Metric) {
				return nil, fmt.Errorf("tier: rule %d (%s) condition %d: metric %q is not one of %s", i+1, r.Tier, j+1, c.Metric, strings.Join(metrics, ", "))
			}
			if c.Kind != "" && c.Kind != "individual" && c.Kind != "fleet" {
				return nil, fmt.Errorf("tier: rule %d (%s) condition %d: kind must be individual or fleet", i+1, r.Tier, j+1)
			}
		}
	}
	return rules, nil
}

// Evaluate returns the tier of the first rule m meets, or "": the tier of
// a customer of no particular tenant with no upstream tier.
func Evaluate(rules []Rule, m Metrics) string {
	return Decide(rules, "", "", m).Tier
}

// Decision is a customer's tier and where it comes from.
type Decision struct {
	// Tier is the tier in effect ("" for an ordinary customer).
	Tier string
	// Rule is the index of the rule that decided; -1 when none applied.
	Rule int
	// Overrode: the upstream system sent another tier, and an override
	// rule replaced it.
	Overrode bool
}

// Decide returns the tier of a customer of tenant whose upstream system
// sent upstream ("" for none), with figures m. The precedence:
//   - the first rule (of those for the tenant) whose conditions m meets
//     decides: with override, its tier; without, the upstream tier when
//     there is one, else its tier;
//   - no rule met: the upstream tier ("" when none).
//
// So rules derive a tier for customers their upstream system does not
// grade, and replace an upstream grade only when they say override.
func Decide(rules []Rule, tenant, upstream string, m Metrics) Decision {
	kind := m.Kind
	if kind == "" {
		kind = "individual"
	}
	for i, r := range rules {
		if len(r.Tenants) > 0 && !slices.Contains(r.Tenants, tenant) {
			continue
		}
		for _, c := range r.Any {
			if c.Kind != "" && c.Kind != kind {
				continue
			}
			if value(m, c.Metric) >= c.Min {
				switch {
				case upstream == "":
					return Decision{Tier: r.Tier, Rule: i}
				case r.Override:
					return Decision{Tier: r.Tier, Rule: i, Overrode: r.Tier != upstream}
				default:
					return Decision{Tier: upstream, Rule: -1}
				}
			}
		}
	}
	return Decision{Tier: upstream, Rule: -1}
}

func value(m Metrics, metric string) int64 {
	switch metric {
	case MetricSpendYear:
		return m.SpendYearMinor
	case MetricCarsYear:
		return m.CarsYear
	case MetricReferrals:
		return m.Referrals
	case MetricClaimsYear:
		return m.ClaimsYearMinor
	}
	return 0
}
