package e2e

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	dispatchv1 "github.com/huifang/huifang/proto/huifang/dispatch/v1"

	"github.com/huifang/huifang/pkg/issuer"
)

// TestTaskContextThroughTheStack: an agent opens the task of a purchase
// (seed 001: the first follow-up a day after) and gets, in one call,
// the service details the visit carried, the call script with the
// customer's masked name, and the questionnaire the policy uses, read
// from feedback by dispatch on its own service account (the built-in
// purchase policy's seed-001 questionnaire).
func TestTaskContextThroughTheStack(t *testing.T) {
	s := setup(t, nil)
	s.prepare()
	completed := time.Now().UTC().Add(-25 * time.Hour).Truncate(time.Second)
	s.publish(ingress("e-ctx-1", "purchase", "c-1", "王芳", "+8613800138000", completed))
	task := s.claim()
	require.Equal(t, "builtin-appliance-purchase", task.GetPolicyId())

	asAgent, err := s.issuer.Context(t.Context(), issuer.Staff(tenant, agent))
	require.NoError(t, err)
	c, err := s.dispatch.GetTaskContext(asAgent, &dispatchv1.GetTaskContextRequest{TenantId: tenant, TaskId: task.GetId(),
		LeaseToken: task.GetLeaseToken()})
	require.NoError(t, err)
	require.Equal(t, "ok", c.GetQuestionnaireStatus(), "dispatch reads it from feedback")
	require.Equal(t, "seed-001-appliance", c.GetQuestionnaire().GetId())
	require.NotEmpty(t, c.GetQuestionnaire().GetQuestions())
	require.Equal(t, "purchase", c.GetService().GetServiceType())
	require.True(t, c.GetService().GetCompletedAt().AsTime().Equal(completed), "%v", c.GetService().GetCompletedAt())
	require.NotEmpty(t, c.GetService().GetServiceId())
	require.Contains(t, c.GetScript().GetGreeting(), "王*")
	require.NotContains(t, c.GetScript().GetGreeting(), "王芳", "the script shows the name masked")
	require.Contains(t, c.GetScript().GetGreeting(), "李娜")
	require.Empty(t, c.GetAttempts())

	at, err := s.dispatch.ListAttempts(asAgent, &dispatchv1.ListAttemptsRequest{TenantId: tenant, TaskId: task.GetId()})
	require.NoError(t, err)
	require.Empty(t, at.GetAttempts())
}
