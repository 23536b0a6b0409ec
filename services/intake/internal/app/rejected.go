package app

import (
	"context"
	"time"

	"github.com/huifang/huifang/pkg/postgres"
	"github.com/huifang/huifang/services/intake/internal/ingest"
)

// RejectedList selects refused inputs for ListRejected.
type RejectedList struct {
	Tenant string
	Size   int
	// AfterTime and AfterID are the cursor: the inputs received before it,
	// newest first; an empty AfterID starts at the newest.
	AfterTime time.Time
	AfterID   string
}

// ListRejected lists up to l.Size refused inputs of a tenant, newest first,
// after the cursor, their payloads decrypted, and whether more follow.
func (a *App) ListRejected(ctx context.Context, l RejectedList) (rows []ingest.Rejected, more bool, err error) {
	read := func(db postgres.Querier) error {
		if rows, err = a.Store.ListRejected(ctx, db, l.Tenant, l.Size+1, l.AfterTime, l.AfterID); err != nil {
			return err
		}
		if more = len(rows) > l.Size; more {
			rows = rows[:l.Size]
		}
		return nil
	}
	if err = read(a.DB); err != nil {
		return nil, false, err
	}
	return rows, more, nil
}

// GetRejected returns one refused input, its payload decrypted; with
// reveal, the audit log records that the caller is shown its contacts in
// clear.
func (a *App) GetRejected(ctx context.Context, tenant, id string) (ingest.Rejected, error) {
	r, err := a.Store.Rejected(ctx, a.DB, tenant, id)
	return r, notFound("rejected event", err)
}
