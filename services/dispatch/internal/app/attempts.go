package app

import (
	"context"

	"github.com/huifang/huifang/pkg/auth"
	"github.com/huifang/huifang/services/dispatch/internal/store"
	"github.com/huifang/huifang/services/dispatch/internal/task"
)

// ListAttempts lists the attempts of one task after attempt number after,
// oldest first, at most limit, with the task (its channel). An agent or a
// leader reads those of a task in its scope (assigned to the agent, or of
// a group the leader oversees), as ListMessages.
func (a *App) ListAttempts(ctx context.Context, tenant, taskID string, after, limit int) (task.Task, []store.Attempt, error) {
	if p, ok := auth.Restricted(ctx, auth.Director); ok {
		if err := a.taskInScope(ctx, p, tenant, taskID); err != nil {
			return task.Task{}, nil, err
		}
	}
	t, err := store.Task(ctx, a.DB, tenant, taskID)
	if err != nil {
		return task.Task{}, nil, err
	}
	list, err := store.AttemptsAfter(ctx, a.DB, t.ID, after, limit)
	return t, list, err
}
