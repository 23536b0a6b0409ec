package store

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/huifang/huifang/pkg/postgres"
	"github.com/huifang/huifang/services/analytics/internal/rollup"
)

// OpenChurnCase records a churn call that fell due (VisitDue); a call due
// again (moved, redelivered) keeps what its record filled in.
func OpenChurnCase(ctx context.Context, db postgres.Querier, c rollup.ChurnCase) error {
	if _, err := db.Exec(ctx, `INSERT INTO churn_cases (tenant_id, visit_id, service_id, customer_id, name_masked, org_unit, due_at, last_visit_at)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
ON CONFLICT (tenant_id, visit_id) DO UPDATE SET service_id = EXCLUDED.service_id, customer_id = EXCLUDED.customer_id,
  name_masked = EXCLUDED.name_masked, org_unit = EXCLUDED.org_unit, due_at = EXCLUDED.due_at, last_visit_at = EXCLUDED.last_visit_at`,
		c.Tenant, c.VisitID, c.ServiceID, c.CustomerID, c.NameMasked, c.OrgUnit, c.DueAt, nullTime(c.LastVisitAt)); err != nil {
		return fmt.Errorf("store: open churn case %s: %w", c.VisitID, translate(err))
	}
	return nil
}

// ForgetCustomerNames drops the masked name of an erased customer from the
// tables that keep one, its churn cases and its round visits (the
// customer's id, the car, the answers and every count stay).
func ForgetCustomerNames(ctx context.Context, db postgres.Querier, tenant, customerID string) error {
	for _, table := range []string{"churn_cases", "round_visits"} {
		if _, err := db.Exec(ctx, `UPDATE `+table+` SET name_masked = '' WHERE tenant_id = $1 AND customer_id = $2 AND name_masked <> ''`,
			tenant, customerID); err != nil {
			return fmt.Errorf("store: forget the customer's name in %s: %w", table, translate(err))
		}
	}
	return nil
}

// LogChurnCase fills in the first record of a churn call (VisitLogged):
// the agent, the record, when, the reason and the remedy. A visit that is
// not a churn case is left alone.
func LogChurnCase(ctx context.Context, db postgres.Querier, tenant, visitID, agentID, recordID string, at time.Time, reason, remedy string) error {
	if _, err := db.Exec(ctx, `UPDATE churn_cases SET agent_id = $3, record_id = $4, logged_at = $5, reason = $6, remedy = $7
WHERE tenant_id = $1 AND visit_id = $2 AND logged_at IS NULL`, tenant, visitID, agentID, recordID, nullTime(at), reason, remedy); err != nil {
		return fmt.Errorf("store: log churn case %s: %w", visitID, translate(err))
	}
	return nil
}

// ChurnCases lists a tenant's churn cases due in [from, to) (one org unit's
// when orgUnit is set), with the car and advisor of their last visit,
// longest absent first, up to limit. A record logged at or after to is not
// shown yet, so a period's table reads the same later.
func ChurnCases(ctx context.Context, db postgres.Querier, tenant, orgUnit string, from, to time.Time, limit int) ([]rollup.ChurnCase, error) {
	rows, err := db.Query(ctx, `SELECT c.tenant_id, c.visit_id, c.service_id, c.customer_id, c.name_masked, c.org_unit, c.due_at, c.last_visit_at,
  coalesce(s.vehicle_model, ''), coalesce(s.plate_masked, ''), coalesce(s.advisor, ''),
  CASE WHEN c.logged_at < $4 THEN c.agent_id ELSE '' END, CASE WHEN c.logged_at < $4 THEN c.record_id ELSE '' END,
  CASE WHEN c.logged_at < $4 THEN c.logged_at END, CASE WHEN c.logged_at < $4 THEN c.reason ELSE '' END,
  CASE WHEN c.logged_at < $4 THEN c.remedy ELSE '' END
FROM churn_cases c LEFT JOIN services s ON s.tenant_id = c.tenant_id AND s.service_id = c.service_id
WHERE c.tenant_id = $1 AND ($2 = '' OR c.org_unit = $2) AND c.due_at >= $3 AND c.due_at < $4
ORDER BY c.last_visit_at NULLS FIRST, c.visit_id LIMIT $5`, tenant, orgUnit, from, to, limit)
	if err != nil {
		return nil, fmt.Errorf("store: churn cases: %w", translate(err))
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (rollup.ChurnCase, error) {
		var c rollup.ChurnCase
		var last, logged *time.Time
		err := r.Scan(&c.Tenant, &c.VisitID, &c.ServiceID, &c.CustomerID, &c.NameMasked, &c.OrgUnit, &c.DueAt, &last,
			&c.Model, &c.PlateMasked, &c.Advisor, &c.AgentID, &c.RecordID, &logged, &c.Reason, &c.Remedy)
		c.DueAt, c.LastVisitAt, c.LoggedAt = c.DueAt.UTC(), timeOf(last), timeOf(logged)
		return c, err
	})
	if err != nil {
		return nil, fmt.Errorf("store: churn cases: %w", translate(err))
	}
	return out, nil
}

// nullTime is t for a nullable column: NULL when zero.
func nullTime(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	return &t
}

// timeOf is a nullable column's time in UTC, zero when NULL (nullTime's inverse).
func timeOf(t *time.Time) time.Time {
	if t == nil {
		return time.Time{}
	}
	return t.UTC()
}

// OpenChurnCases returns, of the visits keys name that are churn cases,
// whether each is still open (its record not filled in yet), locked for
// the rest of tx.
func OpenChurnCases(ctx context.Context, tx pgx.Tx, keys []EntryKey) (map[EntryKey]bool, error) {
	out := map[EntryKey]bool{}
	if len(keys) == 0 {
		return out, nil
	}
	tenants, ids := keyColumns(keys)
	rows, err := tx.Query(ctx, `SELECT c.tenant_id, c.visit_id, c.logged_at IS NULL FROM churn_cases c
JOIN unnest($1::text[], $2::text[]) AS k(t, id) ON c.tenant_id = k.t AND c.visit_id = k.id
ORDER BY c.tenant_id, c.visit_id FOR UPDATE OF c`, tenants, ids)
	if err != nil {
		return nil, fmt.Errorf("store: churn cases: %w", translate(err))
	}
	var k EntryKey
	var open bool
	if _, err := pgx.ForEachRow(rows, []any{&k.Tenant, &k.ID, &open}, func() error {
		out[k] = open
		return nil
	}); err != nil {
		return nil, fmt.Errorf("store: churn cases: %w", translate(err))
	}
	return out, nil
}
