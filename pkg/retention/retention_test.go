package retention_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/require"

	"github.com/huifang/huifang/pkg/retention"
	"github.com/huifang/huifang/pkg/servicetest"
)

// A class is purged of what is older than its retention, in batches; the
// metrics say how much and when a purge last ran to the end.
func TestLoopPurgesWhatIsOlderThanTheRetention(t *testing.T) {
	now := time.Date(2026, 12, 6, 12, 0, 0, 0, time.UTC)
	var cutoffs []time.Time
	left := retention.Batch + 3
	c := retention.Class{Name: "messages", Retain: 48 * time.Hour, Purge: func(_ context.Context, cutoff time.Time, limit int) (int, error) {
		cutoffs = append(cutoffs, cutoff)
		n := min(left, limit)
		left -= n
		return n, nil
	}}
	m := retention.NewMetrics()
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(m.Collectors()...)
	l := m.Loop(c, time.Hour, servicetest.Logger(), func() time.Time { return now })
	require.NotNil(t, l)

	n, err := l.Round(t.Context())
	require.NoError(t, err)
	require.Equal(t, retention.Batch, n, "a full batch: the loop goes on at once")
	got, err := testutil.GatherAndCount(reg, "huifang_retention_last_success_timestamp_seconds")
	require.NoError(t, err)
	require.Zero(t, got, "not at the end yet")
	n, err = l.Round(t.Context())
	require.NoError(t, err)
	require.Equal(t, 3, n)
	require.Equal(t, []time.Time{now.Add(-48 * time.Hour), now.Add(-48 * time.Hour)}, cutoffs)
	require.NoError(t, testutil.GatherAndCompare(reg, strings.NewReader(`
# HELP huifang_retention_last_success_timestamp_seconds When the class's purge last ran to the end without error (Unix time).
# TYPE huifang_retention_last_success_timestamp_seconds gauge
huifang_retention_last_success_timestamp_seconds{class="messages"} 1.7965584e+09
# HELP huifang_retention_purged_total Items purged because their class's retention ran out, by class.
# TYPE huifang_retention_purged_total counter
huifang_retention_purged_total{class="messages"} 10003
# HELP huifang_retention_seconds How long the class's items are kept; 0: kept for good.
# TYPE huifang_retention_seconds gauge
huifang_retention_seconds{class="messages"} 172800
`)))

	_, err = m.Loop(retention.Class{Name: "broken", Retain: time.Hour, Purge: func(context.Context, time.Time, int) (int, error) {
		return 0, errors.New("db down")
	}}, time.Hour, servicetest.Logger(), time.Now).Round(t.Context())
	require.ErrorContains(t, err, "broken")
}

// A class kept for good is not purged; its retention shows 0.
func TestKeptForGood(t *testing.T) {
	m := retention.NewMetrics()
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(m.Collectors()...)
	require.Nil(t, m.Loop(retention.Class{Name: "records"}, time.Hour, servicetest.Logger(), time.Now))
	require.NoError(t, testutil.GatherAndCompare(reg, strings.NewReader(`
# HELP huifang_retention_seconds How long the class's items are kept; 0: kept for good.
# TYPE huifang_retention_seconds gauge
huifang_retention_seconds{class="records"} 0
`), "huifang_retention_seconds"))
}
