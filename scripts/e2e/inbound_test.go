package e2e

import (
	"os"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	dispatchv1 "github.com/huifang/huifang/proto/huifang/dispatch/v1"
	feedbackv1 "github.com/huifang/huifang/proto/huifang/feedback/v1"
	schedulerv1 "github.com/huifang/huifang/proto/huifang/scheduler/v1"
	typesv1 "github.com/huifang/huifang/proto/huifang/types/v1"

	"github.com/huifang/huifang/pkg/auth"
	"github.com/huifang/huifang/pkg/issuer"
	"github.com/huifang/huifang/pkg/stream"
)

// inboundCustomer waits until intake has stored the customer of an
// external id and returns intake's id for it (what the frontend's search
// gives the agent).
func (s *system) inboundCustomer(tenantID, externalID string) string {
	s.t.Helper()
	return waitFor(s.t, taskDeadline, "intake.customers row of "+externalID, func() (string, bool, error) {
		var id string
		err := s.db.QueryRow(s.t.Context(), `SELECT id FROM intake.customers WHERE tenant_id = $1 AND external_id = $2`, tenantID, externalID).Scan(&id)
		return id, err == nil, err
	})
}

// TestInboundComplaintAndAdHocFollowUpThroughTheFrontDoor (issue 17) plays,
// through the five processes with real tokens:
//   - a customer calls in a complaint; the agent records it (CreateComplaint,
//     double-clicked: one complaint); it goes to the owning department (seed
//     001: service quality → after-sales), which resolves it; the scheduler
//     plans the confirmation visit from ComplaintResolved although no visit
//     raised the complaint; the agent claims it in dispatch and the satisfied
//     customer closes it (seed 004: confirm until satisfied);
//   - a web form complaint by the integrator, and one it may not submit;
//   - the agent asks for an ad-hoc call-back (ScheduleFollowUp, idempotent):
//     it fires VisitDue and its task appears in dispatch;
//   - the leader reviews the confirmation record; ListReviews shows it to
//     the agent and not to another agent.
func TestInboundComplaintAndAdHocFollowUpThroughTheFrontDoor(t *testing.T) {
	s := setup(t, nil)
	const tn = "inbound"
	admin := s.as(person{tenant: tn, id: "admin-1", roles: []auth.Role{auth.TenantAdmin}})
	a1 := s.as(person{tenant: tn, id: "a-1", agent: true, units: []string{"g1"}, roles: []auth.Role{auth.Agent}})
	a2 := s.as(person{tenant: tn, id: "a-2", agent: true, units: []string{"g1"}, roles: []auth.Role{auth.Agent}})
	leader := s.as(person{tenant: tn, id: "lead-1", agent: true, units: []string{"g1"}, roles: []auth.Role{auth.Leader, auth.QAReviewer}})
	department := s.as(person{tenant: tn, id: "dept-1", deps: []string{"after_sales"}, roles: []auth.Role{auth.DepartmentOwner}})
	web := s.withToken(issuer.Token{Subject: "webform", Claims: auth.Claims{Tenant: tn, Roles: []string{string(auth.Integrator)}, SourceSystem: "website"}})

	_, err := s.dispatch.UpsertOrgUnit(admin, &dispatchv1.UpsertOrgUnitRequest{Unit: &dispatchv1.OrgUnit{TenantId: tn, Id: "g1", Name: "第一組", Kind: "group", LeaderId: "lead-1"}})
	require.NoError(t, err)
	for _, a := range []*dispatchv1.Agent{
		{Id: "a-1", Name: "客服甲", Groups: []string{"g1"}, OrgUnit: "g1", Role: dispatchv1.Role_ROLE_AGENT},
		{Id: "a-2", Name: "客服乙", Groups: []string{"g1"}, OrgUnit: "g1", Role: dispatchv1.Role_ROLE_AGENT},
		{Id: "lead-1", Name: "組長", Groups: []string{"g1"}, OrgUnit: "g1", Role: dispatchv1.Role_ROLE_LEADER},
	} {
		a.TenantId = tn
		_, err := s.dispatch.UpsertAgent(admin, &dispatchv1.UpsertAgentRequest{Agent: a})
		require.NoError(t, err, "UpsertAgent %s", a.GetId())
	}
	// The customer is known from an earlier repair (no policy of the tenant follows repairs up).
	s.publish(unitIngress(tn, "inbound-repair-1", "repair", "ext-9", "g1", time.Now().Add(-24*time.Hour).UTC()))
	customer := s.inboundCustomer(tn, "ext-9")

	// The call: recorded once however often the agent clicks.
	const words = "安裝師傅把舊機器留在花園裡"
	call := &feedbackv1.CreateComplaintRequest{TenantId: tn, RequestId: "call-20261207-1", CustomerId: customer, Category: "service_quality",
		ReceivedVia: feedbackv1.ReceivedVia_RECEIVED_VIA_PHONE, Description: words}
	first, err := s.feedback.CreateComplaint(a1, call)
	require.NoError(t, err)
	again, err := s.feedback.CreateComplaint(a1, call)
	require.NoError(t, err)
	require.True(t, first.GetCreated())
	require.False(t, again.GetCreated())
	c := first.GetComplaint()
	require.Equal(t, c.GetId(), again.GetComplaint().GetId())
	require.Equal(t, []string{"after_sales", "g1", "a-1", "open"}, []string{c.GetDepartment(), c.GetOrgUnit(), c.GetOwnerAgentId(), c.GetStatus()})
	queue, err := s.feedback.ListComplaints(department, &feedbackv1.ListComplaintsRequest{TenantId: tn, Status: "open"})
	require.NoError(t, err)
	require.Len(t, queue.GetComplaints(), 1, "in the department's queue")

	// The web form: the integrator submits web complaints only.
	form := &feedbackv1.CreateComplaintRequest{TenantId: tn, RequestId: "form-77", CustomerId: customer, Category: "product_quality",
		ReceivedVia: feedbackv1.ReceivedVia_RECEIVED_VIA_PHONE, Description: "壓縮機噪音很大", OrgUnit: "g1"}
	_, err = s.feedback.CreateComplaint(web, form)
	require.Equal(t, codes.PermissionDenied, status.Code(err), "%v", err)
	form.ReceivedVia = feedbackv1.ReceivedVia_RECEIVED_VIA_WEB
	viaWeb, err := s.feedback.CreateComplaint(web, form)
	require.NoError(t, err)
	require.Equal(t, "rnd_production", viaWeb.GetComplaint().GetDepartment())
	_, err = s.feedback.CreateComplaint(a1, &feedbackv1.CreateComplaintRequest{TenantId: tn, RequestId: "x", CustomerId: customer,
		Category: "service_quality", ReceivedVia: feedbackv1.ReceivedVia_RECEIVED_VIA_PHONE, Description: "另一個分部", OrgUnit: "g2"})
	require.Equal(t, codes.PermissionDenied, status.Code(err), "another org unit: %v", err)

	// The department answers; the scheduler plans the confirmation; the agent confirms.
	_, err = s.feedback.AcknowledgeComplaint(department, &feedbackv1.AcknowledgeComplaintRequest{TenantId: tn, ComplaintId: c.GetId()})
	require.NoError(t, err)
	_, err = s.feedback.ResolveComplaint(department, &feedbackv1.ResolveComplaintRequest{TenantId: tn, ComplaintId: c.GetId(),
		RootCause: "安裝流程沒有回收舊機", Action: "已上門回收舊機"})
	require.NoError(t, err)
	confirm := s.claimAs(a1, "a-1 (the confirmation of the inbound complaint)")
	require.Equal(t, "ext-9", confirm.GetCustomer().GetExternalId())
	rec := s.logAs(a1, &feedbackv1.LogVisitRequest{TenantId: tn, VisitId: confirm.GetVisitId(),
		Answers: []*typesv1.Answer{{Aspect: "overall", Rating: typesv1.Rating_RATING_SATISFIED}}})
	require.Equal(t, c.GetId(), rec.GetConfirmedComplaintId())
	s.answered(a1, confirm)
	closed, err := s.feedback.GetComplaint(leader, &feedbackv1.GetComplaintRequest{TenantId: tn, Id: c.GetId()})
	require.NoError(t, err)
	require.Equal(t, []string{"closed", "satisfied"}, []string{closed.GetComplaint().GetStatus(), closed.GetComplaint().GetOutcome()})

	// The agent asks for a call-back now, about the complaint; a second click plans nothing new.
	ask := &schedulerv1.ScheduleFollowUpRequest{TenantId: tn, RequestId: "cb-20261207-1", CustomerId: customer, ComplaintId: c.GetId(),
		OrgUnit: "g1", Group: "g1", Reason: "客戶要求下週再確認一次"}
	planned, err := s.scheduler.ScheduleFollowUp(a1, ask)
	require.NoError(t, err)
	twice, err := s.scheduler.ScheduleFollowUp(a1, ask)
	require.NoError(t, err)
	require.True(t, planned.GetCreated())
	require.False(t, twice.GetCreated())
	require.Equal(t, planned.GetVisit().GetId(), twice.GetVisit().GetId())
	require.Equal(t, "followup", planned.GetVisit().GetPolicyId())
	callBack := s.claimAs(a1, "a-1 (the ad-hoc call-back)")
	require.Equal(t, planned.GetVisit().GetId(), callBack.GetVisitId(), "VisitDue made its task in dispatch")
	require.Equal(t, "ext-9", callBack.GetCustomer().GetExternalId())
	ex, err := s.scheduler.ExplainVisit(leader, &schedulerv1.ExplainVisitRequest{TenantId: tn, VisitId: callBack.GetVisitId()})
	require.NoError(t, err)
	require.Equal(t, "due", ex.GetVisit().GetStatus())
	_, err = s.scheduler.ScheduleFollowUp(a2, &schedulerv1.ScheduleFollowUpRequest{TenantId: tn, RequestId: "cb-x", CustomerId: customer,
		OrgUnit: "g2", Reason: "另一個分部"})
	require.Equal(t, codes.PermissionDenied, status.Code(err), "another org unit: %v", err)

	// QA: the leader reviews the confirmation record; the agent sees its review, another agent does not.
	_, err = s.feedback.SubmitReview(leader, &feedbackv1.SubmitReviewRequest{TenantId: tn, RecordId: rec.GetId(),
		Scores: []*feedbackv1.ChecklistScore{{Item: "identity_confirmed", Score: 5}, {Item: "purpose_stated", Score: 5},
			{Item: "script_followed", Score: 5}, {Item: "answers_complete", Score: 1}}})
	require.NoError(t, err)
	mine, err := s.feedback.ListReviews(a1, &feedbackv1.ListReviewsRequest{TenantId: tn})
	require.NoError(t, err)
	require.Len(t, mine.GetReviews(), 1)
	require.Equal(t, []any{rec.GetId(), "lead-1", int32(80)}, []any{mine.GetReviews()[0].GetRecordId(), mine.GetReviews()[0].GetReviewerId(), mine.GetReviews()[0].GetScore()})
	_, err = s.feedback.ListReviews(a2, &feedbackv1.ListReviewsRequest{TenantId: tn, AgentId: "a-1"})
	require.Equal(t, codes.PermissionDenied, status.Code(err), "%v", err)
	low, err := s.feedback.ListReviews(leader, &feedbackv1.ListReviewsRequest{TenantId: tn, ScoreBelow: 80})
	require.NoError(t, err)
	require.Empty(t, low.GetReviews())

	// The customer's words are kept for the staff in scope, never in an event or a log line.
	for _, secret := range []string{words, "壓縮機噪音很大"} {
		require.False(t, s.streamHolds(stream.EventsStream, []byte(secret)), "an event carries %q", secret)
		for _, name := range s.st.Instances() {
			log, err := os.ReadFile(s.st.LogPath(name))
			require.NoError(t, err)
			require.NotContains(t, string(log), secret, "%s's log holds personal data", name)
		}
	}
}
