package e2e

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"

	schedulerv1 "github.com/huifang/huifang/proto/huifang/scheduler/v1"

	"github.com/huifang/huifang/pkg/auth"
	"github.com/huifang/huifang/pkg/issuer"
)

// TestPlanApprovedBeforeItRuns (issue 16, item 5): seed 000 第八条 "回访计划应
// 包括回访对象、回访时间、回访方式等内容,并经公司领导审批后执行" and seed 004
// 三、(一)3 "隨訪計劃經隨訪中心主任審核後報上級領導批準實施" (DOMAIN.md: the
// director plans and approves). A follow-up center turns approval on; its
// admin's direct CreatePolicy is refused; the admin proposes the policy
// with a dry run; the admin cannot approve their own proposal, the director
// does; a repair completed on the NATS ingress before the approval gets no
// visit, one completed after gets the policy's; the history names both
// people and when each acted.
func TestPlanApprovedBeforeItRuns(t *testing.T) {
	s := setup(t, nil)
	ctx := t.Context()
	const center = "center"
	token := func(subject string, roles ...auth.Role) issuer.Token {
		rs := make([]string, len(roles))
		for i, r := range roles {
			rs[i] = string(r)
		}
		return issuer.Token{Subject: subject, Claims: auth.Claims{Tenant: center, Roles: rs}}
	}
	asAdmin, err := s.issuer.Context(ctx, token("admin-1", auth.TenantAdmin))
	require.NoError(t, err)
	asDirector, err := s.issuer.Context(ctx, token("d-1", auth.Director))
	require.NoError(t, err)

	_, err = s.scheduler.SetPolicyApproval(asAdmin, &schedulerv1.SetPolicyApprovalRequest{TenantId: center, Required: true})
	require.NoError(t, err)

	const policyJSON = `{"name":"repairs-next-day","tenant_id":"center","source_rule":"seed 004: the annual plan, approved by the director",
	  "trigger":{"service_types":["repair"]},"steps":[{"offset":"86400s","window":"172800s","channel":"CHANNEL_PHONE"}]}`
	create := &schedulerv1.CreatePolicyRequest{}
	require.NoError(t, protojson.Unmarshal([]byte(`{"policy":`+policyJSON+`}`), create))
	_, err = s.scheduler.CreatePolicy(asAdmin, create)
	require.Equal(t, codes.FailedPrecondition, status.Code(err), "the admin's direct write: %v", err)
	require.Contains(t, status.Convert(err).Message(), "ProposePolicyChange")

	propose := &schedulerv1.ProposePolicyChangeRequest{}
	require.NoError(t, protojson.Unmarshal([]byte(`{"tenant_id":"center","create":{"policy":`+policyJSON+`},
	  "reason":"seed 004: repairs called back the next day","synthetic":{"services_per_day":20,"days":5,"service_types":["repair"]}}`), propose))
	proposed, err := s.scheduler.ProposePolicyChange(asAdmin, propose)
	require.NoError(t, err)
	change := proposed.GetChange()
	require.Equal(t, "proposed", change.GetState())
	require.Equal(t, "admin-1", change.GetProposedBy())
	require.Len(t, change.GetDryRuns(), 1)
	require.Equal(t, int32(100), change.GetDryRuns()[0].GetResult().GetVisits(), "hand computation: 20 repairs a day for 5 days, one call each")
	require.Equal(t, int32(20), change.GetDryRuns()[0].GetResult().GetPeakDayVisits())

	// A repair completed before the approval: the proposed policy plans nothing.
	completed := time.Now().Add(-time.Minute)
	s.publish(tenantIngress(center, "repair-before", "repair", "c-before", completed))
	before := s.serviceID("repair-before")
	s.drained()
	require.Empty(t, s.visitsByPolicy(center, before), "nothing applies before the approval")

	// Four eyes: the proposer cannot approve, even holding the director's role; the director does.
	asBoth, err := s.issuer.Context(ctx, token("admin-1", auth.TenantAdmin, auth.Director))
	require.NoError(t, err)
	_, err = s.scheduler.ApprovePolicyChange(asAdmin, &schedulerv1.ApprovePolicyChangeRequest{TenantId: center, ChangeId: change.GetId()})
	require.Equal(t, codes.PermissionDenied, status.Code(err), "a tenant admin does not approve")
	_, err = s.scheduler.ApprovePolicyChange(asBoth, &schedulerv1.ApprovePolicyChangeRequest{TenantId: center, ChangeId: change.GetId()})
	require.Equal(t, codes.PermissionDenied, status.Code(err), "the proposer does not approve")
	require.Contains(t, status.Convert(err).Message(), "four eyes")
	approved, err := s.scheduler.ApprovePolicyChange(asDirector, &schedulerv1.ApprovePolicyChangeRequest{TenantId: center, ChangeId: change.GetId(), Note: "annual plan"})
	require.NoError(t, err)
	require.Equal(t, "approved", approved.GetChange().GetState())
	require.Len(t, approved.GetChange().GetApplied(), 1)
	policyID := approved.GetChange().GetApplied()[0].GetPolicyId()

	// A repair completed after the approval gets the policy's call.
	s.publish(tenantIngress(center, "repair-after", "repair", "c-after", time.Now().Add(-time.Minute)))
	after := s.serviceID("repair-after")
	waitFor(t, taskDeadline, "the approved policy's visit", func() (bool, bool, error) {
		return true, len(s.visitsByPolicy(center, after)) > 0, nil
	})
	require.Equal(t, map[string]int{"repairs-next-day": 1}, s.visitsByPolicy(center, after))
	visits, err := s.scheduler.ListPlannedVisits(ctx, &schedulerv1.ListPlannedVisitsRequest{TenantId: center, ServiceId: after})
	require.NoError(t, err)
	require.Equal(t, policyID, visits.GetVisits()[0].GetPolicyId())
	require.Equal(t, int32(1), visits.GetVisits()[0].GetPolicyVersion())

	// The history: who proposed, who approved, when, and what resulted.
	history, err := s.scheduler.ListPolicyChanges(asDirector, &schedulerv1.ListPolicyChangesRequest{TenantId: center})
	require.NoError(t, err)
	require.Len(t, history.GetChanges(), 1)
	h := history.GetChanges()[0]
	require.Equal(t, "admin-1", h.GetProposedBy())
	require.Equal(t, []string{"tenant_admin"}, h.GetProposedByRoles())
	require.Equal(t, "d-1", h.GetDecidedBy())
	require.Equal(t, []string{"director"}, h.GetDecidedByRoles())
	require.Equal(t, "annual plan", h.GetDecisionNote())
	require.False(t, h.GetDecidedAt().AsTime().Before(h.GetProposedAt().AsTime()), "approved after it was proposed")
	require.WithinDuration(t, time.Now(), h.GetDecidedAt().AsTime(), 5*time.Minute)
	require.Equal(t, policyID, h.GetApplied()[0].GetPolicyId())
	require.Equal(t, int32(1), h.GetApplied()[0].GetVersion())
	require.Empty(t, s.visitsByPolicy(center, before), "the repair before the approval still has no visit")
}
