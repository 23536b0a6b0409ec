package alert_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/huifang/huifang/services/analytics/internal/alert"
)

func TestPeriods(t *testing.T) {
	d := func(m time.Month, day, h int) time.Time { return time.Date(2025, m, day, h, 0, 0, 0, time.UTC) }
	for _, tc := range []struct {
		asOf           time.Time
		from, to       time.Time
		impFrom, impTo time.Time
	}{
		// Mid-month: the whole days of the month before today; improvement: the latest month whose complaints all had 30 days.
		{d(3, 15, 9), d(3, 1, 0), d(3, 15, 0), d(1, 1, 0), d(2, 1, 0)},
		// On the 1st: the whole previous month.
		{d(4, 1, 0), d(3, 1, 0), d(4, 1, 0), d(2, 1, 0), d(3, 1, 0)},
		{d(4, 2, 0), d(4, 1, 0), d(4, 2, 0), d(2, 1, 0), d(3, 1, 0)},
	} {
		from, to := alert.Period(tc.asOf)
		require.Equal(t, [2]time.Time{tc.from, tc.to}, [2]time.Time{from, to}, "as of %s", tc.asOf)
		f, to2 := alert.ImprovementPeriod(tc.asOf)
		require.Equal(t, [2]time.Time{tc.impFrom, tc.impTo}, [2]time.Time{f, to2}, "improvement as of %s", tc.asOf)
	}
}

// Customer coverage is checked over the last whole calendar month.
func TestCustomerPeriod(t *testing.T) {
	d := func(y int, m time.Month, day, h int) time.Time { return time.Date(y, m, day, h, 0, 0, 0, time.UTC) }
	for _, tc := range []struct{ asOf, from, to time.Time }{
		{d(2025, 3, 15, 9), d(2025, 2, 1, 0), d(2025, 3, 1, 0)},
		{d(2025, 4, 1, 0), d(2025, 3, 1, 0), d(2025, 4, 1, 0)},
		{d(2025, 1, 31, 23), d(2024, 12, 1, 0), d(2025, 1, 1, 0)},
	} {
		from, to := alert.CustomerPeriod(tc.asOf)
		require.Equal(t, [2]time.Time{tc.from, tc.to}, [2]time.Time{from, to}, "as of %s", tc.asOf)
	}
}
