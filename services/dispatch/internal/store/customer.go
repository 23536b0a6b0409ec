package store

import (
	"context"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/huifang/huifang/pkg/postgres"
	"github.com/huifang/huifang/services/dispatch/internal/task"
)

// LockCustomerVersion takes the customer's kept version for the rest of tx
// (one CustomerUpdated of a customer at a time, kept or not yet) and
// returns it; false when dispatch has kept none.
func LockCustomerVersion(ctx context.Context, tx pgx.Tx, tenant, customerID string) (int64, bool, error) {
	if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock(hashtext('dispatch.customer_versions:' || $1 || '/' || $2))`, tenant, customerID); err != nil {
		return 0, false, translate(err, "lock customer "+customerID, nil)
	}
	var version int64
	err := tx.QueryRow(ctx, `SELECT version FROM customer_versions WHERE tenant_id = $1 AND customer_id = $2`, tenant, customerID).Scan(&version)
	if err = translate(err, "version of customer "+customerID, errNone); err == errNone {
		return 0, false, nil
	}
	return version, err == nil, err
}

// SaveCustomerVersion keeps c as the tenant's version `version` of the
// customer, replacing the one kept.
func SaveCustomerVersion(ctx context.Context, q postgres.Querier, tenant string, c task.Customer, version int64, at time.Time) error {
	snapshot, err := customerJSON(c)
	if err != nil {
		return err
	}
	_, err = q.Exec(ctx, `INSERT INTO customer_versions (tenant_id, customer_id, version, customer, updated_at) VALUES ($1, $2, $3, $4, $5)
ON CONFLICT (tenant_id, customer_id) DO UPDATE SET version = EXCLUDED.version, customer = EXCLUDED.customer, updated_at = EXCLUDED.updated_at`,
		tenant, c.ID, version, snapshot, at)
	return translate(err, "save a version of customer "+c.ID, nil)
}

// LatestCustomer returns the newest kept snapshot of a customer; false when
// dispatch has seen no CustomerUpdated for it (LatestCustomers of one).
func LatestCustomer(ctx context.Context, q postgres.Querier, tenant, customerID string) (task.Customer, bool, error) {
	k := CustomerKey{Tenant: tenant, ID: customerID}
	latest, err := LatestCustomers(ctx, q, []CustomerKey{k})
	c, ok := latest[k]
	return c, ok, err
}
