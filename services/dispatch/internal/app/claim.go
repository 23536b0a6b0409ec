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

// Claim leases the next task the agent may take (store.Claim: the routing
// stages, then deadline, severity, tier) and writes VisitAssigned; with
// wait > 0 it waits up to wait (real time) for one, woken by the Waker or
// looking again every Poll. It reports false when none came. An unknown
// agent is store.ErrAgentNotFound; an inactive one, one off shift or at
// capacity is refused (task.ErrInactive, ErrOffShift, ErrAtCapacity).
func (a *App) Claim(ctx context.Context, tenant, agentID string, wait time.Duration) (task.Task, bool, error) {
	wait = min(wait, MaxWait)
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
		t, found, err := a.claim(ctx, tenant, agentID)
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

// claim makes one claim in a transaction of its own.
func (a *App) claim(ctx context.Context, tenant, agentID string) (task.Task, bool, error) {
	var (
		t     task.Task
		found bool
	)
	now := a.Now()
	err := pgx.BeginFunc(ctx, a.DB, func(tx pgx.Tx) error {
		agent, rank, eligible, err := store.Eligibility(ctx, tx, tenant, agentID, now, a.Routing.DefaultCapacity)
		if err != nil {
			return err
		}
		if err := eligible.Err(); err != nil {
			return err
		}
		t, found, err = store.Claim(ctx, tx, store.ClaimRequest{Tenant: tenant, Agent: agent, Rank: rank, Now: now, Lease: a.Lease, Routing: a.Routing})
		if err != nil || !found {
			return err
		}
		return assigned(ctx, tx, t, now)
	})
	if err != nil {
		return task.Task{}, false, err
	}
	if found {
		a.notify()
	}
	return t, found, nil
}
