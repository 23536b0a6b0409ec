package grpcapi_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	eventsv1 "github.com/huifang/huifang/proto/huifang/events/v1"
	feedbackv1 "github.com/huifang/huifang/proto/huifang/feedback/v1"
	typesv1 "github.com/huifang/huifang/proto/huifang/types/v1"

	"github.com/huifang/huifang/pkg/stream"
	"github.com/huifang/huifang/services/feedback/internal/questionnaire"
	"github.com/huifang/huifang/services/feedback/internal/visit"
)

// Seed 000, cement logistics (回访制度新版): each day the agent calls the
// recipients of the previous day's deliveries to confirm product and
// quantity; any mismatch is reported to the general manager at once (发现
// 不符立即报告总经理). A delivery confirmation answered "no" on product or
// quantity opens a delivery_mismatch complaint routed to the general
// manager, urgent, due within 24 hours, and writes its ComplaintEscalated in
// the transaction of LogVisit; a confirmed delivery opens nothing; one
// delivery's mismatch is recorded once.
func TestDeliveryMismatchGoesToTheGeneralManagerAtOnce(t *testing.T) {
	t.Parallel()
	e := setup(t)
	_, err := e.client.SetPolicyQuestionnaire(e.ctx, &feedbackv1.SetPolicyQuestionnaireRequest{PolicyId: "p-delivery", QuestionnaireId: questionnaire.SeedCementDelivery})
	require.NoError(t, err)
	delivery := func(visitID, receipt string) {
		e.seedVisitWith(t, visit.Visit{TenantID: "default", VisitID: visitID, CustomerID: "site-9", ServiceID: receipt, PolicyID: "p-delivery",
			ServiceType: "delivery", Channel: typesv1.Channel_CHANNEL_PHONE, DueAt: due, OrgUnit: "plant-1"})
	}
	answer := func(visitID string, product, quantity bool, comment string) *feedbackv1.LogVisitRequest {
		return &feedbackv1.LogVisitRequest{VisitId: visitID, AgentId: "a-1", Answers: []*typesv1.Answer{
			{Aspect: questionnaire.AspectProductMatches, Yes: yes(product)},
			{Aspect: questionnaire.AspectQuantityMatches, Yes: yes(quantity), Comment: comment},
		}}
	}

	// Product and quantity are what the call is for.
	delivery("v-0", "dn-0")
	_, err = e.client.LogVisit(e.ctx, &feedbackv1.LogVisitRequest{VisitId: "v-0", AgentId: "a-1",
		Answers: []*typesv1.Answer{{Aspect: "overall", Rating: typesv1.Rating_RATING_SATISFIED}}})
	require.ElementsMatch(t, []string{"answers", "answers"}, violations(t, err))

	// Confirmed: nothing to report.
	ok, err := e.client.LogVisit(e.ctx, answer("v-0", true, true, ""))
	require.NoError(t, err)
	require.Empty(t, ok.Record.ComplaintIds)
	require.Equal(t, []string{"visit.logged"}, e.subjects(t))

	// 28 t received where the receipt says 30 t.
	delivery("v-1", "dn-1")
	resp, err := e.client.LogVisit(e.ctx, answer("v-1", true, false, "received 28 t, the receipt says 30 t"))
	require.NoError(t, err)
	require.Len(t, resp.Record.ComplaintIds, 1)
	id := resp.Record.ComplaintIds[0]
	require.Equal(t, []string{"visit.logged", "visit.logged", "complaint.escalated"}, e.subjects(t), "reported in the same transaction: at once")
	escalated := &eventsv1.ComplaintEscalated{}
	e.last(t, stream.SubjectComplaintEscalated, escalated)
	require.Equal(t, id, escalated.ComplaintId)
	require.Equal(t, "delivery_mismatch", escalated.Category)
	require.Equal(t, "general_manager", escalated.Department)
	require.Equal(t, "urgent", escalated.Severity)
	require.Equal(t, e.clock.Now().Add(24*time.Hour), escalated.Deadline.AsTime())
	require.Equal(t, "dn-1", escalated.ServiceId)
	require.Empty(t, escalated.Description, "events carry no free text")
	c, err := e.client.GetComplaint(e.ctx, &feedbackv1.GetComplaintRequest{Id: id})
	require.NoError(t, err)
	require.Equal(t, "delivery dn-1: the quantity received does not match the delivery receipt", c.Complaint.Description)

	// The same delivery reported again is recorded once; another delivery's mismatch is its own.
	delivery("v-1b", "dn-1")
	again, err := e.client.LogVisit(e.ctx, answer("v-1b", true, false, ""))
	require.NoError(t, err)
	require.Equal(t, []string{id}, again.Record.AttachedComplaintIds)
	delivery("v-2", "dn-2")
	both, err := e.client.LogVisit(e.ctx, answer("v-2", false, false, ""))
	require.NoError(t, err)
	require.Len(t, both.Record.ComplaintIds, 1)
	require.Empty(t, both.Record.AttachedComplaintIds)
	c2, err := e.client.GetComplaint(e.ctx, &feedbackv1.GetComplaintRequest{Id: both.Record.ComplaintIds[0]})
	require.NoError(t, err)
	require.Equal(t, "delivery dn-2: the product and the quantity received does not match the delivery receipt", c2.Complaint.Description)

	// The agent's own delivery_mismatch problem is not doubled.
	delivery("v-3", "dn-3")
	own := answer("v-3", false, true, "")
	own.Problems = []*typesv1.Problem{{Category: "delivery_mismatch", Description: "PO 42.5 delivered instead of PO 52.5"}}
	r3, err := e.client.LogVisit(e.ctx, own)
	require.NoError(t, err)
	require.Len(t, r3.Record.ComplaintIds, 1)

	// The general manager's queue.
	queue, err := e.client.ListComplaints(e.ctx, &feedbackv1.ListComplaintsRequest{Department: "general_manager"})
	require.NoError(t, err)
	require.Len(t, queue.Complaints, 3)
}
