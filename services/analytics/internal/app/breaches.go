package app

import (
	"context"
	"time"

	"github.com/huifang/huifang/services/analytics/internal/figures"
	"github.com/huifang/huifang/services/analytics/internal/store"
)

// BreachCursor is where a list of breaches continues: after the breach
// detected at DetectedAt with ID (newest first). Its JSON is the page token's.
type BreachCursor struct {
	DetectedAt time.Time `json:"t"`
	ID         string    `json:"id"`
}

// CursorOf is the cursor after b.
func CursorOf(b figures.Breach) BreachCursor { return BreachCursor{DetectedAt: b.DetectedAt, ID: b.ID} }

// ListBreaches lists a tenant's breaches, newest first, after the cursor
// (from the newest when nil), at most limit.
func (a *App) ListBreaches(ctx context.Context, tenant string, after *BreachCursor, limit int) ([]figures.Breach, error) {
	var at *time.Time
	id := ""
	if after != nil {
		at, id = &after.DetectedAt, after.ID
	}
	return store.Breaches(ctx, a.DB, tenant, at, id, limit)
}
