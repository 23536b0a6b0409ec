package app

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/huifang/huifang/services/dispatch/internal/store"
	"github.com/huifang/huifang/services/dispatch/internal/task"
)

// MarkDeadlines is one round of the SLA clock (seed 003: a follow-up within
// 48 hours): up to SLABatch active tasks that came within SLAWarn of their
// deadline, or passed it, since the last round get their stage (near,
// past) and VisitOverdue, once per stage. It returns how many changed.
func (a *App) MarkDeadlines(ctx context.Context) (int, error) {
	now := a.Now()
	var n int
	err := pgx.BeginFunc(ctx, a.DB, func(tx pgx.Tx) error {
		tasks, err := store.SLADue(ctx, tx, now, now.Add(a.SLAWarn), max(a.SLABatch, 1))
		if err != nil {
			return err
		}
		for _, t := range tasks {
			stage := task.Stage(t.Deadline, now)
			if err := store.SetSLAStage(ctx, tx, t.ID, stage); err != nil {
				return err
			}
			if err := overdue(ctx, tx, t, stage, now); err != nil {
				return err
			}
			n++
		}
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("sla: %w", err)
	}
	if n > 0 {
		a.notify()
	}
	return n, nil
}
