package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"google.golang.org/protobuf/types/known/timestamppb"

	feedbackv1 "github.com/huifang/huifang/proto/huifang/feedback/v1"

	"github.com/huifang/huifang/pkg/outbox"
	"github.com/huifang/huifang/pkg/stream"
	"github.com/huifang/huifang/services/feedback/internal/complaint"
)

// Locked is a complaint held for update with how long its owner has at each level.
type Locked struct {
	Complaint *feedbackv1.Complaint
	Window    time.Duration
}

// InsertComplaint stores a new complaint opened from a record within tx,
// with its first history step and its ComplaintEscalated (level 0).
func InsertComplaint(ctx context.Context, tx pgx.Tx, recordID string, o complaint.Opened) error {
	c := o.Complaint
	if _, err := tx.Exec(ctx, `INSERT INTO complaints (id, tenant_id, record_id, visit_id, customer_id, org_unit, category, description, department, severity, status,
  deadline, created_at, updated_at, owner_agent_id, level, service_id, window_seconds, description_key, anonymous, written_reply_only)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $13, $14, $15, $16, $17, $18, $19, $20)`,
		c.Id, c.TenantId, recordID, c.VisitId, c.CustomerId, c.OrgUnit, c.Category, c.Description, c.Department,
		c.Severity, c.Status, c.Deadline.AsTime(), c.CreatedAt.AsTime(), c.OwnerAgentId, c.Level, c.ServiceId,
		int64(o.Window/time.Second), o.Key, c.Anonymous, c.WrittenReplyOnly); err != nil {
		return fmt.Errorf("store: insert complaint of visit %s: %w", c.VisitId, err)
	}
	at := c.CreatedAt.AsTime()
	if err := AddStep(ctx, tx, c.Id, &feedbackv1.ComplaintStep{Kind: complaint.StepOpened, By: c.OwnerAgentId,
		At: c.CreatedAt, Detail: c.Department, Level: c.Level}); err != nil {
		return err
	}
	esc := complaint.Escalated(outbox.NewEventID(), c, at)
	return Publish(ctx, tx, stream.SubjectComplaintEscalated, esc.EventId, esc)
}

// FindOpenComplaint returns the id of the complaint, not closed, that the
// same customer raised with the same category and description key, the
// oldest first; "" when there is none, or when the customer or the key is
// blank (nothing to match on). Hold the customer's lock (LockCustomer)
// first, so that two records cannot both open the same problem.
func FindOpenComplaint(ctx context.Context, tx pgx.Tx, tenant, customerID, category, key string) (string, error) {
	if customerID == "" || key == "" {
		return "", nil
	}
	var id string
	err := tx.QueryRow(ctx, `SELECT id FROM complaints
WHERE tenant_id = $1 AND customer_id = $2 AND category = $3 AND description_key = $4 AND status <> 'closed'
ORDER BY created_at, id LIMIT 1`, tenant, customerID, category, key).Scan(&id)
	if errors.Is(err, pgx.ErrNoRows) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("store: look up open complaint of customer %s: %w", customerID, err)
	}
	return id, nil
}

// AttachComplaint records within tx that rec raised again the problem of
// the open complaint o.Complaint.Id: one "raised_again" step in its
// history. No event: the complaint was handed to its department already.
func AttachComplaint(ctx context.Context, tx pgx.Tx, rec *feedbackv1.VisitRecord, o complaint.Opened) error {
	c := o.Complaint
	detail := fmt.Sprintf("visit %s, record %s: %s", rec.VisitId, rec.Id, c.Description)
	if _, err := tx.Exec(ctx, `INSERT INTO complaint_history (complaint_id, kind, by_whom, at, detail, level)
SELECT id, $2, $3, $4, $5, level FROM complaints WHERE id = $1`,
		c.Id, complaint.StepRaisedAgain, rec.AgentId, rec.LoggedAt.AsTime(), detail); err != nil {
		return fmt.Errorf("store: attach record %s to complaint %s: %w", rec.Id, c.Id, err)
	}
	return nil
}

// complaintColumns are the columns scanComplaint reads, from complaints c.
const complaintColumns = `c.id, c.tenant_id, c.visit_id, c.customer_id, c.category, c.description, c.department, c.severity, c.status,
  c.deadline, c.created_at, c.owner_agent_id, c.level, c.root_cause, c.action, c.outcome, c.close_reason, c.service_id, c.org_unit,
  c.updated_at, c.window_seconds,
  ARRAY(SELECT l.letter_id FROM open_letter_complaints l WHERE l.complaint_id = c.id ORDER BY l.letter_id),
  c.anonymous, c.written_reply_only, c.written_reply, c.written_reply_ref,
  (SELECT count(*) FROM record_complaints rc WHERE rc.complaint_id = c.id)::int`

func scanComplaint(row pgx.Row) (Locked, error) {
	c := &feedbackv1.Complaint{}
	var deadline, created, updated time.Time
	var window int64
	if err := row.Scan(&c.Id, &c.TenantId, &c.VisitId, &c.CustomerId, &c.Category, &c.Description, &c.Department, &c.Severity, &c.Status,
		&deadline, &created, &c.OwnerAgentId, &c.Level, &c.RootCause, &c.Action, &c.Outcome, &c.CloseReason, &c.ServiceId, &c.OrgUnit,
		&updated, &window, &c.OpenLetterIds, &c.Anonymous, &c.WrittenReplyOnly, &c.WrittenReply, &c.WrittenReplyRef, &c.TimesRaised); err != nil {
		return Locked{}, err
	}
	if len(c.OpenLetterIds) == 0 {
		c.OpenLetterIds = nil
	}
	c.Deadline, c.CreatedAt, c.UpdatedAt = timestamppb.New(deadline), timestamppb.New(created), timestamppb.New(updated)
	return Locked{Complaint: c, Window: time.Duration(window) * time.Second}, nil
}

// GetComplaint returns a complaint, or ErrNotFound. With lock set (q must be
// a transaction) the complaint is held until the transaction ends.
func GetComplaint(ctx context.Context, q Querier, tenant, id string, lock bool) (Locked, error) {
	sql := `SELECT ` + complaintColumns + ` FROM complaints c WHERE c.tenant_id = $1 AND c.id = $2`
	if lock {
		sql += ` FOR UPDATE OF c`
	}
	l, err := scanComplaint(q.QueryRow(ctx, sql, tenant, id))
	if errors.Is(err, pgx.ErrNoRows) {
		return Locked{}, ErrNotFound
	}
	if err != nil {
		return Locked{}, fmt.Errorf("store: get complaint %s: %w", id, err)
	}
	return l, nil
}

// UpdateComplaint writes a complaint's changed state within tx.
func UpdateComplaint(ctx context.Context, tx pgx.Tx, c *feedbackv1.Complaint) error {
	if _, err := tx.Exec(ctx, `UPDATE complaints SET status = $2, level = $3, severity = $4, deadline = $5, root_cause = $6, action = $7,
  outcome = $8, close_reason = $9, updated_at = $10, written_reply = $11, written_reply_ref = $12 WHERE id = $1`,
		c.Id, c.Status, c.Level, c.Severity, c.Deadline.AsTime(), c.RootCause, c.Action, c.Outcome, c.CloseReason, c.UpdatedAt.AsTime(),
		c.WrittenReply, c.WrittenReplyRef); err != nil {
		return fmt.Errorf("store: update complaint %s: %w", c.Id, err)
	}
	return nil
}

// AddStep appends a step to a complaint's history within tx.
func AddStep(ctx context.Context, tx pgx.Tx, complaintID string, s *feedbackv1.ComplaintStep) error {
	if _, err := tx.Exec(ctx, `INSERT INTO complaint_history (complaint_id, kind, by_whom, at, detail, level) VALUES ($1, $2, $3, $4, $5, $6)`,
		complaintID, s.Kind, s.By, s.At.AsTime(), s.Detail, s.Level); err != nil {
		return fmt.Errorf("store: history of complaint %s: %w", complaintID, err)
	}
	return nil
}

// History returns a complaint's steps, oldest first.
func History(ctx context.Context, q Querier, complaintID string) ([]*feedbackv1.ComplaintStep, error) {
	rows, err := q.Query(ctx, `SELECT kind, by_whom, at, detail, level FROM complaint_history WHERE complaint_id = $1 ORDER BY seq`, complaintID)
	if err != nil {
		return nil, fmt.Errorf("store: history of complaint %s: %w", complaintID, err)
	}
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (*feedbackv1.ComplaintStep, error) {
		s := &feedbackv1.ComplaintStep{}
		var at time.Time
		err := r.Scan(&s.Kind, &s.By, &at, &s.Detail, &s.Level)
		s.At = timestamppb.New(at)
		return s, err
	})
}

// ListComplaints lists a tenant's complaints newest first, after the cursor
// (created_at, id); an empty afterID starts at the newest. A non-empty
// status or department keeps only complaints of that status or department.
func (s *Store) ListComplaints(ctx context.Context, tenant, status, department string, limit int, afterTime time.Time, afterID string) ([]*feedbackv1.Complaint, error) {
	rows, err := s.Pool.Query(ctx, `SELECT `+complaintColumns+`
FROM complaints c WHERE c.tenant_id = $1 AND ($3 = '' OR (c.created_at, c.id) < ($2, $3)) AND ($5 = '' OR c.status = $5)
  AND ($6 = '' OR c.department = $6)
ORDER BY c.created_at DESC, c.id DESC LIMIT $4`, tenant, afterTime, afterID, limit, status, department)
	if err != nil {
		return nil, fmt.Errorf("store: list complaints: %w", err)
	}
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (*feedbackv1.Complaint, error) {
		l, err := scanComplaint(r)
		return l.Complaint, err
	})
}

// ClaimOverdue returns up to limit open or acknowledged complaints whose
// deadline passed before now, held until tx ends; complaints another
// transaction holds are skipped, so replicas escalate each one once.
func ClaimOverdue(ctx context.Context, tx pgx.Tx, now time.Time, limit int) ([]Locked, error) {
	rows, err := tx.Query(ctx, `SELECT `+complaintColumns+` FROM complaints c
WHERE c.status IN ('open', 'acknowledged') AND c.deadline < $1
ORDER BY c.deadline LIMIT $2 FOR UPDATE OF c SKIP LOCKED`, now, limit)
	if err != nil {
		return nil, fmt.Errorf("store: claim overdue complaints: %w", err)
	}
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (Locked, error) { return scanComplaint(r) })
}

// InsertOpenLetter stores an open letter and attaches it to its complaints
// within tx; complaints that are not the tenant's give ErrNotFound.
func InsertOpenLetter(ctx context.Context, tx pgx.Tx, l *feedbackv1.OpenLetter) error {
	if _, err := tx.Exec(ctx, `INSERT INTO open_letters (id, tenant_id, title, body, by_whom, created_at) VALUES ($1, $2, $3, $4, $5, $6)`,
		l.Id, l.TenantId, l.Title, l.Body, l.By, l.CreatedAt.AsTime()); err != nil {
		return fmt.Errorf("store: insert open letter: %w", err)
	}
	tag, err := tx.Exec(ctx, `INSERT INTO open_letter_complaints (letter_id, complaint_id)
SELECT $1, c.id FROM complaints c WHERE c.tenant_id = $2 AND c.id = ANY($3)`, l.Id, l.TenantId, l.ComplaintIds)
	if err != nil {
		return fmt.Errorf("store: attach open letter: %w", err)
	}
	if int(tag.RowsAffected()) != len(l.ComplaintIds) {
		return ErrNotFound
	}
	for _, id := range l.ComplaintIds {
		if err := AddStep(ctx, tx, id, &feedbackv1.ComplaintStep{Kind: complaint.StepLetter, By: l.By, At: l.CreatedAt, Detail: l.Id + ": " + l.Title}); err != nil {
			return err
		}
	}
	return nil
}
