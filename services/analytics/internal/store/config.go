package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/huifang/huifang/services/analytics/internal/figures"
)

// Targets returns the tenant's own targets (figure → percent).
func (s *Store) Targets(ctx context.Context, tenant string) (map[string]int64, error) {
	rows, err := s.Pool.Query(ctx, `SELECT figure, percent FROM targets WHERE tenant_id = $1`, tenant)
	if err != nil {
		return nil, fmt.Errorf("store: targets: %w", err)
	}
	defer rows.Close()
	out := map[string]int64{}
	for rows.Next() {
		var f string
		var p int64
		if err := rows.Scan(&f, &p); err != nil {
			return nil, fmt.Errorf("store: targets: %w", err)
		}
		out[f] = p
	}
	return out, rows.Err()
}

// SetTarget sets a tenant's target for one figure.
func (s *Store) SetTarget(ctx context.Context, tenant, figure string, percent int64) error {
	if _, err := s.Pool.Exec(ctx, `INSERT INTO targets (tenant_id, figure, percent) VALUES ($1, $2, $3)
ON CONFLICT (tenant_id, figure) DO UPDATE SET percent = EXCLUDED.percent`, tenant, figure, percent); err != nil {
		return fmt.Errorf("store: set target: %w", err)
	}
	return nil
}

// IncentiveRule returns the tenant's incentive rule, seed 000's auto-dealer rule when it set none.
func (s *Store) IncentiveRule(ctx context.Context, tenant string) (figures.IncentiveRule, error) {
	var b []byte
	err := s.Pool.QueryRow(ctx, `SELECT rule FROM incentive_rules WHERE tenant_id = $1`, tenant).Scan(&b)
	if errors.Is(err, pgx.ErrNoRows) {
		return figures.AutoDealerRule, nil
	}
	if err != nil {
		return figures.IncentiveRule{}, fmt.Errorf("store: incentive rule: %w", err)
	}
	var r figures.IncentiveRule
	if err := json.Unmarshal(b, &r); err != nil {
		return r, fmt.Errorf("store: incentive rule: %w", err)
	}
	return r, nil
}

// SetIncentiveRule sets the tenant's incentive rule.
func (s *Store) SetIncentiveRule(ctx context.Context, tenant string, r figures.IncentiveRule) error {
	b, err := json.Marshal(r)
	if err != nil {
		return fmt.Errorf("store: incentive rule: %w", err)
	}
	if _, err := s.Pool.Exec(ctx, `INSERT INTO incentive_rules (tenant_id, rule) VALUES ($1, $2)
ON CONFLICT (tenant_id) DO UPDATE SET rule = EXCLUDED.rule`, tenant, b); err != nil {
		return fmt.Errorf("store: set incentive rule: %w", err)
	}
	return nil
}

// Breach is a figure found below its target.
type Breach struct {
	ID                     string
	Tenant                 string
	Figure                 string
	OrgUnit                string
	PeriodStart, PeriodEnd time.Time
	Value, Target          float64
	DetectedAt             time.Time
}

// AddBreach records b within tx unless the same tenant, figure, org unit
// and period were recorded before; it reports whether b is new.
func AddBreach(ctx context.Context, tx pgx.Tx, b Breach) (bool, error) {
	tag, err := tx.Exec(ctx, `INSERT INTO breaches (id, tenant_id, figure, org_unit, period_start, period_end, value, target, detected_at)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) ON CONFLICT (tenant_id, figure, org_unit, period_start) DO NOTHING`,
		b.ID, b.Tenant, b.Figure, b.OrgUnit, b.PeriodStart, b.PeriodEnd, b.Value, b.Target, b.DetectedAt)
	if err != nil {
		return false, fmt.Errorf("store: add breach: %w", err)
	}
	return tag.RowsAffected() == 1, nil
}

// BreachCursor is where a page of breaches continues.
type BreachCursor struct {
	DetectedAt time.Time `json:"t"`
	ID         string    `json:"id"`
}

// Breaches lists a tenant's breaches, newest first, after the cursor.
func (s *Store) Breaches(ctx context.Context, tenant string, after *BreachCursor, limit int) ([]Breach, error) {
	var at *time.Time
	id := ""
	if after != nil {
		at, id = &after.DetectedAt, after.ID
	}
	rows, err := s.Pool.Query(ctx, `SELECT id, tenant_id, figure, org_unit, period_start, period_end, value, target, detected_at
FROM breaches WHERE tenant_id = $1 AND ($2::timestamptz IS NULL OR (detected_at, id) < ($2, $3))
ORDER BY detected_at DESC, id DESC LIMIT $4`, tenant, at, id, limit)
	if err != nil {
		return nil, fmt.Errorf("store: breaches: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (Breach, error) {
		var b Breach
		err := r.Scan(&b.ID, &b.Tenant, &b.Figure, &b.OrgUnit, &b.PeriodStart, &b.PeriodEnd, &b.Value, &b.Target, &b.DetectedAt)
		return b, err
	})
	if err != nil {
		return nil, fmt.Errorf("store: breaches: %w", err)
	}
	return out, nil
}
