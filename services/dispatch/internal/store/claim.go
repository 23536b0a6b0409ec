package store

import (
	"context"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/huifang/huifang/pkg/postgres"
	"github.com/huifang/huifang/services/dispatch/internal/task"
)

// Claim eligibility (role rank, shift, capacity) is decided here, in SQL,
// and only here: for the claiming agent (Eligibility) and for the owners a
// task waits for (ownerAvailable) the same fragments below are used. SQL
// is the one implementation because the owners' availability has to be
// judged inside the claim's query, row by row, under FOR UPDATE SKIP LOCKED.
// The role ranks are the domain's (task.RoleRank), stored with agents
// (role_rank) and tasks (required_rank); the tier rank is stored with tasks
// (task.Rules.TierRank) and only ordered by here.

// onShift is true when agent g's shift (weekdays, minutes, zone; see
// on_shift in 002_queue.sql) covers the moment at.
func onShift(g, at string) string {
	return `on_shift(` + g + `.shift_weekdays, ` + g + `.shift_start, ` + g + `.shift_end, ` + g + `.shift_tz, ` + at + `)`
}

// hasRoom is true when agent g holds, under a live lease at `at`, fewer
// tasks than its capacity, or the default capacity def when it has none of
// its own (0 with a 0 default: no limit).
func hasRoom(g, at, def string) string {
	return `((` + g + `.capacity = 0 AND ` + def + ` = 0)
    OR (SELECT count(*) FROM tasks h WHERE h.tenant_id = ` + g + `.tenant_id AND h.agent_id = ` + g + `.id AND h.status = 'claimed' AND h.lease_expires_at > ` + at + `)
       < CASE WHEN ` + g + `.capacity > 0 THEN ` + g + `.capacity ELSE ` + def + ` END)`
}

// takesRole is true when an agent of role and rank may take task t: t
// needs no role, or that very role, or a rank at most the agent's (a
// department owner ranks apart: 0).
func takesRole(role, rank string) string {
	return `(t.required_role = '' OR t.required_role = ` + role + ` OR (t.required_rank > 0 AND ` + rank + ` >= t.required_rank))`
}

// takesGroup is true when an agent of groups may take task t.
func takesGroup(groups string) string {
	return `(t.group_name = '' OR t.group_name = ANY (` + groups + `))`
}

// Routing holds the waits of the routing stages: a task is offered to the
// customer's primary owner alone for OwnerWait, then to the backup owner
// too for BackupWait, then to every agent of the required group or role
// whose skills fit; after SkillWait skills no longer matter. An owner who
// is unknown, inactive, off shift, at capacity or without the role the task
// needs is skipped at once. DefaultCapacity is the capacity of agents
// without their own (0: no limit).
type Routing struct {
	OwnerWait       time.Duration
	BackupWait      time.Duration
	SkillWait       time.Duration
	DefaultCapacity int
}

// Eligibility locks the agent's row within tx (serialising one agent's
// claims, so capacity holds) and returns the agent, its stored rank and
// whether it may claim at now: active, on shift, with room under its
// capacity. ErrAgentNotFound when the tenant has no such agent.
func Eligibility(ctx context.Context, tx pgx.Tx, tenant, agentID string, now time.Time, defaultCapacity int) (task.Agent, int, task.Eligibility, error) {
	var (
		rank int
		e    task.Eligibility
	)
	rows, err := tx.Query(ctx, `SELECT `+agentColumns+`, g.role_rank, `+onShift("g", "$3")+`, `+hasRoom("g", "$3", "$4")+`
FROM agents g WHERE g.tenant_id = $1 AND g.id = $2 FOR UPDATE`, tenant, agentID, now, defaultCapacity)
	if err != nil {
		return task.Agent{}, 0, e, translate(err, "lock agent "+agentID, nil)
	}
	a, err := pgx.CollectExactlyOneRow(rows, func(r pgx.CollectableRow) (task.Agent, error) {
		return scanAgentPlus(r, &rank, &e.OnShift, &e.HasRoom)
	})
	if err != nil {
		return task.Agent{}, 0, e, translate(err, "lock agent "+agentID, ErrAgentNotFound)
	}
	e.Active, e.Presence = !a.Inactive, a.Presence
	return a, rank, e, nil
}

// ownerAvailable is true when the agent named by the column owner could take
// task t now: active, available (not on a break, not offline), on shift, in its group, of its role, under capacity.
func ownerAvailable(owner string) string {
	return `EXISTS (SELECT 1 FROM agents g WHERE g.tenant_id = t.tenant_id AND g.id = t.` + owner + ` AND g.active AND g.presence = 'available'
  AND ` + onShift("g", "$2") + `
  AND ` + takesGroup("g.groups") + `
  AND ` + takesRole("g.role", "g.role_rank") + `
  AND ` + hasRoom("g", "$2", "$14") + `)`
}

var claimSQL = `UPDATE tasks t SET status = 'claimed', agent_id = $3, lease_expires_at = $4, updated_at = $2, lease_token = t.lease_token + 1,
  claim_request = $15
WHERE t.id = (
  SELECT t.id FROM tasks t
  WHERE t.tenant_id = $1 AND t.status IN ('open', 'claimed') AND NOT t.automatic AND t.available_at <= $2
    AND (t.status = 'open' OR t.lease_expires_at <= $2)
    AND ` + takesGroup("$5") + `
    AND ` + takesRole("$6", "$7") + `
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

// ClaimRequest is one agent's claim: the agent (as Eligibility returned it,
// with its stored rank), the moment, the lease and the routing stages;
// RequestID, the desk's id of the claim (ClaimNextTask.request_id, may be
// empty), is kept with the task it claims.
type ClaimRequest struct {
	Tenant    string
	Agent     task.Agent
	Rank      int
	Now       time.Time
	Lease     time.Duration
	Routing   Routing
	RequestID string
}

// Claim leases to the agent, until now+lease, the most urgent task it may
// take (see Routing) within tx: earliest deadline (none last), then highest
// severity, then the customer's tier, then the due time. A task is open, or
// claimed with a lease expired at now, and available at now. It reports
// false when no task fits. Concurrent claims skip each other's rows, so
// each task goes to one agent. Each claim makes the task's fencing token
// (lease_token) one more, in the same statement: the previous holder's
// token no longer matches.
func Claim(ctx context.Context, tx pgx.Tx, r ClaimRequest) (task.Task, bool, error) {
	a := r.Agent
	rows, err := tx.Query(ctx, claimSQL, r.Tenant, r.Now, a.ID, r.Now.Add(r.Lease), nonNil(a.Groups), a.Role, r.Rank,
		nonNil(a.Skills.Languages), nonNil(a.Skills.ProductLines), nonNil(a.Skills.Regions),
		r.Routing.OwnerWait, r.Routing.BackupWait, r.Routing.SkillWait, r.Routing.DefaultCapacity, r.RequestID)
	if err != nil {
		return task.Task{}, false, translate(err, "claim for agent "+a.ID, nil)
	}
	claimed, err := pgx.CollectRows(rows, scanTask)
	if err != nil {
		return task.Task{}, false, translate(err, "claim for agent "+a.ID, nil)
	}
	if len(claimed) == 0 {
		return task.Task{}, false, nil
	}
	return claimed[0], true, nil
}

// ClaimedUnder returns the tasks the agent's claims with request id
// requestID took and that are still claimed by the agent, the latest lease
// first; whether one answers a retry of that claim is the domain's to say
// (task.Task.Answers). Call it after Eligibility locked the agent within
// tx: the agent's claims are serialised, so a retry sees the claim it
// retries once that committed.
func ClaimedUnder(ctx context.Context, q postgres.Querier, tenant, agentID, requestID string) ([]task.Task, error) {
	rows, err := q.Query(ctx, `SELECT `+taskColumns+` FROM tasks t
WHERE tenant_id = $1 AND agent_id = $2 AND status = 'claimed' AND claim_request = $3
ORDER BY lease_expires_at DESC, id`, tenant, agentID, requestID)
	if err != nil {
		return nil, translate(err, "claims of agent "+agentID, nil)
	}
	tasks, err := pgx.CollectRows(rows, scanTask)
	return tasks, translate(err, "claims of agent "+agentID, nil)
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
func ListTasks(ctx context.Context, q postgres.Querier, f TaskFilter, cur TaskCursor, limit int) ([]task.Task, error) {
	rows, err := q.Query(ctx, `SELECT `+taskColumns+` FROM tasks t
WHERE tenant_id = $1 AND ($2 = '' OR agent_id = $2) AND ($3 = '' OR status = $3)
  AND ($8::text[] IS NULL OR group_name = ANY ($8))
  AND ($6 = '' OR (COALESCE(deadline, 'infinity'), -severity, tier_rank, due_at, id)
                > (COALESCE($4::timestamptz, 'infinity'), -$9::int, $10::int, $5, $6))
ORDER BY COALESCE(deadline, 'infinity'), -severity, tier_rank, due_at, id
LIMIT $7`, f.Tenant, f.AgentID, f.Status, cur.Deadline, cur.DueAt, cur.ID, limit, f.Groups, cur.Severity, cur.TierRank)
	if err != nil {
		return nil, translate(err, "list tasks", nil)
	}
	tasks, err := pgx.CollectRows(rows, scanTask)
	return tasks, translate(err, "list tasks", nil)
}

// DeadlineCursor is the position after which a page of ListDeadline starts.
type DeadlineCursor struct {
	Deadline time.Time `json:"d"`
	ID       string    `json:"i"`
}

// ListDeadline lists active tasks whose deadline is before `before`, by
// deadline and id, after cur when cur.ID is set; only of groups when set.
func ListDeadline(ctx context.Context, q postgres.Querier, tenant string, before time.Time, groups []string, cur DeadlineCursor, limit int) ([]task.Task, error) {
	rows, err := q.Query(ctx, `SELECT `+taskColumns+` FROM tasks t
WHERE tenant_id = $1 AND status IN ('open', 'claimed', 'sending') AND deadline IS NOT NULL AND deadline <= $2
  AND ($3::text[] IS NULL OR group_name = ANY ($3))
  AND ($5 = '' OR (deadline, id) > ($4, $5))
ORDER BY deadline, id LIMIT $6`, tenant, before, groups, cur.Deadline, cur.ID, limit)
	if err != nil {
		return nil, translate(err, "list deadline tasks", nil)
	}
	tasks, err := pgx.CollectRows(rows, scanTask)
	return tasks, translate(err, "list deadline tasks", nil)
}
