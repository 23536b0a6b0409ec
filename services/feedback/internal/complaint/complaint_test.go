package complaint_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/types/known/timestamppb"

	feedbackv1 "github.com/huifang/huifang/proto/huifang/feedback/v1"
	typesv1 "github.com/huifang/huifang/proto/huifang/types/v1"

	"github.com/huifang/huifang/services/feedback/internal/complaint"
)

func TestDepartment(t *testing.T) {
	tests := []struct{ category, want string }{
		{"product_quality", "rnd_production"}, // seed 001, seed 002 (cement)
		{"service_quality", "after_sales"},    // seed 001, seed 002 (cement)
		{"unsatisfied", "service_manager"},    // seed 000 (auto dealer)
		{"parking", "service_manager"},
	}
	for _, tt := range tests {
		t.Run(tt.category, func(t *testing.T) {
			require.Equal(t, tt.want, complaint.Department(tt.category))
		})
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
			got := complaint.Open(rec, complaint.DefaultDeadline)
			require.Len(t, got, len(tt.want))
			for i, c := range got {
				require.Equal(t, tt.want[i], [3]string{c.Category, c.Department, c.Description})
				require.Equal(t, "general", c.Severity)
				require.Equal(t, "open", c.Status)
				require.Equal(t, "a-1", c.OwnerAgentId, "seed 002: first-contact ownership")
				require.Equal(t, logged.Add(48*time.Hour), c.Deadline.AsTime(), "seed 003: 48 hours")
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
		Deadline: at, CreatedAt: at, OwnerAgentId: "a-1",
	}
	ev := complaint.Escalated("e-1", c, "branch-1")
	require.Equal(t, "e-1", ev.EventId)
	require.Equal(t, "c-1", ev.ComplaintId)
	require.Equal(t, "branch-1", ev.OrgUnit)
	require.Equal(t, "rnd_production", ev.Department)
	require.Equal(t, "a-1", ev.OwnerAgentId)
	require.True(t, ev.EscalatedAt.AsTime().Equal(at.AsTime()))
}
