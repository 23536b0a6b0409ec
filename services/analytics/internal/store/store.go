// Package store keeps analytics' rollups and ledgers in Postgres: the daily
// counters, the per-visit and per-complaint entries events update, targets,
// breaches and incentive rules.
package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/huifang/huifang/services/analytics/internal/rollup"
)

// Store is analytics' storage.
type Store struct {
	Pool *pgxpool.Pool
}

// Apply adds the deltas to their counters within tx, creating the counters
// that do not exist yet, in one statement. Deltas must name distinct
// counters (rollup.Merge merges them).
func Apply(ctx context.Context, tx pgx.Tx, ds []rollup.Delta) error {
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
func applyTo(ctx context.Context, tx pgx.Tx, table string, ds []rollup.Delta) error {
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
		return fmt.Errorf("store: apply deltas to %s: %w", table, err)
	}
	// A counter a delta took to zero (a visit that moved to another agent,
	// say) is removed, so the rollup holds only counters with a value.
	_, err = tx.Exec(ctx, `DELETE FROM `+table+` d USING unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[], $8::text[], $9::text[], $10::text[], $11::date[], $12::bigint[])
  AS k(tenant_id, metric, org_unit, policy_id, service_type, product_category, channel, agent_id, aspect, category, day, n)
WHERE k.n < 0 AND d.n = 0 AND d.total = 0 AND d.tenant_id = k.tenant_id AND d.metric = k.metric AND d.day = k.day AND d.org_unit = k.org_unit
  AND d.policy_id = k.policy_id AND d.service_type = k.service_type AND d.product_category = k.product_category AND d.channel = k.channel
  AND d.agent_id = k.agent_id AND d.aspect = k.aspect AND d.category = k.category`,
		cols[0], cols[1], cols[2], cols[3], cols[4], cols[5], cols[6], cols[7], cols[8], cols[9], days, ns)
	if err != nil {
		return fmt.Errorf("store: remove zero counters: %w", err)
	}
	return nil
}

// Visit returns the ledger entry of a visit, locked for the rest of tx, and
// whether it existed.
func Visit(ctx context.Context, tx pgx.Tx, tenant, visitID string) (rollup.Visit, bool, error) {
	v := rollup.Visit{Tenant: tenant, VisitID: visitID}
	if err := lock(ctx, tx, "visit", tenant, visitID); err != nil {
		return v, false, err
	}
	found, err := load(ctx, tx, `SELECT state FROM visits WHERE tenant_id = $1 AND visit_id = $2 FOR UPDATE`, &v, tenant, visitID)
	if err != nil {
		return v, false, fmt.Errorf("store: load visit %s: %w", visitID, err)
	}
	return v, found, nil
}

// SaveVisit writes the ledger entry of a visit.
func SaveVisit(ctx context.Context, tx pgx.Tx, v rollup.Visit) error {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("store: encode visit: %w", err)
	}
	if _, err := tx.Exec(ctx, `INSERT INTO visits (tenant_id, visit_id, state) VALUES ($1, $2, $3)
ON CONFLICT (tenant_id, visit_id) DO UPDATE SET state = EXCLUDED.state`, v.Tenant, v.VisitID, b); err != nil {
		return fmt.Errorf("store: save visit %s: %w", v.VisitID, err)
	}
	return nil
}

// Complaint returns the ledger entry of a complaint, locked for the rest of tx.
func Complaint(ctx context.Context, tx pgx.Tx, tenant, id string) (rollup.Complaint, error) {
	c := rollup.Complaint{Tenant: tenant, ComplaintID: id}
	if err := lock(ctx, tx, "complaint", tenant, id); err != nil {
		return c, err
	}
	if _, err := load(ctx, tx, `SELECT state FROM complaints WHERE tenant_id = $1 AND complaint_id = $2 FOR UPDATE`, &c, tenant, id); err != nil {
		return c, fmt.Errorf("store: load complaint %s: %w", id, err)
	}
	return c, nil
}

// SaveComplaint writes the ledger entry of a complaint.
func SaveComplaint(ctx context.Context, tx pgx.Tx, c rollup.Complaint) error {
	b, err := json.Marshal(c)
	if err != nil {
		return fmt.Errorf("store: encode complaint: %w", err)
	}
	var deadline *time.Time
	if !c.Deadline.IsZero() {
		deadline = &c.Deadline
	}
	if _, err := tx.Exec(ctx, `INSERT INTO complaints (tenant_id, complaint_id, state, open, deadline) VALUES ($1, $2, $3, $4, $5)
ON CONFLICT (tenant_id, complaint_id) DO UPDATE SET state = EXCLUDED.state, open = EXCLUDED.open, deadline = EXCLUDED.deadline`,
		c.Tenant, c.ComplaintID, b, c.Open(), deadline); err != nil {
		return fmt.Errorf("store: save complaint %s: %w", c.ComplaintID, err)
	}
	return nil
}

// lock takes a transaction-scoped advisory lock on one ledger entry, so two
// replicas handling events of a visit (or complaint, or customer) not yet
// stored do not both start from an empty entry: FOR UPDATE locks only rows
// that exist. A collision of the hash only makes two entries wait for each other.
func lock(ctx context.Context, tx pgx.Tx, kind, tenant, id string) error {
	if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock(hashtextextended($1, 0))`, "huifang.analytics."+kind+"/"+tenant+"/"+id); err != nil {
		return fmt.Errorf("store: lock %s %s: %w", kind, id, err)
	}
	return nil
}

func load(ctx context.Context, tx pgx.Tx, sql string, dst any, args ...any) (bool, error) {
	var b []byte
	err := tx.QueryRow(ctx, sql, args...).Scan(&b)
	if errors.Is(err, pgx.ErrNoRows) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	return true, json.Unmarshal(b, dst)
}

// ServiceCoverage returns the coverage entry of a service, locked for the rest of tx.
func ServiceCoverage(ctx context.Context, tx pgx.Tx, tenant, serviceID string) (rollup.ServiceCoverage, error) {
	c := rollup.ServiceCoverage{Tenant: tenant, ServiceID: serviceID}
	if err := lock(ctx, tx, "service", tenant, serviceID); err != nil {
		return c, err
	}
	if _, err := load(ctx, tx, `SELECT state FROM service_coverage WHERE tenant_id = $1 AND service_id = $2 FOR UPDATE`, &c, tenant, serviceID); err != nil {
		return c, fmt.Errorf("store: load service coverage %s: %w", serviceID, err)
	}
	return c, nil
}

// SaveServiceCoverage writes the coverage entry of a service, or removes it
// when no eligible visit is left.
func SaveServiceCoverage(ctx context.Context, tx pgx.Tx, c rollup.ServiceCoverage) error {
	if len(c.Visits) == 0 {
		if _, err := tx.Exec(ctx, `DELETE FROM service_coverage WHERE tenant_id = $1 AND service_id = $2`, c.Tenant, c.ServiceID); err != nil {
			return fmt.Errorf("store: remove service coverage %s: %w", c.ServiceID, err)
		}
		return nil
	}
	b, err := json.Marshal(c)
	if err != nil {
		return fmt.Errorf("store: encode service coverage: %w", err)
	}
	if _, err := tx.Exec(ctx, `INSERT INTO service_coverage (tenant_id, service_id, state) VALUES ($1, $2, $3)
ON CONFLICT (tenant_id, service_id) DO UPDATE SET state = EXCLUDED.state`, c.Tenant, c.ServiceID, b); err != nil {
		return fmt.Errorf("store: save service coverage %s: %w", c.ServiceID, err)
	}
	return nil
}

// RebuildRequested reports whether a migration asked for a rebuild (rows in rebuild_requests).
func RebuildRequested(ctx context.Context, db interface {
	QueryRow(context.Context, string, ...any) pgx.Row
}) (bool, error) {
	var n int
	if err := db.QueryRow(ctx, `SELECT count(*) FROM rebuild_requests`).Scan(&n); err != nil {
		return false, fmt.Errorf("store: rebuild requests: %w", err)
	}
	return n > 0, nil
}

// ServiceProduct returns the product category of a service, "" when unknown.
func ServiceProduct(ctx context.Context, tx pgx.Tx, tenant, serviceID string) (string, error) {
	if serviceID == "" {
		return "", nil
	}
	var cat string
	err := tx.QueryRow(ctx, `SELECT product_category FROM services WHERE tenant_id = $1 AND service_id = $2`, tenant, serviceID).Scan(&cat)
	if errors.Is(err, pgx.ErrNoRows) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("store: service product: %w", err)
	}
	return cat, nil
}

// RecordService remembers a service's product category and moves its
// customer's last service forward, returning the customer's previous last
// service (zero when the customer is new or the service is not newer).
func RecordService(ctx context.Context, tx pgx.Tx, tenant, serviceID, productCategory, customerID string, at time.Time) (time.Time, error) {
	if _, err := tx.Exec(ctx, `INSERT INTO services (tenant_id, service_id, product_category) VALUES ($1, $2, $3)
ON CONFLICT (tenant_id, service_id) DO UPDATE SET product_category = EXCLUDED.product_category`, tenant, serviceID, productCategory); err != nil {
		return time.Time{}, fmt.Errorf("store: record service: %w", err)
	}
	if customerID == "" {
		return time.Time{}, nil
	}
	if err := lock(ctx, tx, "customer", tenant, customerID); err != nil {
		return time.Time{}, err
	}
	var prev time.Time
	err := tx.QueryRow(ctx, `SELECT last_service_at FROM customers WHERE tenant_id = $1 AND customer_id = $2 FOR UPDATE`, tenant, customerID).Scan(&prev)
	if err != nil && !errors.Is(err, pgx.ErrNoRows) {
		return time.Time{}, fmt.Errorf("store: customer: %w", err)
	}
	if !prev.IsZero() && !at.After(prev) {
		return time.Time{}, nil
	}
	if _, err := tx.Exec(ctx, `INSERT INTO customers (tenant_id, customer_id, last_service_at) VALUES ($1, $2, $3)
ON CONFLICT (tenant_id, customer_id) DO UPDATE SET last_service_at = EXCLUDED.last_service_at`, tenant, customerID, at); err != nil {
		return time.Time{}, fmt.Errorf("store: customer: %w", err)
	}
	return prev, nil
}

// Reset empties every rollup and ledger and forgets which events the
// consumer handled, within tx, so a replay of the stream rebuilds them.
// Targets, incentive rules and breaches already published are kept.
func Reset(ctx context.Context, tx pgx.Tx, consumer string) error {
	if _, err := tx.Exec(ctx, `TRUNCATE daily, monthly, daily_tenant, monthly_tenant, visits, complaints, services, customers, service_coverage, customer_members, customer_coverage, rebuild_requests`); err != nil {
		return fmt.Errorf("store: reset rollups: %w", err)
	}
	if _, err := tx.Exec(ctx, `DELETE FROM inbox WHERE consumer = $1`, consumer); err != nil {
		return fmt.Errorf("store: reset inbox: %w", err)
	}
	if _, err := tx.Exec(ctx, `DELETE FROM rejected_events`); err != nil {
		return fmt.Errorf("store: reset rejected events: %w", err)
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
func (s *Store) Sum(ctx context.Context, q Query) ([]Row, error) {
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
	rows, err := s.Pool.Query(ctx, sql, args...)
	if err != nil {
		return nil, fmt.Errorf("store: sum: %w", err)
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
			return nil, fmt.Errorf("store: sum: %w", err)
		}
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("store: sum: %w", err)
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
func (s *Store) Tenants(ctx context.Context) ([]string, error) {
	rows, err := s.Pool.Query(ctx, `SELECT DISTINCT tenant_id FROM monthly ORDER BY 1`)
	if err != nil {
		return nil, fmt.Errorf("store: tenants: %w", err)
	}
	out, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, fmt.Errorf("store: tenants: %w", err)
	}
	return out, nil
}

// Overdue returns the complaints of tenant (and org unit, when given) that
// were overdue at asOf: escalated before it, deadline passed before it, and
// not resolved by then; oldest deadline first, at most limit. It depends on
// asOf only, so a report for a past month is reproducible.
func (s *Store) Overdue(ctx context.Context, tenant, orgUnit string, asOf time.Time, limit int) ([]rollup.Complaint, error) {
	rows, err := s.Pool.Query(ctx, `SELECT state FROM complaints WHERE tenant_id = $1 AND deadline < $2
AND (state->>'escalated_at')::timestamptz < $2
AND (state->>'resolved_at' IS NULL OR (state->>'resolved_at')::timestamptz > $2)
AND (state->>'closed_at' IS NULL OR (state->>'closed_at')::timestamptz > $2)
AND ($3 = '' OR state->>'org_unit' = $3) ORDER BY deadline, complaint_id LIMIT $4`, tenant, asOf, orgUnit, limit)
	if err != nil {
		return nil, fmt.Errorf("store: overdue: %w", err)
	}
	defer rows.Close()
	var out []rollup.Complaint
	for rows.Next() {
		var b []byte
		if err := rows.Scan(&b); err != nil {
			return nil, fmt.Errorf("store: overdue: %w", err)
		}
		var c rollup.Complaint
		if err := json.Unmarshal(b, &c); err != nil {
			return nil, fmt.Errorf("store: overdue: %w", err)
		}
		out = append(out, c)
	}
	return out, rows.Err()
}
