package load

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestPlanIsReplayable(t *testing.T) {
	cfg := Config{Seed: 42, Events: 2000, Tenants: map[string][]string{"default": {"north", "south"}, "acme": {"east"}},
		ServiceTypes: []string{"repair", "installation"}, Customers: 50, ResendRate: 0.05, MalformedRate: 0.01, Oversized: 2,
		Now: time.Date(2026, 12, 1, 8, 0, 0, 0, time.UTC)}
	a, b := Plan(cfg), Plan(cfg)
	require.Equal(t, a, b, "the same seed plans the same inputs")
	cfg.Seed = 43
	require.NotEqual(t, a, Plan(cfg), "another seed plans other inputs")

	kinds := map[Kind]int{}
	keys := map[string]int{}
	for i, e := range a {
		require.Equal(t, i, e.Seq)
		kinds[e.Kind]++
		switch e.Kind {
		case Valid:
			keys[e.Key()]++
			var v map[string]any
			require.NoError(t, json.Unmarshal(e.Payload, &v), "a valid event is JSON")
		case Resend:
			require.Equal(t, a[e.Of].Key(), e.Key(), "a resend repeats the key of the event it resends")
			require.Equal(t, Valid, a[e.Of].Kind)
		case Oversized:
			require.Less(t, len(e.Payload), 1<<20, "JetStream must take it")
			require.Greater(t, len(e.Payload), 1<<20-1024)
		case Malformed:
			require.NotEmpty(t, e.Field)
		}
	}
	for k, n := range keys {
		require.Equal(t, 1, n, "valid key %s planned once", k)
	}
	require.Equal(t, 2, kinds[Oversized])
	require.InDelta(t, 100, kinds[Resend], 40)
	require.InDelta(t, 20, kinds[Malformed], 15)
	customers := map[string]int{}
	for _, e := range a {
		if e.Kind == Valid {
			customers[e.CustomerID]++
		}
	}
	repeat := 0
	for _, n := range customers {
		if n > 1 {
			repeat++
		}
	}
	require.Greater(t, repeat, 10, "customers come back")
}
