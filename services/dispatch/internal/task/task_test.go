package task_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/types/known/timestamppb"

	eventsv1 "github.com/huifang/huifang/proto/huifang/events/v1"
	typesv1 "github.com/huifang/huifang/proto/huifang/types/v1"

	"github.com/huifang/huifang/pkg/invalid"
	"github.com/huifang/huifang/services/dispatch/internal/task"
)

var now = time.Date(2025, 3, 10, 9, 0, 0, 0, time.UTC)

func fields(t *testing.T, err error) []string {
	t.Helper()
	if err == nil {
		return nil
	}
	bad, ok := invalid.As(err)
	require.True(t, ok, "want *invalid.Error, got %v", err)
	var out []string
	for _, v := range bad.Violations {
		out = append(out, v.Field)
	}
	return out
}

func TestFromVisitDue(t *testing.T) {
	due := now.Add(-time.Hour)
	// Seed 003: a follow-up within 48 hours after a service.
	deadline := now.Add(48 * time.Hour)
	full := &eventsv1.VisitDue{
		TenantId: "acme", VisitId: " v-1 ", Channel: typesv1.Channel_CHANNEL_PHONE,
		DueAt: timestamppb.New(due), Deadline: timestamppb.New(deadline),
		Customer: &typesv1.Customer{Id: "c-1", Name: "王芳"}, OrgUnit: "north", ServiceType: "repair", Group: "vip",
	}
	tests := []struct {
		name      string
		ev        *eventsv1.VisitDue
		want      task.Task
		badFields []string
	}{
		{
			name: "full event",
			ev:   full,
			want: task.Task{
				ID: "t-1", Tenant: "acme", VisitID: "v-1", Customer: full.Customer, Channel: typesv1.Channel_CHANNEL_PHONE,
				Group: "vip", OrgUnit: "north", ServiceType: "repair", DueAt: due, Deadline: deadline,
				Status: task.StatusOpen, CreatedAt: now,
			},
		},
		{
			name: "defaults: tenant, due now, no deadline",
			ev:   &eventsv1.VisitDue{VisitId: "v-2"},
			want: task.Task{ID: "t-1", Tenant: "default", VisitID: "v-2", DueAt: now, Status: task.StatusOpen, CreatedAt: now},
		},
		{name: "no visit id", ev: &eventsv1.VisitDue{TenantId: "acme"}, badFields: []string{"visit_id"}},
		{name: "blank visit id", ev: &eventsv1.VisitDue{VisitId: "  "}, badFields: []string{"visit_id"}},
		{name: "unknown channel", ev: &eventsv1.VisitDue{VisitId: "v-3", Channel: 42}, badFields: []string{"channel"}},
		{
			name:      "invalid times",
			ev:        &eventsv1.VisitDue{VisitId: "v-4", DueAt: &timestamppb.Timestamp{Nanos: -1}, Deadline: &timestamppb.Timestamp{Seconds: 1 << 62}},
			badFields: []string{"due_at", "deadline"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := task.FromVisitDue(tc.ev, "t-1", now)
			require.Equal(t, tc.badFields, fields(t, err))
			if tc.badFields != nil {
				return
			}
			require.Equal(t, tc.want, got)
		})
	}
}

func TestNormalizeAgent(t *testing.T) {
	tests := []struct {
		name      string
		in        task.Agent
		want      task.Agent
		badFields []string
	}{
		{
			name: "defaults: tenant and group",
			in:   task.Agent{ID: " a-1 ", Name: " 李娜 "},
			want: task.Agent{Tenant: "default", ID: "a-1", Name: "李娜", Groups: []string{"default"}},
		},
		{
			name: "groups trimmed and deduplicated",
			in:   task.Agent{Tenant: "acme", ID: "a-2", Name: "张伟", Groups: []string{"vip", " vip", "complaints"}, OrgUnit: "north"},
			want: task.Agent{Tenant: "acme", ID: "a-2", Name: "张伟", Groups: []string{"vip", "complaints"}, OrgUnit: "north"},
		},
		{name: "no id", in: task.Agent{Name: "李娜"}, badFields: []string{"agent.id"}},
		{name: "no id nor name", in: task.Agent{ID: " "}, badFields: []string{"agent.id", "agent.name"}},
		{name: "blank group", in: task.Agent{ID: "a-3", Name: "x", Groups: []string{"vip", ""}}, badFields: []string{"agent.groups[1]"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			a := tc.in
			err := task.NormalizeAgent(&a)
			require.Equal(t, tc.badFields, fields(t, err))
			if tc.badFields != nil {
				return
			}
			require.Equal(t, tc.want, a)
		})
	}
}

func TestCheckStatus(t *testing.T) {
	for _, s := range []string{"", "open", "claimed"} {
		require.NoError(t, task.CheckStatus(s), s)
	}
	require.Equal(t, []string{"status"}, fields(t, task.CheckStatus("done")))
}
