package audit

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/huifang/huifang/pkg/postgres"
)

// Filter selects entries of one tenant's log; empty fields select all.
type Filter struct {
	Tenant     string
	Action     string
	Actor      string
	TargetKind string
	TargetID   string
	// From and To bound the time as [From, To); zero leaves a side open.
	From, To time.Time
}

// List returns up to limit entries of f, newest first (by id), those
// written before the entry beforeID (0: from the newest).
func List(ctx context.Context, q postgres.Querier, f Filter, beforeID int64, limit int) ([]Event, error) {
	var from, to *time.Time
	if !f.From.IsZero() {
		from = &f.From
	}
	if !f.To.IsZero() {
		to = &f.To
	}
	rows, err := q.Query(ctx, `SELECT `+eventColumns+` FROM audit_log
WHERE tenant_id = $1
  AND ($2 = '' OR action = $2)
  AND ($3 = '' OR actor = $3)
  AND ($4 = '' OR target_kind = $4)
  AND ($5 = '' OR target_id = $5)
  AND ($6::timestamptz IS NULL OR occurred_at >= $6)
  AND ($7::timestamptz IS NULL OR occurred_at < $7)
  AND ($8::bigint = 0 OR id < $8)
ORDER BY id DESC LIMIT $9`, f.Tenant, f.Action, f.Actor, f.TargetKind, f.TargetID, from, to, beforeID, limit)
	if err != nil {
		return nil, fmt.Errorf("audit: list %s: %w", f.Tenant, err)
	}
	events, err := pgx.CollectRows(rows, scanEvent)
	if err != nil {
		return nil, fmt.Errorf("audit: list %s: %w", f.Tenant, err)
	}
	return events, nil
}
