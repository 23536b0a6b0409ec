// Package rollup decides which satisfaction counters a logged follow-up adds:
// one vote per rated answer, in the bucket of the tenant, the UTC day the
// visit was logged, its org unit and the answer's aspect. It does no I/O.
package rollup

import (
	"cmp"
	"fmt"
	"slices"
	"strings"
	"time"

	eventsv1 "github.com/huifang/huifang/proto/huifang/events/v1"
	typesv1 "github.com/huifang/huifang/proto/huifang/types/v1"

	"github.com/huifang/huifang/pkg/invalid"
	"github.com/huifang/huifang/services/analytics/internal/satisfaction"
)

// DefaultTenant is the tenant of events that name none.
const DefaultTenant = "default"

// Bucket identifies one row of the daily rollup.
type Bucket struct {
	Tenant string
	// Day is midnight UTC of the day the visit was logged.
	Day     time.Time
	OrgUnit string
	Aspect  string
}

// Increment is what one event adds to one bucket.
type Increment struct {
	Bucket
	satisfaction.Counts
}

// Day returns midnight UTC of the UTC day t falls on.
func Day(t time.Time) time.Time {
	y, m, d := t.UTC().Date()
	return time.Date(y, m, d, 0, 0, 0, 0, time.UTC)
}

// FromVisit returns the increments of a logged visit, one per aspect that got
// a rating, sorted by aspect. Answers without a rating add nothing. Aspects
// are trimmed and lower-cased. A visit without visit_id or logged_at, or with
// a rated answer whose aspect or rating is malformed, is refused whole with
// an *invalid.Error naming the field, so no part of it is counted.
func FromVisit(ev *eventsv1.VisitLogged) ([]Increment, error) {
	var bad invalid.List
	if strings.TrimSpace(ev.GetVisitId()) == "" {
		bad.Add("visit_id", "is required")
	}
	if ev.GetLoggedAt() == nil {
		bad.Add("logged_at", "is required")
	} else if err := ev.GetLoggedAt().CheckValid(); err != nil {
		bad.Add("logged_at", "must be a valid timestamp")
	}
	tenant := strings.TrimSpace(ev.GetTenantId())
	if tenant == "" {
		tenant = DefaultTenant
	}
	byAspect := map[string]satisfaction.Counts{}
	for i, a := range ev.GetAnswers() {
		if a.GetRating() == typesv1.Rating_RATING_UNSPECIFIED {
			continue
		}
		vote, ok := voteOf(a.GetRating())
		if !ok {
			bad.Add(fmt.Sprintf("answers[%d].rating", i), "must be satisfied, fairly satisfied or unsatisfied")
			continue
		}
		aspect := strings.ToLower(strings.TrimSpace(a.GetAspect()))
		if !satisfaction.ValidAspect(aspect) {
			bad.Add(fmt.Sprintf("answers[%d].aspect", i), satisfaction.AspectRule)
			continue
		}
		byAspect[aspect] = byAspect[aspect].Add(vote)
	}
	if err := bad.Err(); err != nil {
		return nil, err
	}
	day := Day(ev.GetLoggedAt().AsTime())
	out := make([]Increment, 0, len(byAspect))
	for aspect, c := range byAspect {
		out = append(out, Increment{
			Bucket: Bucket{Tenant: tenant, Day: day, OrgUnit: strings.TrimSpace(ev.GetOrgUnit()), Aspect: aspect},
			Counts: c,
		})
	}
	slices.SortFunc(out, func(a, b Increment) int { return cmp.Compare(a.Aspect, b.Aspect) })
	return out, nil
}

func voteOf(r typesv1.Rating) (satisfaction.Counts, bool) {
	switch r {
	case typesv1.Rating_RATING_SATISFIED:
		return satisfaction.Counts{Satisfied: 1}, true
	case typesv1.Rating_RATING_FAIRLY_SATISFIED:
		return satisfaction.Counts{FairlySatisfied: 1}, true
	case typesv1.Rating_RATING_UNSATISFIED:
		return satisfaction.Counts{Unsatisfied: 1}, true
	}
	return satisfaction.Counts{}, false
}
