package app

import (
	"context"

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
func (a *App) ListMessages(ctx context.Context, tenant, taskID, beforeID string, limit int) ([]message.Message, error) {
	return store.ListMessages(ctx, a.DB, tenant, taskID, beforeID, limit)
}
