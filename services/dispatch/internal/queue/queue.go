// Package queue holds dispatch's use cases for agents and leaders: claim
// (with long-poll), heartbeat, attempts and their retry policy, release,
// reassignment, withdrawal of cancelled visits and the SLA view.
package queue

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"google.golang.org/protobuf/types/known/timestamppb"

	eventsv1 "github.com/huifang/huifang/proto/huifang/events/v1"
	typesv1 "github.com/huifang/huifang/proto/huifang/types/v1"

	"github.com/huifang/huifang/pkg/invalid"
	"github.com/huifang/huifang/pkg/outbox"
	"github.com/huifang/huifang/pkg/stream"
	"github.com/huifang/huifang/services/dispatch/internal/store"
	"github.com/huifang/huifang/services/dispatch/internal/task"
)

// Refusals of the use cases (besides the store's).
var (
	// ErrNotHolder: the agent does not hold the task's lease.
	ErrNotHolder = errors.New("queue: the agent does not hold the task")
	// ErrClosed: the task is no longer active.
	ErrClosed = errors.New("queue: the task is closed")
	// ErrNotLeader: only a leader (or above) may do this.
	ErrNotLeader = errors.New("queue: only a leader, deputy or director may reassign tasks")
	// ErrAutomatic: automatic-channel tasks are sent by dispatch, not worked by agents.
	ErrAutomatic = errors.New("queue: the task is sent by dispatch itself")
)

// MaxWait bounds a long-poll claim.
const MaxWait = 60 * time.Second

// Notifier is told when events were committed (the outbox relay).
type Notifier interface{ Notify() }

// Waker wakes long-polling claims when work may have appeared; safe for
// concurrent use. Other replicas' changes are seen by polling.
type Waker struct {
	mu sync.Mutex
	ch chan struct{}
}

// Notify wakes every waiter.
func (w *Waker) Notify() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.ch != nil {
		close(w.ch)
		w.ch = nil
	}
}

// C returns a channel closed at the next Notify.
func (w *Waker) C() <-chan struct{} {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.ch == nil {
		w.ch = make(chan struct{})
	}
	return w.ch
}

// Queue runs the use cases.
type Queue struct {
	Store *store.Store
	Relay Notifier
	// Now is the clock of every decision (leases, retries, deadlines).
	Now     func() time.Time
	Lease   time.Duration
	Routing store.Routing
	Retry   task.RetryPolicy
	Rules   task.Rules
	// Poll is how often a long-poll claim looks again without a wake-up.
	Poll  time.Duration
	Waker *Waker
}

// Claim leases the next task to the agent; with wait > 0 it waits up to
// wait (real time) for one.
func (q *Queue) Claim(ctx context.Context, tenant, agentID string, wait time.Duration) (task.Task, bool, error) {
	wait = min(wait, MaxWait)
	var deadline <-chan time.Time
	if wait > 0 {
		timer := time.NewTimer(wait)
		defer timer.Stop()
		deadline = timer.C
	}
	poll := q.Poll
	if poll <= 0 {
		poll = time.Second
	}
	for {
		var woken <-chan struct{}
		if q.Waker != nil {
			woken = q.Waker.C()
		}
		t, found, err := q.Store.Claim(ctx, store.ClaimRequest{Tenant: tenant, AgentID: agentID, Now: q.Now(), Lease: q.Lease, Routing: q.Routing})
		if err != nil || found || wait <= 0 {
			if found {
				q.Relay.Notify()
			}
			return t, found, err
		}
		tick := time.NewTimer(poll)
		select {
		case <-ctx.Done():
			tick.Stop()
			return task.Task{}, false, nil
		case <-deadline:
			tick.Stop()
			return task.Task{}, false, nil
		case <-woken:
		case <-tick.C:
		}
		tick.Stop()
	}
}

// update runs fn on the locked task in one transaction and saves it.
func (q *Queue) update(ctx context.Context, tenant, taskID string, fn func(tx pgx.Tx, t *task.Task, now time.Time) error) (task.Task, error) {
	var out task.Task
	now := q.Now()
	err := pgx.BeginFunc(ctx, q.Store.Pool, func(tx pgx.Tx) error {
		t, err := store.LockTask(ctx, tx, tenant, taskID)
		if err != nil {
			return err
		}
		if err := fn(tx, &t, now); err != nil {
			return err
		}
		out = t
		return store.SaveTask(ctx, tx, t, now)
	})
	if err != nil {
		return task.Task{}, err
	}
	q.Relay.Notify()
	if q.Waker != nil {
		q.Waker.Notify()
	}
	return out, nil
}

// holds checks that agentID holds t: claimed by it. A lease that ran out
// still counts until another agent takes the task.
func holds(t task.Task, agentID string) error {
	if t.Automatic {
		return ErrAutomatic
	}
	if t.Status != task.StatusClaimed {
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

// Heartbeat extends the lease of a task the agent holds to now+lease.
func (q *Queue) Heartbeat(ctx context.Context, tenant, taskID, agentID string) (task.Task, error) {
	return q.update(ctx, tenant, taskID, func(_ pgx.Tx, t *task.Task, now time.Time) error {
		if err := holds(*t, agentID); err != nil {
			return err
		}
		t.LeaseExpiresAt = now.Add(q.Lease)
		return nil
	})
}

// Release gives a task the agent holds back to the queue at once.
func (q *Queue) Release(ctx context.Context, tenant, taskID, agentID string) (task.Task, error) {
	return q.update(ctx, tenant, taskID, func(_ pgx.Tx, t *task.Task, _ time.Time) error {
		if err := holds(*t, agentID); err != nil {
			return err
		}
		t.Status, t.AgentID, t.LeaseExpiresAt = task.StatusOpen, "", time.Time{}
		return nil
	})
}

// Reassign moves an active task to another agent, leased to it; only a
// leader, deputy or director may, and a leader only within the groups it
// oversees.
func (q *Queue) Reassign(ctx context.Context, tenant, taskID, leaderID, toAgentID, reason string) (task.Task, error) {
	leader, groups, err := q.Store.LeaderGroups(ctx, tenant, leaderID)
	if err != nil {
		return task.Task{}, err
	}
	if task.RoleRank(leader.Role) < task.RoleRank(task.RoleLeader) {
		return task.Task{}, ErrNotLeader
	}
	return q.update(ctx, tenant, taskID, func(tx pgx.Tx, t *task.Task, now time.Time) error {
		if t.Automatic {
			return ErrAutomatic
		}
		if t.Status != task.StatusOpen && t.Status != task.StatusClaimed {
			return ErrClosed
		}
		if leader.Role == task.RoleLeader && t.Group != "" && !contains(groups, t.Group) {
			return fmt.Errorf("%w: group %q is not one the leader oversees", ErrNotLeader, t.Group)
		}
		to, err := store.AgentTx(ctx, tx, tenant, toAgentID)
		if err != nil {
			return err
		}
		if to.Inactive {
			return store.ErrInactive
		}
		t.Status, t.AgentID, t.LeaseExpiresAt = task.StatusClaimed, to.ID, now.Add(q.Lease)
		return store.Assigned(ctx, tx, *t, now)
	})
}

// AttemptResult is what RecordAttempt did.
type AttemptResult struct {
	Task    task.Task
	Attempt int
	Next    time.Time
}

// RecordAttempt records an agent's attempt on a task it holds and applies
// the retry policy: a retry goes back to the queue at the next attempt
// time (inside the contact window), the last failed attempt makes the
// visit unreachable (无效回访), "asked to stop" opts the customer out of the
// channel (and cancels the customer's other open tasks on it). Each
// attempt writes VisitAttempted.
func (q *Queue) RecordAttempt(ctx context.Context, tenant, taskID, agentID string, d typesv1.Disposition, callBackAt time.Time, note string) (AttemptResult, error) {
	var res AttemptResult
	t, err := q.update(ctx, tenant, taskID, func(tx pgx.Tx, t *task.Task, now time.Time) error {
		if err := holds(*t, agentID); err != nil {
			return err
		}
		n := t.Attempts + 1
		out, err := task.Decide(*t, d, n, now, callBackAt, q.Retry, q.Rules)
		if err != nil {
			return err
		}
		t.Attempts, t.LastDisposition, t.Status = n, d, out.Status
		t.AgentID, t.LeaseExpiresAt = "", time.Time{}
		if out.Status == task.StatusDone || out.Status == task.StatusRefused {
			t.AgentID = agentID // who made the visit
		}
		if !out.NextAttemptAt.IsZero() {
			t.AvailableAt = out.NextAttemptAt
		}
		res.Attempt, res.Next = n, out.NextAttemptAt
		if err := store.AddAttempt(ctx, tx, store.Attempt{ID: outbox.NewEventID(), Tenant: t.Tenant, TaskID: t.ID, VisitID: t.VisitID,
			AgentID: agentID, Number: n, Disposition: d, Note: strings.TrimSpace(note), At: now, NextAttemptAt: out.NextAttemptAt}); err != nil {
			return err
		}
		if out.OptOut {
			// The customer's other visits on this channel are not made either.
			if _, err := store.CancelCustomerChannel(ctx, tx, t.Tenant, t.CustomerID(), t.Channel, t.ID, now); err != nil {
				return err
			}
		}
		return writeAttemptEvents(ctx, tx, *t, agentID, d, n, now, out)
	})
	if err != nil {
		return AttemptResult{}, err
	}
	res.Task = t
	return res, nil
}

// writeAttemptEvents writes VisitAttempted and, as the outcome says,
// VisitUnreachable and ContactOptedOut.
func writeAttemptEvents(ctx context.Context, tx pgx.Tx, t task.Task, agentID string, d typesv1.Disposition, n int, now time.Time, out task.Outcome) error {
	att := &eventsv1.VisitAttempted{
		EventId: outbox.NewEventID(), TenantId: t.Tenant, VisitId: t.VisitID, TaskId: t.ID, AgentId: agentID,
		Channel: t.Channel, Disposition: d, Attempt: int32(n), AttemptedAt: timestamppb.New(now),
		CustomerId: t.CustomerID(), OrgUnit: t.OrgUnit, Deadline: ts(t.Deadline), NextAttemptAt: ts(out.NextAttemptAt),
	}
	if _, err := outbox.Add(ctx, tx, outbox.Message{ID: att.EventId, Subject: stream.SubjectVisitAttempted, Payload: att}); err != nil {
		return err
	}
	if out.Unreachable {
		ev := &eventsv1.VisitUnreachable{
			EventId: outbox.NewEventID(), TenantId: t.Tenant, VisitId: t.VisitID, CustomerId: t.CustomerID(),
			Attempts: int32(n), Reason: out.Reason, At: timestamppb.New(now), OrgUnit: t.OrgUnit,
		}
		if _, err := outbox.Add(ctx, tx, outbox.Message{ID: ev.EventId, Subject: stream.SubjectVisitUnreachable, Payload: ev}); err != nil {
			return err
		}
	}
	if out.OptOut {
		ev := &eventsv1.ContactOptedOut{
			EventId: outbox.NewEventID(), TenantId: t.Tenant, CustomerId: t.CustomerID(), Channel: t.Channel,
			Source: "dispatch: asked to stop during visit " + t.VisitID, At: timestamppb.New(now),
		}
		if _, err := outbox.Add(ctx, tx, outbox.Message{ID: ev.EventId, Subject: stream.SubjectContactOptedOut, Payload: ev}); err != nil {
			return err
		}
	}
	return nil
}

// Withdraw cancels the visit's task within tx (VisitCancelled): an active
// task is closed as cancelled; a visit without a task yet is remembered so
// that its VisitDue makes none.
func Withdraw(ctx context.Context, tx pgx.Tx, tenant, visitID, reason string, now time.Time) error {
	if err := store.CancelVisit(ctx, tx, tenant, visitID, reason, now); err != nil {
		return err
	}
	t, err := store.TaskOfVisit(ctx, tx, tenant, visitID)
	if errors.Is(err, store.ErrTaskNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	if !t.Active() {
		return nil
	}
	t.Status, t.AgentID, t.LeaseExpiresAt = task.StatusCancelled, "", time.Time{}
	return store.SaveTask(ctx, tx, t, now)
}

// DeadlineTask is a task near or past its deadline.
type DeadlineTask struct {
	Task task.Task
	// Stage is "near" or "past".
	Stage string
}

// Stage returns "past" when the deadline is at or before now, else "near".
func Stage(deadline, now time.Time) string {
	if !deadline.After(now) {
		return "past"
	}
	return "near"
}

// CheckDisposition reports a disposition an agent may not record (SENT etc.)
// as bad input before any lookup.
func CheckDisposition(d typesv1.Disposition) error {
	switch d {
	case typesv1.Disposition_DISPOSITION_UNSPECIFIED:
		return invalid.New("disposition", "is required")
	case typesv1.Disposition_DISPOSITION_SENT, typesv1.Disposition_DISPOSITION_DELIVERED, typesv1.Disposition_DISPOSITION_FAILED:
		return invalid.New("disposition", "is reported by automatic channels, not by agents")
	}
	if _, ok := typesv1.Disposition_name[int32(d)]; !ok {
		return invalid.New("disposition", fmt.Sprintf("must be a known disposition, not %d", d))
	}
	return nil
}

func contains(xs []string, x string) bool {
	for _, y := range xs {
		if y == x {
			return true
		}
	}
	return false
}

func ts(t time.Time) *timestamppb.Timestamp {
	if t.IsZero() {
		return nil
	}
	return timestamppb.New(t)
}
