package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"google.golang.org/protobuf/types/known/timestamppb"

	eventsv1 "github.com/huifang/huifang/proto/huifang/events/v1"

	"github.com/huifang/huifang/pkg/outbox"
	"github.com/huifang/huifang/pkg/stream"
	"github.com/huifang/huifang/services/dispatch/internal/task"
)

// Claim refusals.
var (
	ErrInactive   = errors.New("store: the agent is inactive")
	ErrOffShift   = errors.New("store: the agent is off shift")
	ErrAtCapacity = errors.New("store: the agent holds as many tasks as its capacity")
)

// Routing holds the waits of the routing stages: a task is offered to the
// customer's primary owner alone for OwnerWait, then to the backup owner
// too for BackupWait, then to every agent of the required group or role
// whose skills fit; after SkillWait skills no longer matter. An owner who
// is unknown, inactive, off shift, at capacity or without the role the task
// needs is skipped at once.
type Routing struct {
	OwnerWait       time.Duration
	BackupWait      time.Duration
	SkillWait       time.Duration
	DefaultCapacity int
}

// ClaimRequest is one agent's claim.
type ClaimRequest struct {
	Tenant  string
	AgentID string
	Now     time.Time
	Lease   time.Duration
	Routing Routing
}

// ownerAvailable is true when the agent named by the column owner could take
// task t now: active, on shift, in its group, of its role, under capacity.
func ownerAvailable(owner string) string {
	return `EXISTS (SELECT 1 FROM agents g WHERE g.tenant_id = t.tenant_id AND g.id = t.` + owner + ` AND g.active
  AND on_shift(g.shift_weekdays, g.shift_start, g.shift_end, g.shift_tz, $2)
  AND (t.group_name = '' OR t.group_name = ANY (g.groups))
  AND (t.required_role = '' OR t.required_role = g.role OR (t.required_rank > 0 AND g.role_rank >= t.required_rank))
  AND ((g.capacity = 0 AND $14 = 0)
    OR (SELECT count(*) FROM tasks h WHERE h.tenant_id = g.tenant_id AND h.agent_id = g.id AND h.status = 'claimed' AND h.lease_expires_at > $2)
       < CASE WHEN g.capacity > 0 THEN g.capacity ELSE $14 END))`
}

var claimSQL = `UPDATE tasks SET status = 'claimed', agent_id = $3, lease_expires_at = $4, updated_at = $2
WHERE id = (
  SELECT t.id FROM tasks t
  WHERE t.tenant_id = $1 AND t.status IN ('open', 'claimed') AND NOT t.automatic AND t.available_at <= $2
    AND (t.status = 'open' OR t.lease_expires_at <= $2)
    AND (t.group_name = '' OR t.group_name = ANY ($5))
    AND (t.required_role = '' OR t.required_role = $6 OR (t.required_rank > 0 AND $7 >= t.required_rank))
    AND (t.primary_owner = $3 OR t.backup_owner = $3 OR t.available_at + $13::interval <= $2 OR (
         (cardinality($8::text[]) = 0 OR t.language = '' OR t.language = ANY ($8))
     AND (cardinality($9::text[]) = 0 OR t.product_category = '' OR t.product_category = ANY ($9))
     AND (cardinality($10::text[]) = 0 OR t.org_unit = '' OR t.org_unit = ANY ($10))))
    AND (t.primary_owner = $3
      OR (t.backup_owner = $3 AND (t.available_at + $11::interval <= $2 OR NOT ` + ownerAvailable("primary_owner") + `))
      OR ((t.primary_owner = '' OR t.available_at + $11::interval <= $2 OR NOT ` + ownerAvailable("primary_owner") + `)
      AND (t.backup_owner = '' OR t.available_at + $11::interval + $12::interval <= $2 OR NOT ` + ownerAvailable("backup_owner") + `)))
  ORDER BY t.deadline, t.severity DESC, t.tier_rank, t.due_at, t.id
  LIMIT 1
  FOR UPDATE SKIP LOCKED)
RETURNING ` + taskColumns

// Claim leases to the agent, until now+lease, the most urgent task it may
// take (see Routing): earliest deadline (none last), then highest severity,
// then the customer's tier, then the due time. A task is open, or claimed
// with a lease expired at now, and available at now. In the same
// transaction it writes VisitAssigned to the outbox. It reports false when
// no task fits; ErrAgentNotFound, ErrInactive, ErrOffShift or ErrAtCapacity
// when the agent may not claim. Concurrent claims skip each other's rows,
// so each task goes to one agent.
func (s *Store) Claim(ctx context.Context, r ClaimRequest) (task.Task, bool, error) {
	var t task.Task
	var found bool
	err := pgx.BeginFunc(ctx, s.Pool, func(tx pgx.Tx) error {
		// Locking the agent's row serialises one agent's claims, so capacity holds.
		a, err := lockAgent(ctx, tx, r.Tenant, r.AgentID)
		if err != nil {
			return err
		}
		if a.Inactive {
			return ErrInactive
		}
		if !a.Shift.On(r.Now) {
			return ErrOffShift
		}
		capacity := a.Capacity
		if capacity == 0 {
			capacity = r.Routing.DefaultCapacity
		}
		if capacity > 0 {
			held, err := Held(ctx, tx, r.Tenant, r.AgentID, r.Now)
			if err != nil {
				return err
			}
			if held >= capacity {
				return ErrAtCapacity
			}
		}
		rows, err := tx.Query(ctx, claimSQL, r.Tenant, r.Now, r.AgentID, r.Now.Add(r.Lease), a.Groups, a.Role, task.RoleRank(a.Role),
			nonNil(a.Skills.Languages), nonNil(a.Skills.ProductLines), nonNil(a.Skills.Regions),
			r.Routing.OwnerWait, r.Routing.BackupWait, r.Routing.SkillWait, r.Routing.DefaultCapacity)
		if err != nil {
			return fmt.Errorf("claim: %w", err)
		}
		claimed, err := pgx.CollectRows(rows, scanTask)
		if err != nil {
			return fmt.Errorf("claim: %w", err)
		}
		if len(claimed) == 0 {
			return nil
		}
		t, found = claimed[0], true
		return Assigned(ctx, tx, t, r.Now)
	})
	if errors.Is(err, ErrAgentNotFound) || errors.Is(err, ErrInactive) || errors.Is(err, ErrOffShift) || errors.Is(err, ErrAtCapacity) {
		return task.Task{}, false, err
	}
	if err != nil {
		return task.Task{}, false, fmt.Errorf("store: claim for agent %s: %w", r.AgentID, err)
	}
	return t, found, nil
}

// Assigned writes VisitAssigned for t (held by t.AgentID) to the outbox within tx.
func Assigned(ctx context.Context, tx pgx.Tx, t task.Task, now time.Time) error {
	ev := &eventsv1.VisitAssigned{
		EventId:    outbox.NewEventID(),
		TenantId:   t.Tenant,
		VisitId:    t.VisitID,
		AgentId:    t.AgentID,
		AssignedAt: timestamppb.New(now),
	}
	_, err := outbox.Add(ctx, tx, outbox.Message{ID: ev.EventId, Subject: stream.SubjectVisitAssigned, Payload: ev})
	return err
}

// TaskFilter selects tasks; empty fields match any.
type TaskFilter struct {
	Tenant  string
	AgentID string
	Status  string
	// Groups: only tasks of these groups (a leader's view); nil means any.
	Groups []string
}

// TaskCursor is the position after which a page of tasks starts: the sort
// key of the last task of the previous page.
type TaskCursor struct {
	Deadline *time.Time `json:"d,omitempty"`
	Severity int32      `json:"s,omitempty"`
	TierRank int        `json:"t,omitempty"`
	DueAt    time.Time  `json:"u"`
	ID       string     `json:"i"`
}

// CursorOf returns the cursor just after t.
func CursorOf(t task.Task) TaskCursor {
	return TaskCursor{Deadline: nullTime(t.Deadline), Severity: int32(t.Severity), TierRank: t.TierRank, DueAt: t.DueAt, ID: t.ID}
}

// ListTasks lists the tasks that match f in the claim's order: deadline
// (none last), severity (highest first), tier, due time and id; after cur
// when cur.ID is set, at most limit.
func (s *Store) ListTasks(ctx context.Context, f TaskFilter, cur TaskCursor, limit int) ([]task.Task, error) {
	rows, err := s.Pool.Query(ctx, `SELECT `+taskColumns+` FROM tasks
WHERE tenant_id = $1 AND ($2 = '' OR agent_id = $2) AND ($3 = '' OR status = $3)
  AND ($8::text[] IS NULL OR group_name = ANY ($8))
  AND ($6 = '' OR (COALESCE(deadline, 'infinity'), -severity, tier_rank, due_at, id)
                > (COALESCE($4::timestamptz, 'infinity'), -$9::int, $10::int, $5, $6))
ORDER BY COALESCE(deadline, 'infinity'), -severity, tier_rank, due_at, id
LIMIT $7`, f.Tenant, f.AgentID, f.Status, cur.Deadline, cur.DueAt, cur.ID, limit, f.Groups, cur.Severity, cur.TierRank)
	if err != nil {
		return nil, fmt.Errorf("store: list tasks: %w", err)
	}
	tasks, err := pgx.CollectRows(rows, scanTask)
	if err != nil {
		return nil, fmt.Errorf("store: list tasks: %w", err)
	}
	return tasks, nil
}

// DeadlineCursor is the position after which a page of ListDeadline starts.
type DeadlineCursor struct {
	Deadline time.Time `json:"d"`
	ID       string    `json:"i"`
}

// ListDeadline lists active tasks whose deadline is before `before`, by
// deadline and id, after cur when cur.ID is set; only of groups when set.
func (s *Store) ListDeadline(ctx context.Context, tenant string, before time.Time, groups []string, cur DeadlineCursor, limit int) ([]task.Task, error) {
	rows, err := s.Pool.Query(ctx, `SELECT `+taskColumns+` FROM tasks
WHERE tenant_id = $1 AND status IN ('open', 'claimed', 'sending') AND deadline IS NOT NULL AND deadline <= $2
  AND ($3::text[] IS NULL OR group_name = ANY ($3))
  AND ($5 = '' OR (deadline, id) > ($4, $5))
ORDER BY deadline, id LIMIT $6`, tenant, before, groups, cur.Deadline, cur.ID, limit)
	if err != nil {
		return nil, fmt.Errorf("store: list deadline tasks: %w", err)
	}
	tasks, err := pgx.CollectRows(rows, scanTask)
	if err != nil {
		return nil, fmt.Errorf("store: list deadline tasks: %w", err)
	}
	return tasks, nil
}
