package task_test

import (
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/huifang/huifang/pkg/invalid"
	"github.com/huifang/huifang/services/dispatch/internal/task"
)

// TestAnswers: a claim carrying a request id is answered with the task
// that id claimed only while the agent holds it under that claim on a live
// lease; an empty id never is.
func TestAnswers(t *testing.T) {
	now := time.Date(2025, 3, 10, 9, 0, 0, 0, time.UTC)
	held := task.Task{Status: task.StatusClaimed, AgentID: "a-1", LeaseToken: 3, LeaseExpiresAt: now.Add(time.Minute), ClaimRequestID: "X"}
	with := func(f func(*task.Task)) task.Task {
		x := held
		f(&x)
		return x
	}
	for _, tc := range []struct {
		name           string
		t              task.Task
		agent, request string
		want           bool
	}{
		{"its claim, lease alive", held, "a-1", "X", true},
		{"another id", held, "a-1", "Y", false},
		{"no id", with(func(x *task.Task) { x.ClaimRequestID = "" }), "a-1", "", false},
		{"another agent with the id", held, "a-2", "X", false},
		{"lease ran out", with(func(x *task.Task) { x.LeaseExpiresAt = now }), "a-1", "X", false},
		{"worked: back in the queue", with(func(x *task.Task) { x.Status, x.AgentID, x.LeaseExpiresAt = task.StatusOpen, "", time.Time{} }), "a-1", "X", false},
		{"worked: done", with(func(x *task.Task) { x.Status = task.StatusDone }), "a-1", "X", false},
		{"reassigned to the agent", with(func(x *task.Task) {
			require.NoError(t, x.AssignTo(task.Agent{ID: "a-1"}, now, time.Minute))
		}), "a-1", "X", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			require.Equal(t, tc.want, tc.t.Answers(tc.agent, tc.request, now))
		})
	}
}

// TestCheckRequestID: empty or up to 128 printable characters.
func TestCheckRequestID(t *testing.T) {
	for _, ok := range []string{"", "7f9c2a54-1b1e-4c1f-9d7e-0c7f3b2a9e11", "desk 1 / claim 42", strings.Repeat("回", task.MaxRequestID)} {
		require.NoError(t, task.CheckRequestID(ok), "%q", ok)
	}
	for _, bad := range []string{strings.Repeat("x", task.MaxRequestID+1), "a\tb", "a\nb", "\x00", "\x7f", "bad\xff", "zero\u200bwidth"} {
		e, isInvalid := invalid.As(task.CheckRequestID(bad))
		require.True(t, isInvalid, "%q", bad)
		require.Equal(t, "request_id", e.Violations[0].Field, "%q", bad)
	}
}
