package store_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	typesv1 "github.com/huifang/huifang/proto/huifang/types/v1"

	"github.com/huifang/huifang/services/dispatch/internal/store"
	"github.com/huifang/huifang/services/dispatch/internal/task"
)

var routing = store.Routing{OwnerWait: 30 * time.Minute, BackupWait: 30 * time.Minute, SkillWait: time.Hour}

func (b bundle) put(t *testing.T, a task.Agent) {
	t.Helper()
	require.NoError(t, task.NormalizeAgent(&a))
	_, err := store.UpsertAgent(context.Background(), b.pool, a, t0)
	require.NoError(t, err)
}

// route claims with the routing stages on; "" when nothing fits.
func (b bundle) route(t *testing.T, agent string, now time.Time) string {
	t.Helper()
	got, found, err := b.claimIn("default", agent, now, 4*time.Hour, routing)
	require.NoError(t, err)
	if !found {
		return ""
	}
	return got.VisitID
}

// TestRoutingStages: primary owner, then backup owner, then anyone of the
// group (seed 002: every customer is known to at least two staff).
func TestRoutingStages(t *testing.T) {
	b := setup(t)
	for _, id := range []string{"owner", "backup", "other"} {
		b.agent(t, id)
	}
	b.add(t, newTask("v-1", func(x *task.Task) { x.PrimaryOwner, x.BackupOwner = "owner", "backup" }))

	require.Equal(t, "", b.route(t, "other", t0), "the primary owner's stage")
	require.Equal(t, "", b.route(t, "backup", t0.Add(29*time.Minute)), "still the primary owner's stage")
	require.Equal(t, "", b.route(t, "other", t0.Add(59*time.Minute)), "the backup owner's stage")
	require.Equal(t, "v-1", b.route(t, "backup", t0.Add(30*time.Minute)), "the backup owner after OWNER_WAIT")

	b.add(t, newTask("v-2", func(x *task.Task) { x.PrimaryOwner, x.BackupOwner = "owner", "backup" }))
	require.Equal(t, "v-2", b.route(t, "owner", t0), "the primary owner at once")

	b.add(t, newTask("v-3", func(x *task.Task) { x.PrimaryOwner, x.BackupOwner = "owner", "backup" }))
	require.Equal(t, "v-3", b.route(t, "other", t0.Add(time.Hour)), "anyone after both waits")
}

// TestRoutingSkipsUnavailableOwners: an owner who is not an agent, off
// shift, inactive or at capacity does not hold the task back.
func TestRoutingSkipsUnavailableOwners(t *testing.T) {
	b := setup(t)
	b.agent(t, "other")
	// t0 is a Monday 09:00 UTC; the night shift is 22:00–06:00.
	b.put(t, task.Agent{ID: "night", Name: "night", Shift: task.Shift{Start: 22 * 60, End: 6 * 60}})
	b.put(t, task.Agent{ID: "away", Name: "away", Inactive: true})
	b.put(t, task.Agent{ID: "busy", Name: "busy", Capacity: 1})
	b.add(t, newTask("busy-holds", func(x *task.Task) { x.PrimaryOwner = "busy"; x.Deadline = t0 }))
	require.Equal(t, "busy-holds", b.route(t, "busy", t0))

	b.add(t,
		newTask("unknown-owner", func(x *task.Task) { x.PrimaryOwner, x.BackupOwner = "not-an-agent", "night" }),
		newTask("inactive-owner", func(x *task.Task) { x.PrimaryOwner = "away"; x.Deadline = t0.Add(49 * time.Hour) }),
		newTask("busy-owner", func(x *task.Task) { x.PrimaryOwner = "busy"; x.Deadline = t0.Add(50 * time.Hour) }),
	)
	require.Equal(t, "unknown-owner", b.route(t, "other", t0))
	require.Equal(t, "inactive-owner", b.route(t, "other", t0))
	require.Equal(t, "busy-owner", b.route(t, "other", t0))

	_, _, err := b.claimIn("default", "night", t0, lease, routing)
	require.ErrorIs(t, err, task.ErrOffShift)
	_, _, err = b.claimIn("default", "busy", t0, lease, routing)
	require.ErrorIs(t, err, task.ErrAtCapacity)
	_, _, err = b.claimIn("default", "away", t0, lease, routing)
	require.ErrorIs(t, err, task.ErrInactive)
}

// TestRoutingRequiredRole: seed 000: an urgent complaint goes to the
// supervisor (leader), a major one to the manager (deputy or above); a
// department owner takes only what names its role.
func TestRoutingRequiredRole(t *testing.T) {
	b := setup(t)
	b.agent(t, "agent")
	b.put(t, task.Agent{ID: "leader", Name: "leader", Role: task.RoleLeader})
	b.put(t, task.Agent{ID: "director", Name: "director", Role: task.RoleDirector})
	b.put(t, task.Agent{ID: "dept", Name: "dept", Role: task.RoleDepartmentOwner})
	b.add(t,
		newTask("major", func(x *task.Task) { x.RequiredRole = task.RoleDeputy; x.Severity = typesv1.Severity_SEVERITY_MAJOR }),
		newTask("urgent", func(x *task.Task) { x.RequiredRole = task.RoleLeader; x.Severity = typesv1.Severity_SEVERITY_URGENT }),
		newTask("dept-only", func(x *task.Task) { x.RequiredRole = task.RoleDepartmentOwner }),
	)
	require.Equal(t, "", b.route(t, "agent", t0), "an agent takes neither")
	require.Equal(t, "urgent", b.route(t, "leader", t0), "a leader takes the urgent one, not the major one")
	require.Equal(t, "", b.route(t, "leader", t0))
	require.Equal(t, "major", b.route(t, "director", t0), "a director ranks above a deputy")
	require.Equal(t, "", b.route(t, "director", t0), "the department's task is not the director's")
	require.Equal(t, "dept-only", b.route(t, "dept", t0))
}

// TestRoutingBySkill: language, product line and region must fit an agent
// who lists them, until SKILL_WAIT passes.
func TestRoutingBySkill(t *testing.T) {
	b := setup(t)
	b.put(t, task.Agent{ID: "cantonese", Name: "c", Skills: task.Skills{Languages: []string{"yue"}}})
	b.put(t, task.Agent{ID: "ac-north", Name: "n", Skills: task.Skills{ProductLines: []string{"air_conditioner"}, Regions: []string{"north"}}})
	b.add(t,
		newTask("mandarin", func(x *task.Task) { x.Language = "zh-CN"; x.Deadline = t0.Add(time.Hour) }),
		newTask("ac-south", func(x *task.Task) {
			x.ProductCategory = "air_conditioner"
			x.OrgUnit = "south"
			x.Deadline = t0.Add(2 * time.Hour)
		}),
		newTask("ac-north", func(x *task.Task) {
			x.ProductCategory = "air_conditioner"
			x.OrgUnit = "north"
			x.Deadline = t0.Add(3 * time.Hour)
		}),
		newTask("yue", func(x *task.Task) { x.Language = "yue"; x.Deadline = t0.Add(4 * time.Hour) }),
	)
	require.Equal(t, "ac-south", b.route(t, "cantonese", t0), "no product or region listed: any fits; zh-CN does not")
	require.Equal(t, "mandarin", b.route(t, "ac-north", t0), "no language listed: any fits")
	require.Equal(t, "ac-north", b.route(t, "ac-north", t0), "ac-south is taken; north fits")
	require.Equal(t, "yue", b.route(t, "ac-north", t0), "a task without product or region fits")

	b.add(t, newTask("zh-late", func(x *task.Task) { x.Language = "zh-CN" }))
	require.Equal(t, "", b.route(t, "cantonese", t0))
	require.Equal(t, "zh-late", b.route(t, "cantonese", t0.Add(time.Hour)), "after SKILL_WAIT anyone may take it")
}

// TestPriorityDeadlineSeverityTier: deadline first, then severity, then tier.
func TestPriorityDeadlineSeverityTier(t *testing.T) {
	b := setup(t)
	b.agent(t, "a-1")
	d := t0.Add(48 * time.Hour)
	b.add(t,
		newTask("general-key", func(x *task.Task) { x.Deadline = d; x.Severity = typesv1.Severity_SEVERITY_GENERAL; x.TierRank = 0 }),
		newTask("urgent-plain", func(x *task.Task) { x.Deadline = d; x.Severity = typesv1.Severity_SEVERITY_URGENT; x.TierRank = 1 }),
		newTask("urgent-key", func(x *task.Task) { x.Deadline = d; x.Severity = typesv1.Severity_SEVERITY_URGENT; x.TierRank = 0 }),
		newTask("earlier-general", func(x *task.Task) { x.Deadline = d.Add(-time.Minute); x.TierRank = 1 }),
	)
	var got []string
	for v := b.route(t, "a-1", t0); v != ""; v = b.route(t, "a-1", t0) {
		got = append(got, v)
	}
	require.Equal(t, []string{"earlier-general", "urgent-key", "urgent-plain", "general-key"}, got)
}

// TestAutomaticTasksAreNotOffered: SMS and email tasks are sent by
// dispatch, never claimed by agents.
func TestAutomaticTasksAreNotOffered(t *testing.T) {
	b := setup(t)
	b.agent(t, "a-1")
	b.add(t, newTask("sms", func(x *task.Task) { x.Channel, x.Automatic = typesv1.Channel_CHANNEL_SMS, true }))
	require.Equal(t, "", b.route(t, "a-1", t0))
}

// TestListTasksInClaimOrder: pages follow the claim's order, severity and
// tier included.
func TestListTasksInClaimOrder(t *testing.T) {
	b := setup(t)
	ctx := context.Background()
	d := t0.Add(48 * time.Hour)
	b.add(t,
		newTask("general-key", func(x *task.Task) { x.Deadline = d; x.Severity = typesv1.Severity_SEVERITY_GENERAL }),
		newTask("urgent-plain", func(x *task.Task) { x.Deadline = d; x.Severity = typesv1.Severity_SEVERITY_URGENT; x.TierRank = 1 }),
		newTask("urgent-key", func(x *task.Task) { x.Deadline = d; x.Severity = typesv1.Severity_SEVERITY_URGENT }),
		newTask("earlier", func(x *task.Task) { x.Deadline = d.Add(-time.Minute); x.TierRank = 1 }),
		newTask("none", func(x *task.Task) { x.Deadline = time.Time{}; x.Severity = typesv1.Severity_SEVERITY_MAJOR }),
	)
	var got []string
	cur := store.TaskCursor{}
	for range 10 {
		page, err := store.ListTasks(ctx, b.pool, store.TaskFilter{Tenant: "default"}, cur, 2)
		require.NoError(t, err)
		for _, x := range page {
			got = append(got, x.VisitID)
		}
		if len(page) < 2 {
			break
		}
		cur = store.CursorOf(page[len(page)-1])
	}
	require.Equal(t, []string{"earlier", "urgent-key", "urgent-plain", "general-key", "none"}, got)
}
