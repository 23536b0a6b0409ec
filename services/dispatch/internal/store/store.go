// Package store keeps dispatch's org units, agents, tasks, attempts and
// messages in Postgres, and claims tasks with FOR UPDATE SKIP LOCKED.
package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"google.golang.org/protobuf/encoding/protojson"

	typesv1 "github.com/huifang/huifang/proto/huifang/types/v1"

	"github.com/huifang/huifang/services/dispatch/internal/task"
)

// Errors the store turns driver results into.
var (
	ErrAgentNotFound  = errors.New("store: agent not found")
	ErrTaskNotFound   = errors.New("store: task not found")
	ErrParentNotFound = errors.New("store: parent org unit not found")
	ErrCycle          = errors.New("store: org unit would be its own ancestor")
)

// Store is dispatch's storage.
type Store struct {
	Pool *pgxpool.Pool
}

// CreateTask stores a new open task within tx. It reports false, and
// changes nothing, when the tenant already has a task for the visit or the
// visit was cancelled before it fell due.
func CreateTask(ctx context.Context, tx pgx.Tx, t task.Task) (bool, error) {
	customer, err := customerJSON(t.Customer)
	if err != nil {
		return false, err
	}
	available := t.AvailableAt
	if available.IsZero() {
		available = t.DueAt
	}
	tag, err := tx.Exec(ctx, `INSERT INTO tasks (id, tenant_id, visit_id, customer, channel, group_name, org_unit, service_type, due_at, deadline, status, created_at,
  required_role, required_rank, policy_id, product_category, severity, tier_rank, primary_owner, backup_owner, language, automatic, available_at, updated_at)
SELECT $1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, $21, $22, $23, $12
WHERE NOT EXISTS (SELECT 1 FROM cancelled_visits WHERE tenant_id = $2 AND visit_id = $3)
ON CONFLICT (tenant_id, visit_id) DO NOTHING`,
		t.ID, t.Tenant, t.VisitID, customer, t.Channel.String(), t.Group, t.OrgUnit, t.ServiceType,
		t.DueAt, nullTime(t.Deadline), task.StatusOpen, t.CreatedAt,
		t.RequiredRole, task.RoleRank(t.RequiredRole), t.PolicyID, t.ProductCategory, int32(t.Severity), t.TierRank,
		t.PrimaryOwner, t.BackupOwner, t.Language, t.Automatic, available)
	if err != nil {
		return false, fmt.Errorf("store: insert task for visit %s: %w", t.VisitID, err)
	}
	return tag.RowsAffected() == 1, nil
}

// CancelVisit marks the visit cancelled within tx, so a VisitDue that comes
// later makes no task.
func CancelVisit(ctx context.Context, tx pgx.Tx, tenant, visitID, reason string, at time.Time) error {
	_, err := tx.Exec(ctx, `INSERT INTO cancelled_visits (tenant_id, visit_id, reason, cancelled_at) VALUES ($1, $2, $3, $4)
ON CONFLICT DO NOTHING`, tenant, visitID, reason, at)
	if err != nil {
		return fmt.Errorf("store: cancel visit %s: %w", visitID, err)
	}
	return nil
}

// CancelCustomerChannel cancels, within tx, the customer's other active
// agent tasks on channel (except exceptID), after the customer asked to
// stop being contacted on it. It returns how many it cancelled.
func CancelCustomerChannel(ctx context.Context, tx pgx.Tx, tenant, customerID string, channel typesv1.Channel, exceptID string, now time.Time) (int64, error) {
	if customerID == "" {
		return 0, nil
	}
	tag, err := tx.Exec(ctx, `UPDATE tasks SET status = 'cancelled', agent_id = '', lease_expires_at = NULL, updated_at = $5
WHERE tenant_id = $1 AND customer->>'id' = $2 AND channel = $3 AND id <> $4 AND status IN ('open', 'claimed')`,
		tenant, customerID, channel.String(), exceptID, now)
	if err != nil {
		return 0, fmt.Errorf("store: cancel %s tasks of customer %s: %w", channel, customerID, err)
	}
	return tag.RowsAffected(), nil
}

// TaskOfVisit locks and returns the task of a visit within tx.
func TaskOfVisit(ctx context.Context, tx pgx.Tx, tenant, visitID string) (task.Task, error) {
	rows, err := tx.Query(ctx, `SELECT `+taskColumns+` FROM tasks WHERE tenant_id = $1 AND visit_id = $2 FOR UPDATE`, tenant, visitID)
	if err != nil {
		return task.Task{}, fmt.Errorf("store: task of visit %s: %w", visitID, err)
	}
	t, err := pgx.CollectExactlyOneRow(rows, scanTask)
	if errors.Is(err, pgx.ErrNoRows) {
		return task.Task{}, ErrTaskNotFound
	}
	if err != nil {
		return task.Task{}, fmt.Errorf("store: task of visit %s: %w", visitID, err)
	}
	return t, nil
}

// LockTask locks and returns a task within tx.
func LockTask(ctx context.Context, tx pgx.Tx, tenant, id string) (task.Task, error) {
	rows, err := tx.Query(ctx, `SELECT `+taskColumns+` FROM tasks WHERE tenant_id = $1 AND id = $2 FOR UPDATE`, tenant, id)
	if err != nil {
		return task.Task{}, fmt.Errorf("store: lock task %s: %w", id, err)
	}
	t, err := pgx.CollectExactlyOneRow(rows, scanTask)
	if errors.Is(err, pgx.ErrNoRows) {
		return task.Task{}, ErrTaskNotFound
	}
	if err != nil {
		return task.Task{}, fmt.Errorf("store: lock task %s: %w", id, err)
	}
	return t, nil
}

// SaveTask writes back the mutable fields of t within tx: status, agent,
// lease, availability, attempts, last disposition.
func SaveTask(ctx context.Context, tx pgx.Tx, t task.Task, now time.Time) error {
	disp := ""
	if t.LastDisposition != typesv1.Disposition_DISPOSITION_UNSPECIFIED {
		disp = t.LastDisposition.String()
	}
	_, err := tx.Exec(ctx, `UPDATE tasks SET status = $2, agent_id = $3, lease_expires_at = $4, available_at = $5,
  attempts = $6, last_disposition = $7, updated_at = $8 WHERE id = $1`,
		t.ID, t.Status, t.AgentID, nullTime(t.LeaseExpiresAt), t.AvailableAt, t.Attempts, disp, now)
	if err != nil {
		return fmt.Errorf("store: save task %s: %w", t.ID, err)
	}
	return nil
}

// Attempt is one attempt to make a visit.
type Attempt struct {
	ID            string
	Tenant        string
	TaskID        string
	VisitID       string
	AgentID       string
	Number        int
	Disposition   typesv1.Disposition
	Note          string
	At            time.Time
	NextAttemptAt time.Time
}

// AddAttempt appends an attempt within tx.
func AddAttempt(ctx context.Context, tx pgx.Tx, a Attempt) error {
	_, err := tx.Exec(ctx, `INSERT INTO attempts (id, tenant_id, task_id, visit_id, agent_id, attempt, disposition, note, attempted_at, next_attempt_at)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)`, a.ID, a.Tenant, a.TaskID, a.VisitID, a.AgentID, a.Number,
		a.Disposition.String(), a.Note, a.At, nullTime(a.NextAttemptAt))
	if err != nil {
		return fmt.Errorf("store: add attempt %d of task %s: %w", a.Number, a.TaskID, err)
	}
	return nil
}

// Attempts lists the attempts of a task in order.
func (s *Store) Attempts(ctx context.Context, taskID string) ([]Attempt, error) {
	rows, err := s.Pool.Query(ctx, `SELECT id, tenant_id, task_id, visit_id, agent_id, attempt, disposition, note, attempted_at, next_attempt_at
FROM attempts WHERE task_id = $1 ORDER BY attempt`, taskID)
	if err != nil {
		return nil, fmt.Errorf("store: attempts of %s: %w", taskID, err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (Attempt, error) {
		var a Attempt
		var disp string
		var next *time.Time
		err := r.Scan(&a.ID, &a.Tenant, &a.TaskID, &a.VisitID, &a.AgentID, &a.Number, &disp, &a.Note, &a.At, &next)
		a.Disposition = typesv1.Disposition(typesv1.Disposition_value[disp])
		if next != nil {
			a.NextAttemptAt = *next
		}
		return a, err
	})
	if err != nil {
		return nil, fmt.Errorf("store: attempts of %s: %w", taskID, err)
	}
	return out, nil
}

// Task returns one task.
func (s *Store) Task(ctx context.Context, tenant, id string) (task.Task, error) {
	rows, err := s.Pool.Query(ctx, `SELECT `+taskColumns+` FROM tasks WHERE tenant_id = $1 AND id = $2`, tenant, id)
	if err != nil {
		return task.Task{}, fmt.Errorf("store: task %s: %w", id, err)
	}
	t, err := pgx.CollectExactlyOneRow(rows, scanTask)
	if errors.Is(err, pgx.ErrNoRows) {
		return task.Task{}, ErrTaskNotFound
	}
	if err != nil {
		return task.Task{}, fmt.Errorf("store: task %s: %w", id, err)
	}
	return t, nil
}

const taskColumns = `id, tenant_id, visit_id, customer, channel, group_name, org_unit, service_type, due_at, deadline, status, agent_id, lease_expires_at, created_at,
  required_role, policy_id, product_category, severity, tier_rank, primary_owner, backup_owner, language, automatic, available_at, attempts, last_disposition`

func scanTask(r pgx.CollectableRow) (task.Task, error) { return scanTaskPlus(r) }

// scanTaskPlus scans taskColumns followed by extra columns into extra.
func scanTaskPlus(r pgx.Row, extra ...any) (task.Task, error) {
	var (
		t        task.Task
		customer []byte
		channel  string
		deadline *time.Time
		lease    *time.Time
		severity int32
		disp     string
	)
	if err := r.Scan(append([]any{&t.ID, &t.Tenant, &t.VisitID, &customer, &channel, &t.Group, &t.OrgUnit, &t.ServiceType,
		&t.DueAt, &deadline, &t.Status, &t.AgentID, &lease, &t.CreatedAt,
		&t.RequiredRole, &t.PolicyID, &t.ProductCategory, &severity, &t.TierRank, &t.PrimaryOwner, &t.BackupOwner,
		&t.Language, &t.Automatic, &t.AvailableAt, &t.Attempts, &disp}, extra...)...); err != nil {
		return t, err
	}
	if customer != nil {
		t.Customer = &typesv1.Customer{}
		if err := (protojson.UnmarshalOptions{DiscardUnknown: true}).Unmarshal(customer, t.Customer); err != nil {
			return t, fmt.Errorf("customer of task %s: %w", t.ID, err)
		}
	}
	t.Channel = typesv1.Channel(typesv1.Channel_value[channel])
	t.Severity = typesv1.Severity(severity)
	t.LastDisposition = typesv1.Disposition(typesv1.Disposition_value[disp])
	if deadline != nil {
		t.Deadline = *deadline
	}
	if lease != nil {
		t.LeaseExpiresAt = *lease
	}
	return t, nil
}

func customerJSON(c *typesv1.Customer) ([]byte, error) {
	if c == nil {
		return nil, nil
	}
	b, err := protojson.Marshal(c)
	if err != nil {
		return nil, fmt.Errorf("store: customer: %w", err)
	}
	return b, nil
}

func nullTime(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	return &t
}
