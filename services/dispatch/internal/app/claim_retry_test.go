package app_test

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	typesv1 "github.com/huifang/huifang/proto/huifang/types/v1"

	"github.com/huifang/huifang/pkg/invalid"
	"github.com/huifang/huifang/services/dispatch/internal/app"
	"github.com/huifang/huifang/services/dispatch/internal/task"
)

// claimWith makes agent's claim carrying request id at now.
func (b bundle) claimWith(t *testing.T, agent, requestID string, now time.Time) (task.Task, bool) {
	t.Helper()
	b.clock.Set(now)
	got, found, err := b.a.ClaimNext(context.Background(), app.ClaimCall{Tenant: "default", AgentID: agent, RequestID: requestID})
	require.NoError(t, err)
	return got, found
}

// statuses maps each visit to its task's status and agent.
func (b bundle) statuses(t *testing.T) map[string]string {
	t.Helper()
	tasks, err := b.a.ListTasks(context.Background(), app.TaskQuery{Tenant: "default", Limit: 100})
	require.NoError(t, err)
	out := map[string]string{}
	for _, x := range tasks {
		out[x.VisitID] = x.Status + "/" + x.AgentID
	}
	return out
}

// TestClaimRetryAnswersTheFirstClaim: the chaos suite's orphaned claim. A
// claim with request id X commits and its answer is lost (the test drops
// it); the desk asks again with X and gets the same task, lease and fencing
// token; no second task is claimed and no second VisitAssigned is written.
// A claim with another id claims another task.
func TestClaimRetryAnswersTheFirstClaim(t *testing.T) {
	b := setup(t)
	b.agent(t, task.Agent{ID: "a-1", Name: "李娜"})
	b.add(t, "v-1", func(x *task.Task) { x.Deadline = t0.Add(time.Hour) })
	b.add(t, "v-2", func(x *task.Task) { x.Deadline = t0.Add(2 * time.Hour) })

	first, found := b.claimWith(t, "a-1", "desk-1/claim-0001", t0)
	require.True(t, found)
	require.Equal(t, "v-1", first.VisitID)
	// The answer is lost; the desk retries the same claim a moment later.
	again, found := b.claimWith(t, "a-1", "desk-1/claim-0001", t0.Add(10*time.Second))
	require.True(t, found)
	require.Equal(t, first.ID, again.ID, "the retry answers the task the first call claimed")
	require.Equal(t, first.LeaseToken, again.LeaseToken, "with the same fencing token")
	require.True(t, again.LeaseExpiresAt.Equal(t0.Add(lease)), "and the same lease: %s", again.LeaseExpiresAt)
	require.Equal(t, map[string]string{"v-1": "claimed/a-1", "v-2": "open/"}, b.statuses(t), "no second task claimed")
	require.Len(t, assignedEvents(t, b.pool), 1, "one VisitAssigned: the retry writes nothing")

	// The token the retry answered works.
	_, err := b.a.Heartbeat(context.Background(), "default", first.ID, "a-1", again.LeaseToken)
	require.NoError(t, err)

	other, found := b.claimWith(t, "a-1", "desk-1/claim-0002", t0.Add(20*time.Second))
	require.True(t, found)
	require.Equal(t, "v-2", other.VisitID, "another id is another claim")
	require.Equal(t, map[string]string{"v-1": "claimed/a-1", "v-2": "claimed/a-1"}, b.statuses(t))
	require.Len(t, assignedEvents(t, b.pool), 2)

	// Without an id every call claims anew, as before: nothing is left.
	_, found = b.claimWith(t, "a-1", "", t0.Add(30*time.Second))
	require.False(t, found)
}

// TestClaimRetryClaimsAnewOnceTheClaimEnded: a retry answers the first
// call's task only while that claim holds it: once the task was worked
// (RecordAttempt), released, reassigned, or its lease ran out, the same id
// makes a new claim (a new fencing token, a VisitAssigned).
func TestClaimRetryClaimsAnewOnceTheClaimEnded(t *testing.T) {
	for _, tc := range []struct {
		name string
		// end ends the first claim of v-1 (token) and returns the moment of the retry.
		end func(t *testing.T, b bundle, x task.Task) time.Time
		// want is the visit the retry claims anew.
		want string
	}{
		{"after RecordAttempt", func(t *testing.T, b bundle, x task.Task) time.Time {
			_, err := b.a.RecordAttempt(context.Background(), app.Attempt{Tenant: "default", TaskID: x.ID, AgentID: "a-1", LeaseToken: x.LeaseToken,
				Disposition: typesv1.Disposition_DISPOSITION_NO_ANSWER})
			require.NoError(t, err)
			return t0.Add(time.Minute)
		}, "v-2"},
		{"after ReleaseTask", func(t *testing.T, b bundle, x task.Task) time.Time {
			_, err := b.a.Release(context.Background(), "default", x.ID, "a-1", x.LeaseToken)
			require.NoError(t, err)
			return t0.Add(time.Minute)
		}, "v-1"},
		{"after the lease ran out", func(t *testing.T, b bundle, x task.Task) time.Time {
			// Until the last moment of the lease the retry still answers it.
			again, found := b.claimWith(t, "a-1", "X", t0.Add(lease-time.Second))
			require.True(t, found)
			require.Equal(t, x.ID, again.ID)
			require.Equal(t, x.LeaseToken, again.LeaseToken)
			return t0.Add(lease)
		}, "v-1"},
		{"after a reassignment back to the agent", func(t *testing.T, b bundle, x task.Task) time.Time {
			b.agent(t, task.Agent{ID: "lead", Name: "王组长", Role: task.RoleLeader})
			b.clock.Set(t0.Add(time.Minute))
			got, err := b.a.Reassign(context.Background(), "default", x.ID, "lead", "a-1", "")
			require.NoError(t, err)
			require.Equal(t, x.LeaseToken+1, got.LeaseToken)
			return t0.Add(2 * time.Minute)
		}, "v-2"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := setup(t)
			b.agent(t, task.Agent{ID: "a-1", Name: "李娜"})
			b.add(t, "v-1", func(x *task.Task) { x.Deadline = t0.Add(time.Hour) })
			b.add(t, "v-2", func(x *task.Task) { x.Deadline = t0.Add(2 * time.Hour) })
			first, found := b.claimWith(t, "a-1", "X", t0)
			require.True(t, found)
			require.Equal(t, "v-1", first.VisitID)

			at := tc.end(t, b, first)
			assignedBefore := len(assignedEvents(t, b.pool))
			got, found := b.claimWith(t, "a-1", "X", at)
			require.True(t, found)
			require.Equal(t, tc.want, got.VisitID, "the same id claims anew")
			require.Equal(t, "a-1", got.AgentID)
			require.True(t, got.LeaseExpiresAt.Equal(at.Add(lease)), "a new lease: %s", got.LeaseExpiresAt)
			if got.ID == first.ID {
				require.Greater(t, got.LeaseToken, first.LeaseToken, "a new claim of the same task: a new token")
			}
			require.Len(t, assignedEvents(t, b.pool), assignedBefore+1, "a new claim writes VisitAssigned")
		})
	}
}

// TestClaimRetryAtCapacity: an agent whose first claim filled its capacity
// still gets that task on a retry (capacity, shift and activity were
// checked by the claim it retries), while a new claim is refused.
func TestClaimRetryAtCapacity(t *testing.T) {
	b := setup(t)
	b.agent(t, task.Agent{ID: "a-1", Name: "李娜", Capacity: 1})
	b.add(t, "v-1")
	b.add(t, "v-2")
	first, found := b.claimWith(t, "a-1", "X", t0)
	require.True(t, found)

	again, found := b.claimWith(t, "a-1", "X", t0.Add(time.Second))
	require.True(t, found, "the retry is answered though the agent is at capacity")
	require.Equal(t, first.ID, again.ID)
	require.Equal(t, first.LeaseToken, again.LeaseToken)

	_, _, err := b.a.ClaimNext(context.Background(), app.ClaimCall{Tenant: "default", AgentID: "a-1", RequestID: "Y"})
	require.ErrorIs(t, err, task.ErrAtCapacity, "a new claim is refused")
	_, _, err = b.a.ClaimNext(context.Background(), app.ClaimCall{Tenant: "default", AgentID: "a-1"})
	require.ErrorIs(t, err, task.ErrAtCapacity)
}

// TestClaimRetryRacesTheFirstCall: the desk retries while its first call
// is still running (a client timeout): the agent's claims are serialised,
// so every call with the id answers one task, claimed once.
func TestClaimRetryRacesTheFirstCall(t *testing.T) {
	b := setup(t)
	b.agent(t, task.Agent{ID: "a-1", Name: "李娜"})
	for _, v := range []string{"v-1", "v-2", "v-3", "v-4", "v-5"} {
		b.add(t, v)
	}
	const calls = 5
	got := make([]task.Task, calls)
	errs := make([]error, calls)
	var wg sync.WaitGroup
	for i := range calls {
		wg.Add(1)
		go func() {
			defer wg.Done()
			got[i], _, errs[i] = b.a.ClaimNext(context.Background(), app.ClaimCall{Tenant: "default", AgentID: "a-1", RequestID: "X"})
		}()
	}
	wg.Wait()
	for i := range calls {
		require.NoError(t, errs[i])
		require.Equal(t, got[0].ID, got[i].ID, "call %d", i)
		require.Equal(t, got[0].LeaseToken, got[i].LeaseToken, "call %d", i)
	}
	claimed := 0
	for _, s := range b.statuses(t) {
		if strings.HasPrefix(s, task.StatusClaimed) {
			claimed++
		}
	}
	require.Equal(t, 1, claimed, "one task claimed")
	require.Len(t, assignedEvents(t, b.pool), 1)
}

// TestClaimRequestIDForm: a request id longer than 128 characters or with
// a character that is not printable is bad input naming request_id, and
// claims nothing.
func TestClaimRequestIDForm(t *testing.T) {
	b := setup(t)
	b.agent(t, task.Agent{ID: "a-1", Name: "李娜"})
	b.add(t, "v-1")
	for _, id := range []string{strings.Repeat("x", 129), "desk\n1", "desk\x001", "bad\xffutf8"} {
		_, found, err := b.a.ClaimNext(context.Background(), app.ClaimCall{Tenant: "default", AgentID: "a-1", RequestID: id})
		e, ok := invalid.As(err)
		require.True(t, ok, "%q: want bad input, got %v", id, err)
		require.Equal(t, "request_id", e.Violations[0].Field)
		require.False(t, found)
	}
	require.Equal(t, map[string]string{"v-1": "open/"}, b.statuses(t), "nothing claimed")
	require.Empty(t, assignedEvents(t, b.pool))

	longest := strings.Repeat("回", 128)
	first, found := b.claimWith(t, "a-1", longest, t0)
	require.True(t, found, "128 printable characters will do")
	again, found := b.claimWith(t, "a-1", longest, t0.Add(time.Second))
	require.True(t, found)
	require.Equal(t, first.LeaseToken, again.LeaseToken)
}
