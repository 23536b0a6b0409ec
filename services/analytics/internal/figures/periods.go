package figures

import (
	"fmt"
	"time"

	"github.com/huifang/huifang/services/analytics/internal/rollup"
)

// Granularity is the length of a trend's periods.
type Granularity int

// Granularities.
const (
	Day Granularity = iota + 1
	Week
	Month
)

// MaxPoints bounds a trend.
const MaxPoints = 400

// Periods cuts [from, to) into days, weeks of 7 days from `from`, or
// calendar months (the first and last may be partial). It refuses more
// than MaxPoints periods.
func Periods(from, to time.Time, g Granularity) ([][2]time.Time, error) {
	var out [][2]time.Time
	for start := from; start.Before(to); {
		var next time.Time
		switch g {
		case Day:
			next = start.AddDate(0, 0, 1)
		case Week:
			next = start.AddDate(0, 0, 7)
		case Month:
			y, m, _ := start.Date()
			next = time.Date(y, m+1, 1, 0, 0, 0, 0, time.UTC)
		default:
			return nil, fmt.Errorf("figures: unknown granularity %d", g)
		}
		if next.After(to) {
			next = to
		}
		out = append(out, [2]time.Time{start, next})
		if len(out) > MaxPoints {
			return nil, fmt.Errorf("figures: more than %d periods", MaxPoints)
		}
		start = next
	}
	return out, nil
}

// CheckPeriod returns the period a target check covers as of asOf: the
// whole UTC days of asOf's month before asOf's day, or the whole previous
// month on the 1st. Today is left out: its visits may still be made.
func CheckPeriod(asOf time.Time) (from, to time.Time) {
	to = rollup.Day(asOf)
	y, m, _ := to.Date()
	from = time.Date(y, m, 1, 0, 0, 0, 0, time.UTC)
	if from.Equal(to) {
		from = from.AddDate(0, -1, 0)
	}
	return from, to
}

// CustomerCheckPeriod returns the calendar month before asOf's month: the
// latest whole month, the period customer coverage is checked over (a month
// in progress still has follow-ups planned later in it).
func CustomerCheckPeriod(asOf time.Time) (from, to time.Time) {
	to = rollup.Month(rollup.Day(asOf))
	return to.AddDate(0, -1, 0), to
}

// ImprovementCheckPeriod returns the latest whole UTC month whose
// complaints have all had seed 003's 30 days by asOf's day: the improvement
// rate of a fresher month would count complaints still inside their window.
func ImprovementCheckPeriod(asOf time.Time) (from, to time.Time) {
	day := rollup.Day(asOf)
	y, m, _ := day.Date()
	to = time.Date(y, m, 1, 0, 0, 0, 0, time.UTC)
	for to.Add(rollup.ImprovementWindow).After(day) {
		to = to.AddDate(0, -1, 0)
	}
	return to.AddDate(0, -1, 0), to
}
