package store

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/huifang/huifang/pkg/postgres"
	"github.com/huifang/huifang/services/analytics/internal/rollup"
)

// Apply adds the deltas to their counters (daily, monthly and the tenant
// totals), creating the counters that do not exist yet, one statement per
// table. Deltas must name distinct counters (rollup.Merge merges them).
func Apply(ctx context.Context, tx postgres.Querier, ds []rollup.Delta) error {
	if len(ds) == 0 {
		return nil
	}
	months := make([]rollup.Delta, len(ds))
	for i, d := range ds {
		d.Day = rollup.Month(d.Day)
		months[i] = d
	}
	for _, x := range []struct {
		table string
		ds    []rollup.Delta
	}{{"daily", ds}, {"monthly", rollup.Merge(months)}, {"daily_tenant", tenantTotals(ds)}, {"monthly_tenant", tenantTotals(months)}} {
		if err := applyTo(ctx, tx, x.table, x.ds); err != nil {
			return err
		}
	}
	return nil
}

// tenantTotals keeps of each delta only the dimensions the tenant tables
// keep (aspect and problem category) and merges the deltas that meet.
func tenantTotals(ds []rollup.Delta) []rollup.Delta {
	out := make([]rollup.Delta, len(ds))
	for i, d := range ds {
		d.Dims = rollup.Dims{Aspect: d.Aspect, Category: d.Category}
		out[i] = d
	}
	return rollup.Merge(out)
}

// applyTo upserts the deltas into table (daily or monthly) and removes the
// counters they took to zero.
func applyTo(ctx context.Context, tx postgres.Querier, table string, ds []rollup.Delta) error {
	if len(ds) == 0 {
		return nil
	}
	n := len(ds)
	cols := make([][]string, 11)
	for i := range cols {
		cols[i] = make([]string, n)
	}
	days := make([]pgtype.Date, n)
	ns, totals := make([]int64, n), make([]int64, n)
	for i, d := range ds {
		for j, v := range []string{d.Tenant, d.Metric, d.OrgUnit, d.PolicyID, d.ServiceType, d.ProductCategory, d.Channel, d.AgentID, d.Aspect, d.Category} {
			cols[j][i] = v
		}
		days[i] = pgtype.Date{Time: rollup.Day(d.Day), Valid: true}
		ns[i], totals[i] = d.N, d.Total
	}
	_, err := tx.Exec(ctx, `INSERT INTO `+table+` (tenant_id, metric, org_unit, policy_id, service_type, product_category, channel, agent_id, aspect, category, day, n, total)
SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[], $8::text[], $9::text[], $10::text[], $11::date[], $12::bigint[], $13::bigint[])
ON CONFLICT (tenant_id, metric, day, org_unit, policy_id, service_type, product_category, channel, agent_id, aspect, category) DO UPDATE SET
  n = `+table+`.n + EXCLUDED.n, total = `+table+`.total + EXCLUDED.total`,
		cols[0], cols[1], cols[2], cols[3], cols[4], cols[5], cols[6], cols[7], cols[8], cols[9], days, ns, totals)
	if err != nil {
		return fmt.Errorf("store: apply deltas to %s: %w", table, translate(err))
	}
	// A counter a delta took to zero (a visit that moved to another agent,
	// say) is removed, so the rollup holds only counters with a value;
	// only a negative delta can take one there.
	if !slices.ContainsFunc(ns, func(n int64) bool { return n < 0 }) {
		return nil
	}
	_, err = tx.Exec(ctx, `DELETE FROM `+table+` d USING unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[], $8::text[], $9::text[], $10::text[], $11::date[], $12::bigint[])
  AS k(tenant_id, metric, org_unit, policy_id, service_type, product_category, channel, agent_id, aspect, category, day, n)
WHERE k.n < 0 AND d.n = 0 AND d.total = 0 AND d.tenant_id = k.tenant_id AND d.metric = k.metric AND d.day = k.day AND d.org_unit = k.org_unit
  AND d.policy_id = k.policy_id AND d.service_type = k.service_type AND d.product_category = k.product_category AND d.channel = k.channel
  AND d.agent_id = k.agent_id AND d.aspect = k.aspect AND d.category = k.category`,
		cols[0], cols[1], cols[2], cols[3], cols[4], cols[5], cols[6], cols[7], cols[8], cols[9], days, ns)
	if err != nil {
		return fmt.Errorf("store: remove zero counters: %w", translate(err))
	}
	return nil
}

// Dimension columns a query may filter or group by.
var dimColumns = []string{"org_unit", "policy_id", "service_type", "product_category", "channel", "agent_id", "aspect", "category"}

// Query selects counters to sum.
type Query struct {
	Tenant  string
	Metrics []string
	// From and To bound the days as [From, To); a zero time leaves that side open.
	From, To time.Time
	// Filter keeps only counters whose non-empty dimensions equal these.
	Filter rollup.Dims
	// GroupBy names dimension columns (org_unit, agent_id, aspect, ...) or
	// "day" (as YYYY-MM-DD) to group by.
	GroupBy []string
}

// Row is one summed group.
type Row struct {
	Metric string
	// Group holds the values of the GroupBy columns, in their order.
	Group []string
	N     int64
	Total int64
}

// Split cuts [from, to) (a zero bound is open) into the whole months to
// read from `monthly` and the days at either end to read from `daily`.
// useMonthly is false when no whole month lies inside.
func Split(from, to time.Time) (mFrom, mTo time.Time, useMonthly bool, days [2][2]time.Time) {
	mFrom, mTo = from, to
	if !from.IsZero() && !from.Equal(rollup.Month(from)) {
		mFrom = rollup.Month(from).AddDate(0, 1, 0)
	}
	if !to.IsZero() {
		mTo = rollup.Month(to)
	}
	useMonthly = mFrom.IsZero() || mTo.IsZero() || mFrom.Before(mTo)
	if !useMonthly {
		days[0] = [2]time.Time{from, to}
		return mFrom, mTo, false, days
	}
	if !from.IsZero() && from.Before(mFrom) {
		days[0] = [2]time.Time{from, mFrom}
	}
	if !to.IsZero() && mTo.Before(to) {
		days[1] = [2]time.Time{mTo, to}
	}
	return mFrom, mTo, true, days
}

// Sum adds up the counters q selects, per metric and group. Whole months of
// the period come from `monthly`, the partial months at its ends from
// `daily` (all of it from `daily` when grouping by day).
func Sum(ctx context.Context, db postgres.Querier, q Query) ([]Row, error) {
	args := []any{q.Tenant, q.Metrics}
	where := []string{"tenant_id = $1", "metric = ANY($2)"}
	for i, v := range dimValues(q.Filter) {
		if v != "" {
			args = append(args, v)
			where = append(where, fmt.Sprintf("%s = $%d", dimColumns[i], len(args)))
		}
	}
	// Without a filter on, or a grouping by, the dimensions the tenant
	// tables drop, read those.
	daily, monthly := "daily", "monthly"
	if q.Filter == (rollup.Dims{Aspect: q.Filter.Aspect, Category: q.Filter.Category}) && !slices.ContainsFunc(q.GroupBy, func(g string) bool {
		return g != "day" && g != "month" && g != "aspect" && g != "category"
	}) {
		daily, monthly = "daily_tenant", "monthly_tenant"
	}
	group := []string{"metric"}
	byDay := false
	for _, g := range q.GroupBy {
		switch {
		case g == "day":
			byDay = true
			group = append(group, "to_char(day, 'YYYY-MM-DD')")
		case g == "month":
			group = append(group, "to_char(date_trunc('month', day), 'YYYY-MM-DD')")
		case validColumn(g):
			group = append(group, g)
		default:
			return nil, fmt.Errorf("store: cannot group by %q", g)
		}
	}
	mFrom, mTo, useMonthly, days := Split(q.From, q.To)
	var dayRanges [][2]time.Time
	if byDay || !useMonthly {
		useMonthly = false
		dayRanges = append(dayRanges, [2]time.Time{q.From, q.To})
	} else {
		for _, d := range days {
			if !d[0].IsZero() {
				dayRanges = append(dayRanges, d)
			}
		}
	}
	arg := func(v any) string {
		args = append(args, v)
		return fmt.Sprintf("$%d", len(args))
	}
	const cols = "metric, org_unit, policy_id, service_type, product_category, channel, agent_id, aspect, category, day, n, total"
	common := strings.Join(where, " AND ")
	var parts []string
	if useMonthly {
		parts = append(parts, fmt.Sprintf("SELECT %s FROM %s WHERE %s AND (%s::date IS NULL OR day >= %[4]s::date) AND (%s::date IS NULL OR day < %[5]s::date)",
			cols, monthly, common, arg(date(mFrom)), arg(date(mTo))))
	}
	for _, d := range dayRanges {
		parts = append(parts, fmt.Sprintf("SELECT %s FROM %s WHERE %s AND (%s::date IS NULL OR day >= %[4]s::date) AND (%s::date IS NULL OR day < %[5]s::date)",
			cols, daily, common, arg(date(d[0])), arg(date(d[1]))))
	}
	sql := fmt.Sprintf(`SELECT %s, coalesce(sum(n), 0)::bigint, coalesce(sum(total), 0)::bigint FROM (%s) x GROUP BY %s HAVING sum(n) <> 0 OR sum(total) <> 0 ORDER BY %s`,
		strings.Join(group, ", "), strings.Join(parts, " UNION ALL "), strings.Join(group, ", "), strings.Join(group, ", "))
	rows, err := db.Query(ctx, sql, args...)
	if err != nil {
		return nil, fmt.Errorf("store: sum: %w", translate(err))
	}
	defer rows.Close()
	var out []Row
	for rows.Next() {
		r := Row{Group: make([]string, len(q.GroupBy))}
		dst := []any{&r.Metric}
		for i := range r.Group {
			dst = append(dst, &r.Group[i])
		}
		dst = append(dst, &r.N, &r.Total)
		if err := rows.Scan(dst...); err != nil {
			return nil, fmt.Errorf("store: sum: %w", translate(err))
		}
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("store: sum: %w", translate(err))
	}
	return out, nil
}

func validColumn(c string) bool {
	for _, d := range dimColumns {
		if c == d {
			return true
		}
	}
	return false
}

func dimValues(d rollup.Dims) []string {
	return []string{d.OrgUnit, d.PolicyID, d.ServiceType, d.ProductCategory, d.Channel, d.AgentID, d.Aspect, d.Category}
}

func date(t time.Time) pgtype.Date {
	if t.IsZero() {
		return pgtype.Date{}
	}
	return pgtype.Date{Time: rollup.Day(t), Valid: true}
}

// Tenants returns the tenants that have any counter (from the monthly
// counters: far fewer rows than the daily ones).
func Tenants(ctx context.Context, db postgres.Querier) ([]string, error) {
	rows, err := db.Query(ctx, `SELECT DISTINCT tenant_id FROM monthly ORDER BY 1`)
	if err != nil {
		return nil, fmt.Errorf("store: tenants: %w", translate(err))
	}
	out, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, fmt.Errorf("store: tenants: %w", translate(err))
	}
	return out, nil
}
