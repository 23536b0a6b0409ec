package auth

import (
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// However many callers are active at once, the limiter keeps at most
// MaxCallers buckets (here 100).
func TestLimiterKeepsAtMostMaxCallers(t *testing.T) {
	now := time.Date(2026, 12, 1, 9, 0, 0, 0, time.UTC)
	l := NewLimiter(RateLimit{Rate: 1, Burst: 1}, func() time.Time { return now })
	l.most = 100
	for i := range 1000 {
		_, ok := l.Allow(Principal{Tenant: "acme", Subject: fmt.Sprint("u-", i)})
		require.True(t, ok)
		require.LessOrEqual(t, l.Callers(), 100)
	}
	require.Equal(t, 100, l.Callers())
}
