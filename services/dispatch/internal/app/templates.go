package app

import (
	"context"
	"errors"
	"slices"

	"github.com/huifang/huifang/pkg/auth"
	"github.com/huifang/huifang/services/dispatch/internal/message"
	"github.com/huifang/huifang/services/dispatch/internal/store"
)

// UpsertTemplate normalizes a policy's message template (seed 002's SMS
// format) and stores it.
func (a *App) UpsertTemplate(ctx context.Context, t message.Template) (message.Template, error) {
	if err := message.Normalize(&t); err != nil {
		return message.Template{}, err
	}
	return store.UpsertTemplate(ctx, a.DB, t, a.Now())
}

// SetCustomerVariables replaces a customer's template variables.
func (a *App) SetCustomerVariables(ctx context.Context, tenant, customerID string, vars map[string]string) error {
	return store.SetCustomerVariables(ctx, a.DB, tenant, customerID, vars, a.Now())
}

// ListMessages lists the tenant's messages (of one task when taskID is
// set), newest first, before beforeID when set, at most limit.
//
// An agent or a leader reads the messages of one task in its scope (the
// customer's number and the text are in them): a task assigned to the
// agent, or of a group the leader oversees.
func (a *App) ListMessages(ctx context.Context, tenant, taskID, beforeID string, limit int) ([]message.Message, error) {
	if p, ok := auth.Restricted(ctx, auth.Director); ok {
		if taskID == "" {
			return nil, auth.Deny("task_id", "an agent or a leader names one task of theirs")
		}
		if err := a.taskInScope(ctx, p, tenant, taskID); err != nil {
			return nil, err
		}
	}
	return store.ListMessages(ctx, a.DB, tenant, taskID, beforeID, limit)
}

// taskInScope checks that p may see the task: assigned to p's agent, or of
// a group p leads.
func (a *App) taskInScope(ctx context.Context, p auth.Principal, tenant, taskID string) error {
	t, err := store.Task(ctx, a.DB, tenant, taskID)
	if err != nil {
		return err
	}
	if t.AgentID != "" && t.AgentID == p.AgentID {
		return nil
	}
	if p.Has(auth.Leader) && p.AgentID != "" {
		_, groups, err := a.leaderGroups(ctx, tenant, p.AgentID)
		if err != nil && !errors.Is(err, store.ErrAgentNotFound) {
			return err
		}
		if t.Group != "" && slices.Contains(groups, t.Group) {
			return nil
		}
	}
	return auth.Deny("task_id", "the task is neither assigned to the caller nor of a group it leads")
}
