package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/huifang/huifang/services/dispatch/internal/task"
)

// UpsertOrgUnit creates or updates an org unit. The parent must exist and
// the unit must not become its own ancestor (ErrParentNotFound, ErrCycle).
func (s *Store) UpsertOrgUnit(ctx context.Context, u task.OrgUnit, now time.Time) (task.OrgUnit, error) {
	var out task.OrgUnit
	err := pgx.BeginFunc(ctx, s.Pool, func(tx pgx.Tx) error {
		// One writer of a tenant's tree at a time: two concurrent moves cannot make a cycle.
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock(hashtext('dispatch.org_units:' || $1))`, u.Tenant); err != nil {
			return err
		}
		if u.ParentID != "" {
			var cycle bool
			err := tx.QueryRow(ctx, `WITH RECURSIVE up(id, parent_id) AS (
  SELECT id, parent_id FROM org_units WHERE tenant_id = $1 AND id = $2
  UNION
  SELECT o.id, o.parent_id FROM org_units o JOIN up ON o.tenant_id = $1 AND o.id = up.parent_id
)
SELECT COALESCE(bool_or(id = $3), false) FROM up`, u.Tenant, u.ParentID, u.ID).Scan(&cycle)
			if err != nil {
				return err
			}
			var exists bool
			if err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM org_units WHERE tenant_id = $1 AND id = $2)`, u.Tenant, u.ParentID).Scan(&exists); err != nil {
				return err
			}
			if !exists {
				return ErrParentNotFound
			}
			if cycle {
				return ErrCycle
			}
		}
		return tx.QueryRow(ctx, `INSERT INTO org_units (tenant_id, id, name, parent_id, kind, leader_id, created_at, updated_at)
VALUES ($1, $2, $3, $4, $5, $6, $7, $7)
ON CONFLICT (tenant_id, id) DO UPDATE SET name = EXCLUDED.name, parent_id = EXCLUDED.parent_id, kind = EXCLUDED.kind,
  leader_id = EXCLUDED.leader_id, updated_at = EXCLUDED.updated_at
RETURNING tenant_id, id, name, parent_id, kind, leader_id`, u.Tenant, u.ID, u.Name, u.ParentID, u.Kind, u.LeaderID, now).
			Scan(&out.Tenant, &out.ID, &out.Name, &out.ParentID, &out.Kind, &out.LeaderID)
	})
	if errors.Is(err, ErrParentNotFound) || errors.Is(err, ErrCycle) {
		return task.OrgUnit{}, err
	}
	if err != nil {
		return task.OrgUnit{}, fmt.Errorf("store: upsert org unit %s: %w", u.ID, err)
	}
	return out, nil
}

// ListOrgUnits lists a tenant's org units, parents before children.
func (s *Store) ListOrgUnits(ctx context.Context, tenant string) ([]task.OrgUnit, error) {
	rows, err := s.Pool.Query(ctx, `WITH RECURSIVE tree AS (
  SELECT tenant_id, id, name, parent_id, kind, leader_id, 0 AS depth FROM org_units
  WHERE tenant_id = $1 AND (parent_id = '' OR NOT EXISTS (SELECT 1 FROM org_units p WHERE p.tenant_id = $1 AND p.id = org_units.parent_id))
  UNION ALL
  SELECT o.tenant_id, o.id, o.name, o.parent_id, o.kind, o.leader_id, tree.depth + 1 FROM org_units o
  JOIN tree ON o.tenant_id = tree.tenant_id AND o.parent_id = tree.id
)
SELECT tenant_id, id, name, parent_id, kind, leader_id FROM tree ORDER BY depth, id`, tenant)
	if err != nil {
		return nil, fmt.Errorf("store: list org units: %w", err)
	}
	units, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (task.OrgUnit, error) {
		var u task.OrgUnit
		err := r.Scan(&u.Tenant, &u.ID, &u.Name, &u.ParentID, &u.Kind, &u.LeaderID)
		return u, err
	})
	if err != nil {
		return nil, fmt.Errorf("store: list org units: %w", err)
	}
	return units, nil
}

const agentColumns = `tenant_id, id, name, groups, org_unit, role, languages, product_lines, regions, shift_weekdays, shift_start, shift_end, shift_tz, capacity, active`

func scanAgent(r pgx.CollectableRow) (task.Agent, error) {
	var a task.Agent
	var active bool
	err := r.Scan(&a.Tenant, &a.ID, &a.Name, &a.Groups, &a.OrgUnit, &a.Role, &a.Skills.Languages, &a.Skills.ProductLines,
		&a.Skills.Regions, &a.Shift.Weekdays, &a.Shift.Start, &a.Shift.End, &a.Shift.TimeZone, &a.Capacity, &active)
	a.Inactive = !active
	return a, err
}

// UpsertAgent registers a normalized agent or updates it, and returns it as stored.
func (s *Store) UpsertAgent(ctx context.Context, a task.Agent, now time.Time) (task.Agent, error) {
	rows, err := s.Pool.Query(ctx, `INSERT INTO agents (tenant_id, id, name, groups, org_unit, role, role_rank, languages, product_lines, regions,
  shift_weekdays, shift_start, shift_end, shift_tz, capacity, active, created_at, updated_at)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $17)
ON CONFLICT (tenant_id, id) DO UPDATE SET
  name = EXCLUDED.name, groups = EXCLUDED.groups, org_unit = EXCLUDED.org_unit, role = EXCLUDED.role, role_rank = EXCLUDED.role_rank,
  languages = EXCLUDED.languages, product_lines = EXCLUDED.product_lines, regions = EXCLUDED.regions,
  shift_weekdays = EXCLUDED.shift_weekdays, shift_start = EXCLUDED.shift_start, shift_end = EXCLUDED.shift_end,
  shift_tz = EXCLUDED.shift_tz, capacity = EXCLUDED.capacity, active = EXCLUDED.active, updated_at = EXCLUDED.updated_at
RETURNING `+agentColumns, a.Tenant, a.ID, a.Name, a.Groups, a.OrgUnit, a.Role, task.RoleRank(a.Role),
		nonNil(a.Skills.Languages), nonNil(a.Skills.ProductLines), nonNil(a.Skills.Regions), nonNilInt(a.Shift.Weekdays),
		a.Shift.Start, a.Shift.End, a.Shift.TimeZone, a.Capacity, !a.Inactive, now)
	if err != nil {
		return task.Agent{}, fmt.Errorf("store: upsert agent %s: %w", a.ID, err)
	}
	out, err := pgx.CollectExactlyOneRow(rows, scanAgent)
	if err != nil {
		return task.Agent{}, fmt.Errorf("store: upsert agent %s: %w", a.ID, err)
	}
	return out, nil
}

// Agent returns one agent, or ErrAgentNotFound.
func (s *Store) Agent(ctx context.Context, tenant, id string) (task.Agent, error) {
	return agent(ctx, s.Pool, tenant, id)
}

type querier interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
}

func agent(ctx context.Context, q querier, tenant, id string) (task.Agent, error) {
	rows, err := q.Query(ctx, `SELECT `+agentColumns+` FROM agents WHERE tenant_id = $1 AND id = $2`, tenant, id)
	if err != nil {
		return task.Agent{}, fmt.Errorf("store: agent %s: %w", id, err)
	}
	a, err := pgx.CollectExactlyOneRow(rows, scanAgent)
	if errors.Is(err, pgx.ErrNoRows) {
		return task.Agent{}, ErrAgentNotFound
	}
	if err != nil {
		return task.Agent{}, fmt.Errorf("store: agent %s: %w", id, err)
	}
	return a, nil
}

// lockAgent locks and returns one agent within tx, or ErrAgentNotFound.
func lockAgent(ctx context.Context, tx pgx.Tx, tenant, id string) (task.Agent, error) {
	rows, err := tx.Query(ctx, `SELECT `+agentColumns+` FROM agents WHERE tenant_id = $1 AND id = $2 FOR UPDATE`, tenant, id)
	if err != nil {
		return task.Agent{}, fmt.Errorf("store: lock agent %s: %w", id, err)
	}
	a, err := pgx.CollectExactlyOneRow(rows, scanAgent)
	if errors.Is(err, pgx.ErrNoRows) {
		return task.Agent{}, ErrAgentNotFound
	}
	if err != nil {
		return task.Agent{}, fmt.Errorf("store: lock agent %s: %w", id, err)
	}
	return a, nil
}

// AgentTx returns one agent within tx, or ErrAgentNotFound.
func AgentTx(ctx context.Context, tx pgx.Tx, tenant, id string) (task.Agent, error) {
	return agent(ctx, tx, tenant, id)
}

// ListAgents lists a tenant's agents by id, after afterID, at most limit;
// only those of group when it is set.
func (s *Store) ListAgents(ctx context.Context, tenant, group string, limit int, afterID string) ([]task.Agent, error) {
	rows, err := s.Pool.Query(ctx, `SELECT `+agentColumns+` FROM agents
WHERE tenant_id = $1 AND id > $2 AND ($4 = '' OR $4 = ANY (groups)) ORDER BY id LIMIT $3`, tenant, afterID, limit, group)
	if err != nil {
		return nil, fmt.Errorf("store: list agents: %w", err)
	}
	agents, err := pgx.CollectRows(rows, scanAgent)
	if err != nil {
		return nil, fmt.Errorf("store: list agents: %w", err)
	}
	return agents, nil
}

// Held counts the tasks an agent holds under a live lease at now.
func Held(ctx context.Context, tx pgx.Tx, tenant, agentID string, now time.Time) (int, error) {
	var n int
	err := tx.QueryRow(ctx, `SELECT count(*) FROM tasks WHERE tenant_id = $1 AND agent_id = $2 AND status = 'claimed' AND lease_expires_at > $3`,
		tenant, agentID, now).Scan(&n)
	if err != nil {
		return 0, fmt.Errorf("store: tasks held by %s: %w", agentID, err)
	}
	return n, nil
}

// LeaderGroups returns the groups a leader oversees: the ids of the org
// units the leader leads and every unit below them, and the leader's own
// groups. It returns ErrAgentNotFound for an unknown leader.
func (s *Store) LeaderGroups(ctx context.Context, tenant, leaderID string) (task.Agent, []string, error) {
	a, err := s.Agent(ctx, tenant, leaderID)
	if err != nil {
		return task.Agent{}, nil, err
	}
	var units []string
	err = s.Pool.QueryRow(ctx, `WITH RECURSIVE down AS (
  SELECT id FROM org_units WHERE tenant_id = $1 AND leader_id = $2
  UNION
  SELECT o.id FROM org_units o JOIN down ON o.tenant_id = $1 AND o.parent_id = down.id
)
SELECT COALESCE(array_agg(id), '{}') FROM down`, tenant, leaderID).Scan(&units)
	if err != nil {
		return task.Agent{}, nil, fmt.Errorf("store: groups of leader %s: %w", leaderID, err)
	}
	groups := append([]string{}, a.Groups...)
	for _, u := range units {
		if !contains(groups, u) {
			groups = append(groups, u)
		}
	}
	return a, groups, nil
}

func contains(xs []string, x string) bool {
	for _, y := range xs {
		if y == x {
			return true
		}
	}
	return false
}

func nonNil(xs []string) []string {
	if xs == nil {
		return []string{}
	}
	return xs
}

func nonNilInt(xs []int) []int {
	if xs == nil {
		return []int{}
	}
	return xs
}
