package report_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/huifang/huifang/services/analytics/internal/report"
)

// A monthly report's trend is calendar months (seed 004: a monthly report
// to the director); any other period repeats its own length.
func TestPrevious(t *testing.T) {
	d := func(m time.Month, day int) time.Time { return time.Date(2025, m, day, 0, 0, 0, 0, time.UTC) }
	require.Equal(t, []report.Period{{From: d(1, 1), To: d(2, 1)}, {From: d(2, 1), To: d(3, 1)}}, report.Previous(d(3, 1), d(4, 1), 2), "calendar months")
	require.Equal(t, []report.Period{{From: d(3, 1), To: d(3, 8)}, {From: d(3, 8), To: d(3, 15)}}, report.Previous(d(3, 15), d(3, 22), 2), "weeks")
	require.Empty(t, report.Previous(d(3, 1), d(4, 1), 0))
}
