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

// rules are the service's defaults.
var rules = task.Rules{
	SeverityRoles:   map[typesv1.Severity]string{typesv1.Severity_SEVERITY_URGENT: task.RoleLeader, typesv1.Severity_SEVERITY_MAJOR: task.RoleDeputy},
	Tiers:           []string{"key"},
	DefaultDeadline: 48 * time.Hour,
}

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
				Group: "vip", OrgUnit: "north", ServiceType: "repair", DueAt: due, Deadline: deadline, AvailableAt: due,
				Status: task.StatusOpen, CreatedAt: now, TierRank: 1,
			},
		},
		{
			name: "defaults: tenant, due now, deadline 48 h later (seed 003)",
			ev:   &eventsv1.VisitDue{VisitId: "v-2"},
			want: task.Task{ID: "t-1", Tenant: "default", VisitID: "v-2", DueAt: now, AvailableAt: now, Deadline: now.Add(48 * time.Hour),
				Status: task.StatusOpen, CreatedAt: now, TierRank: 1},
		},
		{
			name: "seed 000: a major complaint needs a manager; owners, tier, language; SMS is automatic",
			ev: &eventsv1.VisitDue{VisitId: "v-5", Channel: typesv1.Channel_CHANNEL_SMS, Severity: typesv1.Severity_SEVERITY_MAJOR,
				DueAt: timestamppb.New(due), Deadline: timestamppb.New(deadline), PolicyId: "p-1", ProductCategory: "ac",
				Customer: &typesv1.Customer{Id: "c-5", Tier: "key", OwnerIds: []string{"a-1", "a-2", "a-3"},
					Preferences: &typesv1.ContactPreferences{Language: "zh-CN"}}},
			want: task.Task{ID: "t-1", Tenant: "default", VisitID: "v-5", Channel: typesv1.Channel_CHANNEL_SMS, Severity: typesv1.Severity_SEVERITY_MAJOR,
				RequiredRole: task.RoleDeputy, PolicyID: "p-1", ProductCategory: "ac", TierRank: 0, PrimaryOwner: "a-1", BackupOwner: "a-2",
				Language: "zh-CN", Automatic: true, DueAt: due, Deadline: deadline, AvailableAt: due, Status: task.StatusOpen, CreatedAt: now},
		},
		{
			name: "a group naming a role asks for the role (seed 000: supervisor = leader)",
			ev:   &eventsv1.VisitDue{VisitId: "v-6", Group: "supervisor", DueAt: timestamppb.New(due), Deadline: timestamppb.New(deadline)},
			want: task.Task{ID: "t-1", Tenant: "default", VisitID: "v-6", RequiredRole: task.RoleLeader, DueAt: due, Deadline: deadline,
				AvailableAt: due, Status: task.StatusOpen, CreatedAt: now, TierRank: 1},
		},
		{name: "unknown severity", ev: &eventsv1.VisitDue{VisitId: "v-7", Severity: 9}, badFields: []string{"severity"}},
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
			got, err := task.FromVisitDue(tc.ev, "t-1", now, rules)
			require.Equal(t, tc.badFields, fields(t, err))
			if tc.badFields != nil {
				return
			}
			tc.want.Customer = tc.ev.GetCustomer()
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
			want: agent(task.Agent{Tenant: "default", ID: "a-1", Name: "李娜", Groups: []string{"default"}}),
		},
		{
			name: "groups trimmed and deduplicated",
			in:   task.Agent{Tenant: "acme", ID: "a-2", Name: "张伟", Groups: []string{"vip", " vip", "complaints"}, OrgUnit: "north"},
			want: agent(task.Agent{Tenant: "acme", ID: "a-2", Name: "张伟", Groups: []string{"vip", "complaints"}, OrgUnit: "north"}),
		},
		{
			name: "role aliases, skills, shift",
			in: task.Agent{ID: "a-4", Name: "x", Role: "Manager", Skills: task.Skills{Languages: []string{"yue", " yue"}},
				Shift: task.Shift{Weekdays: []int{1, 2}, Start: 540, End: 1080, TimeZone: "Asia/Shanghai"}, Capacity: 5},
			want: task.Agent{Tenant: "default", ID: "a-4", Name: "x", Groups: []string{"default"}, Role: task.RoleDeputy,
				Skills: task.Skills{Languages: []string{"yue"}, ProductLines: []string{}, Regions: []string{}},
				Shift:  task.Shift{Weekdays: []int{1, 2}, Start: 540, End: 1080, TimeZone: "Asia/Shanghai"}, Capacity: 5},
		},
		{
			name: "bad role, shift and capacity",
			in:   task.Agent{ID: "a-5", Name: "x", Role: "boss", Shift: task.Shift{Weekdays: []int{0}, Start: -1, End: 2000, TimeZone: "Mars/Base"}, Capacity: -1},
			badFields: []string{"agent.role", "agent.shift.weekdays[0]", "agent.shift.start_minute", "agent.shift.end_minute",
				"agent.shift.time_zone", "agent.capacity"},
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

// agent fills the defaults NormalizeAgent gives an agent without role, skills or shift.
func agent(a task.Agent) task.Agent {
	a.Role = task.RoleAgent
	a.Skills = task.Skills{Languages: []string{}, ProductLines: []string{}, Regions: []string{}}
	a.Shift.Weekdays = []int{}
	return a
}

func TestCheckStatus(t *testing.T) {
	for _, s := range []string{"", "open", "claimed", "done", "unreachable"} {
		require.NoError(t, task.CheckStatus(s), s)
	}
	require.Equal(t, []string{"status"}, fields(t, task.CheckStatus("finished")))
}

// TestSetCustomer: a CustomerUpdated snapshot sets what routing reads from
// it (seed 002: the first of the staff who know the customer is the
// primary owner, the second the backup).
func TestSetCustomer(t *testing.T) {
	tests := []struct {
		name            string
		c               *typesv1.Customer
		primary, backup string
		tierRank        int
		language        string
	}{
		{name: "two owners, key tier", c: &typesv1.Customer{Id: "c", Tier: "key", OwnerIds: []string{" a-3 ", "a-1"},
			Preferences: &typesv1.ContactPreferences{Language: " en "}}, primary: "a-3", backup: "a-1", tierRank: 0, language: "en"},
		{name: "one owner", c: &typesv1.Customer{Id: "c", Tier: "regular", OwnerIds: []string{"a-2"}}, primary: "a-2", tierRank: 1},
		{name: "no owners clears old ones", c: &typesv1.Customer{Id: "c"}, tierRank: 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			x := task.Task{PrimaryOwner: "old", BackupOwner: "old", Language: "zh-CN", TierRank: 7}
			rules.SetCustomer(&x, tc.c)
			require.Same(t, tc.c, x.Customer)
			require.Equal(t, tc.primary, x.PrimaryOwner)
			require.Equal(t, tc.backup, x.BackupOwner)
			require.Equal(t, tc.tierRank, x.TierRank)
			require.Equal(t, tc.language, x.Language)
		})
	}
}

func TestCheckCustomerUpdated(t *testing.T) {
	tests := []struct {
		name string
		ev   *eventsv1.CustomerUpdated
		want []string
	}{
		{name: "ok", ev: &eventsv1.CustomerUpdated{Customer: &typesv1.Customer{Id: "c-1"}, Version: 1}},
		{name: "no customer", ev: &eventsv1.CustomerUpdated{Version: 3}, want: []string{"customer.id"}},
		{name: "no version", ev: &eventsv1.CustomerUpdated{Customer: &typesv1.Customer{Id: "c-1"}}, want: []string{"version"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			require.Equal(t, tc.want, fields(t, task.CheckCustomerUpdated(tc.ev)))
		})
	}
}

// TestRewindow: a new contact window (seed 002: 10:00-11:30, 15:30-17:00)
// moves an open task due outside it; one inside keeps its time.
func TestRewindow(t *testing.T) {
	shanghai := &typesv1.Customer{Preferences: &typesv1.ContactPreferences{TimeZone: "Asia/Shanghai",
		Windows: []*typesv1.ContactWindow{{StartMinute: 600, EndMinute: 690}, {StartMinute: 930, EndMinute: 1020}}}}
	// now is 17:00 in Shanghai.
	tests := []struct {
		name      string
		status    string
		available time.Time
		want      time.Time
		moved     bool
	}{
		{name: "waiting now, outside: next morning", status: task.StatusOpen, available: now.Add(-time.Hour),
			want: time.Date(2025, 3, 11, 2, 0, 0, 0, time.UTC), moved: true},
		{name: "retry inside the window keeps its time", status: task.StatusOpen, available: time.Date(2025, 3, 11, 2, 30, 0, 0, time.UTC),
			want: time.Date(2025, 3, 11, 2, 30, 0, 0, time.UTC)},
		{name: "retry at night: to the window", status: task.StatusOpen, available: time.Date(2025, 3, 10, 20, 0, 0, 0, time.UTC),
			want: time.Date(2025, 3, 11, 2, 0, 0, 0, time.UTC), moved: true},
		{name: "claimed: left alone", status: task.StatusClaimed, available: now.Add(-time.Hour), want: now.Add(-time.Hour)},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			x := task.Task{Status: tc.status, AvailableAt: tc.available, Customer: shanghai}
			require.Equal(t, tc.moved, rules.Rewindow(&x, now))
			require.True(t, tc.want.Equal(x.AvailableAt), "got %s", x.AvailableAt)
		})
	}
	x := task.Task{Status: task.StatusOpen, AvailableAt: now.Add(-time.Hour), Customer: &typesv1.Customer{}}
	require.False(t, rules.Rewindow(&x, now), "no windows: any time")
}
