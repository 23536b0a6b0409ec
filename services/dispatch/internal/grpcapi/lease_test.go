package grpcapi_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	dispatchv1 "github.com/huifang/huifang/proto/huifang/dispatch/v1"
	typesv1 "github.com/huifang/huifang/proto/huifang/types/v1"
)

// TestLeaseToken: a claim answers its fencing token in Task.lease_token; a
// desk that sends it back is refused with FAILED_PRECONDITION "the task was
// claimed again" once the task was claimed again, here by a leader's
// reassignments back to the same agent (so the agent id alone cannot
// tell); a negative token is bad input naming lease_token.
func TestLeaseToken(t *testing.T) {
	b := setup(t)
	ctx := context.Background()
	for _, a := range []*dispatchv1.Agent{
		{Id: "a-1", Name: "李娜", Groups: []string{"g-1"}},
		{Id: "a-2", Name: "张伟", Groups: []string{"g-1"}},
		{Id: "lead", Name: "王组长", Groups: []string{"g-1"}, Role: dispatchv1.Role_ROLE_LEADER},
	} {
		_, err := b.client.UpsertAgent(ctx, &dispatchv1.UpsertAgentRequest{Agent: a})
		require.NoError(t, err)
	}
	b.addTask(t, "t-1", "v-1", "g-1", t0.Add(48*time.Hour))

	got, err := b.client.ClaimNextTask(ctx, &dispatchv1.ClaimNextTaskRequest{AgentId: "a-1"})
	require.NoError(t, err)
	require.Equal(t, "t-1", got.GetTask().GetId())
	require.EqualValues(t, 1, got.GetTask().GetLeaseToken())
	hb, err := b.client.HeartbeatTask(ctx, &dispatchv1.HeartbeatTaskRequest{TaskId: "t-1", AgentId: "a-1", LeaseToken: 1})
	require.NoError(t, err)
	require.EqualValues(t, 1, hb.GetTask().GetLeaseToken(), "a heartbeat keeps the claim")

	var last *dispatchv1.ReassignTaskResponse
	for _, to := range []string{"a-2", "a-1"} {
		last, err = b.client.ReassignTask(ctx, &dispatchv1.ReassignTaskRequest{TaskId: "t-1", LeaderId: "lead", ToAgentId: to})
		require.NoError(t, err)
	}
	require.EqualValues(t, 3, last.GetTask().GetLeaseToken())

	stale := []func() error{
		func() error {
			_, err := b.client.RecordAttempt(ctx, &dispatchv1.RecordAttemptRequest{TaskId: "t-1", AgentId: "a-1", LeaseToken: 1,
				Disposition: typesv1.Disposition_DISPOSITION_ANSWERED})
			return err
		},
		func() error {
			_, err := b.client.HeartbeatTask(ctx, &dispatchv1.HeartbeatTaskRequest{TaskId: "t-1", AgentId: "a-1", LeaseToken: 1})
			return err
		},
		func() error {
			_, err := b.client.ReleaseTask(ctx, &dispatchv1.ReleaseTaskRequest{TaskId: "t-1", AgentId: "a-1", LeaseToken: 1})
			return err
		},
	}
	for _, call := range stale {
		err := call()
		require.Equal(t, codes.FailedPrecondition, status.Code(err), "%v", err)
		require.Contains(t, status.Convert(err).Message(), "the task was claimed again")
	}

	_, err = b.client.ReleaseTask(ctx, &dispatchv1.ReleaseTaskRequest{TaskId: "t-1", AgentId: "a-1", LeaseToken: -1})
	requireViolations(t, err, "lease_token")

	att, err := b.client.RecordAttempt(ctx, &dispatchv1.RecordAttemptRequest{TaskId: "t-1", AgentId: "a-1", LeaseToken: 3,
		Disposition: typesv1.Disposition_DISPOSITION_ANSWERED})
	require.NoError(t, err)
	require.Equal(t, "done", att.GetTask().GetStatus())
}
