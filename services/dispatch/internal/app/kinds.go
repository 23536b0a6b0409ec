package app

import (
	"context"

	"github.com/huifang/huifang/services/dispatch/internal/message"
	"github.com/huifang/huifang/services/dispatch/internal/store"
)

// UpsertKindTemplate normalizes a reminder or script template
// (message.NormalizeKind) and stores it.
func (a *App) UpsertKindTemplate(ctx context.Context, t message.Template) (message.Template, error) {
	if err := message.NormalizeKind(&t); err != nil {
		return message.Template{}, err
	}
	return store.UpsertKindTemplate(ctx, a.DB, t, a.Now())
}
