package grpcapi_test

import (
	"context"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	dispatchv1 "github.com/huifang/huifang/proto/huifang/dispatch/v1"
	typesv1 "github.com/huifang/huifang/proto/huifang/types/v1"

	"github.com/huifang/huifang/services/dispatch/internal/store"
	"github.com/huifang/huifang/services/dispatch/internal/task"
)

func (b bundle) addTask(t *testing.T, id, visit, group string, deadline time.Time) {
	t.Helper()
	ctx := context.Background()
	require.NoError(t, pgx.BeginFunc(ctx, b.pool, func(tx pgx.Tx) error {
		_, err := store.CreateTask(ctx, tx, task.Task{ID: id, Tenant: "default", VisitID: visit, Group: group,
			Customer: task.Customer{ID: "c-" + visit, NameMasked: "王芳"}, Channel: typesv1.Channel_CHANNEL_PHONE,
			DueAt: t0, Deadline: deadline, Status: task.StatusOpen, CreatedAt: t0})
		return err
	}))
}

// TestAgentFlow: the JSON an agent desk sends: claim, a no answer, the
// leader's view and reassignment, the deadline list.
func TestAgentFlow(t *testing.T) {
	b := setup(t)
	ctx := context.Background()
	for _, js := range []string{
		`{"unit":{"id":"center","name":"回访中心","kind":"center","leader_id":"dir"}}`,
		`{"unit":{"id":"g-1","name":"一组","parent_id":"center","kind":"group","leader_id":"lead"}}`,
	} {
		_, err := b.client.UpsertOrgUnit(ctx, fromJSON(t, js, &dispatchv1.UpsertOrgUnitRequest{}))
		require.NoError(t, err)
	}
	_, err := b.client.UpsertOrgUnit(ctx, fromJSON(t, `{"unit":{"id":"center","name":"x","parent_id":"g-1"}}`, &dispatchv1.UpsertOrgUnitRequest{}))
	requireViolations(t, err, "unit.parent_id")
	for _, js := range []string{
		`{"agent":{"id":"a-1","name":"李娜","groups":["g-1"],"skills":{"languages":["zh-CN"]},"shift":{"start_minute":480,"end_minute":1080}}}`,
		`{"agent":{"id":"a-2","name":"张伟","groups":["g-1"]}}`,
		`{"agent":{"id":"lead","name":"王组长","groups":["g-1"],"role":"ROLE_LEADER"}}`,
		`{"agent":{"id":"dir","name":"赵主任","groups":["center"],"role":"ROLE_DIRECTOR","active":false}}`,
	} {
		_, err := b.client.UpsertAgent(ctx, fromJSON(t, js, &dispatchv1.UpsertAgentRequest{}))
		require.NoError(t, err)
	}
	_, err = b.client.UpsertAgent(ctx, fromJSON(t, `{"agent":{"id":"x","name":"x","shift":{"start_minute":-5}}}`, &dispatchv1.UpsertAgentRequest{}))
	requireViolations(t, err, "agent.shift.start_minute")

	b.addTask(t, "t-1", "v-1", "g-1", t0.Add(time.Hour))
	b.addTask(t, "t-2", "v-2", "g-1", t0.Add(48*time.Hour))
	got, err := b.client.ClaimNextTask(ctx, fromJSON(t, `{"agent_id":"a-1","wait":"1s"}`, &dispatchv1.ClaimNextTaskRequest{}))
	require.NoError(t, err)
	require.Equal(t, "t-1", got.GetTask().GetId())

	_, err = b.client.RecordAttempt(ctx, fromJSON(t, `{"task_id":"t-1","agent_id":"a-1","disposition":"DISPOSITION_SENT"}`, &dispatchv1.RecordAttemptRequest{}))
	requireViolations(t, err, "disposition")
	_, err = b.client.RecordAttempt(ctx, fromJSON(t, `{"task_id":"t-1","agent_id":"a-2","disposition":"DISPOSITION_NO_ANSWER"}`, &dispatchv1.RecordAttemptRequest{}))
	require.Equal(t, codes.FailedPrecondition, status.Code(err), "a-2 does not hold t-1: %v", err)
	att, err := b.client.RecordAttempt(ctx, fromJSON(t, `{"task_id":"t-1","agent_id":"a-1","disposition":"DISPOSITION_NO_ANSWER","note":"关机"}`, &dispatchv1.RecordAttemptRequest{}))
	require.NoError(t, err)
	require.Equal(t, int32(1), att.GetAttempt())
	require.True(t, att.GetNextAttemptAt().AsTime().Equal(t0.Add(2*time.Hour)))
	require.Equal(t, "open", att.GetTask().GetStatus())

	_, err = b.client.HeartbeatTask(ctx, &dispatchv1.HeartbeatTaskRequest{TaskId: "t-1", AgentId: "a-1"})
	require.Equal(t, codes.FailedPrecondition, status.Code(err))

	got, err = b.client.ClaimNextTask(ctx, fromJSON(t, `{"agent_id":"a-2"}`, &dispatchv1.ClaimNextTaskRequest{}))
	require.NoError(t, err)
	require.Equal(t, "t-2", got.GetTask().GetId(), "t-1 waits for its retry time")
	_, err = b.client.ReassignTask(ctx, &dispatchv1.ReassignTaskRequest{TaskId: "t-2", LeaderId: "a-1", ToAgentId: "a-1"})
	require.Equal(t, codes.PermissionDenied, status.Code(err))
	re, err := b.client.ReassignTask(ctx, &dispatchv1.ReassignTaskRequest{TaskId: "t-2", LeaderId: "lead", ToAgentId: "a-1", Reason: "a-2 下班"})
	require.NoError(t, err)
	require.Equal(t, "a-1", re.GetTask().GetAgentId())

	view, err := b.client.ListTasks(ctx, &dispatchv1.ListTasksRequest{LeaderId: "dir"})
	require.NoError(t, err)
	require.Len(t, view.GetTasks(), 2, "the director sees the groups below the center")
	_, err = b.client.ListTasks(ctx, &dispatchv1.ListTasksRequest{LeaderId: "nobody"})
	requireViolations(t, err, "leader_id")

	// Seed 003: follow up within 48 hours; t-1's deadline is an hour away.
	near, err := b.client.ListDeadlineTasks(ctx, fromJSON(t, `{"leader_id":"lead"}`, &dispatchv1.ListDeadlineTasksRequest{}))
	require.NoError(t, err)
	require.Len(t, near.GetTasks(), 1)
	require.Equal(t, "t-1", near.GetTasks()[0].GetTask().GetId())
	require.Equal(t, "near", near.GetTasks()[0].GetStage())
	all, err := b.client.ListDeadlineTasks(ctx, fromJSON(t, `{"within":"259200s"}`, &dispatchv1.ListDeadlineTasksRequest{}))
	require.NoError(t, err)
	require.Len(t, all.GetTasks(), 2)
}

// TestTemplateRules: seed 002: an SMS starts with a greeting and, in the
// real-estate format (preset 002), ends with the project, the booking
// number and the advisor; other tenants' SMS have no such footer (issue 16).
func TestTemplateRules(t *testing.T) {
	b := setup(t)
	ctx := context.Background()
	_, err := b.client.UpsertTemplate(ctx, fromJSON(t, `{"template":{"policy_id":"p-1","channel":"CHANNEL_SMS","body":"明天见","footer":"【{project}】","preset":"002"}}`, &dispatchv1.UpsertTemplateRequest{}))
	requireViolations(t, err, "template.greeting", "template.footer", "template.footer")
	_, err = b.client.UpsertTemplate(ctx, fromJSON(t, `{"template":{"policy_id":"p-1","channel":"CHANNEL_EMAIL","body":"明天见","preset":"002"}}`, &dispatchv1.UpsertTemplateRequest{}))
	requireViolations(t, err, "template.preset")
	plain, err := b.client.UpsertTemplate(ctx, fromJSON(t, `{"template":{"policy_id":"p-2","channel":"CHANNEL_SMS","greeting":"{name}您好！","body":"请按时复查"}}`, &dispatchv1.UpsertTemplateRequest{}))
	require.NoError(t, err)
	require.Empty(t, plain.GetTemplate().GetFooter(), "no seed-002 footer for a tenant that did not ask for it")
	require.Empty(t, plain.GetTemplate().GetPreset())
	ok, err := b.client.UpsertTemplate(ctx, fromJSON(t, `{"template":{"policy_id":"p-1","channel":"CHANNEL_SMS","greeting":"{name}您好！","body":"明天见","preset":"002"}}`, &dispatchv1.UpsertTemplateRequest{}))
	require.NoError(t, err)
	require.Equal(t, "【{project}】预约号：{booking_number}，顾问：{advisor}", ok.GetTemplate().GetFooter())
	require.Equal(t, "002", ok.GetTemplate().GetPreset())
	_, err = b.client.SetCustomerVariables(ctx, &dispatchv1.SetCustomerVariablesRequest{CustomerId: "c-1", Variables: map[string]string{"project": "阳光花园"}})
	require.NoError(t, err)
	_, err = b.client.RecordDeliveryReceipt(ctx, &dispatchv1.RecordDeliveryReceiptRequest{Provider: "telnyx", ProviderMessageId: "nope", Delivered: true})
	require.Equal(t, codes.NotFound, status.Code(err))
}
