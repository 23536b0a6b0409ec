package app

import (
	"context"
	"time"

	"github.com/jackc/pgx/v5"

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
	// Reveal: the caller is shown the payloads' contacts in clear; the
	// audit log records it (rejected_event.reveal) for each.
	Reveal bool
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
	if !l.Reveal {
		err = read(a.DB)
	} else {
		err = a.inTx(ctx, func(tx pgx.Tx) error {
			if err := read(tx); err != nil {
				return err
			}
			ids := make([]string, len(rows))
			for i, r := range rows {
				ids[i] = r.ID
			}
			return a.revealedTx(ctx, tx, l.Tenant, "rejected_event", ids...)
		})
	}
	if err != nil {
		return nil, false, err
	}
	return rows, more, nil
}

// GetRejected returns one refused input, its payload decrypted; with
// reveal, the audit log records that the caller is shown its contacts in
// clear.
func (a *App) GetRejected(ctx context.Context, tenant, id string, reveal bool) (r ingest.Rejected, err error) {
	read := func(db postgres.Querier) error {
		r, err = a.Store.Rejected(ctx, db, tenant, id)
		return notFound("rejected event", err)
	}
	if !reveal {
		err = read(a.DB)
	} else {
		err = a.inTx(ctx, func(tx pgx.Tx) error {
			if err := read(tx); err != nil {
				return err
			}
			return a.revealedTx(ctx, tx, tenant, "rejected_event", r.ID)
		})
	}
	return r, err
}
