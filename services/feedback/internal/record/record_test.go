package record_test

import (
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	typesv1 "github.com/huifang/huifang/proto/huifang/types/v1"

	"github.com/huifang/huifang/pkg/invalid"
	"github.com/huifang/huifang/pkg/tenant"
	"github.com/huifang/huifang/services/feedback/internal/questionnaire"
	"github.com/huifang/huifang/services/feedback/internal/record"
	"github.com/huifang/huifang/services/feedback/internal/visit"
)

func validRequest() *record.Draft {
	return &record.Draft{
		VisitID: "v-1",
		AgentID: "a-1",
		Answers: []questionnaire.Answer{{Aspect: "overall", Rating: typesv1.Rating_RATING_SATISFIED}},
	}
}

var now = time.Date(2025, 3, 2, 10, 0, 0, 0, time.UTC)

// check runs both stages of LogVisit's checks for a visit planned on channel, without a questionnaire.
func check(req *record.Draft, channel typesv1.Channel) error {
	if err := record.Validate(*req, now); err != nil {
		return err
	}
	_, err := record.Complete(*req, visit.Visit{Channel: channel}, nil, nil)
	return err
}

func TestValidate(t *testing.T) {
	at := time.Date(2025, 3, 1, 10, 0, 0, 0, time.UTC)
	tests := []struct {
		name   string
		modify func(r *record.Draft)
		fields []string
	}{
		{"valid", func(*record.Draft) {}, nil},
		{"valid with problems and times", func(r *record.Draft) {
			r.Problems = []record.Problem{{Category: "product_quality", Description: "leaks"}}
			r.StartedAt, r.EndedAt = at, at.Add(time.Minute)
		}, nil},
		{"missing ids", func(r *record.Draft) { r.VisitID, r.AgentID = " ", "" }, []string{"visit_id", "agent_id"}},
		{"bad tenant", func(r *record.Draft) { r.TenantID = "Acme Corp" }, []string{"tenant_id"}},
		{"no answers", func(r *record.Draft) { r.Answers = nil }, []string{"answers"}},
		{"missing rating", func(r *record.Draft) {
			r.Answers = append(r.Answers, questionnaire.Answer{Aspect: "staff_attitude"})
		}, []string{"answers[1].rating"}},
		{"unknown rating", func(r *record.Draft) { r.Answers[0].Rating = 9 }, []string{"answers[0].rating"}},
		{"duplicate aspect", func(r *record.Draft) {
			r.Answers = append(r.Answers, questionnaire.Answer{Aspect: "overall", Rating: typesv1.Rating_RATING_UNSATISFIED})
		}, []string{"answers[1].aspect"}},
		{"aspect pattern", func(r *record.Draft) { r.Answers[0].Aspect = "Overall" }, []string{"answers[0].aspect"}},
		{"missing aspect", func(r *record.Draft) { r.Answers[0].Aspect = "" }, []string{"answers[0].aspect"}},
		{"problem without category or description", func(r *record.Draft) {
			r.Problems = []record.Problem{{}}
		}, []string{"problems[0].category", "problems[0].description"}},
		{"problem category pattern", func(r *record.Draft) {
			r.Problems = []record.Problem{{Category: "product quality", Description: "x"}}
		}, []string{"problems[0].category"}},
		{"ended before started", func(r *record.Draft) {
			r.StartedAt, r.EndedAt = at, at.Add(-time.Second)
		}, []string{"ended_at"}},
		{"unknown channel", func(r *record.Draft) { r.Channel = 42 }, []string{"channel"}},
		{"times in the future", func(r *record.Draft) {
			r.StartedAt, r.EndedAt = now.Add(time.Hour), now.Add(2*time.Hour)
		}, []string{"started_at", "ended_at"}},
		{"on site without signature (seed 000)", func(r *record.Draft) { r.Channel = typesv1.Channel_CHANNEL_ONSITE }, []string{"signature_ref"}},
		{"on site with signature (seed 000)", func(r *record.Draft) {
			r.Channel, r.SignatureRef = typesv1.Channel_CHANNEL_ONSITE, "sig-1"
		}, nil},
		{"attachments need kind and ref", func(r *record.Draft) {
			r.Attachments = []record.Attachment{{Kind: "call_recording", Ref: "rec-1"}, {Kind: "Call Recording"}}
		}, []string{"attachments[1].kind", "attachments[1].ref"}},
		{"promised reply needs question and a future time (seed 000)", func(r *record.Draft) {
			r.PromisedReplies = []record.PromisedReply{
				{Question: "when is the part in?", PromisedAt: now.Add(24 * time.Hour)},
				{PromisedAt: now.Add(-time.Hour)},
				{Question: "x"},
			}
		}, []string{"promised_replies[1].question", "promised_replies[1].promised_at", "promised_replies[2].promised_at"}},
		{"problem severity must be known", func(r *record.Draft) {
			r.Problems = []record.Problem{{Category: "billing", Description: "x", Severity: 7}}
		}, []string{"problems[0].severity"}},
		{"comments are bounded", func(r *record.Draft) { r.Comments = strings.Repeat("长", record.MaxComments+1) }, []string{"comments"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req := validRequest()
			tt.modify(req)
			record.Normalize(req)
			err := check(req, typesv1.Channel_CHANNEL_PHONE)
			if tt.fields == nil {
				require.NoError(t, err)
				return
			}
			bad, ok := invalid.As(err)
			require.True(t, ok, "want *invalid.Error, got %v", err)
			var fields []string
			for _, v := range bad.Violations {
				fields = append(fields, v.Field)
			}
			require.Equal(t, tt.fields, fields)
		})
	}
}

// What the contract's minimal call carries must do: no tenant, channel or
// times needed (grpcapi checks the JSON itself).
func TestValidateMinimal(t *testing.T) {
	req := &record.Draft{VisitID: "v-9", AgentID: "a-1", Answers: []questionnaire.Answer{{Aspect: "overall", Rating: typesv1.Rating_RATING_SATISFIED}}}
	record.Normalize(req)
	require.NoError(t, check(req, typesv1.Channel_CHANNEL_PHONE))
	require.Equal(t, tenant.Default, req.TenantID)
}

func TestNewTakesPlannedChannelWhenUnset(t *testing.T) {
	v := visit.Visit{TenantID: "default", VisitID: "v-1", Channel: typesv1.Channel_CHANNEL_SMS, CustomerID: "c-1", OrgUnit: "branch-1"}
	logged := time.Date(2025, 3, 1, 10, 0, 0, 0, time.UTC)

	req := validRequest()
	record.Normalize(req)
	rec := record.New("r-1", *req, v, req.Answers, nil, logged)
	require.Equal(t, typesv1.Channel_CHANNEL_SMS, rec.Channel)
	require.Equal(t, "c-1", rec.CustomerID)
	require.Equal(t, "branch-1", rec.OrgUnit)
	require.Equal(t, logged, rec.LoggedAt)

	req.Channel = typesv1.Channel_CHANNEL_PHONE
	require.Equal(t, typesv1.Channel_CHANNEL_PHONE, record.New("r-2", *req, v, req.Answers, nil, logged).Channel)
}

func TestCompleteChecksTheAgentAndTheChannelOfAMajorComplaint(t *testing.T) {
	tests := []struct {
		name     string
		assigned string // the visit's assigned agent; "" when no VisitAssigned was heard
		agent    string
		channel  typesv1.Channel // the request's; the visit is planned by phone
		sig      string
		severity string // of the complaint the visit confirms; "" for none
		fields   []string
	}{
		{name: "no assignment known yet: any agent", agent: "a-9"},
		{name: "the assigned agent", assigned: "a-1", agent: "a-1"},
		{name: "another agent than the assigned one", assigned: "a-1", agent: "a-2", fields: []string{"agent_id"}},
		// Seed 000: from the second follow-up on, by phone unless the complaint is of the third (major) class.
		{name: "general complaint confirmed by phone", agent: "a-1", severity: "general"},
		{name: "urgent complaint confirmed by phone", agent: "a-1", channel: typesv1.Channel_CHANNEL_PHONE, severity: "urgent"},
		{name: "major complaint confirmed by phone (seed 000)", agent: "a-1", channel: typesv1.Channel_CHANNEL_PHONE, severity: "major", fields: []string{"channel"}},
		{name: "major complaint, channel unset: the planned phone (seed 000)", agent: "a-1", severity: "major", fields: []string{"channel"}},
		{name: "major complaint confirmed by SMS (seed 000)", agent: "a-1", channel: typesv1.Channel_CHANNEL_SMS, severity: "major", fields: []string{"channel"}},
		{name: "major complaint on site without signature (seed 000)", agent: "a-1", channel: typesv1.Channel_CHANNEL_ONSITE, severity: "major", fields: []string{"signature_ref"}},
		{name: "major complaint on site with signature (seed 000)", agent: "a-1", channel: typesv1.Channel_CHANNEL_ONSITE, sig: "sig-1", severity: "major"},
		{name: "both wrong", assigned: "a-1", agent: "a-2", channel: typesv1.Channel_CHANNEL_PHONE, severity: "major", fields: []string{"agent_id", "channel"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req := validRequest()
			req.AgentID, req.Channel, req.SignatureRef = tt.agent, tt.channel, tt.sig
			record.Normalize(req)
			require.NoError(t, record.Validate(*req, now))
			v := visit.Visit{VisitID: "v-1", Channel: typesv1.Channel_CHANNEL_PHONE, AssignedAgentID: tt.assigned}
			var confirmed *record.Confirmed
			if tt.severity != "" {
				confirmed = &record.Confirmed{ComplaintID: "c-1", Severity: tt.severity}
			}
			_, err := record.Complete(*req, v, nil, confirmed)
			if tt.fields == nil {
				require.NoError(t, err)
				return
			}
			bad, ok := invalid.As(err)
			require.True(t, ok, "want *invalid.Error, got %v", err)
			var fields []string
			for _, v := range bad.Violations {
				fields = append(fields, v.Field)
			}
			require.Equal(t, tt.fields, fields)
		})
	}
}
