package store_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/huifang/huifang/services/analytics/internal/store"
)

func TestSplit(t *testing.T) {
	d := func(m time.Month, day int) time.Time { return time.Date(2025, m, day, 0, 0, 0, 0, time.UTC) }
	var zero time.Time
	for _, tc := range []struct {
		name       string
		from, to   time.Time
		mFrom, mTo time.Time
		monthly    bool
		head, tail [2]time.Time
	}{
		{"whole months", d(3, 1), d(6, 1), d(3, 1), d(6, 1), true, [2]time.Time{}, [2]time.Time{}},
		{"partial ends", d(3, 15), d(6, 10), d(4, 1), d(6, 1), true, [2]time.Time{d(3, 15), d(4, 1)}, [2]time.Time{d(6, 1), d(6, 10)}},
		{"inside one month", d(3, 2), d(3, 20), d(4, 1), d(3, 1), false, [2]time.Time{d(3, 2), d(3, 20)}, [2]time.Time{}},
		{"open start", zero, d(3, 20), zero, d(3, 1), true, [2]time.Time{}, [2]time.Time{d(3, 1), d(3, 20)}},
		{"all time", zero, zero, zero, zero, true, [2]time.Time{}, [2]time.Time{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			mFrom, mTo, monthly, days := store.Split(tc.from, tc.to)
			require.Equal(t, tc.monthly, monthly)
			if monthly {
				require.Equal(t, [2]time.Time{tc.mFrom, tc.mTo}, [2]time.Time{mFrom, mTo})
			}
			require.Equal(t, [2][2]time.Time{tc.head, tc.tail}, days)
		})
	}
}
