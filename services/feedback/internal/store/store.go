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
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	eventsv1 "github.com/huifang/huifang/proto/huifang/events/v1"
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
	_, err := tx.Exec(ctx, `INSERT INTO visits (tenant_id, visit_id, customer_id, service_id, policy_id, channel, due_at, deadline, org_unit, service_type, service_completed_at, complaint_id)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)
ON CONFLICT (tenant_id, visit_id) DO UPDATE SET
  customer_id = EXCLUDED.customer_id, service_id = EXCLUDED.service_id, policy_id = EXCLUDED.policy_id,
  channel = EXCLUDED.channel, due_at = EXCLUDED.due_at, deadline = EXCLUDED.deadline, org_unit = EXCLUDED.org_unit,
  service_type = EXCLUDED.service_type, service_completed_at = EXCLUDED.service_completed_at,
  complaint_id = EXCLUDED.complaint_id, updated_at = now()`,
		v.TenantID, v.VisitID, v.CustomerID, v.ServiceID, v.PolicyID, v.Channel.String(),
		nullTime(v.DueAt), nullTime(v.Deadline), v.OrgUnit, v.ServiceType, nullTime(v.ServiceCompletedAt), v.ComplaintID)
	if err != nil {
		return fmt.Errorf("store: save visit %s: %w", v.VisitID, err)
	}
	return nil
}

// SaveAssignment stores who a visit is assigned to within tx. The newest
// assignment (by assigned_at) wins: an older one that arrives late, e.g.
// the claim after its reassignment, changes nothing. The visit need not be
// known yet: feedback may hear VisitAssigned before the visit's VisitDue.
func SaveAssignment(ctx context.Context, tx pgx.Tx, a visit.Assignment) error {
	_, err := tx.Exec(ctx, `INSERT INTO visit_assignments (tenant_id, visit_id, agent_id, assigned_at, event_id)
VALUES ($1, $2, $3, $4, $5)
ON CONFLICT (tenant_id, visit_id) DO UPDATE SET
  agent_id = EXCLUDED.agent_id, assigned_at = EXCLUDED.assigned_at, event_id = EXCLUDED.event_id, updated_at = now()
WHERE visit_assignments.assigned_at <= EXCLUDED.assigned_at`,
		a.TenantID, a.VisitID, a.AgentID, a.AssignedAt, a.EventID)
	if err != nil {
		return fmt.Errorf("store: save assignment of visit %s: %w", a.VisitID, err)
	}
	return nil
}

// LockCustomer holds a customer's lock until tx ends, so that the records
// of one customer that may raise the same problem are stored one after
// another (see FindOpenComplaint). A blank customer takes no lock.
func LockCustomer(ctx context.Context, tx pgx.Tx, tenant, customerID string) error {
	if customerID == "" {
		return nil
	}
	if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock(hashtextextended($1, 0))`, "feedback/customer/"+tenant+"/"+customerID); err != nil {
		return fmt.Errorf("store: lock customer %s: %w", customerID, err)
	}
	return nil
}

// GetVisit returns a visit, with the agent it is assigned to, within tx and
// holds it until tx ends, or ErrUnknownVisit.
func GetVisit(ctx context.Context, tx pgx.Tx, tenant, visitID string) (visit.Visit, error) {
	v := visit.Visit{TenantID: tenant, VisitID: visitID}
	var channel string
	var due, deadline, completed *time.Time
	err := tx.QueryRow(ctx, `SELECT v.customer_id, v.service_id, v.policy_id, v.channel, v.due_at, v.deadline, v.org_unit, v.service_type,
  v.service_completed_at, v.complaint_id, coalesce(a.agent_id, '')
FROM visits v LEFT JOIN visit_assignments a ON a.tenant_id = v.tenant_id AND a.visit_id = v.visit_id
WHERE v.tenant_id = $1 AND v.visit_id = $2 FOR SHARE OF v`, tenant, visitID).
		Scan(&v.CustomerID, &v.ServiceID, &v.PolicyID, &channel, &due, &deadline, &v.OrgUnit, &v.ServiceType, &completed, &v.ComplaintID, &v.AssignedAgentID)
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
// writes VisitLogged, one ComplaintEscalated per new complaint and one
// FollowUpRequested per promised reply to the outbox. A problem attached to
// a complaint still open (Opened.Attached) adds a step to that complaint's
// history and publishes nothing. A visit that has a
// record already gives ErrAlreadyLogged. q is the questionnaire the answers
// were checked against, nil for none.
func SaveRecord(ctx context.Context, tx pgx.Tx, rec *feedbackv1.VisitRecord, v visit.Visit, q *feedbackv1.Questionnaire, opened []complaint.Opened) error {
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
	attachments, err := jsonList(rec.Attachments)
	if err != nil {
		return err
	}
	promised, err := jsonList(rec.PromisedReplies)
	if err != nil {
		return err
	}
	if _, err := tx.Exec(ctx, `INSERT INTO visit_records (id, tenant_id, visit_id, agent_id, channel, answers, problems, comments, started_at, ended_at, logged_at, customer_id, org_unit,
  questionnaire_id, questionnaire_version, signature_ref, attachments, promised_replies, confirmed_complaint_id)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19)`,
		rec.Id, rec.TenantId, rec.VisitId, rec.AgentId, rec.Channel.String(), answers, problems, rec.Comments,
		nullTimestamp(rec.StartedAt), nullTimestamp(rec.EndedAt), rec.LoggedAt.AsTime(), rec.CustomerId, rec.OrgUnit,
		rec.QuestionnaireId, rec.QuestionnaireVersion, rec.SignatureRef, attachments, promised, rec.ConfirmedComplaintId); err != nil {
		return fmt.Errorf("store: insert record of visit %s: %w", rec.VisitId, err)
	}
	logged := record.Logged(outbox.NewEventID(), rec, v, q)
	if err := Publish(ctx, tx, stream.SubjectVisitLogged, logged.EventId, logged); err != nil {
		return err
	}
	for i, o := range opened {
		if o.Attached {
			if err := AttachComplaint(ctx, tx, rec, o); err != nil {
				return err
			}
		} else if err := InsertComplaint(ctx, tx, rec.Id, o); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `INSERT INTO record_complaints (record_id, complaint_id, position, attached) VALUES ($1, $2, $3, $4)`,
			rec.Id, o.Complaint.Id, i, o.Attached); err != nil {
			return fmt.Errorf("store: link record %s to complaint %s: %w", rec.Id, o.Complaint.Id, err)
		}
	}
	for _, p := range rec.PromisedReplies {
		due := p.PromisedAt.AsTime()
		ev := &eventsv1.FollowUpRequested{
			EventId: outbox.NewEventID(), TenantId: rec.TenantId, CustomerId: rec.CustomerId, ServiceId: v.ServiceID,
			PreviousVisitId: rec.VisitId, DueAt: p.PromisedAt, Deadline: timestamppb.New(due.Add(complaint.DefaultDeadline)),
			Channel: p.Channel, Reason: "promised reply: " + p.Question, OrgUnit: v.OrgUnit,
			Customer: &typesv1.Customer{Id: rec.CustomerId, OrgUnit: v.OrgUnit},
		}
		if err := Publish(ctx, tx, stream.SubjectFollowUpRequested, ev.EventId, ev); err != nil {
			return err
		}
	}
	return nil
}

// Publish writes an event to the outbox within tx.
func Publish(ctx context.Context, tx pgx.Tx, subject, eventID string, ev proto.Message) error {
	_, err := outbox.Add(ctx, tx, outbox.Message{ID: eventID, Subject: subject, Payload: ev})
	return err
}

// recordColumns are the columns scanRecord reads, from visit_records r.
const recordColumns = `r.id, r.tenant_id, r.visit_id, r.agent_id, r.channel, r.answers, r.problems, r.comments, r.started_at, r.ended_at, r.logged_at,
  r.customer_id, r.org_unit, r.questionnaire_id, r.questionnaire_version, r.signature_ref, r.attachments, r.promised_replies, r.confirmed_complaint_id,
  ARRAY(SELECT rc.complaint_id FROM record_complaints rc WHERE rc.record_id = r.id ORDER BY rc.position),
  ARRAY(SELECT rc.complaint_id FROM record_complaints rc WHERE rc.record_id = r.id AND rc.attached ORDER BY rc.position)`

func scanRecord(row pgx.Row) (*feedbackv1.VisitRecord, error) {
	rec := &feedbackv1.VisitRecord{}
	var channel string
	var answers, problems, attachments, promised []byte
	var started, ended *time.Time
	var logged time.Time
	if err := row.Scan(&rec.Id, &rec.TenantId, &rec.VisitId, &rec.AgentId, &channel, &answers, &problems, &rec.Comments,
		&started, &ended, &logged, &rec.CustomerId, &rec.OrgUnit, &rec.QuestionnaireId, &rec.QuestionnaireVersion,
		&rec.SignatureRef, &attachments, &promised, &rec.ConfirmedComplaintId, &rec.ComplaintIds, &rec.AttachedComplaintIds); err != nil {
		return nil, err
	}
	rec.Channel = typesv1.Channel(typesv1.Channel_value[channel])
	rec.StartedAt, rec.EndedAt, rec.LoggedAt = timestamp(started), timestamp(ended), timestamppb.New(logged)
	var err error
	if rec.Answers, err = fromJSONList[*typesv1.Answer](answers); err != nil {
		return nil, fmt.Errorf("store: answers of record %s: %w", rec.Id, err)
	}
	if rec.Problems, err = fromJSONList[*typesv1.Problem](problems); err != nil {
		return nil, fmt.Errorf("store: problems of record %s: %w", rec.Id, err)
	}
	if rec.Attachments, err = fromJSONList[*feedbackv1.Attachment](attachments); err != nil {
		return nil, fmt.Errorf("store: attachments of record %s: %w", rec.Id, err)
	}
	if rec.PromisedReplies, err = fromJSONList[*feedbackv1.PromisedReply](promised); err != nil {
		return nil, fmt.Errorf("store: promised replies of record %s: %w", rec.Id, err)
	}
	if len(rec.ComplaintIds) == 0 {
		rec.ComplaintIds = nil
	}
	if len(rec.AttachedComplaintIds) == 0 {
		rec.AttachedComplaintIds = nil
	}
	if len(rec.Answers) == 0 {
		rec.Answers = nil
	}
	if len(rec.Problems) == 0 {
		rec.Problems = nil
	}
	if len(rec.Attachments) == 0 {
		rec.Attachments = nil
	}
	if len(rec.PromisedReplies) == 0 {
		rec.PromisedReplies = nil
	}
	return rec, nil
}

// Querier is a pool or a transaction.
type Querier interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
}

// GetRecord returns a record as logged by its id or its visit's id, with the
// ids of the complaints it opened, or ErrNotFound. With lock set (q must be
// a transaction) the record is held until the transaction ends, so that
// amendments of one record are made one after another.
func GetRecord(ctx context.Context, q Querier, tenant, id string, lock bool) (*feedbackv1.VisitRecord, error) {
	sql := `SELECT ` + recordColumns + ` FROM visit_records r WHERE r.tenant_id = $1 AND (r.id = $2 OR r.visit_id = $2)
ORDER BY r.id = $2 DESC LIMIT 1`
	if lock {
		sql += ` FOR UPDATE OF r`
	}
	rec, err := scanRecord(q.QueryRow(ctx, sql, tenant, id))
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("store: get record %s: %w", id, err)
	}
	return rec, nil
}

// GetRecord returns a record by its id or its visit's id, or ErrNotFound.
func (s *Store) GetRecord(ctx context.Context, tenant, id string) (*feedbackv1.VisitRecord, error) {
	return GetRecord(ctx, s.Pool, tenant, id, false)
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
