package app

import (
	"context"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/huifang/huifang/services/dispatch/internal/store"
	"github.com/huifang/huifang/services/dispatch/internal/task"
)

// MaxWait bounds a long-poll claim.
const MaxWait = 60 * time.Second

// ClaimCall is one agent's ClaimNextTask.
type ClaimCall struct {
	Tenant  string
	AgentID string
	// RequestID, when set, makes the call safe to retry: the desk chooses it
	// per claim and sends it again when it retries the same claim (its
	// answer was lost). While the agent still holds, on a live lease, the
	// task a call with this id claimed, and has not worked it since, the
	// call answers that task again (the same lease and fencing token,
	// nothing written) instead of claiming another. See task.CheckRequestID
	// for its form.
	RequestID string
	// Wait, when positive, waits up to Wait (at most MaxWait) for a task.
	Wait time.Duration
}

// Claim is ClaimNext for a call without a request id.
func (a *App) Claim(ctx context.Context, tenant, agentID string, wait time.Duration) (task.Task, bool, error) {
	return a.ClaimNext(ctx, ClaimCall{Tenant: tenant, AgentID: agentID, Wait: wait})
}

// ClaimNext leases the next task the agent may take (store.Claim: the
// routing stages, then deadline, severity, tier) and writes VisitAssigned;
// a retry of a claim (c.RequestID, see ClaimCall) answers the task that
// claim took, as it stands. With c.Wait > 0 it waits up to c.Wait (real
// time) for one, woken by the Waker or looking again every Poll. It reports
// false when none came. An unknown agent is store.ErrAgentNotFound; an
// inactive one, one off shift or at capacity is refused (task.ErrInactive,
// ErrOffShift, ErrAtCapacity), unless the call retries a claim that holds a
// task; a request id of the wrong form is an *invalid.Error.
func (a *App) ClaimNext(ctx context.Context, c ClaimCall) (task.Task, bool, error) {
	if err := task.CheckRequestID(c.RequestID); err != nil {
		return task.Task{}, false, err
	}
	wait := min(c.Wait, MaxWait)
	var deadline <-chan time.Time
	if wait > 0 {
		timer := time.NewTimer(wait)
		defer timer.Stop()
		deadline = timer.C
	}
	poll := a.Poll
	if poll <= 0 {
		poll = time.Second
	}
	for {
		var woken <-chan struct{}
		if a.Waker != nil {
			woken = a.Waker.C()
		}
		t, found, err := a.claim(ctx, c)
		if err != nil || found || wait <= 0 {
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

// claim makes one claim in a transaction of its own, or answers the task
// the claim it retries took.
func (a *App) claim(ctx context.Context, c ClaimCall) (task.Task, bool, error) {
	var (
		t              task.Task
		found, retried bool
	)
	now := a.Now()
	err := pgx.BeginFunc(ctx, a.DB, func(tx pgx.Tx) error {
		// Locks the agent: its claims, and retries of them, go one at a time.
		agent, rank, eligible, err := store.Eligibility(ctx, tx, c.Tenant, c.AgentID, now, a.Routing.DefaultCapacity)
		if err != nil {
			return err
		}
		if c.RequestID != "" {
			held, err := store.ClaimedUnder(ctx, tx, c.Tenant, c.AgentID, c.RequestID)
			if err != nil {
				return err
			}
			for _, h := range held {
				if h.Answers(c.AgentID, c.RequestID, now) {
					// The first call's claim stands (its VisitAssigned too):
					// nothing is written; capacity and shift were checked then.
					t, found, retried = h, true, true
					return nil
				}
			}
		}
		if err := eligible.Err(); err != nil {
			return err
		}
		t, found, err = store.Claim(ctx, tx, store.ClaimRequest{Tenant: c.Tenant, Agent: agent, Rank: rank, Now: now, Lease: a.Lease,
			Routing: a.Routing, RequestID: c.RequestID})
		if err != nil || !found {
			return err
		}
		return assigned(ctx, tx, t, now)
	})
	if err != nil {
		return task.Task{}, false, err
	}
	if retried {
		a.log().InfoContext(ctx, "claim retried: answering the task the first call claimed",
			"agent", c.AgentID, "request_id", c.RequestID, "task", t.ID, "visit", t.VisitID, "token", t.LeaseToken)
		return t, true, nil
	}
	if found {
		a.notify()
	}
	return t, found, nil
}
