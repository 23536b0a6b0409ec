// Package store keeps analytics' daily satisfaction buckets in Postgres.
package store

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/huifang/huifang/services/analytics/internal/rollup"
	"github.com/huifang/huifang/services/analytics/internal/satisfaction"
)

// Store is analytics' storage.
type Store struct {
	Pool *pgxpool.Pool
}

// Add adds the increments to their buckets within tx, creating the buckets
// that do not exist yet, in one statement. The increments must name distinct
// buckets (rollup.FromVisit merges them).
func Add(ctx context.Context, tx pgx.Tx, incs []rollup.Increment) error {
	if len(incs) == 0 {
		return nil
	}
	n := len(incs)
	tenants, orgUnits, aspects := make([]string, n), make([]string, n), make([]string, n)
	days := make([]pgtype.Date, n)
	sat, fairly, unsat := make([]int64, n), make([]int64, n), make([]int64, n)
	for i, in := range incs {
		tenants[i], orgUnits[i], aspects[i] = in.Tenant, in.OrgUnit, in.Aspect
		days[i] = pgtype.Date{Time: rollup.Day(in.Day), Valid: true}
		sat[i], fairly[i], unsat[i] = in.Satisfied, in.FairlySatisfied, in.Unsatisfied
	}
	_, err := tx.Exec(ctx, `INSERT INTO satisfaction_daily (tenant_id, day, org_unit, aspect, satisfied, fairly_satisfied, unsatisfied)
SELECT * FROM unnest($1::text[], $2::date[], $3::text[], $4::text[], $5::bigint[], $6::bigint[], $7::bigint[])
ON CONFLICT (tenant_id, day, org_unit, aspect) DO UPDATE SET
  satisfied = satisfaction_daily.satisfied + EXCLUDED.satisfied,
  fairly_satisfied = satisfaction_daily.fairly_satisfied + EXCLUDED.fairly_satisfied,
  unsatisfied = satisfaction_daily.unsatisfied + EXCLUDED.unsatisfied`,
		tenants, days, orgUnits, aspects, sat, fairly, unsat)
	if err != nil {
		return fmt.Errorf("store: add satisfaction votes: %w", err)
	}
	return nil
}

// Filter selects the buckets to sum.
type Filter struct {
	Tenant string
	Aspect string
	// OrgUnit, when not empty, keeps only that org unit.
	OrgUnit string
	// From and To bound the days as [From, To); a zero time leaves that side open.
	// Both are midnight UTC.
	From, To time.Time
}

// Sum adds up the votes of the buckets f selects.
func (s *Store) Sum(ctx context.Context, f Filter) (satisfaction.Counts, error) {
	var c satisfaction.Counts
	err := s.Pool.QueryRow(ctx, `SELECT coalesce(sum(satisfied), 0)::bigint, coalesce(sum(fairly_satisfied), 0)::bigint, coalesce(sum(unsatisfied), 0)::bigint
FROM satisfaction_daily
WHERE tenant_id = $1 AND aspect = $2
  AND ($3 = '' OR org_unit = $3)
  AND ($4::date IS NULL OR day >= $4::date)
  AND ($5::date IS NULL OR day < $5::date)`,
		f.Tenant, f.Aspect, f.OrgUnit, date(f.From), date(f.To)).Scan(&c.Satisfied, &c.FairlySatisfied, &c.Unsatisfied)
	if err != nil {
		return c, fmt.Errorf("store: sum satisfaction: %w", err)
	}
	return c, nil
}

func date(t time.Time) pgtype.Date {
	if t.IsZero() {
		return pgtype.Date{}
	}
	return pgtype.Date{Time: rollup.Day(t), Valid: true}
}
