package grpcapi_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

	eventsv1 "github.com/huifang/huifang/proto/huifang/events/v1"
	feedbackv1 "github.com/huifang/huifang/proto/huifang/feedback/v1"
	typesv1 "github.com/huifang/huifang/proto/huifang/types/v1"

	"github.com/huifang/huifang/pkg/auth"
	"github.com/huifang/huifang/pkg/stream"
	"github.com/huifang/huifang/services/feedback/internal/app"
	"github.com/huifang/huifang/services/feedback/internal/complaint"
	"github.com/huifang/huifang/services/feedback/internal/visit"
)

func inboundRequest(requestID, customer string) *feedbackv1.CreateComplaintRequest {
	return &feedbackv1.CreateComplaintRequest{RequestId: requestID, CustomerId: customer, Category: "service_quality",
		ReceivedVia: feedbackv1.ReceivedVia_RECEIVED_VIA_PHONE, Description: "the installer left the old unit in my garden",
		OrgUnit: "branch-north"}
}

// An inbound complaint joins the same loop as one a follow-up found
// (seed 004: problems go to the owning department, which answers within
// the set time; the agent confirms satisfaction; go again until satisfied).
func TestInboundComplaintJoinsTheLoop(t *testing.T) {
	t.Parallel()
	e := setup(t)
	resp, err := e.client.CreateComplaint(e.ctx, inboundRequest("call-1", "cust-9"))
	require.NoError(t, err)
	require.True(t, resp.Created)
	require.False(t, resp.Attached)
	c := resp.Complaint
	// Seed 001: service quality → after-sales, 7 days (the rules of a follow-up's complaints).
	require.Equal(t, "after_sales", c.Department)
	require.Equal(t, "general", c.Severity)
	require.Equal(t, "open", c.Status)
	require.Equal(t, e.clock.Now().Add(7*24*time.Hour), c.Deadline.AsTime())
	require.Equal(t, feedbackv1.ReceivedVia_RECEIVED_VIA_PHONE, c.ReceivedVia)
	require.Empty(t, c.VisitId)
	require.EqualValues(t, 1, c.TimesRaised)

	escalated := &eventsv1.ComplaintEscalated{}
	e.last(t, stream.SubjectComplaintEscalated, escalated)
	require.Equal(t, c.Id, escalated.ComplaintId)
	require.Equal(t, "cust-9", escalated.CustomerId)
	require.Equal(t, "after_sales", escalated.Department)
	require.Equal(t, "branch-north", escalated.OrgUnit)
	for _, r := range e.outbox(t) {
		require.NotContains(t, string(r.Payload), "garden", "events carry no free text")
	}

	// The deadline passes: escalated by itself, one level up.
	e.clock.Advance(7*24*time.Hour + time.Minute)
	n, err := e.app.EscalateOverdue(e.ctx)
	require.NoError(t, err)
	require.Equal(t, 1, n)

	_, err = e.client.AcknowledgeComplaint(e.ctx, &feedbackv1.AcknowledgeComplaintRequest{ComplaintId: c.Id, By: "after-sales-1"})
	require.NoError(t, err)
	_, err = e.client.ResolveComplaint(e.ctx, &feedbackv1.ResolveComplaintRequest{ComplaintId: c.Id, By: "after-sales-1",
		RootCause: "no disposal step in the installation checklist", Action: "old unit collected; checklist updated"})
	require.NoError(t, err)
	resolved := &eventsv1.ComplaintResolved{}
	e.last(t, stream.SubjectComplaintResolved, resolved)
	require.Equal(t, "cust-9", resolved.Customer.GetId(), "the scheduler plans the confirmation for this customer")
	require.Equal(t, "branch-north", resolved.OrgUnit)
	require.Equal(t, typesv1.Severity_SEVERITY_URGENT, resolved.Severity, "one escalation raised it")
	require.False(t, resolved.NoFollowUp)

	// The scheduler's confirmation visit names the complaint; a satisfied customer closes it.
	e.seedVisitWith(t, visit.Visit{TenantID: "default", VisitID: "v-confirm", CustomerID: "cust-9",
		Channel: typesv1.Channel_CHANNEL_PHONE, ComplaintID: c.Id, OrgUnit: "branch-north"})
	logged, err := e.client.LogVisit(e.ctx, logRequest("v-confirm", typesv1.Rating_RATING_SATISFIED))
	require.NoError(t, err)
	require.Equal(t, c.Id, logged.Record.ConfirmedComplaintId)

	got, err := e.client.GetComplaint(e.ctx, &feedbackv1.GetComplaintRequest{Id: c.Id})
	require.NoError(t, err)
	require.Equal(t, "closed", got.Complaint.Status)
	require.Equal(t, "satisfied", got.Complaint.Outcome)
	var kinds []string
	for _, s := range got.History {
		kinds = append(kinds, s.Kind)
	}
	require.Equal(t, []string{"opened", "escalated", "acknowledged", "resolved", "closed"}, kinds)
	require.Equal(t, []string{"complaint.escalated", "complaint.escalated", "complaint.acknowledged", "complaint.resolved",
		"visit.logged", "complaint.closed"}, e.subjects(t))
}

func TestInboundComplaintIsIdempotentByRequestID(t *testing.T) {
	t.Parallel()
	e := setup(t)
	first, err := e.client.CreateComplaint(e.ctx, inboundRequest("click-1", "cust-1"))
	require.NoError(t, err)
	require.True(t, first.Created)
	// The double click, even with other words: the same complaint, nothing new.
	again := inboundRequest("click-1", "cust-1")
	again.Description = "something else"
	second, err := e.client.CreateComplaint(e.ctx, again)
	require.NoError(t, err)
	require.False(t, second.Created)
	require.Equal(t, first.Complaint.Id, second.Complaint.Id)
	require.Equal(t, 1, e.count(t, "complaints"))
	require.Len(t, e.outbox(t), 1, "one ComplaintEscalated")

	// Double clicks at once: one complaint.
	var wg sync.WaitGroup
	ids := make([]string, 4)
	for i := range ids {
		wg.Go(func() {
			r, err := e.client.CreateComplaint(e.ctx, inboundRequest("click-2", "cust-2"))
			if err == nil {
				ids[i] = r.Complaint.Id
			}
		})
	}
	wg.Wait()
	for _, id := range ids {
		require.Equal(t, ids[0], id)
	}
	require.NotEmpty(t, ids[0])
	require.Equal(t, 2, e.count(t, "complaints"))

	// Seeds 000, 002: the same problem of the same customer still open is recorded once,
	// by a new request through another channel.
	letter := inboundRequest("letter-7", "cust-1")
	letter.ReceivedVia = feedbackv1.ReceivedVia_RECEIVED_VIA_LETTER
	letter.Description = "The installer left the old unit in my garden!"
	att, err := e.client.CreateComplaint(e.ctx, letter)
	require.NoError(t, err)
	require.True(t, att.Created)
	require.True(t, att.Attached)
	require.Equal(t, first.Complaint.Id, att.Complaint.Id)
	require.EqualValues(t, 2, att.Complaint.TimesRaised)
	require.Equal(t, 2, e.count(t, "complaints"))
	replay, err := e.client.CreateComplaint(e.ctx, letter)
	require.NoError(t, err)
	require.Equal(t, []any{false, true, first.Complaint.Id}, []any{replay.Created, replay.Attached, replay.Complaint.Id})
}

func TestInboundComplaintRefusals(t *testing.T) {
	t.Parallel()
	e := setup(t)
	e.seedVisit(t, "v-1")
	tests := []struct {
		name string
		req  func() *feedbackv1.CreateComplaintRequest
		want []string
	}{
		{"nothing", func() *feedbackv1.CreateComplaintRequest { return &feedbackv1.CreateComplaintRequest{} },
			[]string{"request_id", "customer_id", "category", "received_via", "description"}},
		{"bad forms", func() *feedbackv1.CreateComplaintRequest {
			r := inboundRequest("a b", "c")
			r.Category, r.Severity, r.ReceivedVia = "Service Quality", typesv1.Severity(9), feedbackv1.ReceivedVia(42)
			return r
		}, []string{"request_id", "category", "severity", "received_via"}},
		{"received in the future", func() *feedbackv1.CreateComplaintRequest {
			r := inboundRequest("r-1", "c")
			r.ReceivedAt = timestamppb.New(e.clock.Now().Add(time.Hour))
			return r
		}, []string{"received_at"}},
		{"no org unit", func() *feedbackv1.CreateComplaintRequest {
			r := inboundRequest("r-2", "c")
			r.OrgUnit = ""
			return r
		}, []string{"org_unit"}},
		{"unknown visit", func() *feedbackv1.CreateComplaintRequest {
			r := inboundRequest("r-3", "cust-v-1")
			r.VisitId = "v-none"
			return r
		}, []string{"visit_id"}},
		{"another customer's visit", func() *feedbackv1.CreateComplaintRequest {
			r := inboundRequest("r-4", "cust-other")
			r.VisitId = "v-1"
			return r
		}, []string{"visit_id"}},
	}
	for _, tt := range tests {
		_, err := e.client.CreateComplaint(e.ctx, tt.req())
		require.Equal(t, tt.want, violations(t, err), tt.name)
	}
	require.Zero(t, e.count(t, "complaints"), "a refused request changes nothing")
	require.Zero(t, e.count(t, "complaint_requests"))

	// About a visit: the visit's service and org unit; a major severity given stays.
	r := inboundRequest("r-5", "cust-v-1")
	r.VisitId, r.OrgUnit, r.Severity = "v-1", "", typesv1.Severity_SEVERITY_MAJOR
	got, err := e.client.CreateComplaint(e.ctx, r)
	require.NoError(t, err)
	require.Equal(t, []string{"v-1", "svc-v-1", "branch-north", "major"},
		[]string{got.Complaint.VisitId, got.Complaint.ServiceId, got.Complaint.OrgUnit, got.Complaint.Severity})
}

func TestInboundComplaintScope(t *testing.T) {
	t.Parallel()
	e := setup(t)
	as := func(p auth.Principal) context.Context { p.Tenant = "default"; return auth.With(e.ctx, p) }
	draft := func(id, unit string, via string) complaint.InboundDraft {
		return complaint.InboundDraft{RequestID: id, CustomerID: "cust-1", Category: "product_quality", ReceivedVia: via,
			Description: fmt.Sprintf("noise %s", id), OrgUnit: unit}
	}
	agent := as(auth.Principal{Subject: "s-a1", Roles: []auth.Role{auth.Agent}, AgentID: "a-1", OrgUnits: []string{"branch-north"}})
	got, err := e.app.CreateComplaint(agent, draft("q-1", "", complaint.ViaPhone))
	require.NoError(t, err)
	require.Equal(t, []string{"branch-north", "a-1", "a-1", "rnd_production"},
		[]string{got.Complaint.OrgUnit, got.Complaint.OwnerAgentID, got.Complaint.CreatedBy, got.Complaint.Department},
		"seed 002: the agent who took the call owns it")
	_, err = e.app.CreateComplaint(agent, draft("q-2", "branch-south", complaint.ViaPhone))
	require.ErrorIs(t, err, auth.ErrPermissionDenied, "another unit")

	web := as(auth.Principal{Subject: "svc-webform", Roles: []auth.Role{auth.Integrator}, SourceSystem: "web"})
	_, err = e.app.CreateComplaint(web, draft("q-3", "branch-south", complaint.ViaPhone))
	require.ErrorIs(t, err, auth.ErrPermissionDenied, "an integrator submits web forms only")
	got, err = e.app.CreateComplaint(web, draft("q-4", "branch-south", complaint.ViaWeb))
	require.NoError(t, err)
	require.Equal(t, []string{"", "svc-webform"}, []string{got.Complaint.OwnerAgentID, got.Complaint.CreatedBy})
}

func (e *env) inboundReview(t *testing.T, visitID, agent, reviewer string, at time.Time, scores ...int32) *feedbackv1.Review {
	t.Helper()
	e.seedVisitWith(t, visit.Visit{TenantID: "default", VisitID: visitID, CustomerID: "cust-" + visitID, OrgUnit: "branch-" + agent,
		Channel: typesv1.Channel_CHANNEL_PHONE})
	req := logRequest(visitID, typesv1.Rating_RATING_SATISFIED)
	req.AgentId = agent
	rec, err := e.client.LogVisit(e.ctx, req)
	require.NoError(t, err)
	items := []string{"identity_confirmed", "purpose_stated", "script_followed", "answers_complete"}
	var list []*feedbackv1.ChecklistScore
	for i, s := range scores {
		list = append(list, &feedbackv1.ChecklistScore{Item: items[i], Score: s})
	}
	e.clock.Advance(at.Sub(e.clock.Now()))
	r, err := e.client.SubmitReview(e.ctx, &feedbackv1.SubmitReviewRequest{RecordId: rec.Record.Id, ReviewerId: reviewer, Scores: list})
	require.NoError(t, err)
	return r.Review
}

func TestListReviewsPagesFiltersAndScopes(t *testing.T) {
	t.Parallel()
	e := setup(t)
	t0 := e.clock.Now()
	var all []*feedbackv1.Review
	for i := range 5 {
		agent := "a-1"
		if i%2 == 1 {
			agent = "a-2"
		}
		s := int32(5 - i%5) // 100, 80, 60, 40, 20
		all = append(all, e.inboundReview(t, fmt.Sprintf("v-%d", i), agent, "qa-1", t0.Add(time.Duration(i+1)*time.Hour), s, s, s, s))
	}
	ids := func(list []*feedbackv1.Review) []string {
		var out []string
		for _, r := range list {
			out = append(out, r.Id)
		}
		return out
	}
	// Newest first, two a page.
	var got []*feedbackv1.Review
	token := ""
	for {
		resp, err := e.client.ListReviews(e.ctx, &feedbackv1.ListReviewsRequest{PageSize: 2, PageToken: token})
		require.NoError(t, err)
		require.LessOrEqual(t, len(resp.Reviews), 2)
		got = append(got, resp.Reviews...)
		if token = resp.NextPageToken; token == "" {
			break
		}
	}
	require.Equal(t, []string{all[4].Id, all[3].Id, all[2].Id, all[1].Id, all[0].Id}, ids(got))

	for name, tt := range map[string]struct {
		req  *feedbackv1.ListReviewsRequest
		want []string
	}{
		"agent":       {&feedbackv1.ListReviewsRequest{AgentId: "a-2"}, []string{all[3].Id, all[1].Id}},
		"record":      {&feedbackv1.ListReviewsRequest{RecordId: all[2].RecordId}, []string{all[2].Id}},
		"reviewer":    {&feedbackv1.ListReviewsRequest{ReviewerId: "qa-2"}, nil},
		"time range":  {&feedbackv1.ListReviewsRequest{From: timestamppb.New(t0.Add(2 * time.Hour)), To: timestamppb.New(t0.Add(4 * time.Hour))}, []string{all[2].Id, all[1].Id}},
		"score below": {&feedbackv1.ListReviewsRequest{ScoreBelow: 60}, []string{all[4].Id, all[3].Id}},
	} {
		resp, err := e.client.ListReviews(e.ctx, tt.req)
		require.NoError(t, err, name)
		require.Equal(t, tt.want, ids(resp.Reviews), name)
	}
	_, err := e.client.ListReviews(e.ctx, &feedbackv1.ListReviewsRequest{ScoreBelow: 101})
	require.Equal(t, []string{"score_below"}, violations(t, err), "feedback.proto's rule")
	_, err = e.client.ListReviews(e.ctx, &feedbackv1.ListReviewsRequest{From: timestamppb.New(t0), To: timestamppb.New(t0)})
	require.Equal(t, []string{"to"}, violations(t, err), "the app's rule on two fields")
	_, err = e.client.ListReviews(e.ctx, &feedbackv1.ListReviewsRequest{PageToken: "nope"})
	require.Equal(t, codes.InvalidArgument, status.Code(err))

	as := func(p auth.Principal) context.Context { p.Tenant = "default"; return auth.With(e.ctx, p) }
	agent := as(auth.Principal{Subject: "s-a2", Roles: []auth.Role{auth.Agent}, AgentID: "a-2"})
	mine, err := e.app.ListReviews(agent, app.ReviewList{AgentID: "a-2", Limit: 10})
	require.NoError(t, err)
	require.Len(t, mine, 2)
	_, err = e.app.ListReviews(agent, app.ReviewList{AgentID: "a-1", Limit: 10})
	require.ErrorIs(t, err, auth.ErrPermissionDenied, "an agent lists its own reviews")
	leader := as(auth.Principal{Subject: "s-l", Roles: []auth.Role{auth.Leader}, AgentID: "l-1", OrgUnits: []string{"branch-a-1"}})
	led, err := e.app.ListReviews(leader, app.ReviewList{Limit: 10})
	require.NoError(t, err)
	require.Len(t, led, 3, "the reviews of records of the org units the leader leads")
	for _, r := range led {
		require.Equal(t, "a-1", r.AgentID)
	}
}

// An inbound complaint's words are personal data: blanked when intake
// erases the customer, as a follow-up's complaint's are (docs/privacy.md).
func TestInboundComplaintIsRedactedOnErasure(t *testing.T) {
	t.Parallel()
	e := setup(t)
	resp, err := e.client.CreateComplaint(e.ctx, inboundRequest("call-1", "cust-9"))
	require.NoError(t, err)
	require.NoError(t, pgx.BeginFunc(e.ctx, e.pool, func(tx pgx.Tx) error { return e.app.ForgetCustomerTx(e.ctx, tx, "default", "cust-9") }))
	got, err := e.client.GetComplaint(e.ctx, &feedbackv1.GetComplaintRequest{Id: resp.Complaint.Id})
	require.NoError(t, err)
	require.Empty(t, got.Complaint.Description)
	require.Equal(t, []string{"service_quality", "after_sales", "open"}, []string{got.Complaint.Category, got.Complaint.Department, got.Complaint.Status})
	for _, s := range got.History {
		require.Empty(t, s.Detail)
	}
}
