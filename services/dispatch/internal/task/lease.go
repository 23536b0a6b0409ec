package task

import (
	"errors"
	"fmt"
	"slices"
	"time"
)

// Refusals of work on a task.
var (
	// ErrNotHolder: the agent does not hold the task's lease.
	ErrNotHolder = errors.New("task: the agent does not hold the task")
	// ErrClosed: the task is no longer active.
	ErrClosed = errors.New("task: the task is closed")
	// ErrNotLeader: only a leader (or above) may do this.
	ErrNotLeader = errors.New("task: only a leader, deputy or director may reassign tasks")
	// ErrAutomatic: automatic-channel tasks are sent by dispatch, not worked by agents.
	ErrAutomatic = errors.New("task: the task is sent by dispatch itself")
)

// HeldBy checks that agentID holds t: claimed by it. A lease that ran out
// still counts until another agent takes the task.
func (t Task) HeldBy(agentID string) error {
	if t.Automatic {
		return ErrAutomatic
	}
	if t.Status != StatusClaimed {
		if t.Active() {
			return ErrNotHolder
		}
		return ErrClosed
	}
	if t.AgentID != agentID {
		return ErrNotHolder
	}
	return nil
}

// Extend extends the lease of a task the agent holds to now+lease (a heartbeat).
func (t *Task) Extend(agentID string, now time.Time, lease time.Duration) error {
	if err := t.HeldBy(agentID); err != nil {
		return err
	}
	t.LeaseExpiresAt = now.Add(lease)
	return nil
}

// Release gives a task the agent holds back to the queue at once.
func (t *Task) Release(agentID string) error {
	if err := t.HeldBy(agentID); err != nil {
		return err
	}
	t.Status, t.AgentID, t.LeaseExpiresAt = StatusOpen, "", time.Time{}
	return nil
}

// MayReassign checks that an agent of role may reassign tasks: a leader,
// deputy or director (seed 004: leaders assign tasks).
func MayReassign(role string) error {
	if RoleRank(role) < RoleRank(RoleLeader) {
		return ErrNotLeader
	}
	return nil
}

// CheckReassign checks that leader (who oversees groups) may move t to
// another agent: t is an agents' task, open or claimed, and a leader (not a
// deputy or director) oversees its group.
func (t Task) CheckReassign(leader Agent, groups []string) error {
	if t.Automatic {
		return ErrAutomatic
	}
	if t.Status != StatusOpen && t.Status != StatusClaimed {
		return ErrClosed
	}
	if leader.Role == RoleLeader && t.Group != "" && !slices.Contains(groups, t.Group) {
		return fmt.Errorf("%w: group %q is not one the leader oversees", ErrNotLeader, t.Group)
	}
	return nil
}

// AssignTo leases t to agent to until now+lease (a leader's reassignment);
// an inactive agent takes nothing.
func (t *Task) AssignTo(to Agent, now time.Time, lease time.Duration) error {
	if to.Inactive {
		return ErrInactive
	}
	t.Status, t.AgentID, t.LeaseExpiresAt = StatusClaimed, to.ID, now.Add(lease)
	return nil
}
