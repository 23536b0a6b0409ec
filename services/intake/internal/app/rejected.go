package app

import (
	"context"
	"time"

	"github.com/huifang/huifang/services/intake/internal/ingest"
)

// ListRejected lists up to limit refused inputs of a tenant, newest first,
// after the cursor (received at, id), their payloads decrypted.
func (a *App) ListRejected(ctx context.Context, tenant string, limit int, afterTime time.Time, afterID string) ([]ingest.Rejected, error) {
	return a.Store.ListRejected(ctx, a.DB, tenant, limit, afterTime, afterID)
}

// GetRejected returns one refused input, its payload decrypted.
func (a *App) GetRejected(ctx context.Context, tenant, id string) (ingest.Rejected, error) {
	r, err := a.Store.Rejected(ctx, a.DB, tenant, id)
	return r, notFound("rejected event", err)
}
