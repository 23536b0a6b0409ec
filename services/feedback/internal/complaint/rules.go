package complaint

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// Rule says who owns a category of problem, how serious it is by default
// and how long the owner has at each level.
type Rule struct {
	Department string
	Severity   string
	Deadline   time.Duration
}

// Rules route problems by category; Default takes the categories no rule names.
type Rules struct {
	ByCategory map[string]Rule
	Default    Rule
}

// DefaultRulesSpec is the routing that ships with Huifang:
//   - product quality → R&D and production (seed 001), with the 30 days of
//     seed 003's improvement plan;
//   - service quality → after-sales (seed 001, seed 002 cement), 7 days;
//   - an unsatisfied rating without a named problem → the service manager,
//     who analyses the cause (seed 000, auto dealer), 48 hours;
//   - a delivery mismatch → the general manager at once (seed 000, cement
//     logistics), urgent, 24 hours;
//   - anything else → the service manager within the 48 hours of seed 003.
const DefaultRulesSpec = "product_quality=rnd_production:general:30d,service_quality=after_sales:general:7d," +
	"unsatisfied=service_manager:general:48h,delivery_mismatch=general_manager:urgent:24h,*=service_manager:general:48h"

var categoryRE = regexp.MustCompile(`^(\*|[a-z][a-z0-9_]{0,63})$`)

// ParseRules reads rules written as comma-separated
// category=department[:severity[:deadline]] entries; "*" is the default
// category. A missing severity is general, a missing deadline is
// defaultDeadline. Deadlines are Go durations or whole days ("7d").
func ParseRules(spec string, defaultDeadline time.Duration) (Rules, error) {
	r := Rules{ByCategory: map[string]Rule{}, Default: Rule{Department: DepartmentServiceManager, Severity: SeverityGeneral, Deadline: defaultDeadline}}
	for _, entry := range strings.Split(spec, ",") {
		entry = strings.TrimSpace(entry)
		if entry == "" {
			continue
		}
		cat, rest, ok := strings.Cut(entry, "=")
		cat = strings.TrimSpace(cat)
		if !ok || !categoryRE.MatchString(cat) {
			return Rules{}, fmt.Errorf("complaint rule %q: want category=department[:severity[:deadline]]", entry)
		}
		parts := strings.Split(rest, ":")
		rule := Rule{Department: strings.TrimSpace(parts[0]), Severity: SeverityGeneral, Deadline: defaultDeadline}
		if rule.Department == "" {
			return Rules{}, fmt.Errorf("complaint rule %q: the department is required", entry)
		}
		if len(parts) > 1 && strings.TrimSpace(parts[1]) != "" {
			rule.Severity = strings.TrimSpace(parts[1])
			if levelOf(rule.Severity) < 0 {
				return Rules{}, fmt.Errorf("complaint rule %q: severity must be general, urgent or major", entry)
			}
		}
		if len(parts) > 2 && strings.TrimSpace(parts[2]) != "" {
			d, err := ParseDuration(strings.TrimSpace(parts[2]))
			if err != nil || d <= 0 {
				return Rules{}, fmt.Errorf("complaint rule %q: deadline must be a positive duration such as 48h or 7d", entry)
			}
			rule.Deadline = d
		}
		if len(parts) > 3 {
			return Rules{}, fmt.Errorf("complaint rule %q: too many fields", entry)
		}
		if cat == "*" {
			r.Default = rule
		} else {
			r.ByCategory[cat] = rule
		}
	}
	return r, nil
}

// MustRules is ParseRules for specs known to be good.
func MustRules(spec string, defaultDeadline time.Duration) Rules {
	r, err := ParseRules(spec, defaultDeadline)
	if err != nil {
		panic(err)
	}
	return r
}

// For returns the rule of category.
func (r Rules) For(category string) Rule {
	if rule, ok := r.ByCategory[category]; ok {
		return rule
	}
	return r.Default
}

// ParseDuration reads a Go duration or a whole number of days ("30d").
func ParseDuration(s string) (time.Duration, error) {
	if n, ok := strings.CutSuffix(s, "d"); ok {
		days, err := strconv.Atoi(n)
		if err != nil {
			return 0, fmt.Errorf("bad number of days %q", s)
		}
		return time.Duration(days) * 24 * time.Hour, nil
	}
	return time.ParseDuration(s)
}
