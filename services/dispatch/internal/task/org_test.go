package task_test

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/huifang/huifang/services/dispatch/internal/task"
)

func TestCheckParent(t *testing.T) {
	u := task.OrgUnit{ID: "center", ParentID: "team-2a"}
	require.ErrorIs(t, u.CheckParent(false, nil), task.ErrParentNotFound)
	require.ErrorIs(t, u.CheckParent(true, []string{"team-2a", "group-2", "center"}), task.ErrCycle, "below itself")
	require.NoError(t, u.CheckParent(true, []string{"team-2a", "group-2"}))
	require.NoError(t, task.OrgUnit{ID: "root"}.CheckParent(false, nil), "a root has no parent to check")
}

func TestOversees(t *testing.T) {
	leader := task.Agent{Groups: []string{"group-1", "vip"}}
	require.Equal(t, []string{"group-1", "vip", "team-1a"}, task.Oversees(leader, []string{"group-1", "team-1a"}))
	require.Equal(t, []string{}, task.Oversees(task.Agent{}, nil), "never nil: nil would mean any group")
}

func TestEligibility(t *testing.T) {
	require.NoError(t, task.Eligibility{Active: true, OnShift: true, HasRoom: true}.Err())
	require.ErrorIs(t, task.Eligibility{OnShift: true, HasRoom: true}.Err(), task.ErrInactive)
	require.ErrorIs(t, task.Eligibility{Active: true}.Err(), task.ErrOffShift, "off shift before at capacity")
	require.ErrorIs(t, task.Eligibility{Active: true, OnShift: true}.Err(), task.ErrAtCapacity)
}
