package app

import (
	"context"
	"strings"
	"time"

	"github.com/huifang/huifang/services/dispatch/internal/store"
	"github.com/huifang/huifang/services/dispatch/internal/task"
)

// Cursors of the listings (page tokens).
type (
	TaskCursor     = store.TaskCursor
	DeadlineCursor = store.DeadlineCursor
)

// TaskCursorOf returns the cursor just after t in ListTasks' order.
func TaskCursorOf(t task.Task) TaskCursor { return store.CursorOf(t) }

// DeadlineCursorOf returns the cursor just after t in ListDeadlineTasks' order.
func DeadlineCursorOf(t task.Task) DeadlineCursor {
	return DeadlineCursor{Deadline: t.Deadline, ID: t.ID}
}

// TaskQuery selects tasks; empty fields match any.
type TaskQuery struct {
	Tenant  string
	AgentID string
	Status  string
	Group   string
	// LeaderID: only tasks of the groups the leader oversees.
	LeaderID string
	After    TaskCursor
	Limit    int
}

// ListTasks lists tasks in the claim's order (deadline, severity, tier, due
// time, id), after q.After, at most q.Limit.
func (a *App) ListTasks(ctx context.Context, q TaskQuery) ([]task.Task, error) {
	f := store.TaskFilter{Tenant: q.Tenant, AgentID: strings.TrimSpace(q.AgentID), Status: q.Status}
	var err error
	if f.Groups, err = a.groups(ctx, q.Tenant, q.Group, q.LeaderID); err != nil {
		return nil, err
	}
	return store.ListTasks(ctx, a.DB, f, q.After, q.Limit)
}

// Task returns one task.
func (a *App) Task(ctx context.Context, tenant, id string) (task.Task, error) {
	return store.Task(ctx, a.DB, tenant, id)
}

// DeadlineQuery selects active tasks near or past their deadline.
type DeadlineQuery struct {
	Tenant string
	// Within: deadlines up to now+Within; nil: SLAWarn.
	Within   *time.Duration
	Group    string
	LeaderID string
	After    DeadlineCursor
	Limit    int
}

// DeadlineTask is a task near or past its deadline.
type DeadlineTask struct {
	Task task.Task
	// Stage is "near" or "past".
	Stage string
}

// ListDeadlineTasks lists active tasks whose deadline is within q.Within
// (SLAWarn by default), by deadline, with their stage at now.
func (a *App) ListDeadlineTasks(ctx context.Context, q DeadlineQuery) ([]DeadlineTask, error) {
	within := a.SLAWarn
	if q.Within != nil {
		within = *q.Within
	}
	groups, err := a.groups(ctx, q.Tenant, q.Group, q.LeaderID)
	if err != nil {
		return nil, err
	}
	now := a.Now()
	tasks, err := store.ListDeadline(ctx, a.DB, q.Tenant, now.Add(within), groups, q.After, q.Limit)
	if err != nil {
		return nil, err
	}
	out := make([]DeadlineTask, len(tasks))
	for i, t := range tasks {
		out[i] = DeadlineTask{Task: t, Stage: task.Stage(t.Deadline, now)}
	}
	return out, nil
}

// Attempts lists the attempts of a task in order.
func (a *App) Attempts(ctx context.Context, taskID string) ([]store.Attempt, error) {
	return store.Attempts(ctx, a.DB, taskID)
}
