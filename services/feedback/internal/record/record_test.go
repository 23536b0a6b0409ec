package record_test

import (
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/types/known/timestamppb"

	feedbackv1 "github.com/huifang/huifang/proto/huifang/feedback/v1"
	typesv1 "github.com/huifang/huifang/proto/huifang/types/v1"

	"github.com/huifang/huifang/pkg/invalid"
	"github.com/huifang/huifang/services/feedback/internal/record"
	"github.com/huifang/huifang/services/feedback/internal/visit"
)

func validRequest() *feedbackv1.LogVisitRequest {
	return &feedbackv1.LogVisitRequest{
		VisitId: "v-1",
		AgentId: "a-1",
		Answers: []*typesv1.Answer{{Aspect: "overall", Rating: typesv1.Rating_RATING_SATISFIED}},
	}
}

var now = time.Date(2025, 3, 2, 10, 0, 0, 0, time.UTC)

// check runs both stages of LogVisit's checks for a visit planned on channel, without a questionnaire.
func check(req *feedbackv1.LogVisitRequest, channel typesv1.Channel) error {
	if err := record.Validate(req, now); err != nil {
		return err
	}
	_, err := record.Complete(req, visit.Visit{Channel: channel}, nil, nil)
	return err
}

func TestValidate(t *testing.T) {
	at := time.Date(2025, 3, 1, 10, 0, 0, 0, time.UTC)
	tests := []struct {
		name   string
		modify func(r *feedbackv1.LogVisitRequest)
		fields []string
	}{
		{"valid", func(*feedbackv1.LogVisitRequest) {}, nil},
		{"valid with problems and times", func(r *feedbackv1.LogVisitRequest) {
			r.Problems = []*typesv1.Problem{{Category: "product_quality", Description: "leaks"}}
			r.StartedAt, r.EndedAt = timestamppb.New(at), timestamppb.New(at.Add(time.Minute))
		}, nil},
		{"missing ids", func(r *feedbackv1.LogVisitRequest) { r.VisitId, r.AgentId = " ", "" }, []string{"visit_id", "agent_id"}},
		{"bad tenant", func(r *feedbackv1.LogVisitRequest) { r.TenantId = "Acme Corp" }, []string{"tenant_id"}},
		{"no answers", func(r *feedbackv1.LogVisitRequest) { r.Answers = nil }, []string{"answers"}},
		{"missing rating", func(r *feedbackv1.LogVisitRequest) {
			r.Answers = append(r.Answers, &typesv1.Answer{Aspect: "staff_attitude"})
		}, []string{"answers[1].rating"}},
		{"unknown rating", func(r *feedbackv1.LogVisitRequest) { r.Answers[0].Rating = 9 }, []string{"answers[0].rating"}},
		{"duplicate aspect", func(r *feedbackv1.LogVisitRequest) {
			r.Answers = append(r.Answers, &typesv1.Answer{Aspect: "overall", Rating: typesv1.Rating_RATING_UNSATISFIED})
		}, []string{"answers[1].aspect"}},
		{"aspect pattern", func(r *feedbackv1.LogVisitRequest) { r.Answers[0].Aspect = "Overall" }, []string{"answers[0].aspect"}},
		{"missing aspect", func(r *feedbackv1.LogVisitRequest) { r.Answers[0].Aspect = "" }, []string{"answers[0].aspect"}},
		{"problem without category or description", func(r *feedbackv1.LogVisitRequest) {
			r.Problems = []*typesv1.Problem{{}}
		}, []string{"problems[0].category", "problems[0].description"}},
		{"problem category pattern", func(r *feedbackv1.LogVisitRequest) {
			r.Problems = []*typesv1.Problem{{Category: "product quality", Description: "x"}}
		}, []string{"problems[0].category"}},
		{"ended before started", func(r *feedbackv1.LogVisitRequest) {
			r.StartedAt, r.EndedAt = timestamppb.New(at), timestamppb.New(at.Add(-time.Second))
		}, []string{"ended_at"}},
		{"unknown channel", func(r *feedbackv1.LogVisitRequest) { r.Channel = 42 }, []string{"channel"}},
		{"times in the future", func(r *feedbackv1.LogVisitRequest) {
			r.StartedAt, r.EndedAt = timestamppb.New(now.Add(time.Hour)), timestamppb.New(now.Add(2*time.Hour))
		}, []string{"started_at", "ended_at"}},
		{"on site without signature (seed 000)", func(r *feedbackv1.LogVisitRequest) { r.Channel = typesv1.Channel_CHANNEL_ONSITE }, []string{"signature_ref"}},
		{"on site with signature (seed 000)", func(r *feedbackv1.LogVisitRequest) {
			r.Channel, r.SignatureRef = typesv1.Channel_CHANNEL_ONSITE, "sig-1"
		}, nil},
		{"attachments need kind and ref", func(r *feedbackv1.LogVisitRequest) {
			r.Attachments = []*feedbackv1.Attachment{{Kind: "call_recording", Ref: "rec-1"}, {Kind: "Call Recording"}}
		}, []string{"attachments[1].kind", "attachments[1].ref"}},
		{"promised reply needs question and a future time (seed 000)", func(r *feedbackv1.LogVisitRequest) {
			r.PromisedReplies = []*feedbackv1.PromisedReply{
				{Question: "when is the part in?", PromisedAt: timestamppb.New(now.Add(24 * time.Hour))},
				{PromisedAt: timestamppb.New(now.Add(-time.Hour))},
				{Question: "x"},
			}
		}, []string{"promised_replies[1].question", "promised_replies[1].promised_at", "promised_replies[2].promised_at"}},
		{"problem severity must be known", func(r *feedbackv1.LogVisitRequest) {
			r.Problems = []*typesv1.Problem{{Category: "billing", Description: "x", Severity: 7}}
		}, []string{"problems[0].severity"}},
		{"comments are bounded", func(r *feedbackv1.LogVisitRequest) { r.Comments = strings.Repeat("长", record.MaxComments+1) }, []string{"comments"}},
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

// The JSON a caller sends with grpcurl must work as it stands: no tenant,
// channel or times needed.
func TestValidateMinimalJSON(t *testing.T) {
	req := &feedbackv1.LogVisitRequest{}
	require.NoError(t, protojson.Unmarshal([]byte(`{"visit_id":"v-9","agent_id":"a-1","answers":[{"aspect":"overall","rating":"RATING_SATISFIED"}]}`), req))
	record.Normalize(req)
	require.NoError(t, check(req, typesv1.Channel_CHANNEL_PHONE))
	require.Equal(t, visit.DefaultTenant, req.TenantId)
}

func TestNewTakesPlannedChannelWhenUnset(t *testing.T) {
	v := visit.Visit{TenantID: "default", VisitID: "v-1", Channel: typesv1.Channel_CHANNEL_SMS, CustomerID: "c-1", OrgUnit: "branch-1"}
	logged := time.Date(2025, 3, 1, 10, 0, 0, 0, time.UTC)

	req := validRequest()
	record.Normalize(req)
	rec := record.New("r-1", req, v, req.Answers, nil, logged)
	require.Equal(t, typesv1.Channel_CHANNEL_SMS, rec.Channel)
	require.Equal(t, "c-1", rec.CustomerId)
	require.Equal(t, "branch-1", rec.OrgUnit)
	require.Equal(t, logged, rec.LoggedAt.AsTime())

	req.Channel = typesv1.Channel_CHANNEL_PHONE
	require.Equal(t, typesv1.Channel_CHANNEL_PHONE, record.New("r-2", req, v, req.Answers, nil, logged).Channel)
}

func TestLoggedCarriesVisitContext(t *testing.T) {
	due := time.Date(2025, 3, 1, 9, 0, 0, 0, time.UTC)
	v := visit.Visit{
		TenantID: "default", VisitID: "v-1", CustomerID: "c-1", ServiceID: "s-1", PolicyID: "p-1",
		Channel: typesv1.Channel_CHANNEL_PHONE, DueAt: due, Deadline: due.Add(48 * time.Hour),
		OrgUnit: "branch-1", ServiceType: "repair",
	}
	req := validRequest()
	req.Comments = "fine"
	record.Normalize(req)
	rec := record.New("r-1", req, v, req.Answers, nil, due.Add(time.Hour))
	ev := record.Logged("e-1", rec, v, nil)
	require.Equal(t, "e-1", ev.EventId)
	require.Equal(t, "r-1", ev.RecordId)
	require.Equal(t, "a-1", ev.AgentId)
	require.Equal(t, "fine", ev.Comments)
	require.Len(t, ev.Answers, 1)
	require.Equal(t, due, ev.DueAt.AsTime())
	require.Equal(t, due.Add(48*time.Hour), ev.Deadline.AsTime())
	require.Equal(t, []string{"branch-1", "repair", "p-1", "c-1", "s-1"}, []string{ev.OrgUnit, ev.ServiceType, ev.PolicyId, ev.CustomerId, ev.ServiceId})
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
			req.AgentId, req.Channel, req.SignatureRef = tt.agent, tt.channel, tt.sig
			record.Normalize(req)
			require.NoError(t, record.Validate(req, now))
			v := visit.Visit{VisitID: "v-1", Channel: typesv1.Channel_CHANNEL_PHONE, AssignedAgentID: tt.assigned}
			var confirmed *feedbackv1.Complaint
			if tt.severity != "" {
				confirmed = &feedbackv1.Complaint{Id: "c-1", Severity: tt.severity, Status: "resolved"}
			}
			_, err := record.Complete(req, v, nil, confirmed)
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
