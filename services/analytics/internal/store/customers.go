package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5/pgtype"

	"github.com/huifang/huifang/pkg/postgres"
	"github.com/huifang/huifang/services/analytics/internal/rollup"
)

// ApplyMembers applies the customer-bucket deltas within tx (rollup.MemberDiff
// merges and sorts them: the order rows are locked in) and moves each
// bucket's counters when a customer enters or leaves it (eligible) or gets
// or loses their first covered service in it (covered), in one statement.
// Members and buckets left at zero are removed.
func ApplyMembers(ctx context.Context, tx postgres.Querier, ds []rollup.MemberDelta) error {
	if len(ds) == 0 {
		return nil
	}
	n := len(ds)
	tenants, spans, units, customers := make([]string, n), make([]string, n), make([]string, n), make([]string, n)
	periods, all := make([]pgtype.Date, n), make([]bool, n)
	services, covered := make([]int64, n), make([]int64, n)
	shrinks := false
	for i, d := range ds {
		tenants[i], spans[i], units[i], customers[i] = d.Tenant, d.Span, d.OrgUnit, d.Customer
		periods[i], all[i] = pgtype.Date{Time: d.Period, Valid: true}, d.AllUnits
		services[i], covered[i] = d.Services, d.Covered
		shrinks = shrinks || d.Services < 0 || d.Covered < 0
	}
	args := []any{tenants, spans, periods, all, units, customers, services, covered}
	const keys = `unnest($1::text[], $2::text[], $3::date[], $4::boolean[], $5::text[], $6::text[], $7::bigint[], $8::bigint[])
  AS d(tenant_id, span, period, all_units, org_unit, customer_id, services, covered)`
	if _, err := tx.Exec(ctx, `WITH d AS (SELECT * FROM `+keys+`),
m AS (
  INSERT INTO customer_members AS c (tenant_id, span, period, all_units, org_unit, customer_id, services, covered)
  SELECT * FROM d ORDER BY tenant_id, span, period, all_units, org_unit, customer_id
  ON CONFLICT (tenant_id, span, period, all_units, org_unit, customer_id)
  DO UPDATE SET services = c.services + EXCLUDED.services, covered = c.covered + EXCLUDED.covered
  RETURNING c.*),
j AS (
  SELECT m.tenant_id, m.span, m.period, m.all_units, m.org_unit,
    (m.services > 0)::int - (m.services - d.services > 0)::int AS de, (m.covered > 0)::int - (m.covered - d.covered > 0)::int AS dc
  FROM m JOIN d USING (tenant_id, span, period, all_units, org_unit, customer_id))
INSERT INTO customer_coverage AS c (tenant_id, span, period, all_units, org_unit, eligible, covered)
SELECT tenant_id, span, period, all_units, org_unit, sum(de), sum(dc) FROM j
GROUP BY tenant_id, span, period, all_units, org_unit HAVING sum(de) <> 0 OR sum(dc) <> 0
ORDER BY tenant_id, span, period, all_units, org_unit
ON CONFLICT (tenant_id, span, period, all_units, org_unit)
DO UPDATE SET eligible = c.eligible + EXCLUDED.eligible, covered = c.covered + EXCLUDED.covered`, args...); err != nil {
		return fmt.Errorf("store: customer coverage: %w", translate(err))
	}
	if !shrinks {
		return nil
	}
	// Only a negative delta can leave a member or a bucket at zero.
	if _, err := tx.Exec(ctx, `DELETE FROM customer_members c USING `+keys+`
WHERE c.tenant_id = d.tenant_id AND c.span = d.span AND c.period = d.period AND c.all_units = d.all_units AND c.org_unit = d.org_unit
  AND c.customer_id = d.customer_id AND c.services = 0 AND c.covered = 0`, args...); err != nil {
		return fmt.Errorf("store: remove customer members: %w", translate(err))
	}
	if _, err := tx.Exec(ctx, `DELETE FROM customer_coverage c USING `+keys+`
WHERE c.tenant_id = d.tenant_id AND c.span = d.span AND c.period = d.period AND c.all_units = d.all_units AND c.org_unit = d.org_unit
  AND c.eligible = 0 AND c.covered = 0`, args...); err != nil {
		return fmt.Errorf("store: remove empty customer buckets: %w", translate(err))
	}
	return nil
}

// CustomerCoverage returns the customers of one bucket with an eligible
// follow-up and with a completed one: span is rollup.SpanMonth or
// SpanYear, period its first day; orgUnit "" means every unit together.
// A bucket nobody is in has no row: it counts 0 of 0.
func CustomerCoverage(ctx context.Context, db postgres.Querier, tenant, span string, period time.Time, orgUnit string) (eligible, covered int64, err error) {
	err = translate(db.QueryRow(ctx, `SELECT eligible, covered FROM customer_coverage
WHERE tenant_id = $1 AND span = $2 AND period = $3 AND all_units = ($4 = '') AND org_unit = $4`,
		tenant, span, pgtype.Date{Time: period, Valid: true}, orgUnit).Scan(&eligible, &covered))
	if errors.Is(err, ErrNotFound) {
		return 0, 0, nil
	}
	if err != nil {
		return 0, 0, fmt.Errorf("store: customer coverage: %w", err)
	}
	return eligible, covered, nil
}
