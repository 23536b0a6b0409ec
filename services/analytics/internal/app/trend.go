package app

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/huifang/huifang/pkg/invalid"
	"github.com/huifang/huifang/services/analytics/internal/figures"
	"github.com/huifang/huifang/services/analytics/internal/rollup"
	"github.com/huifang/huifang/services/analytics/internal/store"
)

// Point is a figure over one period [Start, End).
type Point struct {
	Start, End time.Time
	Ratio      figures.Ratio
}

// Trend returns a ratio figure over each period of [s.From, s.To) (days,
// weeks from s.From, or calendar months), from one query grouped by day or
// month. A figure that is not a ratio of counters, or more than
// figures.MaxPoints periods, is refused with an *invalid.Error.
func (a *App) Trend(ctx context.Context, s Scope, figure string, g figures.Granularity) ([]Point, error) {
	if err := unitInScope(ctx, s.Filter.OrgUnit); err != nil {
		return nil, err
	}
	sp, ok := figures.SpecOf(figure)
	if !ok {
		return nil, invalid.New("figure", figures.TrendableRule)
	}
	periods, err := figures.Periods(s.From, s.To, g)
	if err != nil {
		return nil, invalid.New("to", fmt.Sprintf("the period may hold at most %d points of the granularity", figures.MaxPoints))
	}
	t, err := a.Targets(ctx, s.Tenant)
	if err != nil {
		return nil, err
	}
	// Months read whole months from the monthly counters; days and weeks read days.
	unit := "day"
	if g == figures.Month {
		unit = "month"
	}
	rows, err := store.Sum(ctx, a.DB, s.query(sp.Metrics(), unit, "aspect"))
	if err != nil {
		return nil, err
	}
	counts := make([]figures.Counts, len(periods))
	for i := range counts {
		counts[i] = figures.Counts{}
	}
	for _, r := range rows {
		// A satisfaction figure's questionnaires returned are counted with no aspect.
		if r.Group[1] != sp.Aspect && (r.Group[1] != "" || r.Metric != rollup.MetricRecordReturned) {
			continue
		}
		day, err := time.Parse(time.DateOnly, r.Group[0])
		if err != nil {
			return nil, fmt.Errorf("app: day %q: %w", r.Group[0], err)
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
		counts[i][r.Metric] += r.N
	}
	out := make([]Point, len(periods))
	for i, p := range periods {
		out[i] = Point{Start: p[0], End: p[1], Ratio: sp.Ratio(t, counts[i])}
	}
	return out, nil
}
