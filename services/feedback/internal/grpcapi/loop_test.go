package grpcapi_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	eventsv1 "github.com/huifang/huifang/proto/huifang/events/v1"
	feedbackv1 "github.com/huifang/huifang/proto/huifang/feedback/v1"
	typesv1 "github.com/huifang/huifang/proto/huifang/types/v1"

	"github.com/huifang/huifang/pkg/stream"
	"github.com/huifang/huifang/services/feedback/internal/questionnaire"
	"github.com/huifang/huifang/services/feedback/internal/visit"
)

// violations returns the fields an InvalidArgument error names.
func violations(t *testing.T, err error) []string {
	t.Helper()
	st := status.Convert(err)
	require.Equal(t, codes.InvalidArgument, st.Code(), "%v", err)
	var fields []string
	for _, d := range st.Details() {
		if br, ok := d.(*errdetails.BadRequest); ok {
			for _, v := range br.FieldViolations {
				fields = append(fields, v.Field)
			}
		}
	}
	return fields
}

// subjects lists the outbox's subjects in commit order, without the prefix.
func (e *env) subjects(t *testing.T) []string {
	t.Helper()
	var out []string
	for _, r := range e.outbox(t) {
		out = append(out, r.Subject[len("huifang.events."):])
	}
	return out
}

// last decodes the newest outbox event of subject into m.
func (e *env) last(t *testing.T, subject string, m proto.Message) {
	t.Helper()
	rows := e.outbox(t)
	for i := len(rows) - 1; i >= 0; i-- {
		if rows[i].Subject == subject {
			require.NoError(t, proto.Unmarshal(rows[i].Payload, m))
			return
		}
	}
	t.Fatalf("no %s in the outbox", subject)
}

func (e *env) seedVisitWith(t *testing.T, v visit.Visit) {
	t.Helper()
	require.NoError(t, e.app.LearnVisit(e.ctx, v))
}

func i32(n int32) *int32 { return &n }
func yes(b bool) *bool   { return &b }

func TestLogVisitAgainstThePolicysQuestionnaire(t *testing.T) {
	t.Parallel()
	e := setup(t)
	e.seedVisit(t, "v-1")
	_, err := e.client.SetPolicyQuestionnaire(e.ctx, &feedbackv1.SetPolicyQuestionnaireRequest{PolicyId: "policy-repair", QuestionnaireId: questionnaire.SeedAuto})
	require.NoError(t, err)

	// An invalid answer set is refused with field violations and stores nothing.
	_, err = e.client.LogVisit(e.ctx, &feedbackv1.LogVisitRequest{VisitId: "v-1", AgentId: "a-1", Answers: []*typesv1.Answer{
		{QuestionId: "recommend", Score: i32(11)},
		{QuestionId: "service_advisor", Score: i32(0)},
		{QuestionId: "fixed_first_time", Rating: typesv1.Rating_RATING_SATISFIED},
		{Aspect: "parking", Rating: typesv1.Rating_RATING_SATISFIED},
	}, Problems: []*typesv1.Problem{{Category: "service_quality", Description: "late"}}})
	require.Equal(t, []string{"answers[0].score", "answers[1].score", "answers[2].rating", "answers[2].yes", "answers[3].aspect", "answers"}, violations(t, err))
	require.Zero(t, e.count(t, "visit_records"))
	require.Zero(t, e.count(t, "complaints"))
	require.Empty(t, e.outbox(t))

	resp, err := e.client.LogVisit(e.ctx, &feedbackv1.LogVisitRequest{VisitId: "v-1", AgentId: "a-1", Answers: []*typesv1.Answer{
		{Aspect: "overall", Rating: typesv1.Rating_RATING_SATISFIED},
		{QuestionId: "recommend", Score: i32(9)},
		{QuestionId: "fixed_first_time", Yes: yes(true)},
	}, Attachments: []*feedbackv1.Attachment{{Kind: "call_recording", Ref: "rec-1"}}})
	require.NoError(t, err)
	rec := resp.Record
	require.Equal(t, questionnaire.SeedAuto, rec.QuestionnaireId)
	require.EqualValues(t, 1, rec.QuestionnaireVersion)
	require.Equal(t, "overall", rec.Answers[0].QuestionId)
	require.Equal(t, "recommend", rec.Answers[1].Aspect)
	ev := &eventsv1.VisitLogged{}
	e.last(t, stream.SubjectVisitLogged, ev)
	require.Equal(t, questionnaire.SeedAuto, ev.QuestionnaireId)
	require.EqualValues(t, 1, ev.QuestionnaireVersion)
	require.NotNil(t, ev.Nps)
	require.EqualValues(t, 9, ev.GetNps())
	got, err := e.client.GetVisitRecord(e.ctx, &feedbackv1.GetVisitRecordRequest{Id: rec.Id})
	require.NoError(t, err)
	require.True(t, proto.Equal(rec, got.Record), "got %v\nwant %v", got.Record, rec)

	// An amendment replaces some answers, checked against the record's questionnaire version.
	_, err = e.client.AmendVisitRecord(e.ctx, &feedbackv1.AmendVisitRecordRequest{RecordId: rec.Id, By: "leader-1", Reason: "typo",
		Answers: []*typesv1.Answer{{QuestionId: "recommend", Score: i32(12)}}})
	require.Equal(t, []string{"answers[0].score"}, violations(t, err))
	amended, err := e.client.AmendVisitRecord(e.ctx, &feedbackv1.AmendVisitRecordRequest{RecordId: rec.Id, By: "leader-1", Reason: "typo",
		Answers: []*typesv1.Answer{{QuestionId: "recommend", Score: i32(7)}}})
	require.NoError(t, err)
	require.Equal(t, []*feedbackv1.FieldChange{{Field: "answers[recommend]", OldValue: "score 9", NewValue: "score 7"}}, amended.Amendment.Changes)
	require.Len(t, amended.Current.Answers, 3)
}

func TestQuestionnaireVersions(t *testing.T) {
	t.Parallel()
	e := setup(t)
	list, err := e.client.ListQuestionnaires(e.ctx, &feedbackv1.ListQuestionnairesRequest{})
	require.NoError(t, err)
	require.Len(t, list.Questionnaires, len(questionnaire.Seeds()), "the seed templates")

	q := &feedbackv1.Questionnaire{Id: "discharge-short", Name: "short", Questions: []*feedbackv1.Question{
		{Id: "overall", Aspect: "overall", Text: "overall?", Kind: feedbackv1.QuestionKind_QUESTION_KIND_RATING, Required: true},
	}}
	v1, err := e.client.CreateQuestionnaire(e.ctx, &feedbackv1.CreateQuestionnaireRequest{Questionnaire: q})
	require.NoError(t, err)
	require.EqualValues(t, 1, v1.Questionnaire.Version)
	q.Questions = append(q.Questions, &feedbackv1.Question{Id: "pain", Aspect: "recovery", Text: "pain 1–5?", Kind: feedbackv1.QuestionKind_QUESTION_KIND_SCALE, Required: true})
	v2, err := e.client.CreateQuestionnaire(e.ctx, &feedbackv1.CreateQuestionnaireRequest{Questionnaire: q})
	require.NoError(t, err)
	require.EqualValues(t, 2, v2.Questionnaire.Version, "the same id gets a new version")

	_, err = e.client.CreateQuestionnaire(e.ctx, &feedbackv1.CreateQuestionnaireRequest{Questionnaire: &feedbackv1.Questionnaire{Id: "x"}})
	require.Equal(t, []string{"questionnaire.name", "questionnaire.questions"}, violations(t, err))
	_, err = e.client.SetPolicyQuestionnaire(e.ctx, &feedbackv1.SetPolicyQuestionnaireRequest{PolicyId: "p", QuestionnaireId: "nope"})
	require.Equal(t, []string{"questionnaire_id"}, violations(t, err))
	_, err = e.client.GetQuestionnaire(e.ctx, &feedbackv1.GetQuestionnaireRequest{Id: "discharge-short", TenantId: "acme"})
	require.Equal(t, codes.NotFound, status.Code(err), "questionnaires are per tenant")

	// The policy names the questionnaire; a record is checked against the version the form showed.
	_, err = e.client.GetPolicyQuestionnaire(e.ctx, &feedbackv1.GetPolicyQuestionnaireRequest{PolicyId: "policy-repair"})
	require.Equal(t, codes.NotFound, status.Code(err), "the policy names none yet")
	_, err = e.client.GetPolicyQuestionnaire(e.ctx, &feedbackv1.GetPolicyQuestionnaireRequest{})
	require.Equal(t, []string{"policy_id"}, violations(t, err))
	_, err = e.client.SetPolicyQuestionnaire(e.ctx, &feedbackv1.SetPolicyQuestionnaireRequest{PolicyId: "policy-repair", QuestionnaireId: "discharge-short"})
	require.NoError(t, err)
	linked, err := e.client.GetPolicyQuestionnaire(e.ctx, &feedbackv1.GetPolicyQuestionnaireRequest{PolicyId: "policy-repair"})
	require.NoError(t, err)
	require.Equal(t, "discharge-short", linked.GetQuestionnaire().GetId(), "what dispatch shows the agent (GetTaskContext)")
	require.EqualValues(t, 2, linked.GetQuestionnaire().GetVersion(), "version 0 in the link: the latest")
	e.seedVisit(t, "v-1")
	e.seedVisit(t, "v-2")
	_, err = e.client.LogVisit(e.ctx, logRequest("v-1", typesv1.Rating_RATING_SATISFIED))
	require.Equal(t, []string{"answers"}, violations(t, err), "the latest version requires the pain score")
	old := logRequest("v-1", typesv1.Rating_RATING_SATISFIED)
	old.QuestionnaireVersion = 1
	resp, err := e.client.LogVisit(e.ctx, old)
	require.NoError(t, err)
	require.EqualValues(t, 1, resp.Record.QuestionnaireVersion)
	cur := logRequest("v-2", typesv1.Rating_RATING_SATISFIED)
	cur.Answers = append(cur.Answers, &typesv1.Answer{QuestionId: "pain", Score: i32(2)})
	resp, err = e.client.LogVisit(e.ctx, cur)
	require.NoError(t, err)
	require.EqualValues(t, 2, resp.Record.QuestionnaireVersion)
}

func TestAmendmentNeverChangesTheOriginal(t *testing.T) {
	t.Parallel()
	e := setup(t)
	e.seedVisit(t, "v-1")
	logged, err := e.client.LogVisit(e.ctx, logRequest("v-1", typesv1.Rating_RATING_SATISFIED))
	require.NoError(t, err)
	original := logged.Record

	e.clock.Advance(time.Hour)
	comments := "the customer asked for a call back about the invoice"
	amended, err := e.client.AmendVisitRecord(e.ctx, &feedbackv1.AmendVisitRecordRequest{
		RecordId: original.Id, By: "leader-1", Reason: "heard the recording again",
		Answers:  []*typesv1.Answer{{Aspect: "overall", Rating: typesv1.Rating_RATING_FAIRLY_SATISFIED}},
		Comments: &comments,
	})
	require.NoError(t, err)
	require.Equal(t, "leader-1", amended.Amendment.By)
	require.Equal(t, []*feedbackv1.FieldChange{
		{Field: "answers[overall]", OldValue: "RATING_SATISFIED", NewValue: "RATING_FAIRLY_SATISFIED"},
		{Field: "comments", NewValue: comments},
	}, amended.Amendment.Changes)

	_, err = e.client.SignOffVisitRecord(e.ctx, &feedbackv1.SignOffVisitRecordRequest{RecordId: "v-1", LeaderId: "leader-1", Approved: true})
	require.NoError(t, err)
	_, err = e.client.SignOffVisitRecord(e.ctx, &feedbackv1.SignOffVisitRecordRequest{RecordId: original.Id, LeaderId: "leader-2"})
	require.Equal(t, []string{"note"}, violations(t, err), "a rejection says what is wrong")

	got, err := e.client.GetVisitRecord(e.ctx, &feedbackv1.GetVisitRecordRequest{Id: original.Id})
	require.NoError(t, err)
	require.True(t, proto.Equal(original, got.Record), "seed 004: the record as logged is never changed")
	require.Len(t, got.Amendments, 1)
	require.Equal(t, "heard the recording again", got.Amendments[0].Reason)
	require.Equal(t, e.clock.Now(), got.Amendments[0].At.AsTime())
	require.Equal(t, typesv1.Rating_RATING_FAIRLY_SATISFIED, got.Current.Answers[0].Rating)
	require.Equal(t, comments, got.Current.Comments)
	require.Len(t, got.SignOffs, 1)
	require.True(t, got.SignOffs[0].Approved)

	_, err = e.client.AmendVisitRecord(e.ctx, &feedbackv1.AmendVisitRecordRequest{RecordId: original.Id, By: "leader-1", Comments: &comments})
	require.Equal(t, []string{"reason"}, violations(t, err), "seed 004: a correction says why")
	_, err = e.client.AmendVisitRecord(e.ctx, &feedbackv1.AmendVisitRecordRequest{RecordId: original.Id, By: "x", Reason: "y",
		Answers: []*typesv1.Answer{{Aspect: "overall"}}})
	require.Equal(t, []string{"answers[0].rating"}, violations(t, err))
	_, err = e.client.AmendVisitRecord(e.ctx, &feedbackv1.AmendVisitRecordRequest{RecordId: "nope", By: "x", Reason: "y", Comments: &comments})
	require.Equal(t, codes.NotFound, status.Code(err))

	_, err = e.pool.Exec(e.ctx, `UPDATE record_amendments SET reason = 'nothing'`)
	require.ErrorContains(t, err, "append-only")
	_, err = e.pool.Exec(e.ctx, `DELETE FROM record_sign_offs`)
	require.ErrorContains(t, err, "append-only")
	require.Len(t, e.outbox(t), 1, "an amendment publishes nothing: analytics counts what the customer said at the visit")
}

func TestOnSiteVisitNeedsTheCustomersSignature(t *testing.T) {
	t.Parallel()
	e := setup(t)
	e.seedVisit(t, "v-1")
	req := logRequest("v-1", typesv1.Rating_RATING_SATISFIED)
	req.Channel = typesv1.Channel_CHANNEL_ONSITE
	_, err := e.client.LogVisit(e.ctx, req)
	require.Equal(t, []string{"signature_ref"}, violations(t, err), "seed 000: on site needs a signature")
	require.Zero(t, e.count(t, "visit_records"))
	req.SignatureRef = "sig-1"
	resp, err := e.client.LogVisit(e.ctx, req)
	require.NoError(t, err)
	require.Equal(t, "sig-1", resp.Record.SignatureRef)
}

// The loop of seeds 004 and 000: a complaint that is resolved, confirmed
// unsatisfied, re-resolved and confirmed satisfied produces the right events
// in order, and its history tells the whole story.
func TestComplaintLoopUntilSatisfied(t *testing.T) {
	t.Parallel()
	e := setup(t)
	e.seedVisit(t, "v-1")
	resp, err := e.client.LogVisit(e.ctx, logRequest("v-1", typesv1.Rating_RATING_UNSATISFIED,
		&typesv1.Problem{Category: "service_quality", Description: "the technician was two hours late"}))
	require.NoError(t, err)
	id := resp.Record.ComplaintIds[0]

	_, err = e.client.AcknowledgeComplaint(e.ctx, &feedbackv1.AcknowledgeComplaintRequest{ComplaintId: id, By: "after-sales-1"})
	require.NoError(t, err)
	_, err = e.client.ResolveComplaint(e.ctx, &feedbackv1.ResolveComplaintRequest{ComplaintId: id, By: "after-sales-1"})
	require.Equal(t, []string{"root_cause", "action"}, violations(t, err))
	e.clock.Advance(time.Hour)
	res, err := e.client.ResolveComplaint(e.ctx, &feedbackv1.ResolveComplaintRequest{ComplaintId: id, By: "after-sales-1",
		RootCause: "dispatch overbooked the technician", Action: "apologised; capped bookings per technician"})
	require.NoError(t, err)
	require.Equal(t, "resolved", res.Complaint.Status)
	resolved := &eventsv1.ComplaintResolved{}
	e.last(t, stream.SubjectComplaintResolved, resolved)
	require.Equal(t, id, resolved.ComplaintId)
	require.Equal(t, "cust-v-1", resolved.Customer.GetId(), "the scheduler plans the confirmation visit for this customer")
	require.Equal(t, "svc-v-1", resolved.ServiceId)
	require.Equal(t, typesv1.Severity_SEVERITY_GENERAL, resolved.Severity)
	require.False(t, resolved.NoFollowUp, "a confirmation visit is planned")

	// The scheduler's confirmation visit names the complaint (VisitDue.complaint_id).
	e.seedVisitWith(t, visit.Visit{TenantID: "default", VisitID: "v-confirm-1", CustomerID: "cust-v-1", ServiceID: "svc-v-1",
		Channel: typesv1.Channel_CHANNEL_PHONE, ComplaintID: id, OrgUnit: "branch-north"})
	e.clock.Advance(24 * time.Hour)
	confirm := logRequest("v-confirm-1", typesv1.Rating_RATING_UNSATISFIED)
	confirm.Comments = "still late the second time"
	c1, err := e.client.LogVisit(e.ctx, confirm)
	require.NoError(t, err)
	require.Equal(t, id, c1.Record.ConfirmedComplaintId)
	require.Empty(t, c1.Record.ComplaintIds, "the complaint is reopened, not duplicated")
	reopened := &eventsv1.ComplaintReopened{}
	e.last(t, stream.SubjectComplaintReopened, reopened)
	require.EqualValues(t, 1, reopened.Level)
	require.Empty(t, reopened.Reason, "events carry no free text")
	escalated := &eventsv1.ComplaintEscalated{}
	e.last(t, stream.SubjectComplaintEscalated, escalated)
	require.EqualValues(t, 1, escalated.Level, "escalated one level")
	require.Equal(t, "urgent", escalated.Severity)
	require.Equal(t, e.clock.Now().Add(7*24*time.Hour), escalated.Deadline.AsTime(), "a new deadline at the next level")
	require.Equal(t, "a-1", escalated.OwnerAgentId, "seed 002: the first owner stays the owner")

	_, err = e.client.ResolveComplaint(e.ctx, &feedbackv1.ResolveComplaintRequest{ComplaintId: id, By: "after-sales-lead",
		RootCause: "the route planner ignored traffic", Action: "technician assigned by district"})
	require.NoError(t, err)
	// A confirmation named in the request, without the visit naming it.
	e.seedVisit(t, "v-confirm-2")
	confirm = logRequest("v-confirm-2", typesv1.Rating_RATING_SATISFIED)
	confirm.ComplaintId = id
	_, err = e.client.LogVisit(e.ctx, confirm)
	require.NoError(t, err)

	require.Equal(t, []string{
		"visit.logged", "complaint.escalated", // the first visit
		"complaint.acknowledged", "complaint.resolved",
		"visit.logged", "complaint.reopened", "complaint.escalated", // unsatisfied confirmation
		"complaint.resolved",
		"visit.logged", "complaint.closed", // satisfied confirmation
	}, e.subjects(t))
	closed := &eventsv1.ComplaintClosed{}
	e.last(t, stream.SubjectComplaintClosed, closed)
	require.Equal(t, "satisfied", closed.Outcome)

	got, err := e.client.GetComplaint(e.ctx, &feedbackv1.GetComplaintRequest{Id: id})
	require.NoError(t, err)
	require.Equal(t, "closed", got.Complaint.Status)
	require.EqualValues(t, 1, got.Complaint.Level)
	require.Equal(t, "satisfied", got.Complaint.Outcome)
	var kinds []string
	for _, s := range got.History {
		kinds = append(kinds, s.Kind)
	}
	require.Equal(t, []string{"opened", "acknowledged", "resolved", "reopened", "resolved", "closed"}, kinds)

	// Closed is the end: nothing moves it any more.
	_, err = e.client.ReopenComplaint(e.ctx, &feedbackv1.ReopenComplaintRequest{ComplaintId: id, By: "m", Reason: "r"})
	require.Equal(t, codes.FailedPrecondition, status.Code(err), "%v", err)
	e.seedVisit(t, "v-confirm-3")
	again := logRequest("v-confirm-3", typesv1.Rating_RATING_SATISFIED)
	again.ComplaintId = id
	_, err = e.client.LogVisit(e.ctx, again)
	require.Equal(t, codes.FailedPrecondition, status.Code(err), "%v", err)
}

func TestConfirmationVisitNeedsTheOverallRating(t *testing.T) {
	t.Parallel()
	e := setup(t)
	e.seedVisit(t, "v-1")
	resp, err := e.client.LogVisit(e.ctx, logRequest("v-1", typesv1.Rating_RATING_UNSATISFIED))
	require.NoError(t, err)
	id := resp.Record.ComplaintIds[0]
	_, err = e.client.ResolveComplaint(e.ctx, &feedbackv1.ResolveComplaintRequest{ComplaintId: id, By: "m", RootCause: "c", Action: "a"})
	require.NoError(t, err)
	e.seedVisit(t, "v-2")
	req := &feedbackv1.LogVisitRequest{VisitId: "v-2", AgentId: "a-1", ComplaintId: id,
		Answers: []*typesv1.Answer{{Aspect: "staff_attitude", Rating: typesv1.Rating_RATING_SATISFIED}}}
	_, err = e.client.LogVisit(e.ctx, req)
	require.Equal(t, []string{"answers"}, violations(t, err))
	req.ComplaintId = "nope"
	_, err = e.client.LogVisit(e.ctx, req)
	require.Equal(t, []string{"complaint_id"}, violations(t, err))
}

func TestManagerClosesWithAReason(t *testing.T) {
	t.Parallel()
	e := setup(t)
	e.seedVisit(t, "v-1")
	resp, err := e.client.LogVisit(e.ctx, logRequest("v-1", typesv1.Rating_RATING_UNSATISFIED))
	require.NoError(t, err)
	id := resp.Record.ComplaintIds[0]
	_, err = e.client.CloseComplaint(e.ctx, &feedbackv1.CloseComplaintRequest{ComplaintId: id, By: "manager-1"})
	require.Equal(t, []string{"reason"}, violations(t, err))
	_, err = e.client.ReopenComplaint(e.ctx, &feedbackv1.ReopenComplaintRequest{ComplaintId: id, By: "m", Reason: "r"})
	require.Equal(t, codes.FailedPrecondition, status.Code(err), "only a resolved complaint is reopened")
	c, err := e.client.CloseComplaint(e.ctx, &feedbackv1.CloseComplaintRequest{ComplaintId: id, By: "manager-1", Reason: "customer moved abroad"})
	require.NoError(t, err)
	require.Equal(t, "closed_by_manager", c.Complaint.Outcome)
	closed := &eventsv1.ComplaintClosed{}
	e.last(t, stream.SubjectComplaintClosed, closed)
	require.Equal(t, []string{"closed_by_manager", "", "manager-1"}, []string{closed.Outcome, closed.Reason, closed.By}, "events carry no free text")
	require.Equal(t, "customer moved abroad", c.Complaint.CloseReason, "feedback's API shows it")
	_, err = e.client.AcknowledgeComplaint(e.ctx, &feedbackv1.AcknowledgeComplaintRequest{ComplaintId: "nope", By: "x"})
	require.Equal(t, codes.NotFound, status.Code(err))
	open, err := e.client.ListComplaints(e.ctx, &feedbackv1.ListComplaintsRequest{Status: "open"})
	require.NoError(t, err)
	require.Empty(t, open.Complaints)
	mine, err := e.client.ListComplaints(e.ctx, &feedbackv1.ListComplaintsRequest{Department: "service_manager"})
	require.NoError(t, err)
	require.Len(t, mine.Complaints, 1)
	other, err := e.client.ListComplaints(e.ctx, &feedbackv1.ListComplaintsRequest{Department: "after_sales"})
	require.NoError(t, err)
	require.Empty(t, other.Complaints)
	_, err = e.client.ListComplaints(e.ctx, &feedbackv1.ListComplaintsRequest{Status: "pending"})
	require.Equal(t, []string{"status"}, violations(t, err))
}

func TestPromisedReplyRequestsAFollowUp(t *testing.T) {
	t.Parallel()
	e := setup(t)
	e.seedVisit(t, "v-1")
	req := logRequest("v-1", typesv1.Rating_RATING_FAIRLY_SATISFIED)
	promised := e.clock.Now().Add(72 * time.Hour)
	req.PromisedReplies = []*feedbackv1.PromisedReply{{Question: "when will the spare part arrive?", PromisedAt: timestamppb.New(promised)}}
	resp, err := e.client.LogVisit(e.ctx, req)
	require.NoError(t, err)
	require.Len(t, resp.Record.PromisedReplies, 1)
	require.Equal(t, []string{"visit.logged", "followup.requested"}, e.subjects(t))
	ev := &eventsv1.FollowUpRequested{}
	e.last(t, stream.SubjectFollowUpRequested, ev)
	require.Equal(t, "v-1", ev.PreviousVisitId)
	require.Equal(t, "cust-v-1", ev.CustomerId)
	require.Equal(t, promised, ev.DueAt.AsTime(), "seed 000: the follow-up is due when the reply was promised")
	require.Equal(t, typesv1.Channel_CHANNEL_PHONE, ev.Channel, "the record's channel")
	require.Contains(t, ev.Reason, "spare part")
}

func TestOpenLetterAnswersManyComplaints(t *testing.T) {
	t.Parallel()
	e := setup(t)
	var ids []string
	for _, v := range []string{"v-1", "v-2", "v-3"} {
		e.seedVisit(t, v)
		resp, err := e.client.LogVisit(e.ctx, logRequest(v, typesv1.Rating_RATING_UNSATISFIED,
			&typesv1.Problem{Category: "parking", Description: "no visitor parking"}))
		require.NoError(t, err)
		ids = append(ids, resp.Record.ComplaintIds...)
	}
	letter, err := e.client.CreateOpenLetter(e.ctx, &feedbackv1.CreateOpenLetterRequest{Title: "致全体业主的一封信",
		Body: "visitor parking opens on level B2 next month", By: "manager-1", ComplaintIds: ids[:2]})
	require.NoError(t, err)
	for i, id := range ids {
		got, err := e.client.GetComplaint(e.ctx, &feedbackv1.GetComplaintRequest{Id: id})
		require.NoError(t, err)
		if i < 2 {
			require.Equal(t, []string{letter.Letter.Id}, got.Complaint.OpenLetterIds, "seed 000: the letter is filed with each complaint")
		} else {
			require.Empty(t, got.Complaint.OpenLetterIds)
		}
	}
	_, err = e.client.CreateOpenLetter(e.ctx, &feedbackv1.CreateOpenLetterRequest{Title: "t", Body: "b", By: "m", ComplaintIds: []string{ids[0], "nope"}})
	require.Equal(t, codes.NotFound, status.Code(err))
	require.Equal(t, 1, e.count(t, "open_letters"), "nothing of the refused letter is stored")
	_, err = e.client.CreateOpenLetter(e.ctx, &feedbackv1.CreateOpenLetterRequest{ComplaintIds: []string{ids[0], ids[0]}})
	require.Equal(t, []string{"title", "body", "by", "complaint_ids[1]"}, violations(t, err))
}

// Seeds 000, 001 and 004: supervisors spot-check a reproducible sample of
// each agent's records and score them against a checklist.
func TestSampleAndReview(t *testing.T) {
	t.Parallel()
	e := setup(t)
	start := e.clock.Now()
	for i := range 8 {
		id := "v-" + string(rune('a'+i))
		e.seedVisit(t, id)
		_, err := e.client.LogVisit(e.ctx, logRequest(id, typesv1.Rating_RATING_SATISFIED))
		require.NoError(t, err)
		e.clock.Advance(time.Hour)
	}
	period := &feedbackv1.SampleForReviewRequest{AgentId: "a-1", PeriodStart: timestamppb.New(start), PeriodEnd: timestamppb.New(start.Add(7 * 24 * time.Hour))}
	first, err := e.client.SampleForReview(e.ctx, period)
	require.NoError(t, err)
	require.EqualValues(t, 8, first.Population)
	require.Len(t, first.Records, 3, "3 a week by default (seed 000)")
	again, err := e.client.SampleForReview(e.ctx, period)
	require.NoError(t, err)
	for i := range first.Records {
		require.Equal(t, first.Records[i].Id, again.Records[i].Id, "the same request draws the same sample")
	}
	_, err = e.client.SampleForReview(e.ctx, &feedbackv1.SampleForReviewRequest{AgentId: "a-1", PeriodStart: timestamppb.New(start), PeriodEnd: timestamppb.New(start)})
	require.Equal(t, []string{"period_end"}, violations(t, err))

	scores := []*feedbackv1.ChecklistScore{{Item: "identity_confirmed", Score: 5}, {Item: "purpose_stated", Score: 5},
		{Item: "script_followed", Score: 4}, {Item: "answers_complete", Score: 3, Comment: "skipped parking"}}
	rec := first.Records[0]
	_, err = e.client.SubmitReview(e.ctx, &feedbackv1.SubmitReviewRequest{RecordId: rec.Id, ReviewerId: "a-1", Scores: scores})
	require.Equal(t, []string{"reviewer_id"}, violations(t, err), "no one reviews their own record")
	_, err = e.client.SubmitReview(e.ctx, &feedbackv1.SubmitReviewRequest{RecordId: rec.Id, ReviewerId: "qa-1", Scores: scores[:3]})
	require.Equal(t, []string{"scores"}, violations(t, err))
	r, err := e.client.SubmitReview(e.ctx, &feedbackv1.SubmitReviewRequest{RecordId: rec.Id, ReviewerId: "qa-1", Scores: scores, Comments: "good call"})
	require.NoError(t, err)
	require.EqualValues(t, 85, r.Review.Score) // 17 of 20
	ev := &eventsv1.ReviewSubmitted{}
	e.last(t, stream.SubjectReviewSubmitted, ev)
	require.Equal(t, []string{r.Review.Id, rec.Id, "a-1", "qa-1", "branch-north"}, []string{ev.ReviewId, ev.RecordId, ev.AgentId, ev.ReviewerId, ev.OrgUnit})
	require.EqualValues(t, 85, ev.Score)
}

func TestConfiguredPolicyQuestionnaires(t *testing.T) {
	t.Parallel()
	e := setup(t)
	require.ErrorContains(t, e.app.ConfigurePolicies(e.ctx, map[string]string{"p": "nope"}), "not a seed template")
	require.NoError(t, e.app.ConfigurePolicies(e.ctx, map[string]string{"policy-repair": questionnaire.SeedAppliance}))
	e.seedVisit(t, "v-1")
	e.seedVisit(t, "v-2")
	// The contract's minimal JSON still works with a seed template: only the overall rating is required.
	resp, err := e.client.LogVisit(e.ctx, logRequest("v-1", typesv1.Rating_RATING_SATISFIED))
	require.NoError(t, err)
	require.Equal(t, questionnaire.SeedAppliance, resp.Record.QuestionnaireId)
	// A tenant's own entry comes before configuration's.
	_, err = e.client.SetPolicyQuestionnaire(e.ctx, &feedbackv1.SetPolicyQuestionnaireRequest{PolicyId: "policy-repair", QuestionnaireId: questionnaire.SeedProperty})
	require.NoError(t, err)
	resp, err = e.client.LogVisit(e.ctx, logRequest("v-2", typesv1.Rating_RATING_SATISFIED))
	require.NoError(t, err)
	require.Equal(t, questionnaire.SeedProperty, resp.Record.QuestionnaireId)
}

func TestListVisitRecordsForSignOff(t *testing.T) {
	t.Parallel()
	e := setup(t)
	var ids []string // newest first
	for i, agent := range []string{"a-1", "a-2", "a-1", "a-1"} {
		v := fmt.Sprintf("v-%d", i)
		e.seedVisit(t, v)
		req := logRequest(v, typesv1.Rating_RATING_SATISFIED)
		req.AgentId = agent
		resp, err := e.client.LogVisit(e.ctx, req)
		require.NoError(t, err)
		ids = append([]string{resp.Record.Id}, ids...)
		e.clock.Advance(time.Minute)
	}
	_, err := e.client.SignOffVisitRecord(e.ctx, &feedbackv1.SignOffVisitRecordRequest{RecordId: ids[0], LeaderId: "leader-1", Approved: true})
	require.NoError(t, err)

	var got []string
	token := ""
	for {
		resp, err := e.client.ListVisitRecords(e.ctx, &feedbackv1.ListVisitRecordsRequest{AgentId: "a-1", PageSize: 2, PageToken: token})
		require.NoError(t, err)
		for _, r := range resp.Records {
			got = append(got, r.Id)
		}
		if token = resp.NextPageToken; token == "" {
			break
		}
	}
	require.Equal(t, []string{ids[0], ids[1], ids[3]}, got)
	unsigned, err := e.client.ListVisitRecords(e.ctx, &feedbackv1.ListVisitRecordsRequest{UnsignedOnly: true})
	require.NoError(t, err)
	require.Len(t, unsigned.Records, 3, "the signed-off record is done")
	require.Equal(t, ids[1], unsigned.Records[0].Id)
}
