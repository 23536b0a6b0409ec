package store

import (
	"context"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/huifang/huifang/pkg/postgres"
	"github.com/huifang/huifang/services/dispatch/internal/task"
)

// BoardQuery selects what a wallboard counts: a tenant's tasks and agents
// of Groups (nil: every group), at Now; a deadline before Near is near;
// tasks ended since DayStart count as today's.
type BoardQuery struct {
	Tenant   string
	Groups   []string
	Now      time.Time
	Near     time.Time
	DayStart time.Time
}

// GroupCounts are one group's task counts. Every active task (not
// automatic) is in exactly one of Waiting, Scheduled and InProgress.
type GroupCounts struct {
	Group string
	// Waiting: claimable now (open, or claimed on a lease that ran out, and
	// available); BySeverity splits it by the severity number.
	Waiting    int
	BySeverity map[int]int
	// OldestAvailable is when the longest-waiting task became available;
	// zero when none waits.
	OldestAvailable time.Time
	Scheduled       int
	InProgress      int
	// Near and Past count active tasks by deadline.
	Near, Past int
	// DoneToday: status done since DayStart; ClosedToday: unreachable,
	// opted out or refused since DayStart.
	DoneToday, ClosedToday int
}

// BoardAgent is one active agent on the wallboard.
type BoardAgent struct {
	ID       string
	Groups   []string
	Presence task.Presence
	// Held: tasks it holds on a live lease.
	Held int
}

// whereGroups is the filter of the wallboard's queries on column col ($2:
// the groups, NULL for every group).
func whereGroups(col string) string { return `($2::text[] IS NULL OR ` + col + ` = ANY ($2))` }

// Board counts a wallboard's tasks by group (three queries on the indexes
// tasks_board, tasks_finished and the agents' primary key), and lists its
// active agents by id.
func Board(ctx context.Context, q postgres.Querier, b BoardQuery) (map[string]*GroupCounts, []BoardAgent, error) {
	groups := b.Groups
	counts := map[string]*GroupCounts{}
	of := func(g string) *GroupCounts {
		c, ok := counts[g]
		if !ok {
			c = &GroupCounts{Group: g, BySeverity: map[int]int{}}
			counts[g] = c
		}
		return c
	}
	rows, err := q.Query(ctx, `SELECT group_name, severity,
  count(*) FILTER (WHERE w), min(available_at) FILTER (WHERE w),
  count(*) FILTER (WHERE NOT w AND NOT live), count(*) FILTER (WHERE live),
  count(*) FILTER (WHERE deadline > $3 AND deadline <= $4), count(*) FILTER (WHERE deadline <= $3)
FROM (SELECT group_name, severity, available_at, deadline,
        (available_at <= $3 AND (status = 'open' OR lease_expires_at <= $3)) AS w,
        (status = 'claimed' AND lease_expires_at > $3) AS live
      FROM tasks WHERE tenant_id = $1 AND status IN ('open', 'claimed') AND NOT automatic AND `+whereGroups("group_name")+`) x
GROUP BY group_name, severity`, b.Tenant, groups, b.Now, b.Near)
	if err != nil {
		return nil, nil, translate(err, "wallboard tasks", nil)
	}
	var (
		g                                         string
		sev, waiting, scheduled, live, near, past int
		oldest                                    *time.Time
	)
	_, err = pgx.ForEachRow(rows, []any{&g, &sev, &waiting, &oldest, &scheduled, &live, &near, &past}, func() error {
		c := of(g)
		c.Waiting += waiting
		if waiting > 0 {
			c.BySeverity[sev] += waiting
		}
		if oldest != nil && (c.OldestAvailable.IsZero() || oldest.Before(c.OldestAvailable)) {
			c.OldestAvailable = *oldest
		}
		c.Scheduled += scheduled
		c.InProgress += live
		c.Near += near
		c.Past += past
		return nil
	})
	if err != nil {
		return nil, nil, translate(err, "wallboard tasks", nil)
	}

	rows, err = q.Query(ctx, `SELECT group_name, count(*) FILTER (WHERE status = 'done'), count(*) FILTER (WHERE status <> 'done')
FROM tasks WHERE tenant_id = $1 AND status IN ('done', 'unreachable', 'opted_out', 'refused') AND NOT automatic AND finished_at >= $3
  AND `+whereGroups("group_name")+`
GROUP BY group_name`, b.Tenant, groups, b.DayStart)
	if err != nil {
		return nil, nil, translate(err, "wallboard finished tasks", nil)
	}
	var done, closed int
	_, err = pgx.ForEachRow(rows, []any{&g, &done, &closed}, func() error {
		c := of(g)
		c.DoneToday, c.ClosedToday = done, closed
		return nil
	})
	if err != nil {
		return nil, nil, translate(err, "wallboard finished tasks", nil)
	}

	rows, err = q.Query(ctx, `SELECT g.id, g.groups, g.presence, g.presence_reason, g.presence_since,
  (SELECT count(*) FROM tasks h WHERE h.tenant_id = g.tenant_id AND h.agent_id = g.id AND h.status = 'claimed' AND h.lease_expires_at > $3)
FROM agents g WHERE g.tenant_id = $1 AND g.active AND ($2::text[] IS NULL OR g.groups && $2)
ORDER BY g.id`, b.Tenant, groups, b.Now)
	if err != nil {
		return nil, nil, translate(err, "wallboard agents", nil)
	}
	agents, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (BoardAgent, error) {
		var (
			a     BoardAgent
			since *time.Time
		)
		err := r.Scan(&a.ID, &a.Groups, &a.Presence.State, &a.Presence.Reason, &since, &a.Held)
		if since != nil {
			a.Presence.Since = *since
		}
		return a, err
	})
	if err != nil {
		return nil, nil, translate(err, "wallboard agents", nil)
	}
	return counts, agents, nil
}

// AgentQueue returns what agent a holds on a live lease, the first limit
// tasks waiting for its groups and rank in the claim's order, and how many
// wait in all.
func AgentQueue(ctx context.Context, q postgres.Querier, a task.Agent, now time.Time, limit int) (held, claimable []task.Task, waiting int, err error) {
	rows, err := q.Query(ctx, `SELECT `+taskColumns+` FROM tasks t
WHERE tenant_id = $1 AND agent_id = $2 AND status = 'claimed' AND lease_expires_at > $3
ORDER BY deadline, severity DESC, tier_rank, due_at, id`, a.Tenant, a.ID, now)
	if err != nil {
		return nil, nil, 0, translate(err, "held tasks of "+a.ID, nil)
	}
	if held, err = pgx.CollectRows(rows, scanTask); err != nil {
		return nil, nil, 0, translate(err, "held tasks of "+a.ID, nil)
	}
	rows, err = q.Query(ctx, `SELECT `+taskColumns+`, count(*) OVER () FROM tasks t
WHERE t.tenant_id = $1 AND t.status IN ('open', 'claimed') AND NOT t.automatic AND t.available_at <= $2
  AND (t.status = 'open' OR t.lease_expires_at <= $2)
  AND `+takesGroup("$3")+` AND `+takesRole("$4", "$5")+`
ORDER BY t.deadline, t.severity DESC, t.tier_rank, t.due_at, t.id
LIMIT $6`, a.Tenant, now, a.Groups, a.Role, task.RoleRank(a.Role), limit)
	if err != nil {
		return nil, nil, 0, translate(err, "queue of "+a.ID, nil)
	}
	claimable, err = pgx.CollectRows(rows, func(r pgx.CollectableRow) (task.Task, error) { return scanTaskPlus(r, &waiting) })
	if err != nil {
		return nil, nil, 0, translate(err, "queue of "+a.ID, nil)
	}
	return held, claimable, waiting, nil
}
