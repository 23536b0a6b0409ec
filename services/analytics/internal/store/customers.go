package store

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgtype"

	"github.com/huifang/huifang/pkg/postgres"
	"github.com/huifang/huifang/services/analytics/internal/rollup"
)

// The customer buckets are kept per customer and calendar year
// (customer_years, migration 012): one row holds, per cell (a month of the
// year and an org unit), how many of the customer's eligible services are
// there and how many of those were followed up. The member counts of the
// other buckets are sums of cells: a month for all units (the month's
// cells), a year for one unit (the unit's cells), a year for all units
// (every cell). The view customer_members shows them per bucket.

// cell is one customer's delta in one month and org unit.
type cell struct {
	tenant, customer string
	year             time.Time
	month            int16
	orgUnit          string
	services, cov    int32
}

func (c cell) compare(o cell) int {
	return cmp.Or(strings.Compare(c.tenant, o.tenant), strings.Compare(c.customer, o.customer), c.year.Compare(o.year),
		cmp.Compare(c.month, o.month), strings.Compare(c.orgUnit, o.orgUnit))
}

// cells returns the deltas of the month and org-unit buckets in ds as
// cells, merged per cell and in key order; the deltas of the all-units
// and year buckets follow from them and are left out.
func cells(ds []rollup.MemberDelta) []cell {
	var out []cell
	for _, d := range ds {
		if d.Span != rollup.SpanMonth || d.AllUnits {
			continue
		}
		out = append(out, cell{tenant: d.Tenant, customer: d.Customer, year: rollup.Year(d.Period), month: int16(d.Period.Month()),
			orgUnit: d.OrgUnit, services: int32(d.Services), cov: int32(d.Covered)})
	}
	slices.SortFunc(out, cell.compare)
	merged := out[:0]
	for _, c := range out {
		if n := len(merged); n > 0 && merged[n-1].compare(c) == 0 {
			merged[n-1].services += c.services
			merged[n-1].cov += c.cov
			continue
		}
		merged = append(merged, c)
	}
	return slices.DeleteFunc(merged, func(c cell) bool { return c.services == 0 && c.cov == 0 })
}

// ApplyMembers applies the customer-bucket deltas within tx (rollup.MemberDiff
// merges them; those of the month and org-unit buckets are the cells, the
// others follow) and moves each bucket's counters when a customer enters
// or leaves it (eligible) or gets or loses their first covered service in
// it (covered), in one statement: each customer-year row the deltas touch
// is written once (rows locked in key order), and the memberships before
// and after are the sums of its cells per bucket (GROUPING SETS) after the
// write and without the deltas. Cells, customer-years and buckets left at
// zero are removed.
func ApplyMembers(ctx context.Context, tx postgres.Querier, ds []rollup.MemberDelta) error {
	cs := cells(ds)
	if len(cs) == 0 {
		return nil
	}
	n := len(cs)
	tenants, customers, units := make([]string, n), make([]string, n), make([]string, n)
	years, months := make([]pgtype.Date, n), make([]int16, n)
	services, covered := make([]int32, n), make([]int32, n)
	shrinks := false
	for i, c := range cs {
		tenants[i], customers[i], units[i] = c.tenant, c.customer, c.orgUnit
		years[i], months[i] = pgtype.Date{Time: c.year, Valid: true}, c.month
		services[i], covered[i] = c.services, c.cov
		shrinks = shrinks || c.services < 0 || c.cov < 0
	}
	if _, err := tx.Exec(ctx, `WITH d AS (
  SELECT * FROM unnest($1::text[], $2::text[], $3::date[], $4::smallint[], $5::text[], $6::int[], $7::int[])
    AS d(tenant_id, customer_id, year, month, org_unit, services, covered)),
m AS (
  INSERT INTO customer_years AS c (tenant_id, customer_id, year, months, org_units, services, covered)
  SELECT tenant_id, customer_id, year, array_agg(month ORDER BY month, org_unit), array_agg(org_unit ORDER BY month, org_unit),
    array_agg(services ORDER BY month, org_unit), array_agg(covered ORDER BY month, org_unit)
  FROM d GROUP BY tenant_id, customer_id, year ORDER BY tenant_id, customer_id, year
  ON CONFLICT (tenant_id, customer_id, year) DO UPDATE SET (months, org_units, services, covered) = (
    SELECT coalesce(array_agg(month ORDER BY month, org_unit), '{}'), coalesce(array_agg(org_unit ORDER BY month, org_unit), '{}'),
      coalesce(array_agg(services ORDER BY month, org_unit), '{}'), coalesce(array_agg(covered ORDER BY month, org_unit), '{}')
    FROM (SELECT month, org_unit, sum(services)::int AS services, sum(covered)::int AS covered
      FROM (SELECT * FROM unnest(c.months, c.org_units, c.services, c.covered)
        UNION ALL SELECT * FROM unnest(EXCLUDED.months, EXCLUDED.org_units, EXCLUDED.services, EXCLUDED.covered)) AS x(month, org_unit, services, covered)
      GROUP BY month, org_unit HAVING sum(services) <> 0 OR sum(covered) <> 0) AS merged)
  RETURNING c.*),
cur AS (
  SELECT m.tenant_id, m.customer_id, m.year, x.month, x.org_unit, x.services, x.covered
  FROM m, unnest(m.months, m.org_units, m.services, m.covered) AS x(month, org_unit, services, covered)),
j AS (
  SELECT tenant_id, customer_id, year, month, org_unit,
    coalesce(cur.services, 0) AS s, coalesce(cur.services, 0) - coalesce(d.services, 0) AS was_s,
    coalesce(cur.covered, 0) AS c, coalesce(cur.covered, 0) - coalesce(d.covered, 0) AS was_c
  FROM cur FULL JOIN d USING (tenant_id, customer_id, year, month, org_unit)),
b AS (
  SELECT tenant_id, year, month, org_unit, grouping(month) = 1 AS whole_year, grouping(org_unit) = 1 AS all_units,
    (sum(s) > 0)::int - (sum(was_s) > 0)::int AS de, (sum(c) > 0)::int - (sum(was_c) > 0)::int AS dc
  FROM j GROUP BY tenant_id, customer_id, year, GROUPING SETS ((month, org_unit), (month), (org_unit), ()))
INSERT INTO customer_coverage AS c (tenant_id, span, period, all_units, org_unit, eligible, covered)
SELECT tenant_id, CASE WHEN whole_year THEN 'year' ELSE 'month' END,
  CASE WHEN whole_year THEN year ELSE (year + make_interval(months => month - 1))::date END,
  all_units, CASE WHEN all_units THEN '' ELSE org_unit END, sum(de), sum(dc)
FROM b GROUP BY 1, 2, 3, 4, 5 HAVING sum(de) <> 0 OR sum(dc) <> 0
ORDER BY 1, 2, 3, 4, 5
ON CONFLICT (tenant_id, span, period, all_units, org_unit)
DO UPDATE SET eligible = c.eligible + EXCLUDED.eligible, covered = c.covered + EXCLUDED.covered`,
		tenants, customers, years, months, units, services, covered); err != nil {
		return fmt.Errorf("store: customer coverage: %w", translate(err))
	}
	if !shrinks {
		return nil
	}
	// Only a negative delta can leave a customer-year or a bucket at zero:
	// the buckets of a cell are its month and year, for its unit and all.
	if _, err := tx.Exec(ctx, `DELETE FROM customer_years c USING unnest($1::text[], $2::text[], $3::date[]) AS d(tenant_id, customer_id, year)
WHERE c.tenant_id = d.tenant_id AND c.customer_id = d.customer_id AND c.year = d.year AND cardinality(c.months) = 0`,
		tenants, customers, years); err != nil {
		return fmt.Errorf("store: remove customer years: %w", translate(err))
	}
	if _, err := tx.Exec(ctx, `DELETE FROM customer_coverage c
USING unnest($1::text[], $2::date[], $3::smallint[], $4::text[]) AS d(tenant_id, year, month, org_unit),
  (VALUES ('month', false), ('month', true), ('year', false), ('year', true)) AS k(span, all_units)
WHERE c.tenant_id = d.tenant_id AND c.span = k.span AND c.all_units = k.all_units
  AND c.period = CASE WHEN k.span = 'year' THEN d.year ELSE (d.year + make_interval(months => d.month - 1))::date END
  AND c.org_unit = CASE WHEN k.all_units THEN '' ELSE d.org_unit END
  AND c.eligible = 0 AND c.covered = 0`, tenants, years, months, units); err != nil {
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
