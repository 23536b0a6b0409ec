package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	typesv1 "github.com/huifang/huifang/proto/huifang/types/v1"

	"github.com/huifang/huifang/pkg/postgres"
	"github.com/huifang/huifang/services/feedback/internal/visit"
)

// SaveVisit stores the context of a visit. A later VisitDue for the same
// visit (a redelivery, or the scheduler re-emitting it) updates the
// context in place, so each visit has one row (SaveVisits of one).
func SaveVisit(ctx context.Context, q postgres.Querier, v visit.Visit) error {
	return SaveVisits(ctx, q, []visit.Visit{v})
}

// GetVisit returns a visit, with the agent it is assigned to, and holds it
// (FOR SHARE) until tx ends, or ErrNotFound.
func GetVisit(ctx context.Context, tx pgx.Tx, tenant, visitID string) (visit.Visit, error) {
	v := visit.Visit{TenantID: tenant, VisitID: visitID}
	var channel string
	var due, deadline, completed *time.Time
	err := tx.QueryRow(ctx, `SELECT v.customer_id, v.service_id, v.policy_id, v.channel, v.due_at, v.deadline, v.org_unit, v.service_type,
  v.service_completed_at, v.complaint_id, coalesce(a.agent_id, '')
FROM visits v LEFT JOIN visit_assignments a ON a.tenant_id = v.tenant_id AND a.visit_id = v.visit_id
WHERE v.tenant_id = $1 AND v.visit_id = $2 FOR SHARE OF v`, tenant, visitID).
		Scan(&v.CustomerID, &v.ServiceID, &v.PolicyID, &channel, &due, &deadline, &v.OrgUnit, &v.ServiceType, &completed, &v.ComplaintID, &v.AssignedAgentID)
	if err != nil {
		return visit.Visit{}, fmt.Errorf("store: get visit %s: %w", visitID, translate(err))
	}
	// The column keeps the channel's full name (CHANNEL_PHONE).
	v.Channel = typesv1.Channel(typesv1.Channel_value[channel])
	v.DueAt, v.Deadline, v.ServiceCompletedAt = timeOf(due), timeOf(deadline), timeOf(completed)
	return v, nil
}

// LockCustomer holds a customer's lock until tx ends, so that the records
// of one customer that may raise the same problem are stored one after
// another (see FindOpenComplaint).
func LockCustomer(ctx context.Context, tx pgx.Tx, tenant, customerID string) error {
	if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock(hashtextextended($1, 0))`, "feedback/customer/"+tenant+"/"+customerID); err != nil {
		return fmt.Errorf("store: lock customer %s: %w", customerID, translate(err))
	}
	return nil
}

// UpdateAssignment holds the assignment of a visit (FOR UPDATE) and lets
// fn decide what it becomes: fn gets the assignment kept, nil when there is
// none yet (the visit need not be known: VisitAssigned may come before its
// VisitDue), and returns the one to keep, nil to change nothing. Two
// transactions that find none at once do not both insert: the second
// waits for the first and decides again over what it stored.
func UpdateAssignment(ctx context.Context, tx pgx.Tx, tenant, visitID string, fn func(cur *visit.Assignment) (*visit.Assignment, error)) error {
	for {
		cur, err := lockAssignment(ctx, tx, tenant, visitID)
		if err != nil {
			return err
		}
		next, err := fn(cur)
		if err != nil || next == nil {
			return err
		}
		if cur != nil {
			_, err := tx.Exec(ctx, `UPDATE visit_assignments SET agent_id = $3, assigned_at = $4, event_id = $5, updated_at = now()
WHERE tenant_id = $1 AND visit_id = $2`, tenant, visitID, next.AgentID, next.AssignedAt, next.EventID)
			if err != nil {
				return fmt.Errorf("store: save assignment of visit %s: %w", visitID, translate(err))
			}
			return nil
		}
		tag, err := tx.Exec(ctx, `INSERT INTO visit_assignments (tenant_id, visit_id, agent_id, assigned_at, event_id) VALUES ($1, $2, $3, $4, $5)
ON CONFLICT (tenant_id, visit_id) DO NOTHING`, tenant, visitID, next.AgentID, next.AssignedAt, next.EventID)
		if err != nil {
			return fmt.Errorf("store: save assignment of visit %s: %w", visitID, translate(err))
		}
		if tag.RowsAffected() == 1 {
			return nil
		}
		// Another transaction stored one meanwhile: decide again over it.
	}
}

func lockAssignment(ctx context.Context, tx pgx.Tx, tenant, visitID string) (*visit.Assignment, error) {
	a := visit.Assignment{TenantID: tenant, VisitID: visitID}
	err := tx.QueryRow(ctx, `SELECT agent_id, assigned_at, event_id FROM visit_assignments WHERE tenant_id = $1 AND visit_id = $2 FOR UPDATE`,
		tenant, visitID).Scan(&a.AgentID, &a.AssignedAt, &a.EventID)
	switch err = translate(err); {
	case errors.Is(err, ErrNotFound):
		return nil, nil
	case err != nil:
		return nil, fmt.Errorf("store: assignment of visit %s: %w", visitID, err)
	}
	a.AssignedAt = a.AssignedAt.UTC()
	return &a, nil
}
