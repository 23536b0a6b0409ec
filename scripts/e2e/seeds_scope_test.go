package e2e

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	dispatchv1 "github.com/huifang/huifang/proto/huifang/dispatch/v1"
	feedbackv1 "github.com/huifang/huifang/proto/huifang/feedback/v1"
	intakev1 "github.com/huifang/huifang/proto/huifang/intake/v1"
	schedulerv1 "github.com/huifang/huifang/proto/huifang/scheduler/v1"
	typesv1 "github.com/huifang/huifang/proto/huifang/types/v1"

	"github.com/huifang/huifang/pkg/issuer"
	"github.com/huifang/huifang/pkg/stream"
)

// tenantIngress is a completed service of a tenant as its ERP sends it.
func tenantIngress(tenantID, sourceEventID, serviceType, customerID string, completedAt time.Time) string {
	return fmt.Sprintf(`{"tenant_id":%q,"source_system":"erp-demo","source_event_id":%q,"service_type":%q,"completed_at":%q,"customer":{"external_id":%q,"name":"张伟","phone":"+8613800138001"}}`,
		tenantID, sourceEventID, serviceType, completedAt.UTC().Format(time.RFC3339), customerID)
}

// visitsByPolicy counts a tenant's planned visits of a service by the
// name of the policy that planned them.
func (s *system) visitsByPolicy(tenantID, serviceID string) map[string]int {
	s.t.Helper()
	resp, err := s.scheduler.ListPlannedVisits(s.t.Context(), &schedulerv1.ListPlannedVisitsRequest{TenantId: tenantID, ServiceId: serviceID, PageSize: 500})
	require.NoError(s.t, err)
	n := map[string]int{}
	for _, v := range resp.GetVisits() {
		p, err := s.scheduler.GetPolicy(s.t.Context(), &schedulerv1.GetPolicyRequest{TenantId: tenantID, PolicyId: v.GetPolicyId(), Version: v.GetPolicyVersion()})
		require.NoError(s.t, err)
		n[p.GetPolicy().GetName()]++
	}
	return n
}

// TestPacksNeverDoubleAFollowUp (issue 16): a purchase sent on the ingress
// gets seed 001's purchase call once. A tenant that configured nothing gets
// the starter built-in appliance-purchase; one that loaded the appliance
// pack gets the pack's call and not the starter's too; a real-estate
// developer's buyer (seed 002: congratulated the same day, every 2 weeks…)
// gets no appliance call. The service types Huifang makes itself cannot be
// registered, and an upstream event naming one is dead-lettered with the
// reason.
func TestPacksNeverDoubleAFollowUp(t *testing.T) {
	s := setup(t, nil)
	ctx := t.Context()
	asOperator, err := s.issuer.Context(ctx, issuer.Operator())
	require.NoError(t, err)
	for tenantID, pack := range map[string]string{"shop": "appliance", "estate": "realestate"} {
		_, err := s.scheduler.LoadPolicyPack(asOperator, &schedulerv1.LoadPolicyPackRequest{TenantId: tenantID, Pack: pack})
		require.NoError(t, err, "LoadPolicyPack %s for %s", pack, tenantID)
	}

	completed := time.Now().Add(-time.Hour)
	for _, tenantID := range []string{"default", "shop", "estate"} {
		s.publish(tenantIngress(tenantID, "buy-"+tenantID, "purchase", "c-"+tenantID, completed))
	}
	for _, internal := range []string{"complaint_resolved", "visit_unreachable"} {
		s.publish(tenantIngress("default", "forged-"+internal, internal, "c-forged", completed))
	}
	services := map[string]string{}
	for _, tenantID := range []string{"default", "shop", "estate"} {
		services[tenantID] = s.serviceID("buy-" + tenantID)
		waitFor(t, taskDeadline, "the visits of "+tenantID+"'s purchase", func() (bool, bool, error) {
			return true, len(s.visitsByPolicy(tenantID, services[tenantID])) > 0, nil
		})
	}
	s.drained()

	// Hand computation: seed 001's purchase call is one visit per purchase.
	require.Equal(t, map[string]int{"appliance-purchase": 1}, s.visitsByPolicy("default", services["default"]),
		"nothing configured: the starter built-in")
	require.Equal(t, map[string]int{"appliance-purchase-followup": 1}, s.visitsByPolicy("shop", services["shop"]),
		"the appliance pack's purchase call, and not the built-in's as well")
	estate := s.visitsByPolicy("estate", services["estate"])
	require.Zero(t, estate["appliance-purchase"], "a home buyer gets no appliance call")
	require.Zero(t, estate["appliance-purchase-followup"])
	require.Positive(t, estate["realestate-buyer"], "seed 002: buyers are congratulated the same day")

	for tenantID, why := range map[string]string{
		"default": "",
		"shop":    "the tenant's policy appliance-purchase-followup is triggered by purchase",
		"estate":  "the tenant's policy realestate-buyer is triggered by purchase",
	} {
		got, err := s.scheduler.GetPolicy(ctx, &schedulerv1.GetPolicyRequest{TenantId: tenantID, PolicyId: "builtin-appliance-purchase"})
		require.NoError(t, err)
		require.Equal(t, why == "", got.GetPolicy().GetActive(), tenantID)
		require.Equal(t, why, got.GetPolicy().GetSupersededBy(), tenantID)
	}

	// Internal service types: not registrable, not accepted from upstream.
	for _, internal := range []string{"complaint_resolved", "visit_unreachable", "followup"} {
		_, err := s.intake.RegisterServiceType(ctx, &intakev1.RegisterServiceTypeRequest{TenantId: "default", Name: internal})
		st := status.Convert(err)
		require.Equal(t, codes.InvalidArgument, st.Code(), internal)
		require.Len(t, st.Details(), 1)
		v := st.Details()[0].(*errdetails.BadRequest).GetFieldViolations()
		require.Len(t, v, 1)
		require.Equal(t, "name", v[0].GetField())
		require.Contains(t, v[0].GetDescription(), "is a service type Huifang makes itself")
	}
	rejected, err := s.intake.ListRejectedEvents(ctx, &intakev1.ListRejectedEventsRequest{TenantId: "default"})
	require.NoError(t, err)
	require.Len(t, rejected.GetRejectedEvents(), 2)
	dead := s.messages(stream.DLQStream, stream.DeadLetterSubject("intake"))
	require.Len(t, dead, 2)
	for _, r := range rejected.GetRejectedEvents() {
		require.Equal(t, "service_type", r.GetField())
		require.Contains(t, r.GetReason(), "not one an upstream system sends")
		j := slices.IndexFunc(dead, func(m jetstream.Msg) bool { return m.Headers().Get(stream.HeaderRejectedID) == r.GetId() })
		require.GreaterOrEqual(t, j, 0)
		require.Contains(t, dead[j].Headers().Get(stream.HeaderReason), "Huifang makes itself")
	}
	var forged int
	require.NoError(t, s.db.QueryRow(ctx, `SELECT count(*) FROM scheduler.planned_visits WHERE tenant_id = 'default' AND policy_id = 'builtin-complaint-resolved'`).Scan(&forged))
	require.Zero(t, forged, "no confirmation without a complaint")
}

// TestMajorComplaintConfirmedOnSite (issue 16; seed 000 1.3 and 1.9: a major
// complaint is followed up by the company manager, on site, never by
// phone): a repair comes in on the ingress, the agent's visit raises a
// major complaint, the department resolves it, and the built-in
// confirmation is planned on site for a deputy (dispatch's role for major
// complaints), who completes it with the customer's signature; the
// complaint closes.
func TestMajorComplaintConfirmedOnSite(t *testing.T) {
	s := setup(t, nil)
	ctx := t.Context()
	s.prepare()
	_, err := s.dispatch.UpsertAgent(ctx, &dispatchv1.UpsertAgentRequest{
		Agent: &dispatchv1.Agent{Id: "mgr-1", TenantId: tenant, Name: "周经理", Groups: []string{"default"}, Role: dispatchv1.Role_ROLE_DEPUTY},
	})
	require.NoError(t, err)

	s.publish(ingress("e-major", "repair", "c-9", "孙丽", "+8613700137000", time.Now()))
	task := s.claim()
	rec := s.logVisit(&feedbackv1.LogVisitRequest{
		TenantId: tenant, VisitId: task.GetVisitId(), AgentId: agent,
		Answers:  []*typesv1.Answer{{Aspect: "overall", Rating: typesv1.Rating_RATING_UNSATISFIED, Comment: "天花板漏水"}},
		Problems: []*typesv1.Problem{{Category: "building_maintenance", Description: "维修后天花板仍然漏水", Severity: typesv1.Severity_SEVERITY_MAJOR}},
	})
	require.Len(t, rec.GetComplaintIds(), 1)
	complaintID := rec.GetComplaintIds()[0]
	_, err = s.feedback.ResolveComplaint(ctx, &feedbackv1.ResolveComplaintRequest{TenantId: tenant, ComplaintId: complaintID,
		RootCause: "水管破裂", Action: "更换水管"})
	require.NoError(t, err)

	confirm := waitFor(t, taskDeadline, "the confirmation task for mgr-1", func() (*dispatchv1.Task, bool, error) {
		resp, err := s.dispatch.ClaimNextTask(ctx, &dispatchv1.ClaimNextTaskRequest{TenantId: tenant, AgentId: "mgr-1"})
		if err != nil {
			return nil, false, err
		}
		return resp.GetTask(), resp.GetTask() != nil, nil
	})
	require.Equal(t, typesv1.Channel_CHANNEL_ONSITE, confirm.GetChannel(), "seed 000: the manager visits")
	require.Equal(t, typesv1.Severity_SEVERITY_MAJOR, confirm.GetSeverity())
	ex, err := s.scheduler.ExplainVisit(ctx, &schedulerv1.ExplainVisitRequest{TenantId: tenant, VisitId: confirm.GetVisitId()})
	require.NoError(t, err)
	require.Equal(t, "builtin-complaint-resolved", ex.GetPolicy().GetId())
	require.True(t, slices.ContainsFunc(ex.GetDecisions(), func(d *schedulerv1.Decision) bool {
		return strings.Contains(d.GetDetail(), "major (third-class) complaint is followed up on site")
	}), "ExplainVisit says why it is on site")

	req := &feedbackv1.LogVisitRequest{TenantId: tenant, VisitId: confirm.GetVisitId(), AgentId: "mgr-1",
		Answers: []*typesv1.Answer{{Aspect: "overall", Rating: typesv1.Rating_RATING_SATISFIED}}}
	_, err = s.feedback.LogVisit(ctx, req)
	st := status.Convert(err)
	require.Equal(t, codes.InvalidArgument, st.Code(), "an on-site record needs the customer's signature: %v", err)
	req.SignatureRef = "sig-major-1"
	done := s.logVisit(req)
	require.Equal(t, typesv1.Channel_CHANNEL_ONSITE, done.GetChannel(), "the planned channel")
	require.Equal(t, complaintID, done.GetConfirmedComplaintId())
	got, err := s.feedback.GetComplaint(ctx, &feedbackv1.GetComplaintRequest{TenantId: tenant, Id: complaintID})
	require.NoError(t, err)
	require.Equal(t, "closed", got.GetComplaint().GetStatus(), "the customer is satisfied: the major complaint is settled")
}
