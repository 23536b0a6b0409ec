package store

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/huifang/huifang/pkg/postgres"
	"github.com/huifang/huifang/services/feedback/internal/visit"
)

// The VisitDue and VisitAssigned consumers keep no inbox rows: what a
// visit's row keeps tells whether an event was applied. So that two
// transactions applying events of one visit at once decide in turn, each
// holds the visit's lock (one for its VisitDue, one for its VisitAssigned)
// before it reads that row: a second reads what the first committed.

// KeptVisits holds the VisitDue locks of the visits keys name until tx
// ends, then returns, by key, the id of the VisitDue that stored each
// visit stored ("" for one stored before the ids were kept).
func KeptVisits(ctx context.Context, tx pgx.Tx, keys []visit.Key) (map[visit.Key]string, error) {
	tenants, ids, err := lockVisits(ctx, tx, "feedback/visit-due/", keys)
	if err != nil || len(tenants) == 0 {
		return map[visit.Key]string{}, err
	}
	rows, err := tx.Query(ctx, `SELECT v.tenant_id, v.visit_id, coalesce(v.event_id, '') FROM visits v
JOIN unnest($1::text[], $2::text[]) AS k(t, id) ON v.tenant_id = k.t AND v.visit_id = k.id`, tenants, ids)
	if err != nil {
		return nil, fmt.Errorf("store: kept visits: %w", translate(err))
	}
	out := make(map[visit.Key]string, len(tenants))
	var k visit.Key
	var id string
	if _, err := pgx.ForEachRow(rows, []any{&k.Tenant, &k.Visit, &id}, func() error {
		out[k] = id
		return nil
	}); err != nil {
		return nil, fmt.Errorf("store: kept visits: %w", translate(err))
	}
	return out, nil
}

// KeptAssignments holds the VisitAssigned locks of the visits keys name
// until tx ends, then returns the assignment each of them keeps, by key.
func KeptAssignments(ctx context.Context, tx pgx.Tx, keys []visit.Key) (map[visit.Key]visit.Assignment, error) {
	tenants, ids, err := lockVisits(ctx, tx, "feedback/visit-assigned/", keys)
	if err != nil || len(tenants) == 0 {
		return map[visit.Key]visit.Assignment{}, err
	}
	rows, err := tx.Query(ctx, `SELECT a.tenant_id, a.visit_id, a.agent_id, a.assigned_at, a.event_id FROM visit_assignments a
JOIN unnest($1::text[], $2::text[]) AS k(t, id) ON a.tenant_id = k.t AND a.visit_id = k.id`, tenants, ids)
	if err != nil {
		return nil, fmt.Errorf("store: kept assignments: %w", translate(err))
	}
	out := make(map[visit.Key]visit.Assignment, len(tenants))
	var a visit.Assignment
	var at time.Time
	if _, err := pgx.ForEachRow(rows, []any{&a.TenantID, &a.VisitID, &a.AgentID, &at, &a.EventID}, func() error {
		a.AssignedAt = at.UTC()
		out[a.Key()] = a
		return nil
	}); err != nil {
		return nil, fmt.Errorf("store: kept assignments: %w", translate(err))
	}
	return out, nil
}

// lockVisits takes the advisory locks (prefix, then tenant and visit) of
// the visits keys name (its error may come from the caller's next
// statement), in the order of their keys so that two batches
// sharing visits do not wait on each other in turn, and returns the keys'
// columns in that order.
func lockVisits(ctx context.Context, tx pgx.Tx, prefix string, keys []visit.Key) (tenants, ids []string, err error) {
	keys = sortKeys(slices.Clone(keys))
	keys = slices.Compact(keys)
	tenants, ids = make([]string, len(keys)), make([]string, len(keys))
	for i, k := range keys {
		tenants[i], ids[i] = k.Tenant, k.Visit
	}
	if len(keys) == 0 {
		return nil, nil, nil
	}
	// Held (postgres.Defer): sent with the read that follows, in one round
	// trip; the read is a statement of its own, so it sees what the
	// transactions it waited for committed.
	if err := postgres.Defer(ctx, tx, `SELECT pg_advisory_xact_lock(hashtextextended($1 || k.t || '/' || k.id, 0)) FROM unnest($2::text[], $3::text[]) AS k(t, id)`,
		prefix, tenants, ids); err != nil {
		return nil, nil, fmt.Errorf("store: lock %d visits: %w", len(keys), translate(err))
	}
	return tenants, ids, nil
}
