// Package figures holds the formulas of the figures the policies demand and
// their targets: which counters make each figure (Spec), ratios with their
// numerator and denominator, seed 003's satisfaction rate and thresholds,
// NPS, seed 001's product flag, seed 000's incentive rule, agent
// scorecards, trend periods and the periods a target check covers.
// It does no I/O.
package figures

import (
	"fmt"
	"slices"
	"strings"

	"github.com/huifang/huifang/services/analytics/internal/satisfaction"
)

// Figure names.
const (
	// Coverage is per served service (seed 003); VisitCompletion per visit.
	Coverage = "coverage"
	// CustomerCoverage is per served customer (seed 003), per calendar month or year.
	CustomerCoverage = "customer_coverage"
	VisitCompletion  = "visit_completion"
	ResponseRate     = "response_rate"
	UnreachableRate  = "unreachable_rate"
	ContactSuccess   = "contact_success"
	Timeliness       = "timeliness"
	Timeliness48h    = "timeliness_48h"
	// LateRate is the share of visits with a deadline that the scheduler
	// fired after it (issue 16: a late visit is reported late).
	LateRate       = "late_rate"
	ResolutionRate = "resolution_rate"
	Improvement    = "improvement"
	// SatisfactionPrefix + aspect names a satisfaction figure, e.g. satisfaction.overall.
	SatisfactionPrefix = "satisfaction."
	// SatisfactionAny is the target key of every specific aspect.
	SatisfactionAny = "satisfaction.*"
)

// Ratio is one figure: Num / Den, with the target in force.
type Ratio struct {
	Figure string
	Num    int64
	Den    int64
	// Words describes numerator and denominator, e.g. "done / due".
	Words         string
	HasTarget     bool
	TargetPercent int64
}

// Value is Num / Den from 0 to 1; 0 when Den is 0.
func (r Ratio) Value() float64 {
	if r.Den == 0 {
		return 0
	}
	return float64(r.Num) / float64(r.Den)
}

// Target is the target as a fraction.
func (r Ratio) Target() float64 { return float64(r.TargetPercent) / 100 }

// MeetsTarget reports whether the ratio has a target, a denominator, and
// reaches the target, compared in integers (17 of 20 meets 85 % exactly).
func (r Ratio) MeetsTarget() bool {
	return r.HasTarget && r.Den > 0 && r.Num*100 >= r.TargetPercent*r.Den
}

// Breached reports whether the ratio has a target, a denominator, and falls short of it.
func (r Ratio) Breached() bool { return r.HasTarget && r.Den > 0 && !r.MeetsTarget() }

// Formula says how the value came about, e.g. "done / due = 17 / 20 = 85.00%".
func (r Ratio) Formula() string {
	s := fmt.Sprintf("%s = %d / %d = %.2f%%", r.Words, r.Num, r.Den, r.Value()*100)
	if r.HasTarget {
		s += fmt.Sprintf(" (target ≥ %d%%)", r.TargetPercent)
	}
	return s
}

// Target is a target in percent and where it comes from.
type Target struct {
	Figure  string
	Percent int64
	// Source is "seed 003" for a default, "tenant" for one the tenant set.
	Source string
}

// Defaults are seed 003's quality standard: coverage ≥ 90 % of served
// customers; overall satisfaction ≥ 85 %; satisfaction on any specific
// problem ≥ 80 %; improvement plans within 30 days carried out ≥ 90 %.
// Seed 003 sets the 48-hour limit itself but no share for it, so timeliness
// has no default target; a tenant may set one.
var defaults = []Target{
	{Figure: Coverage, Percent: 90, Source: "seed 003"},
	{Figure: CustomerCoverage, Percent: 90, Source: "seed 003"},
	{Figure: SatisfactionPrefix + satisfaction.Overall, Percent: 85, Source: "seed 003"},
	{Figure: SatisfactionAny, Percent: 80, Source: "seed 003"},
	{Figure: Improvement, Percent: 90, Source: "seed 003"},
}

// Defaults returns seed 003's targets.
func Defaults() []Target { return slices.Clone(defaults) }

// Targets are the targets in force for a tenant: its own over the defaults.
type Targets struct {
	own map[string]int64
}

// NewTargets returns the targets with the tenant's own (figure → percent).
func NewTargets(own map[string]int64) Targets { return Targets{own: own} }

// For returns the target of figure: the tenant's own, else the default; a
// specific aspect falls back to satisfaction.*.
func (t Targets) For(figure string) (Target, bool) {
	keys := []string{figure}
	if strings.HasPrefix(figure, SatisfactionPrefix) && figure != SatisfactionPrefix+satisfaction.Overall {
		keys = append(keys, SatisfactionAny)
	}
	for _, k := range keys {
		if p, ok := t.own[k]; ok {
			return Target{Figure: figure, Percent: p, Source: "tenant"}, true
		}
		for _, d := range defaults {
			if d.Figure == k {
				return Target{Figure: figure, Percent: d.Percent, Source: d.Source}, true
			}
		}
	}
	return Target{}, false
}

// All returns every target in force, defaults and own, by figure.
func (t Targets) All() []Target {
	seen := map[string]bool{}
	var out []Target
	for k, p := range t.own {
		out = append(out, Target{Figure: k, Percent: p, Source: "tenant"})
		seen[k] = true
	}
	for _, d := range defaults {
		if !seen[d.Figure] {
			out = append(out, d)
		}
	}
	slices.SortFunc(out, func(a, b Target) int { return strings.Compare(a.Figure, b.Figure) })
	return out
}

// ValidFigure reports whether a target may be set for figure.
func ValidFigure(f string) bool {
	switch f {
	case Coverage, CustomerCoverage, VisitCompletion, ResponseRate, ContactSuccess, Timeliness, Timeliness48h, ResolutionRate, Improvement, SatisfactionAny:
		return true
	}
	a, ok := strings.CutPrefix(f, SatisfactionPrefix)
	return ok && satisfaction.ValidAspect(a)
}

// New returns the ratio figure = num / den with its target from t.
func (t Targets) New(figure, words string, num, den int64) Ratio {
	r := Ratio{Figure: figure, Words: words, Num: num, Den: den}
	if tg, ok := t.For(figure); ok {
		r.HasTarget, r.TargetPercent = true, tg.Percent
	}
	return r
}

// NPS counts net-promoter answers: promoters (9–10), passives (7–8) and
// detractors (0–6).
type NPS struct {
	Promoters, Passives, Detractors int64
}

// Answered is how many gave an NPS answer.
func (n NPS) Answered() int64 { return n.Promoters + n.Passives + n.Detractors }

// Score is the net promoter score of the answers: (promoters − detractors) /
// answered × 100, from −100 to 100; 0 when none answered.
func (n NPS) Score() float64 {
	if n.Answered() == 0 {
		return 0
	}
	return float64(n.Promoters-n.Detractors) * 100 / float64(n.Answered())
}

// Product is a product category's problems and logged visits.
type Product struct {
	Category string
	Problems int64
	Logged   int64
}

// ProductRate is a product's complaint rate against its peers'.
type ProductRate struct {
	Category string
	// Rate is problems / logged visits of the product.
	Rate Ratio
	// Peers is the same over every other product together.
	Peers   Ratio
	Flagged bool
}

// FlagProducts computes seed 001's flag: a product whose complaint rate
// (problems raised / visits logged about it) is above the rate of all other
// products together is flagged. Compared in integers:
// p.Problems × peers.Logged > peers.Problems × p.Logged. A product with no
// logged visit, or the only product, is never flagged.
func FlagProducts(ps []Product) []ProductRate {
	var allP, allL int64
	for _, p := range ps {
		allP += p.Problems
		allL += p.Logged
	}
	out := make([]ProductRate, 0, len(ps))
	for _, p := range ps {
		peerP, peerL := allP-p.Problems, allL-p.Logged
		r := ProductRate{
			Category: p.Category,
			Rate:     Ratio{Figure: "complaint_rate", Words: "problems / visits logged", Num: p.Problems, Den: p.Logged},
			Peers:    Ratio{Figure: "peers_complaint_rate", Words: "problems / visits logged of the other products", Num: peerP, Den: peerL},
		}
		r.Flagged = p.Logged > 0 && peerL > 0 && p.Problems*peerL > peerP*p.Logged
		out = append(out, r)
	}
	return out
}
