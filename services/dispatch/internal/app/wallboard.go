package app

import (
	"context"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/huifang/huifang/pkg/auth"
	"github.com/huifang/huifang/pkg/invalid"
	"github.com/huifang/huifang/services/dispatch/internal/store"
	"github.com/huifang/huifang/services/dispatch/internal/task"
)

// WallboardQuery selects a wallboard: one group, a leader's groups (both:
// the group, which the leader must oversee), or every group; Within is the
// near-deadline margin (nil: SLAWarn); TimeZone the zone of "today" (UTC
// when empty).
type WallboardQuery struct {
	Tenant   string
	Group    string
	LeaderID string
	Within   *time.Duration
	TimeZone string
}

// GroupBoard is one group's counts and its active agents.
type GroupBoard struct {
	store.GroupCounts
	Agents []store.BoardAgent
}

// Wallboard is a supervisor's groups at one moment; Total sums them (each
// agent once).
type Wallboard struct {
	At     time.Time
	Groups []GroupBoard
	Total  GroupBoard
}

// CheckWallboard checks the parts of a wallboard query that are not ids:
// the time zone (named as in GetWallboardRequest; the margin's bounds, 0 to
// 30 days, are dispatch.proto's rule).
func CheckWallboard(q WallboardQuery) error {
	var bad invalid.List
	if _, err := time.LoadLocation(strings.TrimSpace(q.TimeZone)); err != nil {
		bad.Add("time_zone", "must be an IANA time zone (e.g. Asia/Shanghai), or empty for UTC")
	}
	return bad.Err()
}

// Wallboard counts a supervisor's groups (store.Board): the queue, its
// deadlines, what is in progress and done today, and the agents by
// presence. A leader naming a group it does not oversee is refused.
func (a *App) Wallboard(ctx context.Context, q WallboardQuery) (Wallboard, error) {
	if err := CheckWallboard(q); err != nil {
		return Wallboard{}, err
	}
	groups, err := a.groups(ctx, q.Tenant, q.Group, q.LeaderID)
	if err != nil {
		return Wallboard{}, err
	}
	if groups != nil && len(groups) == 0 {
		return Wallboard{}, auth.Deny("group", "the leader does not oversee this group")
	}
	if strings.TrimSpace(q.LeaderID) != "" && strings.TrimSpace(q.Group) == "" {
		// Tasks that name no group are any agent's, the leader's agents'
		// too: its board shows that queue as the group "".
		groups = append(groups, "")
	}
	within := a.SLAWarn
	if q.Within != nil {
		within = *q.Within
	}
	loc, _ := time.LoadLocation(strings.TrimSpace(q.TimeZone))
	now := a.Now()
	local := now.In(loc)
	day := time.Date(local.Year(), local.Month(), local.Day(), 0, 0, 0, 0, loc)
	counts, agents, err := store.Board(ctx, a.DB, store.BoardQuery{Tenant: q.Tenant, Groups: groups, Now: now, Near: now.Add(within), DayStart: day})
	if err != nil {
		return Wallboard{}, err
	}
	board := map[string]*GroupBoard{}
	of := func(g string) *GroupBoard {
		b, ok := board[g]
		if !ok {
			b = &GroupBoard{GroupCounts: store.GroupCounts{Group: g, BySeverity: map[int]int{}}}
			if c, ok := counts[g]; ok {
				b.GroupCounts = *c
			}
			board[g] = b
		}
		return b
	}
	for g := range counts {
		of(g)
	}
	for _, ag := range agents {
		for _, g := range ag.Groups {
			if groups == nil || slices.Contains(groups, g) {
				of(g).Agents = append(of(g).Agents, ag)
			}
		}
	}
	w := Wallboard{At: now, Total: GroupBoard{GroupCounts: store.GroupCounts{BySeverity: map[int]int{}}, Agents: agents}}
	for _, g := range slices.Sorted(maps.Keys(board)) {
		b := board[g]
		w.Groups = append(w.Groups, *b)
		t := &w.Total.GroupCounts
		t.Waiting += b.Waiting
		for s, n := range b.BySeverity {
			t.BySeverity[s] += n
		}
		if !b.OldestAvailable.IsZero() && (t.OldestAvailable.IsZero() || b.OldestAvailable.Before(t.OldestAvailable)) {
			t.OldestAvailable = b.OldestAvailable
		}
		t.Scheduled += b.Scheduled
		t.InProgress += b.InProgress
		t.Near += b.Near
		t.Past += b.Past
		t.DoneToday += b.DoneToday
		t.ClosedToday += b.ClosedToday
	}
	return w, nil
}

// QueueLimit bounds the claimable tasks of an agent's queue.
const QueueLimit = 50

// Queue is what an agent holds and may claim.
type Queue struct {
	Agent     task.Agent
	Held      []task.Task
	Claimable []task.Task
	// Waiting counts every task waiting for the agent's groups and rank.
	Waiting int
}

// Queue returns an agent's queue (store.AgentQueue): store.ErrAgentNotFound
// for an unknown agent.
func (a *App) Queue(ctx context.Context, tenant, agentID string) (Queue, error) {
	ag, err := store.Agent(ctx, a.DB, tenant, strings.TrimSpace(agentID))
	if err != nil {
		return Queue{}, err
	}
	held, claimable, waiting, err := store.AgentQueue(ctx, a.DB, ag, a.Now(), QueueLimit)
	if err != nil {
		return Queue{}, err
	}
	return Queue{Agent: ag, Held: held, Claimable: claimable, Waiting: waiting}, nil
}
