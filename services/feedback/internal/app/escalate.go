package app

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/huifang/huifang/services/feedback/internal/store"
)

// EscalateOverdue is one round of the overdue-complaint loop, in a
// transaction of its own; see EscalateOverdueTx. It returns how many
// complaints it escalated: a full round (EscalationBatch) means there may be more.
func (a *App) EscalateOverdue(ctx context.Context) (int, error) {
	n := 0
	err := pgx.BeginFunc(ctx, a.DB, func(tx pgx.Tx) error {
		var err error
		n, err = a.EscalateOverdueTx(ctx, tx)
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("escalate overdue complaints: %w", err)
	}
	if n > 0 {
		a.notify()
	}
	return n, nil
}

// EscalateOverdueTx escalates up to EscalationBatch complaints overdue at
// Now within the caller's transaction (seed 004: problems are answered
// within the set time): each goes one level up, one severity higher, with
// a new deadline, and ComplaintEscalated is written. Replicas may run it at
// once: claims skip locked rows, so each complaint is escalated once per
// missed deadline.
func (a *App) EscalateOverdueTx(ctx context.Context, tx pgx.Tx) (int, error) {
	now := a.now()
	batch := a.EscalationBatch
	if batch <= 0 {
		batch = DefaultEscalationBatch
	}
	list, err := store.ClaimOverdue(ctx, tx, now, batch)
	if err != nil {
		return 0, err
	}
	for _, c := range list {
		step, err := c.Escalate(now)
		if err != nil {
			return 0, err
		}
		if err := store.SaveComplaint(ctx, tx, c); err != nil {
			return 0, err
		}
		if err := logStep(ctx, tx, c, step); err != nil {
			return 0, err
		}
	}
	return len(list), nil
}
