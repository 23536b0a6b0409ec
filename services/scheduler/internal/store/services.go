package store

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/huifang/huifang/pkg/postgres"
	"github.com/huifang/huifang/services/scheduler/internal/policy"
)

// RecordService keeps a completed service (the first record of it wins),
// for SimulatePolicy's replay and for the visits that follow it.
func RecordService(ctx context.Context, q postgres.Querier, s policy.Service) error {
	_, err := insertService(ctx, q, s, "")
	return err
}

// RecordServiceOf is RecordService for the service an event records,
// whose id the record keeps, and tells whether it recorded it. When it did
// not, the service was recorded before (or by a concurrent transaction,
// whose end the insert waits for), and it returns the id of the event
// that recorded it: "" when that was before the ids were kept, or no
// event.
func RecordServiceOf(ctx context.Context, q postgres.Querier, s policy.Service, event string) (bool, string, error) {
	inserted, err := insertService(ctx, q, s, event)
	if err != nil || inserted {
		return inserted, event, err
	}
	var by string
	err = q.QueryRow(ctx, `SELECT coalesce(event_id, '') FROM services WHERE tenant_id = $1 AND service_id = $2`, s.Tenant, s.ID).Scan(&by)
	return false, by, translate("service recorded before", err)
}

// insertService records s with the id of the event that records it (none
// for ""), unless it is recorded already, and tells whether it did.
func insertService(ctx context.Context, q postgres.Querier, s policy.Service, event string) (bool, error) {
	spec, err := json.Marshal(s)
	if err != nil {
		return false, fmt.Errorf("store: service: %w", err)
	}
	tag, err := q.Exec(ctx, `INSERT INTO services (tenant_id, service_id, completed_at, spec, event_id) VALUES ($1, $2, $3, $4, NULLIF($5, ''))
ON CONFLICT DO NOTHING`, s.Tenant, s.ID, s.CompletedAt, spec, event)
	if err != nil {
		return false, translate("record service", err)
	}
	return tag.RowsAffected() == 1, nil
}

// Services returns the tenant's services completed in [from, to), up to limit, soonest first.
func Services(ctx context.Context, q postgres.Querier, tenant string, from, to time.Time, limit int) ([]policy.Service, error) {
	rows, err := q.Query(ctx, `SELECT spec FROM services WHERE tenant_id = $1 AND completed_at >= $2 AND completed_at < $3
ORDER BY completed_at LIMIT $4`, tenant, from, to, limit)
	if err != nil {
		return nil, translate("services", err)
	}
	ss, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (policy.Service, error) {
		var b []byte
		var s policy.Service
		if err := r.Scan(&b); err != nil {
			return s, err
		}
		return s, json.Unmarshal(b, &s)
	})
	return ss, translate("services", err)
}
