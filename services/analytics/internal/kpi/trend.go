package kpi

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/huifang/huifang/services/analytics/internal/figures"
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

// Point is a figure over one period [Start, End).
type Point struct {
	Start, End time.Time
	Ratio      figures.Ratio
}

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
			return nil, fmt.Errorf("kpi: unknown granularity %d", g)
		}
		if next.After(to) {
			next = to
		}
		out = append(out, [2]time.Time{start, next})
		if len(out) > MaxPoints {
			return nil, fmt.Errorf("kpi: more than %d periods", MaxPoints)
		}
		start = next
	}
	return out, nil
}

// Trend returns figure over each period of [s.From, s.To), from one query
// grouped by day.
func (c *Calc) Trend(ctx context.Context, s Scope, t figures.Targets, figure string, g Granularity) ([]Point, error) {
	sp, ok := specOf(figure)
	if !ok {
		return nil, fmt.Errorf("kpi: unknown figure %q", figure)
	}
	periods, err := Periods(s.From, s.To, g)
	if err != nil {
		return nil, err
	}
	// Months read whole months from the monthly counters; days and weeks read days.
	unit := "day"
	if g == Month {
		unit = "month"
	}
	rows, err := c.Store.Sum(ctx, s.query(sp.metrics(), unit, "aspect"))
	if err != nil {
		return nil, err
	}
	out := make([]Point, len(periods))
	nums, dens := make([]int64, len(periods)), make([]int64, len(periods))
	for _, r := range rows {
		if r.Group[1] != sp.aspect {
			continue
		}
		day, err := time.Parse(time.DateOnly, r.Group[0])
		if err != nil {
			return nil, fmt.Errorf("kpi: day %q: %w", r.Group[0], err)
		}
		if day.Before(s.From) {
			day = s.From // the month of a period that starts mid-month
		}
		i, _ := slices.BinarySearchFunc(periods, day, func(p [2]time.Time, d time.Time) int {
			switch {
			case !p[1].After(d):
				return -1
			case p[0].After(d):
				return 1
			}
			return 0
		})
		if i >= len(periods) {
			continue
		}
		if slices.Contains(sp.num, r.Metric) {
			nums[i] += r.N
		}
		dens[i] += r.N * boolInt(slices.Contains(sp.den, r.Metric))
	}
	for i, p := range periods {
		out[i] = Point{Start: p[0], End: p[1], Ratio: t.New(figure, sp.words, nums[i], dens[i])}
	}
	return out, nil
}

func boolInt(b bool) int64 {
	if b {
		return 1
	}
	return 0
}
