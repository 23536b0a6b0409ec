package store

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/huifang/huifang/pkg/postgres"
	"github.com/huifang/huifang/services/analytics/internal/rollup"
)

// SaveRoundVisit writes a round visit from its visit's ledger entry after
// one of its events: the dimensions, the agent and the flags as the entry
// has them now; the masked name, the record, the answers and the
// complaint are kept when r has none (they come with other events).
func SaveRoundVisit(ctx context.Context, db postgres.Querier, r rollup.RoundVisit) error {
	if _, err := db.Exec(ctx, `INSERT INTO round_visits (tenant_id, visit_id, policy_id, org_unit, due_at, service_id, customer_id, name_masked,
  agent_id, attempted, unreachable, cancelled, logged_at, record_id, product_matches, quantity_matches)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16)
ON CONFLICT (tenant_id, visit_id) DO UPDATE SET policy_id = EXCLUDED.policy_id, org_unit = EXCLUDED.org_unit, due_at = EXCLUDED.due_at,
  service_id = EXCLUDED.service_id, customer_id = EXCLUDED.customer_id,
  name_masked = CASE WHEN EXCLUDED.name_masked <> '' THEN EXCLUDED.name_masked ELSE round_visits.name_masked END,
  agent_id = EXCLUDED.agent_id, attempted = EXCLUDED.attempted, unreachable = EXCLUDED.unreachable, cancelled = EXCLUDED.cancelled,
  logged_at = EXCLUDED.logged_at,
  record_id = CASE WHEN round_visits.record_id = '' THEN EXCLUDED.record_id ELSE round_visits.record_id END,
  product_matches = coalesce(round_visits.product_matches, EXCLUDED.product_matches),
  quantity_matches = coalesce(round_visits.quantity_matches, EXCLUDED.quantity_matches)`,
		r.Tenant, r.VisitID, r.PolicyID, r.OrgUnit, r.DueAt, r.ServiceID, r.CustomerID, r.NameMasked,
		r.AgentID, r.Attempted, r.Unreachable, r.Cancelled, nullTime(r.LoggedAt), r.RecordID, r.ProductMatches, r.QuantityMatches); err != nil {
		return fmt.Errorf("store: save round visit %s: %w", r.VisitID, translate(err))
	}
	return nil
}

// MarkRoundComplaint links a delivery_mismatch complaint to its round
// visit (the first one stays); a visit that is not in a round is left alone.
func MarkRoundComplaint(ctx context.Context, db postgres.Querier, tenant, visitID, complaintID string) error {
	if _, err := db.Exec(ctx, `UPDATE round_visits SET complaint_id = $3 WHERE tenant_id = $1 AND visit_id = $2 AND complaint_id = ''`,
		tenant, visitID, complaintID); err != nil {
		return fmt.Errorf("store: mark round complaint %s: %w", visitID, translate(err))
	}
	return nil
}

// RoundVisits lists the round of a policy: its visits due in [from, to),
// not cancelled unless logged (one org unit's when orgUnit is set), with
// the state of their complaints as it is now, by due time, up to limit.
func RoundVisits(ctx context.Context, db postgres.Querier, tenant, policyID, orgUnit string, from, to time.Time, limit int) ([]rollup.RoundVisit, error) {
	rows, err := db.Query(ctx, `SELECT r.tenant_id, r.visit_id, r.policy_id, r.org_unit, r.due_at, r.service_id, r.customer_id, r.name_masked,
  r.agent_id, r.attempted, r.unreachable, r.cancelled, r.logged_at, r.record_id, r.product_matches, r.quantity_matches, r.complaint_id,
  CASE WHEN c.state IS NULL THEN '' WHEN c.state ? 'closed_at' THEN 'closed' WHEN c.state ? 'resolved_at' THEN 'resolved'
    WHEN c.state ? 'acknowledged_at' THEN 'acknowledged' ELSE 'open' END
FROM round_visits r LEFT JOIN complaints c ON c.tenant_id = r.tenant_id AND c.complaint_id = r.complaint_id AND r.complaint_id <> ''
WHERE r.tenant_id = $1 AND r.policy_id = $2 AND ($3 = '' OR r.org_unit = $3) AND r.due_at >= $4 AND r.due_at < $5
  AND (NOT r.cancelled OR r.logged_at IS NOT NULL)
ORDER BY r.due_at, r.visit_id LIMIT $6`, tenant, policyID, orgUnit, from, to, limit)
	if err != nil {
		return nil, fmt.Errorf("store: round visits: %w", translate(err))
	}
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (rollup.RoundVisit, error) {
		var r rollup.RoundVisit
		var logged *time.Time
		err := row.Scan(&r.Tenant, &r.VisitID, &r.PolicyID, &r.OrgUnit, &r.DueAt, &r.ServiceID, &r.CustomerID, &r.NameMasked,
			&r.AgentID, &r.Attempted, &r.Unreachable, &r.Cancelled, &logged, &r.RecordID, &r.ProductMatches, &r.QuantityMatches,
			&r.ComplaintID, &r.ComplaintState)
		r.DueAt, r.LoggedAt = r.DueAt.UTC(), timeOf(logged)
		return r, err
	})
	if err != nil {
		return nil, fmt.Errorf("store: round visits: %w", translate(err))
	}
	return out, nil
}
