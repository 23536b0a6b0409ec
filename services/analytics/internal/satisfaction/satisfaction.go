// Package satisfaction names what seed 003's questionnaires rate and how
// they are counted: the aspects (定向), with "overall" for the overall
// impression (整體印象), and the votes of one aspect (定性: A satisfied, B
// fairly satisfied, C unsatisfied). The rate with its target is
// figures.Satisfaction. It does no I/O.
package satisfaction

import "regexp"

// Overall is the aspect of the overall impression (seed 003: 整體印象).
const Overall = "overall"

var aspectRE = regexp.MustCompile(`^[a-z][a-z0-9_]{0,63}$`)

// AspectRule says in words what ValidAspect checks.
const AspectRule = "must match ^[a-z][a-z0-9_]{0,63}$ (e.g. overall, staff_attitude)"

// ValidAspect reports whether s is a well-formed aspect name.
func ValidAspect(s string) bool { return aspectRE.MatchString(s) }

// Votes are the votes on one aspect (seed 003's 定性 ratings: one per
// questionnaire that rated it), with the questionnaires returned in the same
// selection (回收票数: records that rated at least one aspect), whether or
// not they rated this one.
type Votes struct {
	Satisfied, FairlySatisfied, Unsatisfied int64
	Returned                                int64
}

// Rated is how many questionnaires rated the aspect.
func (v Votes) Rated() int64 { return v.Satisfied + v.FairlySatisfied + v.Unsatisfied }
