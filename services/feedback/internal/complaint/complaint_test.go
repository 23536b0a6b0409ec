package complaint_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/types/known/timestamppb"

	feedbackv1 "github.com/huifang/huifang/proto/huifang/feedback/v1"
	typesv1 "github.com/huifang/huifang/proto/huifang/types/v1"

	"github.com/huifang/huifang/services/feedback/internal/complaint"
	"github.com/huifang/huifang/services/feedback/internal/visit"
)

var defaults = complaint.MustRules(complaint.DefaultRulesSpec, complaint.DefaultDeadline)

func TestDefaultRules(t *testing.T) {
	day := 24 * time.Hour
	tests := []struct {
		category, department string
		deadline             time.Duration
	}{
		{"product_quality", "rnd_production", 30 * day},    // seed 001 routing, seed 003 improvement plan within 30 days
		{"service_quality", "after_sales", 7 * day},        // seed 001, seed 002 (cement)
		{"unsatisfied", "service_manager", 48 * time.Hour}, // seed 000 (auto dealer), seed 003 48 hours
		{"parking", "service_manager", 48 * time.Hour},     // seed 003: 48 hours
	}
	for _, tt := range tests {
		t.Run(tt.category, func(t *testing.T) {
			r := defaults.For(tt.category)
			require.Equal(t, tt.department, r.Department)
			require.Equal(t, "general", r.Severity)
			require.Equal(t, tt.deadline, r.Deadline)
		})
	}
}

func TestParseRules(t *testing.T) {
	r, err := complaint.ParseRules("billing=finance:urgent:3d, delivery=logistics, *=front_desk::12h", 48*time.Hour)
	require.NoError(t, err)
	require.Equal(t, complaint.Rule{Department: "finance", Severity: "urgent", Deadline: 72 * time.Hour}, r.For("billing"))
	require.Equal(t, complaint.Rule{Department: "logistics", Severity: "general", Deadline: 48 * time.Hour}, r.For("delivery"))
	require.Equal(t, complaint.Rule{Department: "front_desk", Severity: "general", Deadline: 12 * time.Hour}, r.For("other"))
	for _, bad := range []string{"billing", "Billing=x", "billing=", "billing=x:severe", "billing=x:general:-1h", "billing=x:general:2w", "a=b:general:1h:z"} {
		_, err := complaint.ParseRules(bad, time.Hour)
		require.Error(t, err, bad)
	}
}

func TestOpen(t *testing.T) {
	logged := time.Date(2025, 3, 1, 10, 0, 0, 0, time.UTC)
	answer := func(aspect string, r typesv1.Rating) *typesv1.Answer {
		return &typesv1.Answer{Aspect: aspect, Rating: r}
	}
	tests := []struct {
		name     string
		answers  []*typesv1.Answer
		problems []*typesv1.Problem
		comments string
		want     [][3]string // category, department, description
	}{
		{"satisfied opens nothing", []*typesv1.Answer{answer("overall", typesv1.Rating_RATING_SATISFIED)}, nil, "", nil},
		{"fairly satisfied opens nothing", []*typesv1.Answer{answer("overall", typesv1.Rating_RATING_FAIRLY_SATISFIED)}, nil, "", nil},
		{"unsatisfied aspect other than overall opens nothing", []*typesv1.Answer{
			answer("overall", typesv1.Rating_RATING_SATISFIED), answer("parking", typesv1.Rating_RATING_UNSATISFIED),
		}, nil, "", nil},
		{"unsatisfied without problem goes to the service manager (seed 000)",
			[]*typesv1.Answer{answer("overall", typesv1.Rating_RATING_UNSATISFIED)}, nil, "waited two hours",
			[][3]string{{"unsatisfied", "service_manager", "waited two hours"}}},
		{"unsatisfied without comments still has a description",
			[]*typesv1.Answer{answer("overall", typesv1.Rating_RATING_UNSATISFIED)}, nil, "",
			[][3]string{{"unsatisfied", "service_manager", "the customer rated the service unsatisfied and gave no reason"}}},
		{"problems open one complaint each (seed 001)",
			[]*typesv1.Answer{answer("overall", typesv1.Rating_RATING_UNSATISFIED)},
			[]*typesv1.Problem{{Category: "product_quality", Description: "leaks"}, {Category: "service_quality", Description: "rude"}}, "",
			[][3]string{{"product_quality", "rnd_production", "leaks"}, {"service_quality", "after_sales", "rude"}}},
		{"a problem is routed even when satisfied",
			[]*typesv1.Answer{answer("overall", typesv1.Rating_RATING_SATISFIED)},
			[]*typesv1.Problem{{Category: "billing", Description: "double charge"}}, "",
			[][3]string{{"billing", "service_manager", "double charge"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := &feedbackv1.VisitRecord{
				TenantId: "default", VisitId: "v-1", AgentId: "a-1", CustomerId: "c-1",
				Answers: tt.answers, Problems: tt.problems, Comments: tt.comments, LoggedAt: timestamppb.New(logged),
			}
			got := complaint.Open(rec, visit.Visit{ServiceID: "s-1", OrgUnit: "branch-1"}, defaults)
			require.Len(t, got, len(tt.want))
			for i, o := range got {
				c := o.Complaint
				require.Equal(t, tt.want[i], [3]string{c.Category, c.Department, c.Description})
				require.Equal(t, "general", c.Severity)
				require.Equal(t, "open", c.Status)
				require.Equal(t, "a-1", c.OwnerAgentId, "seed 002: first-contact ownership")
				require.Equal(t, logged.Add(defaults.For(c.Category).Deadline), c.Deadline.AsTime())
				require.Equal(t, defaults.For(c.Category).Deadline, o.Window)
				require.Equal(t, []string{"s-1", "branch-1"}, []string{c.ServiceId, c.OrgUnit})
				require.Equal(t, "c-1", c.CustomerId)
				require.Equal(t, "v-1", c.VisitId)
			}
		})
	}
}

func TestEscalated(t *testing.T) {
	at := timestamppb.New(time.Date(2025, 3, 1, 10, 0, 0, 0, time.UTC))
	c := &feedbackv1.Complaint{
		Id: "c-1", TenantId: "default", VisitId: "v-1", CustomerId: "cu-1", Category: "product_quality",
		Description: "leaks", Department: "rnd_production", Severity: "general", Status: "open",
		Deadline: at, CreatedAt: at, OwnerAgentId: "a-1", OrgUnit: "branch-1", Level: 2,
	}
	ev := complaint.Escalated("e-1", c, at.AsTime())
	require.Equal(t, "e-1", ev.EventId)
	require.Equal(t, "c-1", ev.ComplaintId)
	require.Equal(t, "branch-1", ev.OrgUnit)
	require.Equal(t, "rnd_production", ev.Department)
	require.Equal(t, "a-1", ev.OwnerAgentId)
	require.True(t, ev.EscalatedAt.AsTime().Equal(at.AsTime()))
	require.EqualValues(t, 2, ev.Level)
}

func TestOpenTakesTheProblemsSeverity(t *testing.T) {
	rec := &feedbackv1.VisitRecord{TenantId: "default", VisitId: "v-1", AgentId: "a-1", LoggedAt: timestamppb.Now(),
		Answers:  []*typesv1.Answer{{Aspect: "overall", Rating: typesv1.Rating_RATING_UNSATISFIED}},
		Problems: []*typesv1.Problem{{Category: "billing", Description: "x", Severity: typesv1.Severity_SEVERITY_MAJOR}}}
	got := complaint.Open(rec, visit.Visit{}, defaults)
	require.Len(t, got, 1)
	require.Equal(t, "major", got[0].Complaint.Severity, "seed 000: major (重点) complaints")
}

func TestConfirmationVisitOpensNoUnsatisfiedComplaint(t *testing.T) {
	rec := &feedbackv1.VisitRecord{TenantId: "default", VisitId: "v-2", AgentId: "a-1", LoggedAt: timestamppb.Now(), ConfirmedComplaintId: "c-1",
		Answers: []*typesv1.Answer{{Aspect: "overall", Rating: typesv1.Rating_RATING_UNSATISFIED}}}
	require.Empty(t, complaint.Open(rec, visit.Visit{}, defaults), "the confirmed complaint is reopened instead")
}

// The loop of seed 004: resolved, confirmed unsatisfied, reopened one level
// up, resolved again, confirmed satisfied, closed; and the transitions that
// do not fit a status are refused.
func TestLoop(t *testing.T) {
	t0 := time.Date(2025, 3, 1, 10, 0, 0, 0, time.UTC)
	c := &feedbackv1.Complaint{Id: "c-1", Status: "open", Severity: "general", Deadline: timestamppb.New(t0.Add(48 * time.Hour))}
	var se *complaint.StateError

	require.ErrorAs(t, complaint.Reopen(c, time.Hour, t0), &se, "an open complaint is not reopened")
	require.ErrorAs(t, complaint.Close(c, complaint.OutcomeSatisfied, "", t0), &se, "only a resolved complaint is confirmed")
	require.ErrorAs(t, complaint.Escalate(c, time.Hour, t0), &se, "not before its deadline")
	require.NoError(t, complaint.Acknowledge(c, t0))
	require.ErrorAs(t, complaint.Acknowledge(c, t0), &se)
	require.NoError(t, complaint.Resolve(c, "cause", "fix", t0.Add(time.Hour)))
	require.Equal(t, "resolved", c.Status)
	require.ErrorAs(t, complaint.Resolve(c, "cause", "fix", t0), &se)

	t1 := t0.Add(2 * time.Hour)
	require.NoError(t, complaint.Reopen(c, 7*24*time.Hour, t1))
	require.Equal(t, "open", c.Status)
	require.EqualValues(t, 1, c.Level)
	require.Equal(t, "urgent", c.Severity, "one level up: urgent (seed 000)")
	require.Equal(t, t1.Add(7*24*time.Hour), c.Deadline.AsTime())

	t2 := t1.Add(8 * 24 * time.Hour)
	require.NoError(t, complaint.Escalate(c, 7*24*time.Hour, t2), "overdue")
	require.EqualValues(t, 2, c.Level)
	require.Equal(t, "major", c.Severity)
	require.NoError(t, complaint.Resolve(c, "cause 2", "fix 2", t2))
	require.NoError(t, complaint.Close(c, complaint.OutcomeSatisfied, "confirmed", t2))
	require.Equal(t, "closed", c.Status)
	require.ErrorAs(t, complaint.Close(c, complaint.OutcomeClosedByManager, "again", t2), &se, "closed stays closed")
	require.ErrorAs(t, complaint.Reopen(c, time.Hour, t2), &se)
}

func TestRaise(t *testing.T) {
	require.Equal(t, "urgent", complaint.Raise("general"))
	require.Equal(t, "major", complaint.Raise("urgent"))
	require.Equal(t, "major", complaint.Raise("major"))
}

func TestKey(t *testing.T) {
	tests := []struct{ a, b string }{
		{"The technician came two hours late!", "the technician came  two hours late"},
		{"电梯坏了，没人修。", "电梯坏了 没人修"},
		{"Ｌｉｆｔ　ＢＲＯＫＥＮ（３号楼）", "lift broken (3号楼)"},
		{"  leak -- under the sink ", "Leak under the sink."},
	}
	for _, tt := range tests {
		require.Equal(t, complaint.Key(tt.a), complaint.Key(tt.b), "%q vs %q", tt.a, tt.b)
		require.NotEmpty(t, complaint.Key(tt.a))
	}
	require.NotEqual(t, complaint.Key("lift broken"), complaint.Key("lift noisy"))
	require.Empty(t, complaint.Key(" !!! "), "nothing to match on")
}

func TestOpenRecordsOneProblemOnceAndKeepsItsFlags(t *testing.T) {
	logged := time.Date(2025, 3, 1, 10, 0, 0, 0, time.UTC)
	rec := &feedbackv1.VisitRecord{TenantId: "default", VisitId: "v-1", AgentId: "a-1", CustomerId: "c-1", LoggedAt: timestamppb.New(logged),
		Answers: []*typesv1.Answer{{Aspect: "overall", Rating: typesv1.Rating_RATING_UNSATISFIED}},
		Problems: []*typesv1.Problem{
			{Category: "service_quality", Description: "Nobody answered the hotline.", Anonymous: true},
			{Category: "service_quality", Description: "nobody answered the hotline"},   // the same problem: once (seeds 000, 002)
			{Category: "billing", Description: "nobody answered the hotline"},           // another category: another complaint
			{Category: "billing", Description: "wrong invoice", WrittenReplyOnly: true}, // seed 000
		}}
	opened := complaint.Open(rec, visit.Visit{ServiceID: "s-1"}, defaults)
	require.Len(t, opened, 3)
	require.Equal(t, "nobodyansweredthehotline", opened[0].Key)
	require.True(t, opened[0].Complaint.Anonymous)
	require.True(t, complaint.NoFollowUp(opened[0].Complaint))
	require.Equal(t, "billing", opened[1].Complaint.Category)
	require.False(t, complaint.NoFollowUp(opened[1].Complaint))
	require.True(t, opened[2].Complaint.WrittenReplyOnly)
	for _, o := range opened {
		require.False(t, o.Attached)
		require.EqualValues(t, 1, o.Complaint.TimesRaised)
	}
}

func TestCloseWithWrittenReply(t *testing.T) {
	now := time.Date(2025, 3, 1, 10, 0, 0, 0, time.UTC)
	c := &feedbackv1.Complaint{Id: "c-1", Status: complaint.StatusResolved, Anonymous: true}
	require.NoError(t, complaint.CloseWithWrittenReply(c, now))
	require.Equal(t, complaint.StatusClosed, c.Status)
	require.Equal(t, complaint.OutcomeWrittenReply, c.Outcome)
	require.Contains(t, c.CloseReason, "anonymous")

	var se *complaint.StateError
	require.ErrorAs(t, complaint.CloseWithWrittenReply(&feedbackv1.Complaint{Id: "c-2", Status: complaint.StatusResolved}, now), &se, "a complaint that wants a follow-up")
	require.ErrorAs(t, complaint.CloseWithWrittenReply(&feedbackv1.Complaint{Id: "c-3", Status: complaint.StatusOpen, WrittenReplyOnly: true}, now), &se, "not resolved yet")
	ev := complaint.Resolved("e-1", &feedbackv1.Complaint{Id: "c-4", WrittenReplyOnly: true, CreatedAt: timestamppb.New(now)}, "m", now)
	require.True(t, ev.NoFollowUp, "the scheduler plans no confirmation visit")
	require.False(t, complaint.Resolved("e-2", &feedbackv1.Complaint{Id: "c-5", CreatedAt: timestamppb.New(now)}, "m", now).NoFollowUp)
}
