package app

import (
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/proto"

	eventsv1 "github.com/huifang/huifang/proto/huifang/events/v1"
	typesv1 "github.com/huifang/huifang/proto/huifang/types/v1"

	"github.com/huifang/huifang/pkg/stream"
	"github.com/huifang/huifang/services/feedback/internal/complaint"
	"github.com/huifang/huifang/services/feedback/internal/questionnaire"
	"github.com/huifang/huifang/services/feedback/internal/record"
	"github.com/huifang/huifang/services/feedback/internal/visit"
)

func TestVisitLoggedCarriesVisitContext(t *testing.T) {
	due := time.Date(2025, 3, 1, 9, 0, 0, 0, time.UTC)
	v := visit.Visit{
		TenantID: "default", VisitID: "v-1", CustomerID: "c-1", ServiceID: "s-1", PolicyID: "p-1",
		Channel: typesv1.Channel_CHANNEL_PHONE, DueAt: due, Deadline: due.Add(48 * time.Hour),
		OrgUnit: "branch-1", ServiceType: "repair",
	}
	d := draft("v-1", typesv1.Rating_RATING_SATISFIED)
	d.Comments = "fine, says 王芳 (+8613800138000)"
	d.Answers[0].Comment = "call 王芳"
	d.Problems = []record.Problem{{Category: "service_quality", Description: "王芳's fridge"}}
	record.Normalize(&d)
	rec := record.New("r-1", d, v, d.Answers, nil, due.Add(time.Hour))
	ev := visitLogged(rec, v, nil)
	require.NotEmpty(t, ev.EventId)
	require.Equal(t, "r-1", ev.RecordId)
	require.Equal(t, "a-1", ev.AgentId)
	require.Empty(t, ev.Comments, "events carry no free text")
	require.Len(t, ev.Answers, 1)
	require.Empty(t, ev.Answers[0].Comment)
	require.Len(t, ev.Problems, 1)
	require.Equal(t, "service_quality", ev.Problems[0].Category)
	require.Empty(t, ev.Problems[0].Description)
	require.Equal(t, "fine, says 王芳 (+8613800138000)", rec.Comments, "the record keeps it")
	require.Equal(t, due, ev.DueAt.AsTime())
	require.Equal(t, due.Add(48*time.Hour), ev.Deadline.AsTime())
	require.Nil(t, ev.ServiceCompletedAt, "unset when the visit did not say")
	require.Nil(t, ev.Nps, "no questionnaire, no NPS")
	require.Equal(t, []string{"branch-1", "repair", "p-1", "c-1", "s-1"}, []string{ev.OrgUnit, ev.ServiceType, ev.PolicyId, ev.CustomerId, ev.ServiceId})

	nine := int32(9)
	var auto questionnaire.Questionnaire
	for _, q := range questionnaire.Seeds() {
		if q.ID == questionnaire.SeedAuto {
			auto = q
		}
	}
	rec.Answers = append(rec.Answers, questionnaire.Answer{QuestionID: "recommend", Aspect: "recommend", Score: &nine})
	require.EqualValues(t, 9, visitLogged(rec, v, &auto).GetNps())
}

// The events each step of the loop stands for, built from the complaint
// after the step; ComplaintEscalated is built and written by escalated alone.
func TestStepsWriteTheirEvents(t *testing.T) {
	t.Parallel()
	e := setup(t)
	id := e.unsatisfied(t, "v-1")
	got, err := e.app.GetComplaint(e.ctx, "", id)
	require.NoError(t, err)
	c := got.Complaint
	c.Level, c.RootCause, c.Action, c.WrittenReplyOnly = 2, "seal", "replaced", true
	at := e.clock.Now()
	before := len(e.outbox(t))
	require.NoError(t, pgx.BeginFunc(e.ctx, e.pool, func(tx pgx.Tx) error {
		for _, s := range []complaint.Step{
			{Kind: complaint.StepEscalated, By: "system", At: at.Add(time.Hour), Level: 2},
			{Kind: complaint.StepResolved, By: "m-1", At: at.Add(2 * time.Hour), Level: 2},
			{Kind: complaint.StepRaisedAgain, By: "a-2", At: at.Add(3 * time.Hour), Level: 2},
		} {
			if err := logStep(e.ctx, tx, c, s); err != nil {
				return err
			}
		}
		return nil
	}))
	rows := e.outbox(t)[before:]
	require.Len(t, rows, 2, "raised_again writes no event")

	esc := &eventsv1.ComplaintEscalated{}
	require.Equal(t, stream.SubjectComplaintEscalated, rows[0].Subject)
	require.NoError(t, proto.Unmarshal(rows[0].Payload, esc))
	require.Equal(t, id, esc.ComplaintId)
	require.Equal(t, "branch-north", esc.OrgUnit)
	require.Equal(t, "service_manager", esc.Department)
	require.Equal(t, "a-1", esc.OwnerAgentId)
	require.True(t, esc.EscalatedAt.AsTime().Equal(at.Add(time.Hour)))
	require.True(t, esc.Deadline.AsTime().Equal(c.Deadline))
	require.EqualValues(t, 2, esc.Level)
	require.Equal(t, rows[0].ID, esc.EventId)
	require.Equal(t, "svc-v-1", esc.ServiceId)

	res := &eventsv1.ComplaintResolved{}
	require.Equal(t, stream.SubjectComplaintResolved, rows[1].Subject)
	require.NoError(t, proto.Unmarshal(rows[1].Payload, res))
	require.True(t, res.NoFollowUp, "the scheduler plans no confirmation visit")
	require.Equal(t, typesv1.Severity_SEVERITY_GENERAL, res.Severity)
	require.Equal(t, []string{"m-1", "", "", "cust-v-1"}, []string{res.By, res.RootCause, res.Action, res.Customer.GetId()}, "no free text")
	c.WrittenReplyOnly = false
	require.False(t, resolvedEvent(c, complaint.Step{At: at}).NoFollowUp)
	c.Severity = "major"
	require.Equal(t, typesv1.Severity_SEVERITY_MAJOR, resolvedEvent(c, complaint.Step{At: at}).Severity)

	got, err = e.app.GetComplaint(e.ctx, "", id)
	require.NoError(t, err)
	var kinds []string
	for _, s := range got.History {
		kinds = append(kinds, s.Kind)
	}
	require.Equal(t, []string{"opened", "escalated", "resolved", "raised_again"}, kinds)
}
