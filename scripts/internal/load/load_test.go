package load

import (
	"encoding/json"
	"fmt"
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

func TestGeneratorContinuesPlan(t *testing.T) {
	cfg := Config{Seed: 7, Events: 500, Tenants: map[string][]string{"default": {""}, "t2": {"a", "b"}},
		ServiceTypes: []string{"repair", "purchase"}, Customers: 30, ResendRate: 0.05, MalformedRate: 0.01,
		Now: time.Date(2026, 12, 1, 8, 0, 0, 0, time.UTC)}
	plan := Plan(cfg)
	g := NewGenerator(cfg)
	for i := range 2000 {
		e := g.Next()
		if i < len(plan) {
			require.Equal(t, plan[i], e, "the generator yields Plan's events")
		}
		require.Equal(t, i, e.Seq)
		if e.Kind == Resend {
			require.Less(t, e.Of, e.Seq)
			require.GreaterOrEqual(t, e.Of, 0)
		}
	}
}

func TestRunIDAndIdentity(t *testing.T) {
	cfg := Config{Seed: 7, Events: 200, RunID: "r1", Customers: 10, MalformedRate: 0.2, Now: time.Date(2026, 12, 1, 8, 0, 0, 0, time.UTC),
		Identity: func(c int) (string, string) { return fmt.Sprintf("测试客户%04d", c), fmt.Sprintf("+86139%08d", c) }}
	for _, e := range Plan(cfg) {
		require.Regexp(t, `^(ev|bad)-r1-\d{6}$`, e.SourceEventID)
		if e.Kind != Valid {
			continue
		}
		var v struct {
			Customer struct{ ExternalID, Name, Phone string } `json:"customer"`
		}
		require.NoError(t, json.Unmarshal(e.Payload, &v))
		require.Regexp(t, `^测试客户00\d\d$`, v.Customer.Name)
		require.Regexp(t, `^\+8613900000\d\d\d$`, v.Customer.Phone)
	}
	cfg.RunID = ""
	require.Equal(t, "ev-7-000000", Plan(cfg)[0].SourceEventID, "the seed names the run by default")
}
