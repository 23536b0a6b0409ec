package rollup_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/huifang/huifang/services/analytics/internal/rollup"
)

// Customer coverage is kept per calendar month and year only.
func TestBucket(t *testing.T) {
	d := func(y int, m time.Month, day int) time.Time { return time.Date(y, m, day, 0, 0, 0, 0, time.UTC) }
	for _, tc := range []struct {
		name     string
		from, to time.Time
		span     string
		period   time.Time
		ok       bool
	}{
		{"one month", d(2025, 3, 1), d(2025, 4, 1), rollup.SpanMonth, d(2025, 3, 1), true},
		{"December", d(2024, 12, 1), d(2025, 1, 1), rollup.SpanMonth, d(2024, 12, 1), true},
		{"one year", d(2025, 1, 1), d(2026, 1, 1), rollup.SpanYear, d(2025, 1, 1), true},
		{"two months", d(2025, 3, 1), d(2025, 5, 1), "", time.Time{}, false},
		{"part of a month", d(2025, 3, 1), d(2025, 3, 31), "", time.Time{}, false},
		{"a month not from the 1st", d(2025, 3, 15), d(2025, 4, 15), "", time.Time{}, false},
		{"a year not from 1 January", d(2025, 2, 1), d(2026, 2, 1), "", time.Time{}, false},
		{"open end", d(2025, 3, 1), time.Time{}, "", time.Time{}, false},
		{"all time", time.Time{}, time.Time{}, "", time.Time{}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			span, period, ok := rollup.Bucket(tc.from, tc.to)
			require.Equal(t, tc.ok, ok)
			require.Equal(t, tc.span, span)
			require.True(t, tc.period.Equal(period), "%v", period)
		})
	}
}
