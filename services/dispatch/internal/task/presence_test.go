package task_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/huifang/huifang/pkg/invalid"
	"github.com/huifang/huifang/services/dispatch/internal/task"
)

func TestNewPresence(t *testing.T) {
	at := time.Date(2025, 3, 10, 9, 0, 0, 0, time.UTC)
	for _, c := range []struct {
		state, reason string
		want          task.Presence
		field         string
	}{
		{state: task.PresenceAvailable, want: task.Presence{State: task.PresenceAvailable, Since: at}},
		{state: task.PresenceOnBreak, want: task.Presence{State: task.PresenceOnBreak, Reason: task.DefaultBreakReason, Since: at}},
		{state: task.PresenceOnBreak, reason: " after_call_work ", want: task.Presence{State: task.PresenceOnBreak, Reason: "after_call_work", Since: at}},
		{state: task.PresenceOffline, want: task.Presence{State: task.PresenceOffline, Since: at}},
		{state: task.PresenceOnBreak, reason: "Lunch", field: "reason"},
		{state: task.PresenceOnBreak, reason: "a_reason_code_longer_than_32_chars", field: "reason"},
		{state: task.PresenceOffline, reason: "lunch", field: "reason"},
		{state: "away", field: "presence"},
		{state: "", field: "presence"},
	} {
		got, err := task.NewPresence(c.state, c.reason, at)
		if c.field != "" {
			bad, ok := invalid.As(err)
			require.True(t, ok, "%q %q: %v", c.state, c.reason, err)
			require.Equal(t, c.field, bad.Violations[0].Field)
			continue
		}
		require.NoError(t, err)
		require.Equal(t, c.want, got)
	}
}

// A leader sets another agent only offline, and only one of the groups it
// oversees; a director (wide) any agent offline; an agent its own presence.
func TestMaySetPresence(t *testing.T) {
	a2 := task.Agent{ID: "a-2", Groups: []string{"g-1", "g-3"}}
	require.NoError(t, task.MaySetPresence("a-2", false, nil, a2, task.PresenceOnBreak))
	require.NoError(t, task.MaySetPresence("lead", false, []string{"g-3"}, a2, task.PresenceOffline))
	require.ErrorIs(t, task.MaySetPresence("lead", false, []string{"g-3"}, a2, task.PresenceAvailable), task.ErrPresence)
	require.ErrorIs(t, task.MaySetPresence("lead-2", false, []string{"g-2"}, a2, task.PresenceOffline), task.ErrPresence)
	require.NoError(t, task.MaySetPresence("dir", true, nil, a2, task.PresenceOffline))
	require.ErrorIs(t, task.MaySetPresence("dir", true, nil, a2, task.PresenceOnBreak), task.ErrPresence)
}

// Claims are refused in this order: inactive, then away (on a break,
// offline), then off shift, then at capacity.
func TestEligibilityPresence(t *testing.T) {
	ok := task.Eligibility{Active: true, OnShift: true, HasRoom: true}
	require.NoError(t, ok.Err())
	away := ok
	away.Presence = task.Presence{State: task.PresenceOnBreak}
	require.ErrorIs(t, away.Err(), task.ErrOnBreak)
	away.Presence.State, away.OnShift = task.PresenceOffline, false
	require.ErrorIs(t, away.Err(), task.ErrOffline)
	away.Active = false
	require.ErrorIs(t, away.Err(), task.ErrInactive)
}
