package grpcapi_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/types/known/durationpb"

	dispatchv1 "github.com/huifang/huifang/proto/huifang/dispatch/v1"
)

// TestClaimNextTaskRequestID: the JSON a desk sends. A claim with a
// request_id whose answer the desk lost, sent again, answers the same task
// and lease_token and claims nothing more; another request_id claims the
// next task. A request_id longer than 128 characters or not printable is
// INVALID_ARGUMENT naming request_id (with the other bad fields) and claims
// nothing.
func TestClaimNextTaskRequestID(t *testing.T) {
	b := setup(t)
	ctx := context.Background()
	_, err := b.client.UpsertAgent(ctx, fromJSON(t, `{"agent":{"id":"a-1","name":"李娜","groups":["default"]}}`, &dispatchv1.UpsertAgentRequest{}))
	require.NoError(t, err)
	b.addTask(t, "t-1", "v-1", "", t0.Add(time.Hour))
	b.addTask(t, "t-2", "v-2", "", t0.Add(2*time.Hour))

	for _, req := range []*dispatchv1.ClaimNextTaskRequest{
		{AgentId: "a-1", RequestId: strings.Repeat("x", 129)},
		{AgentId: "a-1", RequestId: "desk-1\r\n"},
	} {
		_, err = b.client.ClaimNextTask(ctx, req)
		requireViolations(t, err, "request_id")
	}
	_, err = b.client.ClaimNextTask(ctx, &dispatchv1.ClaimNextTaskRequest{RequestId: "\x01", Wait: durationpb.New(-time.Second)})
	requireViolations(t, err, "agent_id", "wait", "request_id")
	open, err := b.client.ListTasks(ctx, &dispatchv1.ListTasksRequest{Status: "open"})
	require.NoError(t, err)
	require.Len(t, open.GetTasks(), 2, "bad input claims nothing")

	req := `{"agent_id":"a-1","request_id":"3b0c7e9e-claim-1"}`
	first, err := b.client.ClaimNextTask(ctx, fromJSON(t, req, &dispatchv1.ClaimNextTaskRequest{}))
	require.NoError(t, err)
	require.Equal(t, "t-1", first.GetTask().GetId())
	again, err := b.client.ClaimNextTask(ctx, fromJSON(t, req, &dispatchv1.ClaimNextTaskRequest{}))
	require.NoError(t, err)
	require.Equal(t, "t-1", again.GetTask().GetId(), "the retry answers the first call's task")
	require.Equal(t, first.GetTask().GetLeaseToken(), again.GetTask().GetLeaseToken())
	require.True(t, first.GetTask().GetLeaseExpiresAt().AsTime().Equal(again.GetTask().GetLeaseExpiresAt().AsTime()))
	open, err = b.client.ListTasks(ctx, &dispatchv1.ListTasksRequest{Status: "open"})
	require.NoError(t, err)
	require.Len(t, open.GetTasks(), 1, "no second task claimed")

	next, err := b.client.ClaimNextTask(ctx, fromJSON(t, `{"agent_id":"a-1","request_id":"3b0c7e9e-claim-2"}`, &dispatchv1.ClaimNextTaskRequest{}))
	require.NoError(t, err)
	require.Equal(t, "t-2", next.GetTask().GetId())
}
