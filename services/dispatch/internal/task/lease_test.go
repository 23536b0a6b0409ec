package task_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/huifang/huifang/services/dispatch/internal/task"
)

// TestHeldByFencing: the holder of a claimed task is its agent under the
// claim's token; a token of an earlier claim is ErrClaimedAgain whatever
// the task's state, even when the agent holds the task again; without a
// token only the agent is checked.
func TestHeldByFencing(t *testing.T) {
	now := time.Date(2025, 3, 10, 9, 0, 0, 0, time.UTC)
	claimed := task.Task{Status: task.StatusClaimed, AgentID: "a-1", LeaseToken: 3, LeaseExpiresAt: now.Add(-time.Minute)}
	for _, tc := range []struct {
		name string
		t    task.Task
		h    task.Holder
		want error
	}{
		{"its claim, lease ran out, nobody took it", claimed, task.Holder{AgentID: "a-1", Token: 3}, nil},
		{"no token: the agent", claimed, task.Holder{AgentID: "a-1"}, nil},
		{"an earlier claim of the same agent", claimed, task.Holder{AgentID: "a-1", Token: 2}, task.ErrClaimedAgain},
		{"a token the task never had", claimed, task.Holder{AgentID: "a-1", Token: 4}, task.ErrClaimedAgain},
		{"another agent with the token", claimed, task.Holder{AgentID: "a-2", Token: 3}, task.ErrNotHolder},
		{"another agent, no token", claimed, task.Holder{AgentID: "a-2"}, task.ErrNotHolder},
		{"released since", task.Task{Status: task.StatusOpen, LeaseToken: 3}, task.Holder{AgentID: "a-1", Token: 3}, task.ErrNotHolder},
		{"retried and claimed since", task.Task{Status: task.StatusOpen, LeaseToken: 4}, task.Holder{AgentID: "a-1", Token: 3}, task.ErrClaimedAgain},
		{"done under its claim", task.Task{Status: task.StatusDone, AgentID: "a-1", LeaseToken: 3}, task.Holder{AgentID: "a-1", Token: 3}, task.ErrClosed},
		{"done by a later claim", task.Task{Status: task.StatusDone, AgentID: "a-1", LeaseToken: 4}, task.Holder{AgentID: "a-1", Token: 3}, task.ErrClaimedAgain},
		{"automatic", task.Task{Automatic: true, Status: task.StatusSending, LeaseToken: 3}, task.Holder{AgentID: "a-1", Token: 3}, task.ErrAutomatic},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.t.HeldBy(tc.h)
			if tc.want == nil {
				require.NoError(t, err)
				return
			}
			require.ErrorIs(t, err, tc.want)
			x := tc.t
			require.ErrorIs(t, x.Extend(tc.h, now, time.Minute), tc.want)
			require.ErrorIs(t, x.Release(tc.h), tc.want)
			require.Equal(t, tc.t, x, "a refused holder changes nothing")
		})
	}
}

// TestClaimsMakeTheTokenOneMore: a reassignment and a sender's claim are
// new claims; a heartbeat, a release and the send's outcome are not.
func TestClaimsMakeTheTokenOneMore(t *testing.T) {
	now := time.Date(2025, 3, 10, 9, 0, 0, 0, time.UTC)
	x := task.Task{Status: task.StatusClaimed, AgentID: "a-1", LeaseToken: 1}
	require.NoError(t, x.Extend(task.Holder{AgentID: "a-1", Token: 1}, now, time.Minute))
	require.Equal(t, int64(1), x.LeaseToken)
	require.NoError(t, x.AssignTo(task.Agent{ID: "a-2"}, now, time.Minute))
	require.Equal(t, int64(2), x.LeaseToken)
	require.NoError(t, x.Release(task.Holder{AgentID: "a-2", Token: 2}))
	require.Equal(t, int64(2), x.LeaseToken)

	s := task.Task{Automatic: true, Status: task.StatusOpen}
	s.Sending(1, now, time.Minute)
	require.Equal(t, int64(1), s.LeaseToken)
	require.True(t, s.RetrySend(now.Add(time.Minute)))
	s.Sending(2, now.Add(time.Minute), time.Minute)
	require.Equal(t, int64(2), s.LeaseToken)
	require.True(t, s.Sent())
	require.Equal(t, int64(2), s.LeaseToken)
}

// TestMaySend: right before calling the provider a sender still holds its
// claim while the lease lasts; not once another claim came or the lease ran
// out.
func TestMaySend(t *testing.T) {
	now := time.Date(2025, 3, 10, 9, 0, 0, 0, time.UTC)
	s := task.Task{Automatic: true, Status: task.StatusSending, LeaseToken: 2, LeaseExpiresAt: now.Add(time.Minute)}
	require.NoError(t, s.MaySend(2, now))
	require.ErrorIs(t, s.MaySend(1, now), task.ErrClaimedAgain)
	require.ErrorIs(t, s.MaySend(2, now.Add(time.Minute)), task.ErrLeaseExpired)
	cancelled := task.Task{Automatic: true, Status: task.StatusCancelled, LeaseToken: 2}
	require.NoError(t, cancelled.MaySend(2, now), "a task closed under the claim is the caller's to finish, as before")
}
