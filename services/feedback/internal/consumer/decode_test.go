package consumer

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/types/known/timestamppb"

	eventsv1 "github.com/huifang/huifang/proto/huifang/events/v1"
	typesv1 "github.com/huifang/huifang/proto/huifang/types/v1"

	"github.com/huifang/huifang/pkg/invalid"
	"github.com/huifang/huifang/services/feedback/internal/visit"
)

func TestVisitOf(t *testing.T) {
	due := time.Date(2025, 3, 1, 9, 0, 0, 0, time.UTC)
	full := &eventsv1.VisitDue{
		VisitId: "v-1", ServiceId: "s-1", PolicyId: "p-1", Channel: typesv1.Channel_CHANNEL_PHONE,
		DueAt: timestamppb.New(due), Deadline: timestamppb.New(due.Add(72 * time.Hour)),
		Customer: &typesv1.Customer{Id: "c-1"}, OrgUnit: "branch-1", ServiceType: "repair",
		ServiceCompletedAt: timestamppb.New(due.Add(-24 * time.Hour)),
	}
	tests := []struct {
		name  string
		ev    *eventsv1.VisitDue
		want  visit.Visit
		field string
	}{
		{"full event", full, visit.Visit{
			TenantID: "default", VisitID: "v-1", CustomerID: "c-1", ServiceID: "s-1", PolicyID: "p-1",
			Channel: typesv1.Channel_CHANNEL_PHONE, DueAt: due, Deadline: due.Add(72 * time.Hour),
			OrgUnit: "branch-1", ServiceType: "repair", ServiceCompletedAt: due.Add(-24 * time.Hour),
		}, ""},
		{"tenant kept, times optional", &eventsv1.VisitDue{TenantId: "acme", VisitId: "v-2"},
			visit.Visit{TenantID: "acme", VisitID: "v-2"}, ""},
		{"no visit id", &eventsv1.VisitDue{ServiceId: "s-1"}, visit.Visit{}, "visit_id"},
		{"invalid due_at", &eventsv1.VisitDue{VisitId: "v-3", DueAt: &timestamppb.Timestamp{Nanos: -1}}, visit.Visit{}, "due_at"},
		{"unknown channel", &eventsv1.VisitDue{VisitId: "v-4", Channel: 77}, visit.Visit{}, "channel"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := visitOf(tt.ev)
			if tt.field != "" {
				bad, ok := invalid.As(err)
				require.True(t, ok, "want *invalid.Error, got %v", err)
				require.Equal(t, tt.field, bad.Violations[0].Field)
				return
			}
			require.NoError(t, err)
			require.Equal(t, tt.want, got)
		})
	}
}

func TestAssignmentOf(t *testing.T) {
	at := time.Date(2025, 3, 1, 9, 0, 0, 0, time.UTC)
	got, err := assignmentOf(&eventsv1.VisitAssigned{VisitId: " v-1 ", AgentId: "a-1", AssignedAt: timestamppb.New(at)}, "as-1")
	require.NoError(t, err)
	require.Equal(t, visit.Assignment{TenantID: "default", VisitID: "v-1", AgentID: "a-1", AssignedAt: at, EventID: "as-1"}, got)

	_, err = assignmentOf(&eventsv1.VisitAssigned{TenantId: "acme"}, "as-2")
	bad, ok := invalid.As(err)
	require.True(t, ok, "want *invalid.Error, got %v", err)
	var fields []string
	for _, v := range bad.Violations {
		fields = append(fields, v.Field)
	}
	require.Equal(t, []string{"visit_id", "agent_id", "assigned_at"}, fields)
}
