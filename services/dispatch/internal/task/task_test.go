package task_test

import (
	"testing"
	"time"

	typesv1 "github.com/huifang/huifang/proto/huifang/types/v1"
	"github.com/stretchr/testify/require"

	"github.com/huifang/huifang/pkg/contact"
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

func TestNew(t *testing.T) {
	due := now.Add(-time.Hour)
	// Seed 003: a follow-up within 48 hours after a service.
	deadline := now.Add(48 * time.Hour)
	full := task.Due{
		Tenant: "acme", VisitID: " v-1 ", Channel: typesv1.Channel_CHANNEL_PHONE,
		DueAt: due, Deadline: deadline,
		Customer: task.Customer{ID: "c-1", NameMasked: "王芳"}, OrgUnit: "north", ServiceType: "repair", Group: "vip",
	}
	tests := []struct {
		name      string
		d         task.Due
		want      task.Task
		badFields []string
	}{
		{
			name: "full event",
			d:    full,
			want: task.Task{
				ID: "t-1", Tenant: "acme", VisitID: "v-1", Customer: full.Customer, Channel: typesv1.Channel_CHANNEL_PHONE,
				Group: "vip", OrgUnit: "north", ServiceType: "repair", DueAt: due, Deadline: deadline, AvailableAt: due,
				Status: task.StatusOpen, CreatedAt: now, TierRank: 1,
			},
		},
		{
			name: "defaults: due now, deadline 48 h later (seed 003)",
			d:    task.Due{Tenant: "default", VisitID: "v-2"},
			want: task.Task{ID: "t-1", Tenant: "default", VisitID: "v-2", DueAt: now, AvailableAt: now, Deadline: now.Add(48 * time.Hour),
				Status: task.StatusOpen, CreatedAt: now, TierRank: 1},
		},
		{
			name: "seed 000: a major complaint needs a manager; owners, tier, language; SMS is automatic",
			d: task.Due{Tenant: "default", VisitID: "v-5", Channel: typesv1.Channel_CHANNEL_SMS, Severity: typesv1.Severity_SEVERITY_MAJOR,
				DueAt: due, Deadline: deadline, PolicyID: "p-1", ProductCategory: "ac",
				Customer: task.Customer{ID: "c-5", Tier: "key", OwnerIDs: []string{"a-1", "a-2", "a-3"},
					Preferences: task.Preferences{Language: "zh-CN"}}},
			want: task.Task{ID: "t-1", Tenant: "default", VisitID: "v-5", Channel: typesv1.Channel_CHANNEL_SMS, Severity: typesv1.Severity_SEVERITY_MAJOR,
				RequiredRole: task.RoleDeputy, PolicyID: "p-1", ProductCategory: "ac", TierRank: 0, PrimaryOwner: "a-1", BackupOwner: "a-2",
				Language: "zh-CN", Automatic: true, DueAt: due, Deadline: deadline, AvailableAt: due, Status: task.StatusOpen, CreatedAt: now},
		},
		{
			name: "a group naming a role asks for the role (seed 000: supervisor = leader)",
			d:    task.Due{Tenant: "default", VisitID: "v-6", Group: "supervisor", DueAt: due, Deadline: deadline},
			want: task.Task{ID: "t-1", Tenant: "default", VisitID: "v-6", RequiredRole: task.RoleLeader, DueAt: due, Deadline: deadline,
				AvailableAt: due, Status: task.StatusOpen, CreatedAt: now, TierRank: 1},
		},
		{
			name: "first available at the due time placed in the calendar (seed 002: 10:00-11:30 in Shanghai)",
			d: task.Due{Tenant: "default", VisitID: "v-8", Channel: typesv1.Channel_CHANNEL_PHONE, DueAt: due, Deadline: deadline,
				Calendar: contact.Calendar{TimeZone: "Asia/Shanghai", Windows: []contact.Window{{Start: 600, End: 690}}}},
			want: task.Task{ID: "t-1", Tenant: "default", VisitID: "v-8", Channel: typesv1.Channel_CHANNEL_PHONE, DueAt: due, Deadline: deadline,
				Calendar:    contact.Calendar{TimeZone: "Asia/Shanghai", Windows: []contact.Window{{Start: 600, End: 690}}},
				AvailableAt: time.Date(2025, 3, 11, 2, 0, 0, 0, time.UTC), Status: task.StatusOpen, CreatedAt: now, TierRank: 1},
		},
		{name: "unknown severity", d: task.Due{VisitID: "v-7", Severity: 9}, badFields: []string{"severity"}},
		{name: "no visit id", d: task.Due{Tenant: "acme"}, badFields: []string{"visit_id"}},
		{name: "blank visit id", d: task.Due{VisitID: "  "}, badFields: []string{"visit_id"}},
		{name: "unknown channel", d: task.Due{VisitID: "v-3", Channel: 42}, badFields: []string{"channel"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := task.New(tc.d, "t-1", now, rules)
			require.Equal(t, tc.badFields, fields(t, err))
			if tc.badFields != nil {
				return
			}
			tc.want.Customer = tc.d.Customer
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
		c               task.Customer
		primary, backup string
		tierRank        int
		language        string
	}{
		{name: "two owners, key tier", c: task.Customer{ID: "c", Tier: "key", OwnerIDs: []string{" a-3 ", "a-1"},
			Preferences: task.Preferences{Language: " en "}}, primary: "a-3", backup: "a-1", tierRank: 0, language: "en"},
		{name: "one owner", c: task.Customer{ID: "c", Tier: "regular", OwnerIDs: []string{"a-2"}}, primary: "a-2", tierRank: 1},
		{name: "no owners clears old ones", c: task.Customer{ID: "c"}, tierRank: 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			x := task.Task{PrimaryOwner: "old", BackupOwner: "old", Language: "zh-CN", TierRank: 7}
			rules.SetCustomer(&x, tc.c)
			require.Equal(t, tc.c, x.Customer)
			require.Equal(t, tc.primary, x.PrimaryOwner)
			require.Equal(t, tc.backup, x.BackupOwner)
			require.Equal(t, tc.tierRank, x.TierRank)
			require.Equal(t, tc.language, x.Language)
		})
	}
}

func TestCheckCustomerUpdate(t *testing.T) {
	tests := []struct {
		name    string
		c       task.Customer
		version int64
		want    []string
	}{
		{name: "ok", c: task.Customer{ID: "c-1"}, version: 1},
		{name: "no customer", version: 3, want: []string{"customer.id"}},
		{name: "no version", c: task.Customer{ID: "c-1"}, want: []string{"version"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			require.Equal(t, tc.want, fields(t, task.CheckCustomerUpdate(tc.c, tc.version)))
		})
	}
	require.True(t, task.Newer(1, 0, false), "the first version is kept")
	require.True(t, task.Newer(5, 4, true))
	require.False(t, task.Newer(5, 5, true), "the same version again changes nothing")
	require.False(t, task.Newer(4, 5, true), "a late version changes nothing")
}

// TestReplace: a new contact window (seed 002: 10:00-11:30, 15:30-17:00)
// moves an open call due outside it; one inside keeps its time.
func TestReplace(t *testing.T) {
	shanghai := task.Customer{Preferences: task.Preferences{TimeZone: "Asia/Shanghai",
		Windows: []contact.Window{{Start: 600, End: 690}, {Start: 930, End: 1020}}}}
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
			x := task.Task{Channel: typesv1.Channel_CHANNEL_PHONE, Status: tc.status, AvailableAt: tc.available, Customer: shanghai}
			require.Equal(t, tc.moved, x.Replace(now))
			require.True(t, tc.want.Equal(x.AvailableAt), "got %s", x.AvailableAt)
		})
	}
	x := task.Task{Channel: typesv1.Channel_CHANNEL_PHONE, Status: task.StatusOpen, AvailableAt: now.Add(-time.Hour)}
	require.False(t, x.Replace(now), "no windows: any time")
}

// TestReroutes: only what a customer's active tasks keep besides the
// snapshot counts: the owners routing reads (the first two), the tier's
// rank, the language, the contact windows and zone, and any opt-out.
func TestReroutes(t *testing.T) {
	base := task.Customer{ID: "c-1", NameMasked: "王*", Tier: "regular", OwnerIDs: []string{"a-1", "a-2"},
		Preferences: task.Preferences{Language: "zh-CN", Windows: []contact.Window{{Start: 540, End: 1080}}}}
	for name, tc := range map[string]struct {
		change func(*task.Customer)
		want   bool
	}{
		"the same":              {func(*task.Customer) {}, false},
		"a new name":            {func(c *task.Customer) { c.NameMasked = "李*" }, false},
		"a third owner":         {func(c *task.Customer) { c.OwnerIDs = append(c.OwnerIDs, "a-3") }, false},
		"another unranked tier": {func(c *task.Customer) { c.Tier = "silver" }, false},
		"an invalid window added": {func(c *task.Customer) {
			c.Preferences.Windows = append(c.Preferences.Windows, contact.Window{Start: 60, End: 60})
		}, false},
		"calls disliked":        {func(c *task.Customer) { c.Preferences.DislikesCalls = true }, false},
		"a new primary owner":   {func(c *task.Customer) { c.OwnerIDs = []string{"a-3", "a-2"} }, true},
		"a new backup owner":    {func(c *task.Customer) { c.OwnerIDs = []string{"a-1", "a-3"} }, true},
		"the backup owner gone": {func(c *task.Customer) { c.OwnerIDs = c.OwnerIDs[:1] }, true},
		"a key customer":        {func(c *task.Customer) { c.Tier = "key" }, true},
		"another language":      {func(c *task.Customer) { c.Preferences.Language = "en" }, true},
		"another window":        {func(c *task.Customer) { c.Preferences.Windows = []contact.Window{{Start: 600, End: 690}} }, true},
		"another zone":          {func(c *task.Customer) { c.Preferences.TimeZone = "Asia/Shanghai" }, true},
		"an opt-out":            {func(c *task.Customer) { c.Preferences.OptedOut = []typesv1.Channel{typesv1.Channel_CHANNEL_SMS} }, true},
	} {
		c := base
		c.OwnerIDs = append([]string(nil), base.OwnerIDs...)
		c.Preferences.Windows = append([]contact.Window(nil), base.Preferences.Windows...)
		tc.change(&c)
		require.Equal(t, tc.want, rules.Reroutes(base, c), name)
	}
	optedOut := base
	optedOut.Preferences.OptedOut = []typesv1.Channel{typesv1.Channel_CHANNEL_SMS}
	require.True(t, rules.Reroutes(optedOut, optedOut), "an opt-out kept still withdraws the tasks made on its channel since")
}
