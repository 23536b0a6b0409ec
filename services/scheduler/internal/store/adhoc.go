package store

import (
	"context"
	"errors"

	"github.com/jackc/pgx/v5"

	"github.com/huifang/huifang/pkg/postgres"
)

// LockRequest holds the tenant's request id until tx ends, so that two
// ScheduleFollowUp calls with the same request id (a double click) plan
// one after the other: the second finds the first's visit.
func LockRequest(ctx context.Context, tx pgx.Tx, tenant, requestID string) error {
	if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock(hashtext('scheduler.request:' || $1 || '/' || $2))`, tenant, requestID); err != nil {
		return translate("lock request "+requestID, err)
	}
	return nil
}

// CustomerSnapshot returns the customer snapshot (protobuf JSON) of the
// customer's latest planned visit, which the events that planned it
// carried; nil when the scheduler planned none for the customer.
func CustomerSnapshot(ctx context.Context, q postgres.Querier, tenant, customerID string) ([]byte, error) {
	var b []byte
	err := translate("customer snapshot of "+customerID, q.QueryRow(ctx, `SELECT customer FROM planned_visits
WHERE tenant_id = $1 AND customer_id = $2 AND customer IS NOT NULL ORDER BY created_at DESC LIMIT 1`, tenant, customerID).Scan(&b))
	if errors.Is(err, ErrNotFound) {
		return nil, nil
	}
	return b, err
}
