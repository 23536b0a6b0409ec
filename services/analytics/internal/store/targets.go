package store

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/huifang/huifang/pkg/postgres"
	"github.com/huifang/huifang/services/analytics/internal/figures"
)

// Targets returns the tenant's own targets (figure → percent).
func Targets(ctx context.Context, db postgres.Querier, tenant string) (map[string]int64, error) {
	rows, err := db.Query(ctx, `SELECT figure, percent FROM targets WHERE tenant_id = $1`, tenant)
	if err != nil {
		return nil, fmt.Errorf("store: targets: %w", translate(err))
	}
	defer rows.Close()
	out := map[string]int64{}
	for rows.Next() {
		var f string
		var p int64
		if err := rows.Scan(&f, &p); err != nil {
			return nil, fmt.Errorf("store: targets: %w", translate(err))
		}
		out[f] = p
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("store: targets: %w", translate(err))
	}
	return out, nil
}

// SetTarget sets a tenant's target for one figure.
func SetTarget(ctx context.Context, db postgres.Querier, tenant, figure string, percent int64) error {
	if _, err := db.Exec(ctx, `INSERT INTO targets (tenant_id, figure, percent) VALUES ($1, $2, $3)
ON CONFLICT (tenant_id, figure) DO UPDATE SET percent = EXCLUDED.percent`, tenant, figure, percent); err != nil {
		return fmt.Errorf("store: set target: %w", translate(err))
	}
	return nil
}

// IncentiveRule returns the incentive rule the tenant set, ErrNotFound when it set none.
func IncentiveRule(ctx context.Context, db postgres.Querier, tenant string) (figures.IncentiveRule, error) {
	var b []byte
	if err := db.QueryRow(ctx, `SELECT rule FROM incentive_rules WHERE tenant_id = $1`, tenant).Scan(&b); err != nil {
		return figures.IncentiveRule{}, fmt.Errorf("store: incentive rule: %w", translate(err))
	}
	var r figures.IncentiveRule
	if err := json.Unmarshal(b, &r); err != nil {
		return r, fmt.Errorf("store: incentive rule: %w", err)
	}
	return r, nil
}

// SetIncentiveRule sets the tenant's incentive rule.
func SetIncentiveRule(ctx context.Context, db postgres.Querier, tenant string, r figures.IncentiveRule) error {
	b, err := json.Marshal(r)
	if err != nil {
		return fmt.Errorf("store: incentive rule: %w", err)
	}
	if _, err := db.Exec(ctx, `INSERT INTO incentive_rules (tenant_id, rule) VALUES ($1, $2)
ON CONFLICT (tenant_id) DO UPDATE SET rule = EXCLUDED.rule`, tenant, b); err != nil {
		return fmt.Errorf("store: set incentive rule: %w", translate(err))
	}
	return nil
}

// AddBreach records b within tx, in a savepoint of its own: ErrConflict
// when a breach of the same tenant, figure, org unit and period is recorded
// already (the caller's transaction goes on).
func AddBreach(ctx context.Context, tx pgx.Tx, b figures.Breach) error {
	err := pgx.BeginFunc(ctx, tx, func(sp pgx.Tx) error {
		_, err := sp.Exec(ctx, `INSERT INTO breaches (id, tenant_id, figure, org_unit, period_start, period_end, value, target, detected_at)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)`,
			b.ID, b.Tenant, b.Figure, b.OrgUnit, b.PeriodStart, b.PeriodEnd, b.Value, b.Target, b.DetectedAt)
		return err
	})
	if err != nil {
		return fmt.Errorf("store: add breach: %w", translate(err))
	}
	return nil
}

// Breaches lists a tenant's breaches, newest first, after the one detected
// at afterAt with id afterID (from the start when afterAt is nil).
func Breaches(ctx context.Context, db postgres.Querier, tenant string, afterAt *time.Time, afterID string, limit int) ([]figures.Breach, error) {
	rows, err := db.Query(ctx, `SELECT id, tenant_id, figure, org_unit, period_start, period_end, value, target, detected_at
FROM breaches WHERE tenant_id = $1 AND ($2::timestamptz IS NULL OR (detected_at, id) < ($2, $3))
ORDER BY detected_at DESC, id DESC LIMIT $4`, tenant, afterAt, afterID, limit)
	if err != nil {
		return nil, fmt.Errorf("store: breaches: %w", translate(err))
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (figures.Breach, error) {
		var b figures.Breach
		err := r.Scan(&b.ID, &b.Tenant, &b.Figure, &b.OrgUnit, &b.PeriodStart, &b.PeriodEnd, &b.Value, &b.Target, &b.DetectedAt)
		return b, err
	})
	if err != nil {
		return nil, fmt.Errorf("store: breaches: %w", translate(err))
	}
	return out, nil
}
