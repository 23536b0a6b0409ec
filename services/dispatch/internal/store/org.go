package store

import (
	"context"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/huifang/huifang/pkg/postgres"
	"github.com/huifang/huifang/services/dispatch/internal/task"
)

// LockOrgTree takes the tenant's org tree for the rest of tx: one writer of
// a tree at a time, so two concurrent moves cannot make a cycle.
func LockOrgTree(ctx context.Context, tx pgx.Tx, tenant string) error {
	_, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock(hashtext('dispatch.org_units:' || $1))`, tenant)
	return translate(err, "lock the org tree", nil)
}

// Ancestors returns whether org unit id exists and the ids from it up to
// its root (id first).
func Ancestors(ctx context.Context, q postgres.Querier, tenant, id string) (bool, []string, error) {
	var up []string
	err := q.QueryRow(ctx, `WITH RECURSIVE up(id, parent_id) AS (
  SELECT id, parent_id FROM org_units WHERE tenant_id = $1 AND id = $2
  UNION
  SELECT o.id, o.parent_id FROM org_units o JOIN up ON o.tenant_id = $1 AND o.id = up.parent_id
)
SELECT COALESCE(array_agg(id), '{}') FROM up`, tenant, id).Scan(&up)
	if err != nil {
		return false, nil, translate(err, "ancestors of org unit "+id, nil)
	}
	return len(up) > 0, up, nil
}

// SaveOrgUnit creates or updates an org unit and returns it as stored.
func SaveOrgUnit(ctx context.Context, q postgres.Querier, u task.OrgUnit, now time.Time) (task.OrgUnit, error) {
	var out task.OrgUnit
	err := q.QueryRow(ctx, `INSERT INTO org_units (tenant_id, id, name, parent_id, kind, leader_id, created_at, updated_at)
VALUES ($1, $2, $3, $4, $5, $6, $7, $7)
ON CONFLICT (tenant_id, id) DO UPDATE SET name = EXCLUDED.name, parent_id = EXCLUDED.parent_id, kind = EXCLUDED.kind,
  leader_id = EXCLUDED.leader_id, updated_at = EXCLUDED.updated_at
RETURNING tenant_id, id, name, parent_id, kind, leader_id`, u.Tenant, u.ID, u.Name, u.ParentID, u.Kind, u.LeaderID, now).
		Scan(&out.Tenant, &out.ID, &out.Name, &out.ParentID, &out.Kind, &out.LeaderID)
	return out, translate(err, "upsert org unit "+u.ID, nil)
}

// ListOrgUnits lists a tenant's org units, parents before children.
func ListOrgUnits(ctx context.Context, q postgres.Querier, tenant string) ([]task.OrgUnit, error) {
	rows, err := q.Query(ctx, `WITH RECURSIVE tree AS (
  SELECT tenant_id, id, name, parent_id, kind, leader_id, 0 AS depth FROM org_units
  WHERE tenant_id = $1 AND (parent_id = '' OR NOT EXISTS (SELECT 1 FROM org_units p WHERE p.tenant_id = $1 AND p.id = org_units.parent_id))
  UNION ALL
  SELECT o.tenant_id, o.id, o.name, o.parent_id, o.kind, o.leader_id, tree.depth + 1 FROM org_units o
  JOIN tree ON o.tenant_id = tree.tenant_id AND o.parent_id = tree.id
)
SELECT tenant_id, id, name, parent_id, kind, leader_id FROM tree ORDER BY depth, id`, tenant)
	if err != nil {
		return nil, translate(err, "list org units", nil)
	}
	units, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (task.OrgUnit, error) {
		var u task.OrgUnit
		err := r.Scan(&u.Tenant, &u.ID, &u.Name, &u.ParentID, &u.Kind, &u.LeaderID)
		return u, err
	})
	return units, translate(err, "list org units", nil)
}

// UnitsLedBy returns the ids of the org units the agent leads and of every
// unit below them.
func UnitsLedBy(ctx context.Context, q postgres.Querier, tenant, leaderID string) ([]string, error) {
	var units []string
	err := q.QueryRow(ctx, `WITH RECURSIVE down AS (
  SELECT id FROM org_units WHERE tenant_id = $1 AND leader_id = $2
  UNION
  SELECT o.id FROM org_units o JOIN down ON o.tenant_id = $1 AND o.parent_id = down.id
)
SELECT COALESCE(array_agg(id), '{}') FROM down`, tenant, leaderID).Scan(&units)
	return units, translate(err, "units led by "+leaderID, nil)
}

const agentColumns = `tenant_id, id, name, groups, org_unit, role, languages, product_lines, regions, shift_weekdays, shift_start, shift_end, shift_tz, capacity, active,
  presence, presence_reason, presence_since`

func scanAgent(r pgx.CollectableRow) (task.Agent, error) { return scanAgentPlus(r) }

// scanAgentPlus scans agentColumns followed by extra columns into extra.
func scanAgentPlus(r pgx.Row, extra ...any) (task.Agent, error) {
	var a task.Agent
	var active bool
	var since *time.Time
	err := r.Scan(append([]any{&a.Tenant, &a.ID, &a.Name, &a.Groups, &a.OrgUnit, &a.Role, &a.Skills.Languages, &a.Skills.ProductLines,
		&a.Skills.Regions, &a.Shift.Weekdays, &a.Shift.Start, &a.Shift.End, &a.Shift.TimeZone, &a.Capacity, &active,
		&a.Presence.State, &a.Presence.Reason, &since}, extra...)...)
	a.Inactive = !active
	if since != nil {
		a.Presence.Since = *since
	} else {
		// Never set: the zero Presence (available).
		a.Presence = task.Presence{}
	}
	return a, err
}

// UpsertAgent registers a normalized agent or updates it, with the rank of
// its role, and returns it as stored.
func UpsertAgent(ctx context.Context, q postgres.Querier, a task.Agent, now time.Time) (task.Agent, error) {
	rows, err := q.Query(ctx, `INSERT INTO agents (tenant_id, id, name, groups, org_unit, role, role_rank, languages, product_lines, regions,
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
		return task.Agent{}, translate(err, "upsert agent "+a.ID, nil)
	}
	out, err := pgx.CollectExactlyOneRow(rows, scanAgent)
	return out, translate(err, "upsert agent "+a.ID, nil)
}

// Agent returns one agent, or ErrAgentNotFound.
func Agent(ctx context.Context, q postgres.Querier, tenant, id string) (task.Agent, error) {
	rows, err := q.Query(ctx, `SELECT `+agentColumns+` FROM agents WHERE tenant_id = $1 AND id = $2`, tenant, id)
	if err != nil {
		return task.Agent{}, translate(err, "agent "+id, nil)
	}
	a, err := pgx.CollectExactlyOneRow(rows, scanAgent)
	return a, translate(err, "agent "+id, ErrAgentNotFound)
}

// ListAgents lists a tenant's agents by id, after afterID, at most limit;
// only those of group when it is set.
func ListAgents(ctx context.Context, q postgres.Querier, tenant, group string, limit int, afterID string) ([]task.Agent, error) {
	rows, err := q.Query(ctx, `SELECT `+agentColumns+` FROM agents
WHERE tenant_id = $1 AND id > $2 AND ($4 = '' OR $4 = ANY (groups)) ORDER BY id LIMIT $3`, tenant, afterID, limit, group)
	if err != nil {
		return nil, translate(err, "list agents", nil)
	}
	agents, err := pgx.CollectRows(rows, scanAgent)
	return agents, translate(err, "list agents", nil)
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
