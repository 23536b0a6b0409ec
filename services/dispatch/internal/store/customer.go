package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"google.golang.org/protobuf/encoding/protojson"

	typesv1 "github.com/huifang/huifang/proto/huifang/types/v1"

	"github.com/huifang/huifang/services/dispatch/internal/task"
)

// SaveCustomerVersion keeps c as the tenant's newest version of the
// customer within tx. It reports false, and changes nothing, when a version
// at least as new is already kept (a late or repeated CustomerUpdated).
func SaveCustomerVersion(ctx context.Context, tx pgx.Tx, tenant string, c *typesv1.Customer, version int64, at time.Time) (bool, error) {
	snapshot, err := customerJSON(c)
	if err != nil {
		return false, err
	}
	tag, err := tx.Exec(ctx, `INSERT INTO customer_versions (tenant_id, customer_id, version, customer, updated_at) VALUES ($1, $2, $3, $4, $5)
ON CONFLICT (tenant_id, customer_id) DO UPDATE SET version = EXCLUDED.version, customer = EXCLUDED.customer, updated_at = EXCLUDED.updated_at
WHERE customer_versions.version < EXCLUDED.version`, tenant, c.GetId(), version, snapshot, at)
	if err != nil {
		return false, fmt.Errorf("store: save version %d of customer %s: %w", version, c.GetId(), err)
	}
	return tag.RowsAffected() == 1, nil
}

// LatestCustomer returns the newest kept snapshot of a customer within tx;
// false when dispatch has seen no CustomerUpdated for it.
func LatestCustomer(ctx context.Context, tx pgx.Tx, tenant, customerID string) (*typesv1.Customer, int64, bool, error) {
	var raw []byte
	var version int64
	err := tx.QueryRow(ctx, `SELECT customer, version FROM customer_versions WHERE tenant_id = $1 AND customer_id = $2`, tenant, customerID).
		Scan(&raw, &version)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, 0, false, nil
	}
	if err != nil {
		return nil, 0, false, fmt.Errorf("store: latest customer %s: %w", customerID, err)
	}
	c := &typesv1.Customer{}
	if err := (protojson.UnmarshalOptions{DiscardUnknown: true}).Unmarshal(raw, c); err != nil {
		return nil, 0, false, fmt.Errorf("store: latest customer %s: %w", customerID, err)
	}
	return c, version, true, nil
}

// ActiveTasksOfCustomer locks and returns the customer's active tasks
// (open, claimed, sending) within tx, oldest first.
func ActiveTasksOfCustomer(ctx context.Context, tx pgx.Tx, tenant, customerID string) ([]task.Task, error) {
	rows, err := tx.Query(ctx, `SELECT `+taskColumns+` FROM tasks
WHERE tenant_id = $1 AND customer->>'id' = $2 AND status IN ('open', 'claimed', 'sending') ORDER BY created_at, id FOR UPDATE`, tenant, customerID)
	if err != nil {
		return nil, fmt.Errorf("store: tasks of customer %s: %w", customerID, err)
	}
	ts, err := pgx.CollectRows(rows, scanTask)
	if err != nil {
		return nil, fmt.Errorf("store: tasks of customer %s: %w", customerID, err)
	}
	return ts, nil
}

// SaveTaskCustomer writes back t's customer snapshot, what routing derives
// from it (tier rank, owners, language) and its availability within tx.
func SaveTaskCustomer(ctx context.Context, tx pgx.Tx, t task.Task, now time.Time) error {
	snapshot, err := customerJSON(t.Customer)
	if err != nil {
		return err
	}
	_, err = tx.Exec(ctx, `UPDATE tasks SET customer = $2, tier_rank = $3, primary_owner = $4, backup_owner = $5, language = $6, available_at = $7,
  updated_at = $8 WHERE id = $1`, t.ID, snapshot, t.TierRank, t.PrimaryOwner, t.BackupOwner, t.Language, t.AvailableAt, now)
	if err != nil {
		return fmt.Errorf("store: refresh customer of task %s: %w", t.ID, err)
	}
	return nil
}
