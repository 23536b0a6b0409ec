// Package tier computes a customer's tier from rules given in configuration.
// It does no I/O.
package tier

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"
)

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
	for i, r := range rules {
		if r.Tier == "" {
			return nil, fmt.Errorf("tier: rule %d: tier is required", i+1)
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

// Evaluate returns the tier of the first rule m meets, or "".
func Evaluate(rules []Rule, m Metrics) string {
	kind := m.Kind
	if kind == "" {
		kind = "individual"
	}
	for _, r := range rules {
		for _, c := range r.Any {
			if c.Kind != "" && c.Kind != kind {
				continue
			}
			if value(m, c.Metric) >= c.Min {
				return r.Tier
			}
		}
	}
	return ""
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
