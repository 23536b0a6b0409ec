// Package store keeps dispatch's agents and tasks in Postgres and claims
// tasks for agents with FOR UPDATE SKIP LOCKED.
package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/types/known/timestamppb"

	eventsv1 "github.com/huifang/huifang/proto/huifang/events/v1"
	typesv1 "github.com/huifang/huifang/proto/huifang/types/v1"

	"github.com/huifang/huifang/pkg/outbox"
	"github.com/huifang/huifang/pkg/stream"
	"github.com/huifang/huifang/services/dispatch/internal/task"
)

// ErrAgentNotFound is returned when a claim names an agent the tenant does not have.
var ErrAgentNotFound = errors.New("store: agent not found")

// Store is dispatch's storage.
type Store struct {
	Pool *pgxpool.Pool
}

// CreateTask stores a new open task within tx. It reports false, and
// changes nothing, when the tenant already has a task for the visit.
func CreateTask(ctx context.Context, tx pgx.Tx, t task.Task) (bool, error) {
	customer, err := customerJSON(t.Customer)
	if err != nil {
		return false, err
	}
	tag, err := tx.Exec(ctx, `INSERT INTO tasks (id, tenant_id, visit_id, customer, channel, group_name, org_unit, service_type, due_at, deadline, status, created_at)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)
ON CONFLICT (tenant_id, visit_id) DO NOTHING`,
		t.ID, t.Tenant, t.VisitID, customer, t.Channel.String(), t.Group, t.OrgUnit, t.ServiceType,
		t.DueAt, nullTime(t.Deadline), task.StatusOpen, t.CreatedAt)
	if err != nil {
		return false, fmt.Errorf("store: insert task for visit %s: %w", t.VisitID, err)
	}
	return tag.RowsAffected() == 1, nil
}

// UpsertAgent registers a normalized agent or updates its name, groups and
// org unit, and returns it as stored.
func (s *Store) UpsertAgent(ctx context.Context, a task.Agent, now time.Time) (task.Agent, error) {
	var out task.Agent
	err := s.Pool.QueryRow(ctx, `INSERT INTO agents (tenant_id, id, name, groups, org_unit, created_at, updated_at)
VALUES ($1, $2, $3, $4, $5, $6, $6)
ON CONFLICT (tenant_id, id) DO UPDATE SET
  name = EXCLUDED.name, groups = EXCLUDED.groups, org_unit = EXCLUDED.org_unit, updated_at = EXCLUDED.updated_at
RETURNING tenant_id, id, name, groups, org_unit`, a.Tenant, a.ID, a.Name, a.Groups, a.OrgUnit, now).
		Scan(&out.Tenant, &out.ID, &out.Name, &out.Groups, &out.OrgUnit)
	if err != nil {
		return task.Agent{}, fmt.Errorf("store: upsert agent %s: %w", a.ID, err)
	}
	return out, nil
}

// ListAgents lists a tenant's agents by id, after afterID, at most limit.
func (s *Store) ListAgents(ctx context.Context, tenant string, limit int, afterID string) ([]task.Agent, error) {
	rows, err := s.Pool.Query(ctx, `SELECT tenant_id, id, name, groups, org_unit FROM agents
WHERE tenant_id = $1 AND id > $2 ORDER BY id LIMIT $3`, tenant, afterID, limit)
	if err != nil {
		return nil, fmt.Errorf("store: list agents: %w", err)
	}
	agents, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (task.Agent, error) {
		var a task.Agent
		err := r.Scan(&a.Tenant, &a.ID, &a.Name, &a.Groups, &a.OrgUnit)
		return a, err
	})
	if err != nil {
		return nil, fmt.Errorf("store: list agents: %w", err)
	}
	return agents, nil
}

const taskColumns = `id, tenant_id, visit_id, customer, channel, group_name, org_unit, service_type, due_at, deadline, status, agent_id, lease_expires_at, created_at`

// Claim leases to the agent, until now+lease, the most urgent task of the
// tenant that is open, or claimed with a lease expired at now, and whose
// group is empty or one of the agent's: earliest deadline (none last), then
// earliest due time, then id. In the same transaction it writes
// VisitAssigned to the outbox. It reports false when no task fits, and
// ErrAgentNotFound when the tenant has no such agent. Concurrent claims
// skip each other's rows, so each task goes to one agent.
func (s *Store) Claim(ctx context.Context, tenant, agentID string, now time.Time, lease time.Duration) (task.Task, bool, error) {
	var t task.Task
	var found bool
	err := pgx.BeginFunc(ctx, s.Pool, func(tx pgx.Tx) error {
		var groups []string
		err := tx.QueryRow(ctx, `SELECT groups FROM agents WHERE tenant_id = $1 AND id = $2`, tenant, agentID).Scan(&groups)
		if errors.Is(err, pgx.ErrNoRows) {
			return ErrAgentNotFound
		}
		if err != nil {
			return fmt.Errorf("look up agent: %w", err)
		}
		rows, err := tx.Query(ctx, `UPDATE tasks SET status = 'claimed', agent_id = $3, lease_expires_at = $4
WHERE id = (
  SELECT id FROM tasks
  WHERE tenant_id = $1
    AND (status = 'open' OR (status = 'claimed' AND lease_expires_at <= $2))
    AND (group_name = '' OR group_name = ANY($5))
  ORDER BY deadline, due_at, id
  LIMIT 1
  FOR UPDATE SKIP LOCKED)
RETURNING `+taskColumns, tenant, now, agentID, now.Add(lease), groups)
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
		ev := &eventsv1.VisitAssigned{
			EventId:    outbox.NewEventID(),
			TenantId:   t.Tenant,
			VisitId:    t.VisitID,
			AgentId:    agentID,
			AssignedAt: timestamppb.New(now),
		}
		_, err = outbox.Add(ctx, tx, outbox.Message{ID: ev.EventId, Subject: stream.SubjectVisitAssigned, Payload: ev})
		return err
	})
	if errors.Is(err, ErrAgentNotFound) {
		return task.Task{}, false, err
	}
	if err != nil {
		return task.Task{}, false, fmt.Errorf("store: claim for agent %s: %w", agentID, err)
	}
	return t, found, nil
}

// TaskFilter selects tasks; empty fields match any.
type TaskFilter struct {
	Tenant  string
	AgentID string
	Status  string
}

// TaskCursor is the position after which a page of tasks starts: the sort
// key of the last task of the previous page.
type TaskCursor struct {
	Deadline *time.Time `json:"d,omitempty"`
	DueAt    time.Time  `json:"u"`
	ID       string     `json:"i"`
}

// CursorOf returns the cursor just after t.
func CursorOf(t task.Task) TaskCursor {
	return TaskCursor{Deadline: nullTime(t.Deadline), DueAt: t.DueAt, ID: t.ID}
}

// ListTasks lists the tasks that match f, most urgent first (as Claim
// orders them), after cur when cur.ID is set, at most limit.
func (s *Store) ListTasks(ctx context.Context, f TaskFilter, cur TaskCursor, limit int) ([]task.Task, error) {
	rows, err := s.Pool.Query(ctx, `SELECT `+taskColumns+` FROM tasks
WHERE tenant_id = $1 AND ($2 = '' OR agent_id = $2) AND ($3 = '' OR status = $3)
  AND ($6 = '' OR (COALESCE(deadline, 'infinity'), due_at, id) > (COALESCE($4::timestamptz, 'infinity'), $5, $6))
ORDER BY COALESCE(deadline, 'infinity'), due_at, id
LIMIT $7`, f.Tenant, f.AgentID, f.Status, cur.Deadline, cur.DueAt, cur.ID, limit)
	if err != nil {
		return nil, fmt.Errorf("store: list tasks: %w", err)
	}
	tasks, err := pgx.CollectRows(rows, scanTask)
	if err != nil {
		return nil, fmt.Errorf("store: list tasks: %w", err)
	}
	return tasks, nil
}

func scanTask(r pgx.CollectableRow) (task.Task, error) {
	var (
		t        task.Task
		customer []byte
		channel  string
		deadline *time.Time
		lease    *time.Time
	)
	if err := r.Scan(&t.ID, &t.Tenant, &t.VisitID, &customer, &channel, &t.Group, &t.OrgUnit, &t.ServiceType,
		&t.DueAt, &deadline, &t.Status, &t.AgentID, &lease, &t.CreatedAt); err != nil {
		return t, err
	}
	if customer != nil {
		t.Customer = &typesv1.Customer{}
		if err := (protojson.UnmarshalOptions{DiscardUnknown: true}).Unmarshal(customer, t.Customer); err != nil {
			return t, fmt.Errorf("customer of task %s: %w", t.ID, err)
		}
	}
	t.Channel = typesv1.Channel(typesv1.Channel_value[channel])
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
