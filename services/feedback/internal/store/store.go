// Package store keeps feedback's visits, records and complaints in Postgres
// and writes the events that report them to the outbox in the same
// transaction.
package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	feedbackv1 "github.com/huifang/huifang/proto/huifang/feedback/v1"
	typesv1 "github.com/huifang/huifang/proto/huifang/types/v1"

	"github.com/huifang/huifang/pkg/outbox"
	"github.com/huifang/huifang/pkg/stream"
	"github.com/huifang/huifang/services/feedback/internal/complaint"
	"github.com/huifang/huifang/services/feedback/internal/record"
	"github.com/huifang/huifang/services/feedback/internal/visit"
)

// Errors the store reports.
var (
	// ErrUnknownVisit: no VisitDue has told of the visit.
	ErrUnknownVisit = errors.New("store: unknown visit")
	// ErrAlreadyLogged: the visit has its record; records are append-only.
	ErrAlreadyLogged = errors.New("store: visit already logged")
	// ErrNotFound: no such record.
	ErrNotFound = errors.New("store: not found")
)

// Store is feedback's storage for reads outside a transaction.
type Store struct {
	Pool *pgxpool.Pool
}

// SaveVisit stores the context of a visit within tx. A later VisitDue for
// the same visit (a redelivery, or the scheduler re-emitting it) updates the
// context in place, so each visit has one row.
func SaveVisit(ctx context.Context, tx pgx.Tx, v visit.Visit) error {
	_, err := tx.Exec(ctx, `INSERT INTO visits (tenant_id, visit_id, customer_id, service_id, policy_id, channel, due_at, deadline, org_unit, service_type, service_completed_at)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)
ON CONFLICT (tenant_id, visit_id) DO UPDATE SET
  customer_id = EXCLUDED.customer_id, service_id = EXCLUDED.service_id, policy_id = EXCLUDED.policy_id,
  channel = EXCLUDED.channel, due_at = EXCLUDED.due_at, deadline = EXCLUDED.deadline, org_unit = EXCLUDED.org_unit,
  service_type = EXCLUDED.service_type, service_completed_at = EXCLUDED.service_completed_at, updated_at = now()`,
		v.TenantID, v.VisitID, v.CustomerID, v.ServiceID, v.PolicyID, v.Channel.String(),
		nullTime(v.DueAt), nullTime(v.Deadline), v.OrgUnit, v.ServiceType, nullTime(v.ServiceCompletedAt))
	if err != nil {
		return fmt.Errorf("store: save visit %s: %w", v.VisitID, err)
	}
	return nil
}

// GetVisit returns a visit within tx and holds it until tx ends, or ErrUnknownVisit.
func GetVisit(ctx context.Context, tx pgx.Tx, tenant, visitID string) (visit.Visit, error) {
	v := visit.Visit{TenantID: tenant, VisitID: visitID}
	var channel string
	var due, deadline, completed *time.Time
	err := tx.QueryRow(ctx, `SELECT customer_id, service_id, policy_id, channel, due_at, deadline, org_unit, service_type, service_completed_at
FROM visits WHERE tenant_id = $1 AND visit_id = $2 FOR SHARE`, tenant, visitID).
		Scan(&v.CustomerID, &v.ServiceID, &v.PolicyID, &channel, &due, &deadline, &v.OrgUnit, &v.ServiceType, &completed)
	if errors.Is(err, pgx.ErrNoRows) {
		return visit.Visit{}, ErrUnknownVisit
	}
	if err != nil {
		return visit.Visit{}, fmt.Errorf("store: get visit %s: %w", visitID, err)
	}
	v.Channel = typesv1.Channel(typesv1.Channel_value[channel])
	v.DueAt, v.Deadline, v.ServiceCompletedAt = timeOf(due), timeOf(deadline), timeOf(completed)
	return v, nil
}

// SaveRecord stores a new record and the complaints it opens within tx, and
// writes VisitLogged and one ComplaintEscalated per complaint to the outbox.
// A visit that has a record already gives ErrAlreadyLogged.
func SaveRecord(ctx context.Context, tx pgx.Tx, rec *feedbackv1.VisitRecord, v visit.Visit, complaints []*feedbackv1.Complaint) error {
	var exists bool
	if err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM visit_records WHERE tenant_id = $1 AND visit_id = $2)`,
		rec.TenantId, rec.VisitId).Scan(&exists); err != nil {
		return fmt.Errorf("store: look up record of visit %s: %w", rec.VisitId, err)
	}
	if exists {
		return ErrAlreadyLogged
	}
	answers, err := jsonList(rec.Answers)
	if err != nil {
		return err
	}
	problems, err := jsonList(rec.Problems)
	if err != nil {
		return err
	}
	if _, err := tx.Exec(ctx, `INSERT INTO visit_records (id, tenant_id, visit_id, agent_id, channel, answers, problems, comments, started_at, ended_at, logged_at, customer_id, org_unit)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)`,
		rec.Id, rec.TenantId, rec.VisitId, rec.AgentId, rec.Channel.String(), answers, problems, rec.Comments,
		nullTimestamp(rec.StartedAt), nullTimestamp(rec.EndedAt), rec.LoggedAt.AsTime(), rec.CustomerId, rec.OrgUnit); err != nil {
		return fmt.Errorf("store: insert record of visit %s: %w", rec.VisitId, err)
	}
	logged := record.Logged(outbox.NewEventID(), rec, v)
	if _, err := outbox.Add(ctx, tx, outbox.Message{ID: logged.EventId, Subject: stream.SubjectVisitLogged, Payload: logged}); err != nil {
		return err
	}
	for _, c := range complaints {
		if _, err := tx.Exec(ctx, `INSERT INTO complaints (id, tenant_id, record_id, visit_id, customer_id, org_unit, category, description, department, severity, status, deadline, created_at, owner_agent_id)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)`,
			c.Id, c.TenantId, rec.Id, c.VisitId, c.CustomerId, v.OrgUnit, c.Category, c.Description, c.Department,
			c.Severity, c.Status, c.Deadline.AsTime(), c.CreatedAt.AsTime(), c.OwnerAgentId); err != nil {
			return fmt.Errorf("store: insert complaint of visit %s: %w", rec.VisitId, err)
		}
		esc := complaint.Escalated(outbox.NewEventID(), c, v.OrgUnit)
		if _, err := outbox.Add(ctx, tx, outbox.Message{ID: esc.EventId, Subject: stream.SubjectComplaintEscalated, Payload: esc}); err != nil {
			return err
		}
	}
	return nil
}

// GetRecord returns a record by its id or its visit's id, with the ids of
// the complaints it opened, or ErrNotFound.
func (s *Store) GetRecord(ctx context.Context, tenant, id string) (*feedbackv1.VisitRecord, error) {
	rec := &feedbackv1.VisitRecord{}
	var channel string
	var answers, problems []byte
	var started, ended *time.Time
	var logged time.Time
	err := s.Pool.QueryRow(ctx, `SELECT id, tenant_id, visit_id, agent_id, channel, answers, problems, comments, started_at, ended_at, logged_at, customer_id, org_unit,
  ARRAY(SELECT c.id FROM complaints c WHERE c.record_id = r.id ORDER BY c.id)
FROM visit_records r WHERE tenant_id = $1 AND (id = $2 OR visit_id = $2)
ORDER BY id = $2 DESC LIMIT 1`, tenant, id).
		Scan(&rec.Id, &rec.TenantId, &rec.VisitId, &rec.AgentId, &channel, &answers, &problems, &rec.Comments,
			&started, &ended, &logged, &rec.CustomerId, &rec.OrgUnit, &rec.ComplaintIds)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("store: get record %s: %w", id, err)
	}
	rec.Channel = typesv1.Channel(typesv1.Channel_value[channel])
	rec.StartedAt, rec.EndedAt, rec.LoggedAt = timestamp(started), timestamp(ended), timestamppb.New(logged)
	if rec.Answers, err = fromJSONList[*typesv1.Answer](answers); err != nil {
		return nil, fmt.Errorf("store: answers of record %s: %w", rec.Id, err)
	}
	if rec.Problems, err = fromJSONList[*typesv1.Problem](problems); err != nil {
		return nil, fmt.Errorf("store: problems of record %s: %w", rec.Id, err)
	}
	return rec, nil
}

// ListComplaints lists a tenant's complaints newest first, after the cursor
// (created_at, id); an empty afterID starts at the newest.
func (s *Store) ListComplaints(ctx context.Context, tenant string, limit int, afterTime time.Time, afterID string) ([]*feedbackv1.Complaint, error) {
	rows, err := s.Pool.Query(ctx, `SELECT id, tenant_id, visit_id, customer_id, category, description, department, severity, status, deadline, created_at, owner_agent_id
FROM complaints WHERE tenant_id = $1 AND ($3 = '' OR (created_at, id) < ($2, $3))
ORDER BY created_at DESC, id DESC LIMIT $4`, tenant, afterTime, afterID, limit)
	if err != nil {
		return nil, fmt.Errorf("store: list complaints: %w", err)
	}
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (*feedbackv1.Complaint, error) {
		c := &feedbackv1.Complaint{}
		var deadline, created time.Time
		err := r.Scan(&c.Id, &c.TenantId, &c.VisitId, &c.CustomerId, &c.Category, &c.Description, &c.Department,
			&c.Severity, &c.Status, &deadline, &created, &c.OwnerAgentId)
		c.Deadline, c.CreatedAt = timestamppb.New(deadline), timestamppb.New(created)
		return c, err
	})
}

func jsonList[M proto.Message](list []M) ([]byte, error) {
	raw := make([]json.RawMessage, 0, len(list))
	for _, m := range list {
		b, err := protojson.Marshal(m)
		if err != nil {
			return nil, fmt.Errorf("store: encode %T: %w", m, err)
		}
		raw = append(raw, b)
	}
	return json.Marshal(raw)
}

func fromJSONList[M interface {
	proto.Message
	*T
}, T any](b []byte) ([]M, error) {
	var raw []json.RawMessage
	if err := json.Unmarshal(b, &raw); err != nil {
		return nil, err
	}
	out := make([]M, 0, len(raw))
	for _, r := range raw {
		m := M(new(T))
		if err := protojson.Unmarshal(r, m); err != nil {
			return nil, err
		}
		out = append(out, m)
	}
	return out, nil
}

func nullTime(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	return &t
}

func nullTimestamp(ts *timestamppb.Timestamp) *time.Time {
	if ts == nil {
		return nil
	}
	t := ts.AsTime()
	return &t
}

func timeOf(t *time.Time) time.Time {
	if t == nil {
		return time.Time{}
	}
	return *t
}

func timestamp(t *time.Time) *timestamppb.Timestamp {
	if t == nil {
		return nil
	}
	return timestamppb.New(*t)
}
