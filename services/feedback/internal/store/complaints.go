package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/huifang/huifang/pkg/postgres"
	"github.com/huifang/huifang/services/feedback/internal/complaint"
)

// InsertComplaint stores a new complaint, opened from the record recordID
// (empty for an inbound complaint).
func InsertComplaint(ctx context.Context, q postgres.Querier, recordID string, c complaint.Complaint) error {
	if _, err := q.Exec(ctx, `INSERT INTO complaints (id, tenant_id, record_id, visit_id, customer_id, org_unit, category, description, department, severity, status,
  deadline, created_at, updated_at, owner_agent_id, level, service_id, window_seconds, description_key, anonymous, written_reply_only,
  received_via, created_by)
VALUES ($1, $2, NULLIF($3, ''), $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, $21, $22, $23)`,
		c.ID, c.TenantID, recordID, c.VisitID, c.CustomerID, c.OrgUnit, c.Category, c.Description, c.Department,
		c.Severity, c.Status, c.Deadline, c.CreatedAt, c.UpdatedAt, c.OwnerAgentID, c.Level, c.ServiceID,
		int64(c.Window/time.Second), c.Key, c.Anonymous, c.WrittenReplyOnly, c.ReceivedVia, c.CreatedBy); err != nil {
		return fmt.Errorf("store: insert complaint of visit %s: %w", c.VisitID, translate(err))
	}
	return nil
}

// Match is a complaint a problem raised again matches.
type Match struct {
	ID    string
	Level int32
}

// FindOpenComplaint returns the oldest complaint not closed that the same
// customer raised with the same category and description key. Hold the
// customer's lock (LockCustomer) first, so that two records cannot both
// open the same problem.
func FindOpenComplaint(ctx context.Context, q postgres.Querier, tenant, customerID, category, key string) (Match, bool, error) {
	var m Match
	err := q.QueryRow(ctx, `SELECT id, level FROM complaints
WHERE tenant_id = $1 AND customer_id = $2 AND category = $3 AND description_key = $4 AND status <> 'closed'
ORDER BY created_at, id LIMIT 1`, tenant, customerID, category, key).Scan(&m.ID, &m.Level)
	switch err = translate(err); {
	case errors.Is(err, ErrNotFound):
		return Match{}, false, nil
	case err != nil:
		return Match{}, false, fmt.Errorf("store: look up open complaint of customer %s: %w", customerID, err)
	}
	return m, true, nil
}

// complaintColumns are the columns scanComplaint reads, from complaints c.
const complaintColumns = `c.id, c.tenant_id, c.visit_id, c.customer_id, c.category, c.description, c.description_key, c.department, c.severity, c.status,
  c.deadline, c.created_at, c.owner_agent_id, c.level, c.root_cause, c.action, c.outcome, c.close_reason, c.service_id, c.org_unit,
  c.updated_at, c.window_seconds,
  ARRAY(SELECT l.letter_id FROM open_letter_complaints l WHERE l.complaint_id = c.id ORDER BY l.letter_id),
  c.anonymous, c.written_reply_only, c.written_reply, c.written_reply_ref,
  ((SELECT count(*) FROM record_complaints rc WHERE rc.complaint_id = c.id) + (SELECT count(*) FROM complaint_requests cr WHERE cr.complaint_id = c.id))::int,
  c.received_via, c.created_by`

func scanComplaint(row pgx.Row) (complaint.Complaint, error) {
	var c complaint.Complaint
	var window int64
	if err := row.Scan(&c.ID, &c.TenantID, &c.VisitID, &c.CustomerID, &c.Category, &c.Description, &c.Key, &c.Department, &c.Severity, &c.Status,
		&c.Deadline, &c.CreatedAt, &c.OwnerAgentID, &c.Level, &c.RootCause, &c.Action, &c.Outcome, &c.CloseReason, &c.ServiceID, &c.OrgUnit,
		&c.UpdatedAt, &window, &c.OpenLetterIDs, &c.Anonymous, &c.WrittenReplyOnly, &c.WrittenReply, &c.WrittenReplyRef, &c.TimesRaised,
		&c.ReceivedVia, &c.CreatedBy); err != nil {
		return complaint.Complaint{}, err
	}
	if len(c.OpenLetterIDs) == 0 {
		c.OpenLetterIDs = nil
	}
	c.Deadline, c.CreatedAt, c.UpdatedAt = c.Deadline.UTC(), c.CreatedAt.UTC(), c.UpdatedAt.UTC()
	c.Window = time.Duration(window) * time.Second
	return c, nil
}

// GetComplaint returns a complaint, or ErrNotFound.
func GetComplaint(ctx context.Context, q postgres.Querier, tenant, id string) (complaint.Complaint, error) {
	c, err := scanComplaint(q.QueryRow(ctx, `SELECT `+complaintColumns+` FROM complaints c WHERE c.tenant_id = $1 AND c.id = $2`, tenant, id))
	if err != nil {
		return complaint.Complaint{}, fmt.Errorf("store: get complaint %s: %w", id, translate(err))
	}
	return c, nil
}

// LockComplaint is GetComplaint holding the complaint until tx ends.
func LockComplaint(ctx context.Context, tx pgx.Tx, tenant, id string) (complaint.Complaint, error) {
	c, err := scanComplaint(tx.QueryRow(ctx, `SELECT `+complaintColumns+` FROM complaints c WHERE c.tenant_id = $1 AND c.id = $2 FOR UPDATE OF c`, tenant, id))
	if err != nil {
		return complaint.Complaint{}, fmt.Errorf("store: lock complaint %s: %w", id, translate(err))
	}
	return c, nil
}

// SaveComplaint writes the state of a complaint that changed (held with
// LockComplaint or ClaimOverdue).
func SaveComplaint(ctx context.Context, q postgres.Querier, c complaint.Complaint) error {
	if _, err := q.Exec(ctx, `UPDATE complaints SET status = $2, level = $3, severity = $4, deadline = $5, root_cause = $6, action = $7,
  outcome = $8, close_reason = $9, updated_at = $10, written_reply = $11, written_reply_ref = $12 WHERE id = $1`,
		c.ID, c.Status, c.Level, c.Severity, c.Deadline, c.RootCause, c.Action, c.Outcome, c.CloseReason, c.UpdatedAt,
		c.WrittenReply, c.WrittenReplyRef); err != nil {
		return fmt.Errorf("store: update complaint %s: %w", c.ID, translate(err))
	}
	return nil
}

// UpdateComplaint holds a complaint (SELECT … FOR UPDATE), lets fn change
// it and saves it, all within tx; it returns the complaint as saved. An
// error of fn saves nothing and is returned as it is; an unknown complaint
// is ErrNotFound.
func UpdateComplaint(ctx context.Context, tx pgx.Tx, tenant, id string, fn func(c *complaint.Complaint) error) (complaint.Complaint, error) {
	c, err := LockComplaint(ctx, tx, tenant, id)
	if err != nil {
		return complaint.Complaint{}, err
	}
	if err := fn(&c); err != nil {
		return complaint.Complaint{}, err
	}
	return c, SaveComplaint(ctx, tx, c)
}

// AddStep appends a step to a complaint's history.
func AddStep(ctx context.Context, q postgres.Querier, complaintID string, s complaint.Step) error {
	if _, err := q.Exec(ctx, `INSERT INTO complaint_history (complaint_id, kind, by_whom, at, detail, level) VALUES ($1, $2, $3, $4, $5, $6)`,
		complaintID, s.Kind, s.By, s.At, s.Detail, s.Level); err != nil {
		return fmt.Errorf("store: history of complaint %s: %w", complaintID, translate(err))
	}
	return nil
}

// LastStepAt returns the time of the latest step of a complaint's
// history, the zero time when it has none.
func LastStepAt(ctx context.Context, q postgres.Querier, complaintID string) (time.Time, error) {
	var at *time.Time
	if err := q.QueryRow(ctx, `SELECT max(at) FROM complaint_history WHERE complaint_id = $1`, complaintID).Scan(&at); err != nil {
		return time.Time{}, fmt.Errorf("store: last step of complaint %s: %w", complaintID, translate(err))
	}
	return timeOf(at).UTC(), nil
}

// History returns a complaint's steps, oldest first.
func History(ctx context.Context, q postgres.Querier, complaintID string) ([]complaint.Step, error) {
	rows, err := q.Query(ctx, `SELECT kind, by_whom, at, detail, level FROM complaint_history WHERE complaint_id = $1 ORDER BY seq`, complaintID)
	if err != nil {
		return nil, fmt.Errorf("store: history of complaint %s: %w", complaintID, translate(err))
	}
	list, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (complaint.Step, error) {
		var s complaint.Step
		err := r.Scan(&s.Kind, &s.By, &s.At, &s.Detail, &s.Level)
		s.At = s.At.UTC()
		return s, err
	})
	if err != nil {
		return nil, fmt.Errorf("store: history of complaint %s: %w", complaintID, translate(err))
	}
	return list, nil
}

// ComplaintFilter selects complaints for ListComplaints.
type ComplaintFilter struct {
	Tenant string
	// Status and Department, when set, keep the complaints of that status or department.
	Status     string
	Department string
	// AfterTime and AfterID are the cursor (created_at, id) of the last
	// complaint of the previous page; an empty AfterID starts at the newest.
	AfterTime time.Time
	AfterID   string
	Limit     int
}

// ListComplaints lists complaints newest first.
func ListComplaints(ctx context.Context, q postgres.Querier, f ComplaintFilter) ([]complaint.Complaint, error) {
	rows, err := q.Query(ctx, `SELECT `+complaintColumns+`
FROM complaints c WHERE c.tenant_id = $1 AND ($3 = '' OR (c.created_at, c.id) < ($2, $3)) AND ($5 = '' OR c.status = $5)
  AND ($6 = '' OR c.department = $6)
ORDER BY c.created_at DESC, c.id DESC LIMIT $4`, f.Tenant, f.AfterTime, f.AfterID, f.Limit, f.Status, f.Department)
	if err != nil {
		return nil, fmt.Errorf("store: list complaints: %w", translate(err))
	}
	list, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (complaint.Complaint, error) { return scanComplaint(r) })
	if err != nil {
		return nil, fmt.Errorf("store: list complaints: %w", translate(err))
	}
	return list, nil
}

// ClaimOverdue returns up to limit complaints whose deadline passed before
// now while open or acknowledged (complaint.Complaint.Overdue; the
// partial index complaints_overdue holds them), held until tx ends;
// complaints another transaction holds are skipped, so replicas escalate
// each one once.
func ClaimOverdue(ctx context.Context, tx pgx.Tx, now time.Time, limit int) ([]complaint.Complaint, error) {
	rows, err := tx.Query(ctx, `SELECT `+complaintColumns+` FROM complaints c
WHERE c.status IN ('open', 'acknowledged') AND c.deadline < $1
ORDER BY c.deadline LIMIT $2 FOR UPDATE OF c SKIP LOCKED`, now, limit)
	if err != nil {
		return nil, fmt.Errorf("store: claim overdue complaints: %w", translate(err))
	}
	list, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (complaint.Complaint, error) { return scanComplaint(r) })
	if err != nil {
		return nil, fmt.Errorf("store: claim overdue complaints: %w", translate(err))
	}
	return list, nil
}

// InsertOpenLetter stores an open letter and files it with each of its
// complaints; a complaint that is not the tenant's gives ErrNotFound (roll
// the transaction back: nothing of the letter is kept then).
func InsertOpenLetter(ctx context.Context, q postgres.Querier, l complaint.Letter) error {
	if _, err := q.Exec(ctx, `INSERT INTO open_letters (id, tenant_id, title, body, by_whom, created_at) VALUES ($1, $2, $3, $4, $5, $6)`,
		l.ID, l.TenantID, l.Title, l.Body, l.By, l.CreatedAt); err != nil {
		return fmt.Errorf("store: insert open letter: %w", translate(err))
	}
	tag, err := q.Exec(ctx, `INSERT INTO open_letter_complaints (letter_id, complaint_id)
SELECT $1, c.id FROM complaints c WHERE c.tenant_id = $2 AND c.id = ANY($3)`, l.ID, l.TenantID, l.ComplaintIDs)
	if err != nil {
		return fmt.Errorf("store: attach open letter: %w", translate(err))
	}
	if int(tag.RowsAffected()) != len(l.ComplaintIDs) {
		return fmt.Errorf("store: attach open letter %s: %w", l.ID, ErrNotFound)
	}
	return nil
}
