package figures_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/huifang/huifang/services/analytics/internal/figures"
)

func TestPeriods(t *testing.T) {
	d := func(m time.Month, day int) time.Time { return time.Date(2025, m, day, 0, 0, 0, 0, time.UTC) }
	got, err := figures.Periods(d(1, 15), d(3, 10), figures.Month)
	require.NoError(t, err)
	require.Equal(t, [][2]time.Time{{d(1, 15), d(2, 1)}, {d(2, 1), d(3, 1)}, {d(3, 1), d(3, 10)}}, got, "calendar months, partial at the ends")
	got, err = figures.Periods(d(3, 1), d(3, 17), figures.Week)
	require.NoError(t, err)
	require.Equal(t, [][2]time.Time{{d(3, 1), d(3, 8)}, {d(3, 8), d(3, 15)}, {d(3, 15), d(3, 17)}}, got, "7 days from from")
	got, err = figures.Periods(d(3, 1), d(3, 1), figures.Day)
	require.NoError(t, err)
	require.Empty(t, got)
	_, err = figures.Periods(d(1, 1).AddDate(-2, 0, 0), d(1, 1), figures.Day)
	require.Error(t, err, "more than 400 days")
}

func TestCheckPeriods(t *testing.T) {
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
		from, to := figures.CheckPeriod(tc.asOf)
		require.Equal(t, [2]time.Time{tc.from, tc.to}, [2]time.Time{from, to}, "as of %s", tc.asOf)
		f, to2 := figures.ImprovementCheckPeriod(tc.asOf)
		require.Equal(t, [2]time.Time{tc.impFrom, tc.impTo}, [2]time.Time{f, to2}, "improvement as of %s", tc.asOf)
	}
}

// Customer coverage is checked over the last whole calendar month.
func TestCustomerCheckPeriod(t *testing.T) {
	d := func(y int, m time.Month, day, h int) time.Time { return time.Date(y, m, day, h, 0, 0, 0, time.UTC) }
	for _, tc := range []struct{ asOf, from, to time.Time }{
		{d(2025, 3, 15, 9), d(2025, 2, 1, 0), d(2025, 3, 1, 0)},
		{d(2025, 4, 1, 0), d(2025, 3, 1, 0), d(2025, 4, 1, 0)},
		{d(2025, 1, 31, 23), d(2024, 12, 1, 0), d(2025, 1, 1, 0)},
	} {
		from, to := figures.CustomerCheckPeriod(tc.asOf)
		require.Equal(t, [2]time.Time{tc.from, tc.to}, [2]time.Time{from, to}, "as of %s", tc.asOf)
	}
}
