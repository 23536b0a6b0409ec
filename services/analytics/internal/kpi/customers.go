package kpi

import (
	"context"
	"time"

	"github.com/huifang/huifang/services/analytics/internal/figures"
	"github.com/huifang/huifang/services/analytics/internal/rollup"
)

// Bucket returns the customer-coverage bucket [from, to) is exactly: one
// calendar month or one calendar year (UTC), and false for any other period.
func Bucket(from, to time.Time) (span string, period time.Time, ok bool) {
	if from.IsZero() || to.IsZero() {
		return "", time.Time{}, false
	}
	from, to = from.UTC(), to.UTC()
	switch {
	case from.Equal(rollup.Month(from)) && to.Equal(from.AddDate(0, 1, 0)):
		return rollup.SpanMonth, from, true
	case from.Equal(rollup.Year(from)) && to.Equal(from.AddDate(1, 0, 0)):
		return rollup.SpanYear, from, true
	}
	return "", time.Time{}, false
}

// CustomerCoverage returns seed 003's coverage of served customers over a
// scope that is one calendar month or year and filters at most by org
// unit, and false for any other scope: distinct customers are kept per
// month and year, by org unit, and cannot be added up across buckets.
func (c *Calc) CustomerCoverage(ctx context.Context, s Scope, t figures.Targets) (figures.Ratio, bool, error) {
	span, period, ok := Bucket(s.From, s.To)
	if !ok || s.Filter != (rollup.Dims{OrgUnit: s.Filter.OrgUnit}) {
		return figures.Ratio{}, false, nil
	}
	eligible, covered, err := c.Store.CustomerCoverage(ctx, s.Tenant, span, period, s.Filter.OrgUnit)
	if err != nil {
		return figures.Ratio{}, false, err
	}
	return t.New(figures.CustomerCoverage, "customers followed up / customers with an eligible follow-up", covered, eligible), true, nil
}
