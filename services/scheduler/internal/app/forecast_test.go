package app_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/huifang/huifang/services/scheduler/internal/app"
	"github.com/huifang/huifang/services/scheduler/internal/contact"
	"github.com/huifang/huifang/services/scheduler/internal/policy"
	"github.com/huifang/huifang/services/scheduler/internal/store"
	"github.com/huifang/huifang/services/scheduler/internal/visit"
)

// Issue 16 (caps are visible when planned, not only at firing); seed 002
// (do not harass: lower the frequency) through the tenant's cap of 1 call in
// 3 days. Three policies call after a repair, all due a day later: one
// within a day, one within 5 days, one within a day again. As soon as they
// are planned, ListPlannedVisits says the first fires, the second will be
// moved 3 days on by the cap and the third will be suppressed (the cap would
// push it past its deadline); ExplainVisit says the same. Firing then does
// exactly that, each at its due time.
func TestCapsAreForeseenWhenPlanned(t *testing.T) {
	b := setup(t)
	_, err := b.a.SetContactPolicy(b.ctx, "default", contact.Rules{Caps: []contact.Cap{{Channel: policy.ChannelPhone, Max: 1, Per: policy.Duration(3 * day)}}}, "")
	require.NoError(t, err)
	for _, p := range []struct {
		id     string
		window time.Duration
		offset time.Duration
	}{{"a", day, day}, {"b", 5 * day, day + time.Minute}, {"c", day, day + 2*time.Minute}} {
		require.NoError(t, store.InsertPolicy(b.ctx, b.pool, policy.Policy{ID: p.id, Tenant: "default", Name: p.id, Version: 1, Active: true, CreatedAt: t0,
			Trigger: policy.Trigger{ServiceTypes: []string{"repair"}},
			Steps:   []policy.Step{{Channel: policy.ChannelPhone, SampleRate: 1, Offset: policy.Duration(p.offset), Window: policy.Duration(p.window)}}}))
	}
	plan(t, b, completed(t, "r-1", "repair", t0))

	byPolicy := func() map[string]visit.Visit {
		out := map[string]visit.Visit{}
		for _, v := range visits(t, b, app.VisitQuery{ServiceID: "r-1"}) {
			out[v.PolicyID] = v
		}
		return out
	}
	planned := byPolicy()
	require.Len(t, planned, 3)
	what, _ := planned["a"].ForecastWords()
	require.Empty(t, what, "the first call fires as planned")
	what, why := planned["b"].ForecastWords()
	require.Equal(t, "moved", what)
	require.Contains(t, why, "moved to 2026-12-02T10:00:00Z: cap 1 CHANNEL_PHONE per 3d reached")
	what, why = planned["c"].ForecastWords()
	require.Equal(t, "suppressed", what)
	require.Contains(t, why, "past the deadline 2026-11-30T10:02:00Z")

	ex, err := b.a.Explain(b.ctx, "default", planned["c"].ID)
	require.NoError(t, err)
	what, _ = ex.Visit.ForecastWords()
	require.Equal(t, "suppressed", what, "ExplainVisit foresees it too")

	for _, at := range []time.Duration{day, day + time.Minute, day + 2*time.Minute} {
		fire(t, b, t0.Add(at))
	}
	fired := byPolicy()
	require.Equal(t, visit.StatusDue, fired["a"].Status)
	require.Equal(t, visit.StatusPlanned, fired["b"].Status)
	require.Equal(t, t0.Add(4*day), fired["b"].DueAt, "moved as foreseen")
	require.Equal(t, visit.StatusSuppressed, fired["c"].Status, "suppressed as foreseen")
	require.Nil(t, fired["c"].Forecast, "only planned visits are foreseen")
	what, _ = fired["b"].ForecastWords()
	require.Empty(t, what, "moved past the cap's span: it fires")
}
