package complaint_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	typesv1 "github.com/huifang/huifang/proto/huifang/types/v1"

	"github.com/huifang/huifang/pkg/invalid"
	"github.com/huifang/huifang/services/feedback/internal/complaint"
	"github.com/huifang/huifang/services/feedback/internal/questionnaire"
	"github.com/huifang/huifang/services/feedback/internal/record"
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
	answer := func(aspect string, r typesv1.Rating) questionnaire.Answer {
		return questionnaire.Answer{Aspect: aspect, Rating: r}
	}
	tests := []struct {
		name     string
		answers  []questionnaire.Answer
		problems []record.Problem
		comments string
		want     [][3]string // category, department, description
	}{
		{"satisfied opens nothing", []questionnaire.Answer{answer("overall", typesv1.Rating_RATING_SATISFIED)}, nil, "", nil},
		{"fairly satisfied opens nothing", []questionnaire.Answer{answer("overall", typesv1.Rating_RATING_FAIRLY_SATISFIED)}, nil, "", nil},
		{"unsatisfied aspect other than overall opens nothing", []questionnaire.Answer{
			answer("overall", typesv1.Rating_RATING_SATISFIED), answer("parking", typesv1.Rating_RATING_UNSATISFIED),
		}, nil, "", nil},
		{"unsatisfied without problem goes to the service manager (seed 000)",
			[]questionnaire.Answer{answer("overall", typesv1.Rating_RATING_UNSATISFIED)}, nil, "waited two hours",
			[][3]string{{"unsatisfied", "service_manager", "waited two hours"}}},
		{"unsatisfied without comments still has a description",
			[]questionnaire.Answer{answer("overall", typesv1.Rating_RATING_UNSATISFIED)}, nil, "",
			[][3]string{{"unsatisfied", "service_manager", "the customer rated the service unsatisfied and gave no reason"}}},
		{"problems open one complaint each (seed 001)",
			[]questionnaire.Answer{answer("overall", typesv1.Rating_RATING_UNSATISFIED)},
			[]record.Problem{{Category: "product_quality", Description: "leaks"}, {Category: "service_quality", Description: "rude"}}, "",
			[][3]string{{"product_quality", "rnd_production", "leaks"}, {"service_quality", "after_sales", "rude"}}},
		{"a problem is routed even when satisfied",
			[]questionnaire.Answer{answer("overall", typesv1.Rating_RATING_SATISFIED)},
			[]record.Problem{{Category: "billing", Description: "double charge"}}, "",
			[][3]string{{"billing", "service_manager", "double charge"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := record.Record{
				TenantID: "default", VisitID: "v-1", AgentID: "a-1", CustomerID: "c-1",
				Answers: tt.answers, Problems: tt.problems, Comments: tt.comments, LoggedAt: logged, OccurredAt: logged,
			}
			got := complaint.Open(rec, visit.Visit{ServiceID: "s-1", OrgUnit: "branch-1"}, defaults)
			require.Len(t, got, len(tt.want))
			for i, o := range got {
				c := o.Complaint
				require.Equal(t, tt.want[i], [3]string{c.Category, c.Department, c.Description})
				require.Equal(t, "general", c.Severity)
				require.Equal(t, "open", c.Status)
				require.Equal(t, "a-1", c.OwnerAgentID, "seed 002: first-contact ownership")
				require.Equal(t, logged.Add(defaults.For(c.Category).Deadline), c.Deadline)
				require.Equal(t, defaults.For(c.Category).Deadline, c.Window)
				require.Equal(t, []string{"s-1", "branch-1"}, []string{c.ServiceID, c.OrgUnit})
				require.Equal(t, "c-1", c.CustomerID)
				require.Equal(t, "v-1", c.VisitID)
			}
		})
	}
}

func TestOpenTakesTheProblemsSeverity(t *testing.T) {
	rec := record.Record{TenantID: "default", VisitID: "v-1", AgentID: "a-1", LoggedAt: time.Now(),
		Answers:  []questionnaire.Answer{{Aspect: "overall", Rating: typesv1.Rating_RATING_UNSATISFIED}},
		Problems: []record.Problem{{Category: "billing", Description: "x", Severity: typesv1.Severity_SEVERITY_MAJOR}}}
	got := complaint.Open(rec, visit.Visit{}, defaults)
	require.Len(t, got, 1)
	require.Equal(t, "major", got[0].Complaint.Severity, "seed 000: major (重点) complaints")
}

func TestConfirmationVisitOpensNoUnsatisfiedComplaint(t *testing.T) {
	rec := record.Record{TenantID: "default", VisitID: "v-2", AgentID: "a-1", LoggedAt: time.Now(), ConfirmedComplaintID: "c-1",
		Answers: []questionnaire.Answer{{Aspect: "overall", Rating: typesv1.Rating_RATING_UNSATISFIED}}}
	require.Empty(t, complaint.Open(rec, visit.Visit{}, defaults), "the confirmed complaint is reopened instead")
}

// The loop of seed 004: resolved, confirmed unsatisfied, reopened one level
// up, resolved again, confirmed satisfied, closed; and the transitions that
// do not fit a status are refused.
func TestLoop(t *testing.T) {
	t0 := time.Date(2025, 3, 1, 10, 0, 0, 0, time.UTC)
	c := &complaint.Complaint{ID: "c-1", Status: "open", Severity: "general", Deadline: t0.Add(48 * time.Hour), Window: 7 * 24 * time.Hour}
	var se *complaint.StateError
	fails := func(_ complaint.Step, err error) error { return err }

	require.ErrorAs(t, fails(c.Reopen("m", "r", t0)), &se, "an open complaint is not reopened")
	require.ErrorAs(t, fails(c.Close("a-1", complaint.OutcomeSatisfied, "", t0)), &se, "only a resolved complaint is confirmed")
	require.ErrorAs(t, fails(c.Escalate(t0)), &se, "not before its deadline")
	step, err := c.Acknowledge("dept-1", t0)
	require.NoError(t, err)
	require.Equal(t, complaint.Step{Kind: "acknowledged", By: "dept-1", At: t0}, step)
	require.ErrorAs(t, fails(c.Acknowledge("dept-1", t0)), &se)
	step, err = c.Resolve(complaint.Resolution{By: "dept-1", RootCause: "cause", Action: "fix"}, t0.Add(time.Hour))
	require.NoError(t, err)
	require.Equal(t, "resolved", c.Status)
	require.Equal(t, "root cause: cause; action: fix", step.Detail)
	require.ErrorAs(t, fails(c.Resolve(complaint.Resolution{RootCause: "cause", Action: "fix"}, t0)), &se)

	t1 := t0.Add(2 * time.Hour)
	step, err = c.Reopen("m", "still late", t1)
	require.NoError(t, err)
	require.Equal(t, complaint.Step{Kind: "reopened", By: "m", At: t1, Detail: "still late", Level: 1}, step)
	require.Equal(t, "open", c.Status)
	require.EqualValues(t, 1, c.Level)
	require.Equal(t, "urgent", c.Severity, "one level up: urgent (seed 000)")
	require.Equal(t, t1.Add(7*24*time.Hour), c.Deadline)

	t2 := t1.Add(8 * 24 * time.Hour)
	require.True(t, c.Overdue(t2))
	step, err = c.Escalate(t2)
	require.NoError(t, err, "overdue")
	require.Equal(t, complaint.Step{Kind: "escalated", By: "system", At: t2, Level: 2,
		Detail: "deadline " + t1.Add(7*24*time.Hour).Format(time.RFC3339) + " passed"}, step)
	require.EqualValues(t, 2, c.Level)
	require.Equal(t, "major", c.Severity)
	require.False(t, c.Overdue(t2), "once per missed deadline")
	require.NoError(t, fails(c.Resolve(complaint.Resolution{RootCause: "cause 2", Action: "fix 2"}, t2)))
	require.False(t, c.Overdue(t2.Add(30*24*time.Hour)), "a resolved complaint waits for the customer")
	step, err = c.Close("a-1", complaint.OutcomeSatisfied, "confirmed", t2)
	require.NoError(t, err)
	require.Equal(t, "satisfied: confirmed", step.Detail)
	require.Equal(t, "closed", c.Status)
	require.ErrorAs(t, fails(c.Close("m", complaint.OutcomeClosedByManager, "again", t2)), &se, "closed stays closed")
	require.ErrorAs(t, fails(c.Reopen("m", "r", t2)), &se)
}

// Seed 004: the confirmation visit settles a resolved complaint by the
// customer's overall rating.
func TestConfirm(t *testing.T) {
	now := time.Date(2025, 3, 1, 10, 0, 0, 0, time.UTC)
	resolved := func() *complaint.Complaint {
		return &complaint.Complaint{ID: "c-1", Status: complaint.StatusResolved, Severity: "general", Window: 48 * time.Hour}
	}
	visitBy := func(r typesv1.Rating, comments, comment string) record.Record {
		return record.Record{VisitID: "v-9", AgentID: "a-1", Comments: comments,
			Answers: []questionnaire.Answer{{Aspect: "overall", Rating: r, Comment: comment}}}
	}

	c := resolved()
	step, err := c.Confirm(visitBy(typesv1.Rating_RATING_FAIRLY_SATISFIED, "", ""), now)
	require.NoError(t, err)
	require.Equal(t, []string{"closed", "satisfied", "confirmed by the customer in visit v-9"}, []string{c.Status, c.Outcome, c.CloseReason})
	require.Equal(t, complaint.Step{Kind: "closed", By: "a-1", At: now, Detail: "satisfied: confirmed by the customer in visit v-9"}, step)

	for _, tt := range []struct{ comments, comment, reason string }{
		{" still late ", "slow", "still late"},
		{"", "slow", "slow"},
		{"", "", "the customer is not satisfied with the resolution"},
	} {
		c = resolved()
		step, err = c.Confirm(visitBy(typesv1.Rating_RATING_UNSATISFIED, tt.comments, tt.comment), now)
		require.NoError(t, err)
		require.Equal(t, "open", c.Status)
		require.EqualValues(t, 1, c.Level)
		require.Equal(t, "urgent", c.Severity)
		require.Equal(t, now.Add(48*time.Hour), c.Deadline)
		require.Equal(t, complaint.Step{Kind: "reopened", By: "a-1", At: now, Detail: "confirmation visit v-9: " + tt.reason, Level: 1}, step)
	}
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
	rec := record.Record{TenantID: "default", VisitID: "v-1", AgentID: "a-1", CustomerID: "c-1", LoggedAt: logged, OccurredAt: logged,
		Answers: []questionnaire.Answer{{Aspect: "overall", Rating: typesv1.Rating_RATING_UNSATISFIED}},
		Problems: []record.Problem{
			{Category: "service_quality", Description: "Nobody answered the hotline.", Anonymous: true},
			{Category: "service_quality", Description: "nobody answered the hotline"},   // the same problem: once (seeds 000, 002)
			{Category: "billing", Description: "nobody answered the hotline"},           // another category: another complaint
			{Category: "billing", Description: "wrong invoice", WrittenReplyOnly: true}, // seed 000
		}}
	opened := complaint.Open(rec, visit.Visit{ServiceID: "s-1"}, defaults)
	require.Len(t, opened, 3)
	require.Equal(t, "nobodyansweredthehotline", opened[0].Complaint.Key)
	require.True(t, opened[0].Complaint.Anonymous)
	require.True(t, opened[0].Complaint.NoFollowUp())
	require.Equal(t, "billing", opened[1].Complaint.Category)
	require.False(t, opened[1].Complaint.NoFollowUp())
	require.True(t, opened[2].Complaint.WrittenReplyOnly)
	for _, o := range opened {
		require.False(t, o.Attached)
		require.EqualValues(t, 1, o.Complaint.TimesRaised)
		require.True(t, o.Matchable())
	}
	require.Equal(t, complaint.Step{Kind: "opened", By: "a-1", At: logged, Detail: "after_sales"}, opened[0].Complaint.OpenedStep())

	// A problem raised again attaches to the open complaint: a step in its history, nothing opened.
	o := opened[0]
	o.Attach("c-old")
	require.True(t, o.Attached)
	require.Equal(t, "c-old", o.Complaint.ID)
	rec.ID = "r-1"
	require.Equal(t, complaint.Step{Kind: "raised_again", By: "a-1", At: logged, Level: 2,
		Detail: "visit v-1, record r-1: Nobody answered the hotline."}, complaint.RaisedAgain(rec, o.Complaint.Description, 2))

	// Nothing to match on: no customer, or no letter or digit in the description.
	nameless := complaint.Open(record.Record{LoggedAt: logged, OccurredAt: logged, Problems: []record.Problem{{Category: "billing", Description: "x"}}}, visit.Visit{}, defaults)
	require.False(t, nameless[0].Matchable())
	blank := complaint.Open(record.Record{CustomerID: "c-1", LoggedAt: logged, OccurredAt: logged, Problems: []record.Problem{{Category: "billing", Description: "?!"}}}, visit.Visit{}, defaults)
	require.False(t, blank[0].Matchable())
}

func TestCloseWithWrittenReply(t *testing.T) {
	now := time.Date(2025, 3, 1, 10, 0, 0, 0, time.UTC)
	c := &complaint.Complaint{ID: "c-1", Status: complaint.StatusResolved, Anonymous: true}
	step, err := c.CloseWithWrittenReply("m", now)
	require.NoError(t, err)
	require.Equal(t, complaint.StatusClosed, c.Status)
	require.Equal(t, complaint.OutcomeWrittenReply, c.Outcome)
	require.Contains(t, c.CloseReason, "anonymous")
	require.Equal(t, "closed", step.Kind)

	var se *complaint.StateError
	fails := func(_ complaint.Step, err error) error { return err }
	require.ErrorAs(t, fails((&complaint.Complaint{ID: "c-2", Status: complaint.StatusResolved}).CloseWithWrittenReply("m", now)), &se, "a complaint that wants a follow-up")
	require.ErrorAs(t, fails((&complaint.Complaint{ID: "c-3", Status: complaint.StatusOpen, WrittenReplyOnly: true}).CloseWithWrittenReply("m", now)), &se, "not resolved yet")
	require.True(t, (&complaint.Complaint{ID: "c-4", WrittenReplyOnly: true}).NoFollowUp(), "the scheduler plans no confirmation visit")
	require.False(t, (&complaint.Complaint{ID: "c-5"}).NoFollowUp())

	// Resolving one needs the written reply (seed 000), and attaches it.
	c = &complaint.Complaint{ID: "c-6", Status: complaint.StatusOpen, WrittenReplyOnly: true}
	_, err = c.Resolve(complaint.Resolution{By: "m", RootCause: "c", Action: "a"}, now)
	bad, ok := invalid.As(err)
	require.True(t, ok, "%v", err)
	require.Equal(t, "written_reply", bad.Violations[0].Field)
	require.Equal(t, complaint.StatusOpen, c.Status, "nothing changed")
	step, err = c.Resolve(complaint.Resolution{By: "m", RootCause: "c", Action: "a", WrittenReplyRef: "letter-1"}, now)
	require.NoError(t, err)
	require.Equal(t, "root cause: c; action: a; written reply attached: letter-1", step.Detail)
	require.Equal(t, "letter-1", c.WrittenReplyRef)
}

func TestNewLetter(t *testing.T) {
	now := time.Date(2025, 3, 1, 10, 0, 0, 0, time.UTC)
	l, err := complaint.NewLetter("l-1", "default", " 致全体业主的一封信 ", "b", "m", []string{" c-1", "c-2 "}, now)
	require.NoError(t, err)
	require.Equal(t, []string{"c-1", "c-2"}, l.ComplaintIDs)
	require.Equal(t, complaint.Step{Kind: "letter", By: "m", At: now, Detail: "l-1: 致全体业主的一封信"}, l.Step())
	_, err = complaint.NewLetter("l-2", "default", "", "", "", []string{"c-1", "c-1", ""}, now)
	bad, ok := invalid.As(err)
	require.True(t, ok)
	var fields []string
	for _, v := range bad.Violations {
		fields = append(fields, v.Field)
	}
	require.Equal(t, []string{"title", "body", "by", "complaint_ids[1]", "complaint_ids[2]"}, fields)
}

func TestConfirmable(t *testing.T) {
	resolved := complaint.Complaint{ID: "c-1", Status: complaint.StatusResolved}
	ok, err := resolved.Confirmable(true)
	require.True(t, ok)
	require.NoError(t, err)
	open := complaint.Complaint{ID: "c-1", Status: complaint.StatusOpen}
	ok, err = open.Confirmable(false)
	require.False(t, ok, "a complaint the visit names is settled only while it is resolved")
	require.NoError(t, err)
	var se *complaint.StateError
	_, err = open.Confirmable(true)
	require.ErrorAs(t, err, &se, "a complaint the request names must be resolved")
}

// Seed 000, cement logistics: a "no" to product or quantity is a mismatch,
// reported to the general manager; a "yes" to both, or other yes/no
// questions answered "no", raise nothing.
func TestOpenRaisesADeliveryMismatch(t *testing.T) {
	no, yes := false, true
	rules := complaint.MustRules(complaint.DefaultRulesSpec, complaint.DefaultDeadline)
	at := time.Date(2025, 3, 2, 10, 0, 0, 0, time.UTC)
	for _, tt := range []struct {
		name    string
		answers []questionnaire.Answer
		want    string
	}{
		{"confirmed", []questionnaire.Answer{{Aspect: "product_matches", Yes: &yes}, {Aspect: "quantity_matches", Yes: &yes}}, ""},
		{"another question answered no", []questionnaire.Answer{{Aspect: "medication", Yes: &no}}, ""},
		{"product", []questionnaire.Answer{{Aspect: "product_matches", Yes: &no}, {Aspect: "quantity_matches", Yes: &yes}},
			"delivery dn-7: the product received does not match the delivery receipt"},
		{"quantity", []questionnaire.Answer{{Aspect: "product_matches", Yes: &yes}, {Aspect: "quantity_matches", Yes: &no}},
			"delivery dn-7: the quantity received does not match the delivery receipt"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			rec := record.Record{TenantID: "default", VisitID: "v-7", AgentID: "a-1", CustomerID: "site-1", LoggedAt: at, OccurredAt: at, Answers: tt.answers}
			got := complaint.Open(rec, visit.Visit{ServiceID: "dn-7"}, rules)
			if tt.want == "" {
				require.Empty(t, got)
				return
			}
			require.Len(t, got, 1)
			c := got[0].Complaint
			require.Equal(t, [4]string{"delivery_mismatch", "general_manager", "urgent", tt.want}, [4]string{c.Category, c.Department, c.Severity, c.Description})
			require.Equal(t, at.Add(24*time.Hour), c.Deadline)
		})
	}
}
