package grpcapi_test

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/proto"

	eventsv1 "github.com/huifang/huifang/proto/huifang/events/v1"
	feedbackv1 "github.com/huifang/huifang/proto/huifang/feedback/v1"
	typesv1 "github.com/huifang/huifang/proto/huifang/types/v1"

	"github.com/huifang/huifang/pkg/stream"
	"github.com/huifang/huifang/services/feedback/internal/visit"
)

// assign stores a VisitAssigned as the consumer would.
func (e *env) assign(t *testing.T, visitID, agent string, at time.Time) {
	t.Helper()
	require.NoError(t, e.app.AssignVisit(e.ctx, visit.Assignment{TenantID: "default", VisitID: visitID, AgentID: agent, AssignedAt: at, EventID: "as-" + visitID + "-" + agent}))
}

func (e *env) customerVisit(t *testing.T, id, customer string) {
	t.Helper()
	e.seedVisitWith(t, visit.Visit{TenantID: "default", VisitID: id, CustomerID: customer, ServiceID: "svc-" + id, PolicyID: "policy-repair",
		Channel: typesv1.Channel_CHANNEL_PHONE, DueAt: due, Deadline: due.Add(48 * time.Hour), OrgUnit: "estate-east", ServiceType: "repair"})
}

func TestOnlyTheAssignedAgentLogsTheVisit(t *testing.T) {
	t.Parallel()
	e := setup(t)
	at := e.clock.Now().Add(-time.Hour)

	// No VisitAssigned heard yet: the agent is taken at its word.
	e.seedVisit(t, "v-unassigned")
	_, err := e.client.LogVisit(e.ctx, &feedbackv1.LogVisitRequest{VisitId: "v-unassigned", AgentId: "a-9",
		Answers: []*typesv1.Answer{{Aspect: "overall", Rating: typesv1.Rating_RATING_SATISFIED}}})
	require.NoError(t, err)

	// Assigned to a-1 (the claim), then reassigned to a-2; the claim heard again late changes nothing.
	// The assignment may be heard before the visit's VisitDue.
	e.assign(t, "v-1", "a-1", at)
	e.seedVisit(t, "v-1")
	e.assign(t, "v-1", "a-2", at.Add(time.Minute))
	e.assign(t, "v-1", "a-1", at)
	before := len(e.outbox(t))
	req := logRequest("v-1", typesv1.Rating_RATING_UNSATISFIED, &typesv1.Problem{Category: "service_quality", Description: "late"})
	_, err = e.client.LogVisit(e.ctx, req)
	require.Equal(t, []string{"agent_id"}, violations(t, err))
	require.Len(t, e.outbox(t), before, "a refused record publishes nothing")
	require.Equal(t, 1, e.count(t, "visit_records"), "and stores nothing")
	require.Zero(t, e.count(t, "complaints"))

	req = logRequest("v-1", typesv1.Rating_RATING_UNSATISFIED, &typesv1.Problem{Category: "service_quality", Description: "late"})
	req.AgentId = "a-2"
	resp, err := e.client.LogVisit(e.ctx, req)
	require.NoError(t, err)
	require.Equal(t, "a-2", resp.Record.AgentId)
}

func TestMajorComplaintIsFollowedUpOnSite(t *testing.T) {
	t.Parallel()
	e := setup(t)
	e.seedVisit(t, "v-1")
	resp, err := e.client.LogVisit(e.ctx, logRequest("v-1", typesv1.Rating_RATING_UNSATISFIED,
		&typesv1.Problem{Category: "building_maintenance", Description: "water through the ceiling", Severity: typesv1.Severity_SEVERITY_MAJOR}))
	require.NoError(t, err)
	id := resp.Record.ComplaintIds[0]
	_, err = e.client.ResolveComplaint(e.ctx, &feedbackv1.ResolveComplaintRequest{ComplaintId: id, By: "manager-1", RootCause: "cracked pipe", Action: "pipe replaced"})
	require.NoError(t, err)
	resolved := &eventsv1.ComplaintResolved{}
	e.last(t, stream.SubjectComplaintResolved, resolved)
	require.Equal(t, typesv1.Severity_SEVERITY_MAJOR, resolved.Severity)
	require.False(t, resolved.NoFollowUp)

	// Seed 000: a follow-up of a third-class (major) complaint is never made by phone.
	e.seedVisitWith(t, visit.Visit{TenantID: "default", VisitID: "v-confirm", CustomerID: "cust-v-1", ServiceID: "svc-v-1",
		Channel: typesv1.Channel_CHANNEL_PHONE, ComplaintID: id})
	before := len(e.outbox(t))
	confirm := logRequest("v-confirm", typesv1.Rating_RATING_SATISFIED)
	confirm.Channel = typesv1.Channel_CHANNEL_PHONE
	_, err = e.client.LogVisit(e.ctx, confirm)
	require.Equal(t, []string{"channel"}, violations(t, err))
	confirm.Channel = typesv1.Channel_CHANNEL_UNSPECIFIED // the planned phone
	_, err = e.client.LogVisit(e.ctx, confirm)
	require.Equal(t, []string{"channel"}, violations(t, err))
	confirm.Channel = typesv1.Channel_CHANNEL_ONSITE
	_, err = e.client.LogVisit(e.ctx, confirm)
	require.Equal(t, []string{"signature_ref"}, violations(t, err))
	require.Len(t, e.outbox(t), before)
	got, err := e.client.GetComplaint(e.ctx, &feedbackv1.GetComplaintRequest{Id: id})
	require.NoError(t, err)
	require.Equal(t, "resolved", got.Complaint.Status, "a refused confirmation settles nothing")

	confirm.SignatureRef = "sig-42"
	_, err = e.client.LogVisit(e.ctx, confirm)
	require.NoError(t, err)
	got, err = e.client.GetComplaint(e.ctx, &feedbackv1.GetComplaintRequest{Id: id})
	require.NoError(t, err)
	require.Equal(t, "closed", got.Complaint.Status)
}

func TestTheSameProblemIsRecordedOnce(t *testing.T) {
	t.Parallel()
	e := setup(t)
	for _, v := range []struct{ id, customer string }{{"v-1", "c-1"}, {"v-2", "c-1"}, {"v-3", "c-2"}, {"v-4", "c-1"}} {
		e.customerVisit(t, v.id, v.customer)
	}
	r1, err := e.client.LogVisit(e.ctx, logRequest("v-1", typesv1.Rating_RATING_UNSATISFIED,
		&typesv1.Problem{Category: "parking", Description: "Visitors park in my space!"}))
	require.NoError(t, err)
	first := r1.Record.ComplaintIds[0]

	// The same customer raises it again (another department, another channel): recorded once (seeds 000, 002).
	e.clock.Advance(time.Hour)
	r2, err := e.client.LogVisit(e.ctx, logRequest("v-2", typesv1.Rating_RATING_UNSATISFIED,
		&typesv1.Problem{Category: "parking", Description: "visitors park in my space"},
		&typesv1.Problem{Category: "cleaning", Description: "visitors park in my space"}))
	require.NoError(t, err)
	require.Len(t, r2.Record.ComplaintIds, 2)
	require.Equal(t, first, r2.Record.ComplaintIds[0], "the record links to the open complaint")
	require.Equal(t, []string{first}, r2.Record.AttachedComplaintIds)
	second := r2.Record.ComplaintIds[1]
	require.NotEqual(t, first, second, "another category is another complaint")
	stored, err := e.client.GetVisitRecord(e.ctx, &feedbackv1.GetVisitRecordRequest{Id: "v-2"})
	require.NoError(t, err)
	require.True(t, proto.Equal(r2.Record, stored.Record), "got %v\nwant %v", stored.Record, r2.Record)

	// Another customer with the same words has a complaint of their own.
	r3, err := e.client.LogVisit(e.ctx, logRequest("v-3", typesv1.Rating_RATING_UNSATISFIED,
		&typesv1.Problem{Category: "parking", Description: "Visitors park in my space!"}))
	require.NoError(t, err)
	require.Empty(t, r3.Record.AttachedComplaintIds)

	var escalated []string
	for _, r := range e.outbox(t) {
		if r.Subject == stream.SubjectComplaintEscalated {
			ev := &eventsv1.ComplaintEscalated{}
			require.NoError(t, proto.Unmarshal(r.Payload, ev))
			escalated = append(escalated, ev.ComplaintId)
		}
	}
	require.Equal(t, []string{first, second, r3.Record.ComplaintIds[0]}, escalated, "no second ComplaintEscalated for the same problem")

	got, err := e.client.GetComplaint(e.ctx, &feedbackv1.GetComplaintRequest{Id: first})
	require.NoError(t, err)
	require.EqualValues(t, 2, got.Complaint.TimesRaised)
	require.Equal(t, "a-1", got.Complaint.OwnerAgentId, "seed 002: the first owner stays")
	require.Len(t, got.History, 2)
	require.Equal(t, "raised_again", got.History[1].Kind)
	require.Contains(t, got.History[1].Detail, "v-2")

	// Once closed, the same problem raised again is a new complaint.
	_, err = e.client.CloseComplaint(e.ctx, &feedbackv1.CloseComplaintRequest{ComplaintId: first, By: "manager-1", Reason: "visitor parking rules posted"})
	require.NoError(t, err)
	r4, err := e.client.LogVisit(e.ctx, logRequest("v-4", typesv1.Rating_RATING_UNSATISFIED,
		&typesv1.Problem{Category: "parking", Description: "visitors park in my space"}))
	require.NoError(t, err)
	require.Empty(t, r4.Record.AttachedComplaintIds)
	require.NotEqual(t, first, r4.Record.ComplaintIds[0])
}

func TestConcurrentRecordsOfTheSameProblemOpenOneComplaint(t *testing.T) {
	t.Parallel()
	e := setup(t)
	const n = 6
	for i := range n {
		e.customerVisit(t, fmt.Sprintf("v-%d", i), "c-1")
	}
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range n {
		wg.Go(func() {
			_, err := e.client.LogVisit(e.ctx, logRequest(fmt.Sprintf("v-%d", i), typesv1.Rating_RATING_UNSATISFIED,
				&typesv1.Problem{Category: "security", Description: "the gate is left open at night"}))
			errs <- err
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}
	require.Equal(t, 1, e.count(t, "complaints"))
	require.Equal(t, n, e.count(t, "record_complaints"))
}

func TestComplaintsThatNeedNoFollowUpAreAnsweredInWriting(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		name    string
		problem *typesv1.Problem
	}{
		{"anonymous (seed 000)", &typesv1.Problem{Category: "staff_attitude", Description: "the guard was rude", Anonymous: true}},
		{"only a written reply was requested (seed 000)", &typesv1.Problem{Category: "billing", Description: "the fee rose", WrittenReplyOnly: true}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			e := setup(t)
			e.seedVisit(t, "v-1")
			resp, err := e.client.LogVisit(e.ctx, logRequest("v-1", typesv1.Rating_RATING_FAIRLY_SATISFIED, tt.problem))
			require.NoError(t, err)
			id := resp.Record.ComplaintIds[0]
			logged := &eventsv1.VisitLogged{}
			e.last(t, stream.SubjectVisitLogged, logged)
			want := proto.CloneOf(tt.problem)
			want.Description = "" // events carry no free text
			require.True(t, proto.Equal(want, logged.Problems[0]), "the flags travel with the problem")

			before := e.subjects(t)
			_, err = e.client.ResolveComplaint(e.ctx, &feedbackv1.ResolveComplaintRequest{ComplaintId: id, By: "manager-1", RootCause: "c", Action: "a"})
			require.Equal(t, []string{"written_reply"}, violations(t, err))
			require.Equal(t, before, e.subjects(t), "nothing published")
			got, err := e.client.GetComplaint(e.ctx, &feedbackv1.GetComplaintRequest{Id: id})
			require.NoError(t, err)
			require.Equal(t, "open", got.Complaint.Status, "nothing changed")

			res, err := e.client.ResolveComplaint(e.ctx, &feedbackv1.ResolveComplaintRequest{ComplaintId: id, By: "manager-1", RootCause: "c", Action: "a",
				WrittenReply: "Dear resident, ...", WrittenReplyRef: "letter-2025-031"})
			require.NoError(t, err)
			c := res.Complaint
			require.Equal(t, "closed", c.Status, "no confirmation visit comes: the written reply ends the loop")
			require.Equal(t, "written_reply", c.Outcome)
			require.Equal(t, "Dear resident, ...", c.WrittenReply)
			require.Equal(t, "letter-2025-031", c.WrittenReplyRef)
			require.Equal(t, append(before, "complaint.resolved", "complaint.closed"), e.subjects(t), "no followup.requested")
			resolved := &eventsv1.ComplaintResolved{}
			e.last(t, stream.SubjectComplaintResolved, resolved)
			require.True(t, resolved.NoFollowUp, "the scheduler plans no confirmation visit")
			closed := &eventsv1.ComplaintClosed{}
			e.last(t, stream.SubjectComplaintClosed, closed)
			require.Equal(t, "written_reply", closed.Outcome)

			got, err = e.client.GetComplaint(e.ctx, &feedbackv1.GetComplaintRequest{Id: id})
			require.NoError(t, err)
			require.True(t, proto.Equal(c, got.Complaint), "got %v\nwant %v", got.Complaint, c)
			require.Equal(t, tt.problem.Anonymous, got.Complaint.Anonymous)
			require.Equal(t, tt.problem.WrittenReplyOnly, got.Complaint.WrittenReplyOnly)
		})
	}
}
