package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"google.golang.org/protobuf/types/known/timestamppb"

	eventsv1 "github.com/huifang/huifang/proto/huifang/events/v1"
	typesv1 "github.com/huifang/huifang/proto/huifang/types/v1"

	"github.com/huifang/huifang/pkg/outbox"
	"github.com/huifang/huifang/pkg/stream"
	"github.com/huifang/huifang/services/scheduler/internal/policy"
)

// Visit is a row of planned_visits.
type Visit struct {
	ID, Tenant, ServiceID, CustomerID, PolicyID string
	PolicyVersion, Step, Channel, Occurrence    int32
	DueAt, Deadline, Nominal                    time.Time
	FiredAt                                     *time.Time
	Status, Reason, OrgUnit, ServiceType, Group string
	Draw, Rate                                  float64
	Decisions                                   []policy.Decision
	// CustomerChosen: the customer asked for DueAt (ReschedulePlannedVisit).
	CustomerChosen bool
}

// VisitFilter selects planned visits; empty fields match any.
type VisitFilter struct {
	Tenant, ServiceID, Status, CustomerID, PolicyID, Group, OrgUnit string
	Channel                                                         int32
	DueFrom, DueTo                                                  time.Time
	AfterDue                                                        time.Time
	AfterID                                                         string
	Limit                                                           int
}

const visitCols = `id, tenant_id, service_id, customer_id, policy_id, policy_version, step, occurrence, channel,
  due_at, deadline, coalesce(nominal_at, due_at), fired_at, status, reason, org_unit, service_type, group_name, sample_draw, sample_rate, decisions, customer_chosen`

func scanVisit(r pgx.CollectableRow) (Visit, error) {
	var v Visit
	var ds []byte
	err := r.Scan(&v.ID, &v.Tenant, &v.ServiceID, &v.CustomerID, &v.PolicyID, &v.PolicyVersion, &v.Step, &v.Occurrence, &v.Channel,
		&v.DueAt, &v.Deadline, &v.Nominal, &v.FiredAt, &v.Status, &v.Reason, &v.OrgUnit, &v.ServiceType, &v.Group, &v.Draw, &v.Rate, &ds, &v.CustomerChosen)
	if err != nil {
		return v, err
	}
	v.DueAt, v.Deadline, v.Nominal = v.DueAt.UTC(), v.Deadline.UTC(), v.Nominal.UTC()
	if len(ds) > 0 {
		if err := json.Unmarshal(ds, &v.Decisions); err != nil {
			return v, fmt.Errorf("decisions of %s: %w", v.ID, err)
		}
	}
	return v, nil
}

// ListVisits lists planned visits soonest due first.
func (s *Store) ListVisits(ctx context.Context, f VisitFilter) ([]Visit, error) {
	rows, err := s.Pool.Query(ctx, `SELECT `+visitCols+`
FROM planned_visits
WHERE tenant_id = $1 AND ($2 = '' OR service_id = $2) AND ($3 = '' OR status = $3)
  AND ($5 = '' OR (due_at, id) > ($4, $5))
  AND ($7 = '' OR customer_id = $7) AND ($8 = '' OR policy_id = $8) AND ($9 = '' OR group_name = $9)
  AND ($10 = '' OR org_unit = $10) AND ($11 = 0 OR channel = $11)
  AND ($12::timestamptz IS NULL OR due_at >= $12) AND ($13::timestamptz IS NULL OR due_at < $13)
ORDER BY due_at, id LIMIT $6`, f.Tenant, f.ServiceID, f.Status, f.AfterDue, f.AfterID, f.Limit,
		f.CustomerID, f.PolicyID, f.Group, f.OrgUnit, f.Channel, nullTime(f.DueFrom), nullTime(f.DueTo))
	if err != nil {
		return nil, fmt.Errorf("store: list visits: %w", err)
	}
	return pgx.CollectRows(rows, scanVisit)
}

func nullTime(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	return &t
}

// GetVisit returns one of the tenant's visits.
func (s *Store) GetVisit(ctx context.Context, tenant, id string) (Visit, error) {
	rows, err := s.Pool.Query(ctx, `SELECT `+visitCols+` FROM planned_visits WHERE tenant_id = $1 AND id = $2`, tenant, id)
	if err != nil {
		return Visit{}, fmt.Errorf("store: get visit: %w", err)
	}
	v, err := pgx.CollectExactlyOneRow(rows, scanVisit)
	if errors.Is(err, pgx.ErrNoRows) {
		return v, ErrNotFound
	}
	return v, err
}

// Reschedule moves a planned visit to the time the customer asked for; the
// deadline moves with it. VisitPlanned is published again with the new time.
func (s *Store) Reschedule(ctx context.Context, tenant, id string, at time.Time, reason string, now time.Time) (Visit, error) {
	err := pgx.BeginFunc(ctx, s.Pool, func(tx pgx.Tx) error {
		var status string
		var due, deadline time.Time
		err := tx.QueryRow(ctx, `SELECT status, due_at, deadline FROM planned_visits WHERE tenant_id = $1 AND id = $2 FOR UPDATE`, tenant, id).Scan(&status, &due, &deadline)
		if errors.Is(err, pgx.ErrNoRows) {
			return ErrNotFound
		}
		if err != nil {
			return fmt.Errorf("store: reschedule: %w", err)
		}
		if status != StatusPlanned {
			return fmt.Errorf("%w: it is %s, only a planned visit can be rescheduled", ErrState, status)
		}
		why := "rescheduled to " + at.UTC().Format(time.RFC3339) + ": the customer chose this time (" + reason +
			"); contact windows, quiet hours, holidays and caps will not move it"
		newDeadline := at.Add(deadline.Sub(due))
		if _, err := tx.Exec(ctx, `UPDATE planned_visits SET due_at = $3, deadline = $4, reason = $5, decisions = decisions || $6, updated_at = $7,
  customer_chosen = true
WHERE tenant_id = $1 AND id = $2`, tenant, id, at, newDeadline, why, decisionJSON(policy.KindReschedule, why, now), now); err != nil {
			return fmt.Errorf("store: reschedule: %w", err)
		}
		var p eventsv1.VisitPlanned
		var version, step, channel int32
		var dueAt, dl time.Time
		if err := tx.QueryRow(ctx, `SELECT service_id, policy_id, policy_version, step, channel, due_at, deadline, org_unit, service_type, customer_id
FROM planned_visits WHERE id = $1`, id).Scan(&p.ServiceId, &p.PolicyId, &version, &step, &channel, &dueAt, &dl, &p.OrgUnit, &p.ServiceType, &p.CustomerId); err != nil {
			return fmt.Errorf("store: reschedule: %w", err)
		}
		p.TenantId, p.VisitId, p.PolicyVersion, p.Step = tenant, id, version, step
		p.Channel = typesv1.Channel(channel)
		p.DueAt, p.Deadline = timestamppb.New(dueAt), timestamppb.New(dl)
		_, err = outbox.Add(ctx, tx, outbox.Message{Subject: stream.SubjectVisitPlanned, Payload: &p})
		return err
	})
	if err != nil {
		return Visit{}, err
	}
	return s.GetVisit(ctx, tenant, id)
}

// Cancel cancels a planned or due visit and publishes VisitCancelled.
func (s *Store) Cancel(ctx context.Context, tenant, id, reason string, now time.Time) (Visit, error) {
	err := pgx.BeginFunc(ctx, s.Pool, func(tx pgx.Tx) error {
		var status string
		err := tx.QueryRow(ctx, `SELECT status FROM planned_visits WHERE tenant_id = $1 AND id = $2 FOR UPDATE`, tenant, id).Scan(&status)
		if errors.Is(err, pgx.ErrNoRows) {
			return ErrNotFound
		}
		if err != nil {
			return fmt.Errorf("store: cancel: %w", err)
		}
		if status != StatusPlanned && status != StatusDue {
			return fmt.Errorf("%w: it is %s, only a planned or due visit can be cancelled", ErrState, status)
		}
		why := "cancelled: " + reason
		if _, err := tx.Exec(ctx, `UPDATE planned_visits SET status = 'cancelled', reason = $3, decisions = decisions || $4, updated_at = $5
WHERE tenant_id = $1 AND id = $2`, tenant, id, why, decisionJSON(policy.KindCancel, why, now), now); err != nil {
			return fmt.Errorf("store: cancel: %w", err)
		}
		return addCancelled(ctx, tx, tenant, id, why, now)
	})
	if err != nil {
		return Visit{}, err
	}
	return s.GetVisit(ctx, tenant, id)
}

// Services returns the tenant's services completed in [from, to), up to limit, for SimulatePolicy.
func (s *Store) Services(ctx context.Context, tenant string, from, to time.Time, limit int) ([]policy.Service, error) {
	rows, err := s.Pool.Query(ctx, `SELECT spec FROM services WHERE tenant_id = $1 AND completed_at >= $2 AND completed_at < $3
ORDER BY completed_at LIMIT $4`, tenant, from, to, limit)
	if err != nil {
		return nil, fmt.Errorf("store: services: %w", err)
	}
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (policy.Service, error) {
		var b []byte
		var svc policy.Service
		if err := r.Scan(&b); err != nil {
			return svc, err
		}
		return svc, json.Unmarshal(b, &svc)
	})
}

// DueLag is how long the oldest visit that is due at now has been waiting to
// fire; zero when none waits. The firing loop keeps it near its interval; a
// growing lag means the scheduler is down or cannot keep up. It reads the
// left edge of the partial index on pending visits, so it costs the same
// whatever the backlog.
func (s *Store) DueLag(ctx context.Context, now time.Time) (time.Duration, error) {
	var oldest *time.Time
	if err := s.Pool.QueryRow(ctx, `SELECT min(due_at) FROM planned_visits WHERE status = 'planned' AND due_at <= $1`, now).Scan(&oldest); err != nil {
		return 0, fmt.Errorf("store: due lag: %w", err)
	}
	if oldest == nil {
		return 0, nil
	}
	return now.Sub(*oldest), nil
}
