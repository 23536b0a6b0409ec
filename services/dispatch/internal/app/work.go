package app

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	typesv1 "github.com/huifang/huifang/proto/huifang/types/v1"

	"github.com/huifang/huifang/pkg/audit"
	"github.com/huifang/huifang/pkg/enum"
	"github.com/huifang/huifang/pkg/invalid"
	"github.com/huifang/huifang/pkg/outbox"
	"github.com/huifang/huifang/services/dispatch/internal/contacts"
	"github.com/huifang/huifang/services/dispatch/internal/store"
	"github.com/huifang/huifang/services/dispatch/internal/task"
)

// update runs fn on the locked task in a transaction of its own and saves
// it (store.UpdateTask); then long-polling claims look again.
func (a *App) update(ctx context.Context, tenant, taskID string, fn func(tx pgx.Tx, t *task.Task, now time.Time) error) (task.Task, error) {
	var out task.Task
	now := a.Now()
	err := a.inTx(ctx, func(tx pgx.Tx) error {
		var err error
		out, err = store.UpdateTask(ctx, tx, tenant, taskID, now, func(t *task.Task) error { return fn(tx, t, now) })
		return err
	})
	if err != nil {
		return task.Task{}, err
	}
	a.wake()
	return out, nil
}

// Heartbeat extends the lease of a task the agent holds to now+Lease.
// token is the fencing token of the agent's claim (task.Task.LeaseToken as
// the claim answered it; 0: none brought, only the agent is checked): once
// the task was claimed again it is task.ErrClaimedAgain and nothing changes.
func (a *App) Heartbeat(ctx context.Context, tenant, taskID, agentID string, token int64) (task.Task, error) {
	return a.update(ctx, tenant, taskID, func(_ pgx.Tx, t *task.Task, now time.Time) error {
		return t.Extend(task.Holder{AgentID: agentID, Token: token}, now, a.Lease)
	})
}

// Release gives a task the agent holds back to the queue at once; token
// fences it as in Heartbeat.
func (a *App) Release(ctx context.Context, tenant, taskID, agentID string, token int64) (task.Task, error) {
	return a.update(ctx, tenant, taskID, func(_ pgx.Tx, t *task.Task, _ time.Time) error {
		return t.Release(task.Holder{AgentID: agentID, Token: token})
	})
}

// Reassign moves an active task to another agent, leased to it, and writes
// VisitAssigned; only a leader, deputy or director may, and a leader only
// within the groups it oversees. It is a new claim: the task's fencing token
// goes up and the previous holder changes nothing any more.
func (a *App) Reassign(ctx context.Context, tenant, taskID, leaderID, toAgentID, reason string) (task.Task, error) {
	leader, groups, err := a.leaderGroups(ctx, tenant, leaderID)
	if err != nil {
		return task.Task{}, err
	}
	if err := task.MayReassign(leader.Role); err != nil {
		return task.Task{}, err
	}
	return a.update(ctx, tenant, taskID, func(tx pgx.Tx, t *task.Task, now time.Time) error {
		if err := t.CheckReassign(leader, groups); err != nil {
			return err
		}
		to, err := store.Agent(ctx, tx, tenant, toAgentID)
		if err != nil {
			return err
		}
		from := t.AgentID
		if err := t.AssignTo(to, now, a.Lease); err != nil {
			return err
		}
		if err := assigned(ctx, tx, *t, now); err != nil {
			return err
		}
		// The reason is free text and may name the customer: not kept here.
		return a.auditTx(ctx, tx, tenant, "task.reassign", audit.Target{Kind: "task", ID: t.ID},
			audit.Detail{"visit_id": t.VisitID, "from_agent": from, "to_agent": to.ID, "leader_id": leader.ID}, now)
	})
}

// Attempt is an agent's attempt on a task it holds.
type Attempt struct {
	Tenant  string
	TaskID  string
	AgentID string
	// LeaseToken is the fencing token of the agent's claim (0: none brought;
	// only the agent is checked); see Heartbeat.
	LeaseToken  int64
	Disposition typesv1.Disposition
	// CallBackAt is when the customer asked to be called back (CALL_BACK_LATER).
	CallBackAt time.Time
	Note       string
	// OccurredAt is when the attempt was made, when it is recorded later;
	// zero: now. Bounded by AttemptSkew ahead and the task's creation.
	OccurredAt time.Time
}

// AttemptSkew is how far ahead of the service's clock an attempt's stated
// time may be (the caller's clock may run ahead).
const AttemptSkew = 5 * time.Minute

// attemptTime is when the attempt of in on t happened: in.OccurredAt,
// checked, or now.
func attemptTime(in Attempt, t task.Task, now time.Time) (time.Time, error) {
	at := in.OccurredAt
	switch {
	case at.IsZero():
		return now, nil
	case at.After(now.Add(AttemptSkew)):
		return time.Time{}, invalid.New("occurred_at", fmt.Sprintf("%s is in the future: at most %s after the service's clock (%s)",
			at.UTC().Format(time.RFC3339), AttemptSkew, now.UTC().Format(time.RFC3339)))
	case at.Before(t.CreatedAt):
		return time.Time{}, invalid.New("occurred_at", fmt.Sprintf("%s is before the task was made (%s): an attempt comes after the visit fell due",
			at.UTC().Format(time.RFC3339), t.CreatedAt.UTC().Format(time.RFC3339)))
	}
	return at.UTC(), nil
}

// AttemptResult is what RecordAttempt did.
type AttemptResult struct {
	Task    task.Task
	Attempt int
	Next    time.Time
}

// RecordAttempt records an agent's attempt on a task it holds and applies
// the retry policy (task.Task.Record): a retry goes back to the queue at
// the next attempt time (placed in the contact calendar), the last failed
// attempt makes the visit unreachable (无效回访), "asked to stop" opts the
// customer out of the channel (and cancels the customer's other open or
// claimed tasks on it). Each attempt writes VisitAttempted, and as the
// outcome says VisitUnreachable and ContactOptedOut. An attempt under a
// claim that is no longer the task's (in.LeaseToken) is task.ErrClaimedAgain
// and records nothing.
func (a *App) RecordAttempt(ctx context.Context, in Attempt) (AttemptResult, error) {
	var res AttemptResult
	t, err := a.update(ctx, in.Tenant, in.TaskID, func(tx pgx.Tx, t *task.Task, now time.Time) error {
		at, err := attemptTime(in, *t, now)
		if err != nil {
			return err
		}
		n, out, err := t.Record(task.Holder{AgentID: in.AgentID, Token: in.LeaseToken}, in.Disposition, at, in.CallBackAt, a.Retry)
		if err != nil {
			return err
		}
		res.Attempt, res.Next = n, out.NextAttemptAt
		if err := store.AddAttempt(ctx, tx, store.Attempt{ID: outbox.NewEventID(), Tenant: t.Tenant, TaskID: t.ID, VisitID: t.VisitID,
			AgentID: in.AgentID, Number: n, Disposition: in.Disposition, Note: strings.TrimSpace(in.Note), At: at, NextAttemptAt: out.NextAttemptAt}); err != nil {
			return err
		}
		if out.OptOut {
			// The customer's other visits on this channel are not made either.
			if _, err := store.UpdateActiveTasksOfCustomer(ctx, tx, t.Tenant, t.CustomerID(), now, func(o *task.Task) (bool, error) {
				return o.WithdrawOptedOut(t.Channel, t.ID), nil
			}); err != nil {
				return err
			}
		}
		if err := attempted(ctx, tx, *t, in.AgentID, in.Disposition, n, at, out.NextAttemptAt); err != nil {
			return err
		}
		if out.Unreachable {
			if err := unreachable(ctx, tx, *t, n, out.Reason, at); err != nil {
				return err
			}
		}
		if out.OptOut {
			return optedOut(ctx, tx, *t, now)
		}
		return nil
	})
	if err != nil {
		return AttemptResult{}, err
	}
	res.Task = t
	return res, nil
}

// RevealTaskContact gives the agent holding a task (agentID with the
// claim's token) the address of its customer on channel ch (click-to-dial:
// tasks show contacts masked), asked of intake on the agent's behalf. The
// reveal is written to dispatch's audit log (task.contact_reveal: who,
// which task and customer, channel, purpose) before intake is asked, and
// intake writes its own entry.
func (a *App) RevealTaskContact(ctx context.Context, tenant, taskID, agentID string, token int64, ch typesv1.Channel, purpose string) (contacts.Contact, error) {
	if a.Send.Contacts == nil {
		return contacts.Contact{}, errors.New("reveal: no contact book configured")
	}
	var t task.Task
	err := a.inTx(ctx, func(tx pgx.Tx) error {
		var err error
		if t, err = store.Task(ctx, tx, tenant, taskID); err != nil {
			return err
		}
		if err := t.HeldBy(task.Holder{AgentID: agentID, Token: token}); err != nil {
			return err
		}
		if !t.Customer.Reachable(ch) {
			return invalid.New("channel", "the task's customer has no address for "+enum.Name(ch))
		}
		return a.auditTx(ctx, tx, tenant, "task.contact_reveal", audit.Target{Kind: "task", ID: t.ID},
			audit.Detail{"customer": t.CustomerID(), "channel": enum.Name(ch), "purpose": purpose}, a.Now())
	})
	if err != nil {
		return contacts.Contact{}, err
	}
	c, err := a.Send.Contacts.Reveal(ctx, contacts.Request{Tenant: tenant, CustomerID: t.CustomerID(), Channel: ch, Purpose: purpose,
		OnBehalfOf: "agent:" + agentID + " task:" + t.ID})
	if err != nil {
		return contacts.Contact{}, fmt.Errorf("reveal: %w", err)
	}
	return c, nil
}
