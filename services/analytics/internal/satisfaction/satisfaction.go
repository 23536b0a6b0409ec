// Package satisfaction holds seed 003's satisfaction figures: the vote
// counts of one aspect, the rate, and the targets the quality standard sets.
// It does no I/O.
package satisfaction

import "regexp"

// Overall is the aspect of the overall impression (seed 003: 整體印象).
const Overall = "overall"

// Targets of seed 003's quality standard, in percent: overall satisfaction
// ≥ 85 %, satisfaction on any specific aspect ≥ 80 %.
const (
	OverallTargetPercent = 85
	AspectTargetPercent  = 80
)

var aspectRE = regexp.MustCompile(`^[a-z][a-z0-9_]{0,63}$`)

// AspectRule says in words what ValidAspect checks.
const AspectRule = "must match ^[a-z][a-z0-9_]{0,63}$ (e.g. overall, staff_attitude)"

// ValidAspect reports whether s is a well-formed aspect name.
func ValidAspect(s string) bool { return aspectRE.MatchString(s) }

// Counts are the votes of seed 003's three ratings: A satisfied, B fairly
// satisfied, C unsatisfied.
type Counts struct {
	Satisfied       int64
	FairlySatisfied int64
	Unsatisfied     int64
}

// Add returns the sum of c and o.
func (c Counts) Add(o Counts) Counts {
	return Counts{
		Satisfied:       c.Satisfied + o.Satisfied,
		FairlySatisfied: c.FairlySatisfied + o.FairlySatisfied,
		Unsatisfied:     c.Unsatisfied + o.Unsatisfied,
	}
}

// Returned is the number of returned questionnaires that rated the aspect:
// every rated answer is one of the three ratings.
func (c Counts) Returned() int64 { return c.Satisfied + c.FairlySatisfied + c.Unsatisfied }

// Rate is seed 003's item satisfaction rate,
// (satisfied + fairly satisfied) / returned, from 0 to 1; 0 when nothing
// was returned.
func (c Counts) Rate() float64 {
	r := c.Returned()
	if r == 0 {
		return 0
	}
	return float64(c.Satisfied+c.FairlySatisfied) / float64(r)
}

// TargetPercent is seed 003's target for aspect, in percent.
func TargetPercent(aspect string) int64 {
	if aspect == Overall {
		return OverallTargetPercent
	}
	return AspectTargetPercent
}

// Target is TargetPercent as a fraction (0.85 or 0.80).
func Target(aspect string) float64 { return float64(TargetPercent(aspect)) / 100 }

// MeetsTarget reports whether something was returned and the rate reaches
// the aspect's target. It compares in integers, so a rate of exactly 85 %
// (17 of 20) meets the overall target without floating-point doubt.
func (c Counts) MeetsTarget(aspect string) bool {
	r := c.Returned()
	return r > 0 && (c.Satisfied+c.FairlySatisfied)*100 >= TargetPercent(aspect)*r
}

// Figures are the reported numbers of one aspect.
type Figures struct {
	Aspect string
	Counts
	Rate        float64
	Target      float64
	MeetsTarget bool
}

// Evaluate computes the figures of aspect from its votes.
func Evaluate(aspect string, c Counts) Figures {
	return Figures{
		Aspect:      aspect,
		Counts:      c,
		Rate:        c.Rate(),
		Target:      Target(aspect),
		MeetsTarget: c.MeetsTarget(aspect),
	}
}
