package kpi_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/huifang/huifang/services/analytics/internal/kpi"
)

func TestPeriods(t *testing.T) {
	d := func(m time.Month, day int) time.Time { return time.Date(2025, m, day, 0, 0, 0, 0, time.UTC) }
	got, err := kpi.Periods(d(1, 15), d(3, 10), kpi.Month)
	require.NoError(t, err)
	require.Equal(t, [][2]time.Time{{d(1, 15), d(2, 1)}, {d(2, 1), d(3, 1)}, {d(3, 1), d(3, 10)}}, got, "calendar months, partial at the ends")
	got, err = kpi.Periods(d(3, 1), d(3, 17), kpi.Week)
	require.NoError(t, err)
	require.Equal(t, [][2]time.Time{{d(3, 1), d(3, 8)}, {d(3, 8), d(3, 15)}, {d(3, 15), d(3, 17)}}, got, "7 days from from")
	got, err = kpi.Periods(d(3, 1), d(3, 1), kpi.Day)
	require.NoError(t, err)
	require.Empty(t, got)
	_, err = kpi.Periods(d(1, 1).AddDate(-2, 0, 0), d(1, 1), kpi.Day)
	require.Error(t, err, "more than 400 days")
}
