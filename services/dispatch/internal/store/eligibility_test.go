package store_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/huifang/huifang/services/dispatch/internal/store"
	"github.com/huifang/huifang/services/dispatch/internal/task"
)

// TestOnShift: the claim's shift rule (SQL on_shift, the one
// implementation), with the cases the Go twin task.Shift.On had.
func TestOnShift(t *testing.T) {
	b := setup(t)
	ctx := context.Background()
	monday9 := time.Date(2025, 3, 10, 9, 0, 0, 0, time.UTC) // a Monday
	tests := []struct {
		name  string
		shift task.Shift
		at    time.Time
		want  bool
	}{
		{"no shift: always", task.Shift{}, monday9, true},
		{"day shift", task.Shift{Start: 8 * 60, End: 17 * 60}, monday9, true},
		{"before the day shift", task.Shift{Start: 10 * 60, End: 17 * 60}, monday9, false},
		{"night shift crosses midnight", task.Shift{Start: 22 * 60, End: 6 * 60}, monday9.Add(-4 * time.Hour), true},
		{"not a working day", task.Shift{Weekdays: []int{6, 7}}, monday9, false},
		{"in the agent's zone: 17:00 in Shanghai", task.Shift{Start: 8 * 60, End: 17 * 60, TimeZone: "Asia/Shanghai"}, monday9, false},
	}
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			id := fmt.Sprintf("a-%d", i)
			b.put(t, task.Agent{ID: id, Name: id, Shift: tc.shift})
			require.NoError(t, pgx.BeginFunc(ctx, b.pool, func(tx pgx.Tx) error {
				_, _, e, err := store.Eligibility(ctx, tx, "default", id, tc.at, 0)
				require.Equal(t, tc.want, e.OnShift)
				return err
			}))
			_, _, err := b.claimIn("default", id, tc.at, lease, store.Routing{})
			if tc.want {
				require.NoError(t, err)
			} else {
				require.ErrorIs(t, err, task.ErrOffShift)
			}
		})
	}
}

// TestTakesRole: the claim's role rule (SQL on the stored ranks, the one
// implementation), with the cases the Go twin task.Satisfies had: a role
// takes tasks needing it or a lower rank; a department owner ranks apart.
func TestTakesRole(t *testing.T) {
	b := setup(t)
	tests := []struct {
		name           string
		role, required string
		want           bool
	}{
		{"a director may do a manager's call", task.RoleDirector, task.RoleDeputy, true},
		{"a leader does a leader's", task.RoleLeader, task.RoleLeader, true},
		{"an agent not a leader's", task.RoleAgent, task.RoleLeader, false},
		{"department owners rank apart", task.RoleDirector, task.RoleDepartmentOwner, false},
		{"a task without a role is anyone's", task.RoleAgent, "", true},
	}
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tenant := fmt.Sprintf("case-%d", i) // each case alone in its tenant
			a := task.Agent{Tenant: tenant, ID: "a", Name: "a", Role: tc.role}
			require.NoError(t, task.NormalizeAgent(&a))
			_, err := store.UpsertAgent(context.Background(), b.pool, a, t0)
			require.NoError(t, err)
			b.add(t, newTask("v", func(x *task.Task) { x.Tenant, x.RequiredRole = tenant, tc.required }))
			_, found, err := b.claimIn(tenant, "a", t0, lease, store.Routing{})
			require.NoError(t, err)
			require.Equal(t, tc.want, found)
		})
	}
}

// TestCapacity: an agent holds at most its capacity, else the default
// one; 0 with a 0 default is no limit; an expired lease does not count.
func TestCapacity(t *testing.T) {
	b := setup(t)
	ctx := context.Background()
	b.put(t, task.Agent{ID: "two", Name: "two", Capacity: 2})
	b.agent(t, "default")
	for i := range 4 {
		b.add(t, newTask(fmt.Sprintf("v-%d", i)))
	}
	room := func(agent string, now time.Time, def int) bool {
		var e task.Eligibility
		require.NoError(t, pgx.BeginFunc(ctx, b.pool, func(tx pgx.Tx) error {
			var err error
			_, _, e, err = store.Eligibility(ctx, tx, "default", agent, now, def)
			return err
		}))
		return e.HasRoom
	}
	require.NotEmpty(t, b.claim(t, "two", t0))
	require.NotEmpty(t, b.claim(t, "two", t0))
	require.False(t, room("two", t0, 0), "its own capacity, whatever the default")
	require.True(t, room("two", t0.Add(lease), 0), "expired leases do not count")
	require.NotEmpty(t, b.claim(t, "default", t0))
	require.False(t, room("default", t0, 1), "the default capacity")
	require.True(t, room("default", t0, 0), "no capacity and no default: no limit")
}
