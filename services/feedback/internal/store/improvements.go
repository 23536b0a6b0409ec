package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/huifang/huifang/pkg/postgres"
	"github.com/huifang/huifang/services/feedback/internal/improvement"
)

// GetPlan returns the improvement plan of a complaint of the tenant, and
// false when it has none.
func GetPlan(ctx context.Context, q postgres.Querier, tenant, complaintID string) (improvement.Plan, bool, error) {
	p := improvement.Plan{ComplaintID: complaintID}
	err := q.QueryRow(ctx, `SELECT tenant_id, set_by, set_at, updated_at FROM improvement_plans WHERE tenant_id = $1 AND complaint_id = $2`,
		tenant, complaintID).Scan(&p.TenantID, &p.SetBy, &p.SetAt, &p.UpdatedAt)
	switch err = translate(err); {
	case errors.Is(err, ErrNotFound):
		return improvement.Plan{}, false, nil
	case err != nil:
		return improvement.Plan{}, false, fmt.Errorf("store: improvement plan of complaint %s: %w", complaintID, err)
	}
	p.SetAt, p.UpdatedAt = p.SetAt.UTC(), p.UpdatedAt.UTC()
	rows, err := q.Query(ctx, `SELECT id, text, owner, due_at, completed_at, completed_by, note FROM improvement_measures
WHERE complaint_id = $1 ORDER BY position`, complaintID)
	if err != nil {
		return improvement.Plan{}, false, fmt.Errorf("store: improvement measures of complaint %s: %w", complaintID, translate(err))
	}
	p.Measures, err = pgx.CollectRows(rows, func(r pgx.CollectableRow) (improvement.Measure, error) {
		var m improvement.Measure
		var done *time.Time
		err := r.Scan(&m.ID, &m.Text, &m.Owner, &m.DueAt, &done, &m.CompletedBy, &m.Note)
		m.DueAt, m.CompletedAt = m.DueAt.UTC(), timeOf(done)
		return m, err
	})
	if err != nil {
		return improvement.Plan{}, false, fmt.Errorf("store: improvement measures of complaint %s: %w", complaintID, translate(err))
	}
	return p, true, nil
}

// SavePlan writes a complaint's improvement plan, replacing its measures,
// within the caller's transaction (hold the complaint first: LockComplaint).
func SavePlan(ctx context.Context, q postgres.Querier, p improvement.Plan) error {
	if _, err := q.Exec(ctx, `INSERT INTO improvement_plans (complaint_id, tenant_id, set_by, set_at, updated_at) VALUES ($1, $2, $3, $4, $5)
ON CONFLICT (complaint_id) DO UPDATE SET set_by = excluded.set_by, set_at = excluded.set_at, updated_at = excluded.updated_at`,
		p.ComplaintID, p.TenantID, p.SetBy, p.SetAt, p.UpdatedAt); err != nil {
		return fmt.Errorf("store: save improvement plan of complaint %s: %w", p.ComplaintID, translate(err))
	}
	if _, err := q.Exec(ctx, `DELETE FROM improvement_measures WHERE complaint_id = $1`, p.ComplaintID); err != nil {
		return fmt.Errorf("store: save improvement plan of complaint %s: %w", p.ComplaintID, translate(err))
	}
	n := len(p.Measures)
	ids, texts, owners, dues, done, by, notes := make([]string, n), make([]string, n), make([]string, n), make([]time.Time, n),
		make([]*time.Time, n), make([]string, n), make([]string, n)
	for i, m := range p.Measures {
		ids[i], texts[i], owners[i], dues[i], done[i], by[i], notes[i] = m.ID, m.Text, m.Owner, m.DueAt, nullTime(m.CompletedAt), m.CompletedBy, m.Note
	}
	if _, err := q.Exec(ctx, `INSERT INTO improvement_measures (id, complaint_id, position, text, owner, due_at, completed_at, completed_by, note)
SELECT m.id, $1, m.ord, m.text, m.owner, m.due_at, m.completed_at, m.completed_by, m.note
FROM unnest($2::text[], $3::text[], $4::text[], $5::timestamptz[], $6::timestamptz[], $7::text[], $8::text[])
  WITH ORDINALITY AS m (id, text, owner, due_at, completed_at, completed_by, note, ord)`,
		p.ComplaintID, ids, texts, owners, dues, done, by, notes); err != nil {
		return fmt.Errorf("store: save improvement measures of complaint %s: %w", p.ComplaintID, translate(err))
	}
	return nil
}
