package task

import (
	"errors"
	"fmt"
	"slices"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/huifang/huifang/pkg/invalid"
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
	// ErrClaimedAgain: the caller's fencing token is not the task's: the
	// task was claimed again (by another agent or sender, by a leader's
	// reassignment, or anew by the same agent) after the claim the caller
	// holds. Such a stale holder changes nothing.
	ErrClaimedAgain = errors.New("task: the task was claimed again")
	// ErrLeaseExpired: the caller's lease ran out; it must not start work
	// (a send) that another holder may be starting too.
	ErrLeaseExpired = errors.New("task: the lease ran out")
)

// Holder is who works on a task under one claim: the agent and the claim's
// fencing token (LeaseToken as the claim answered it). Token 0 says the
// caller brought none: then only the agent is checked, and a stale caller
// whose task came back to the same agent cannot be told from the current one.
type Holder struct {
	AgentID string
	Token   int64
}

// Fenced checks a holder's fencing token against t's: ErrClaimedAgain when
// the caller brought one (token > 0) and t was claimed since (or the token
// never was t's).
func (t Task) Fenced(token int64) error {
	if token != 0 && token != t.LeaseToken {
		return ErrClaimedAgain
	}
	return nil
}

// HeldBy checks that h holds t: claimed by h's agent under h's claim. A
// lease that ran out still counts until the task is claimed again.
func (t Task) HeldBy(h Holder) error {
	if t.Automatic {
		return ErrAutomatic
	}
	if err := t.Fenced(h.Token); err != nil {
		return err
	}
	if t.Status != StatusClaimed {
		if t.Active() {
			return ErrNotHolder
		}
		return ErrClosed
	}
	if t.AgentID != h.AgentID {
		return ErrNotHolder
	}
	return nil
}

// Extend extends the lease of a task h holds to now+lease (a heartbeat).
func (t *Task) Extend(h Holder, now time.Time, lease time.Duration) error {
	if err := t.HeldBy(h); err != nil {
		return err
	}
	t.LeaseExpiresAt = now.Add(lease)
	return nil
}

// Release gives a task h holds back to the queue at once.
func (t *Task) Release(h Holder) error {
	if err := t.HeldBy(h); err != nil {
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

// AssignTo leases t to agent to until now+lease (a leader's reassignment),
// a new claim: the fencing token goes up, so the previous holder changes
// nothing any more. An inactive agent takes nothing.
func (t *Task) AssignTo(to Agent, now time.Time, lease time.Duration) error {
	if to.Inactive {
		return ErrInactive
	}
	t.Status, t.AgentID, t.LeaseExpiresAt = StatusClaimed, to.ID, now.Add(lease)
	t.LeaseToken++
	t.ClaimRequestID = ""
	return nil
}

// MaxRequestID is the longest request id a claim may carry, in characters.
const MaxRequestID = 128

// CheckRequestID checks the request id of an agent's claim
// (ClaimNextTask.request_id): empty (none), or at most MaxRequestID
// printable characters.
func CheckRequestID(id string) error {
	if n := utf8.RuneCountInString(id); n > MaxRequestID {
		return invalid.New("request_id", fmt.Sprintf("must be at most %d characters, not %d", MaxRequestID, n))
	}
	for i, r := range id {
		if r == utf8.RuneError || !unicode.IsPrint(r) {
			return invalid.New("request_id", fmt.Sprintf("must be printable characters (a UUID will do); character %d is not", utf8.RuneCountInString(id[:i])+1))
		}
	}
	return nil
}

// Answers reports whether a claim by agentID carrying requestID is a retry
// of the claim that holds t, to be answered with t as it stands (the same
// lease and fencing token) rather than with another task: the agent's claim
// brought that very request id, the agent still holds t under it (claimed,
// not reassigned: a reassignment clears the id), its lease lives at now, and
// t has not been worked since (an attempt or a release ends the claim). An
// empty requestID answers nothing: every such call claims anew.
func (t Task) Answers(agentID, requestID string, now time.Time) bool {
	return requestID != "" && !t.Automatic && t.ClaimRequestID == requestID &&
		t.Status == StatusClaimed && t.AgentID == agentID && t.LeaseExpiresAt.After(now)
}
