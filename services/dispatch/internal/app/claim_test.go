package app_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	eventsv1 "github.com/huifang/huifang/proto/huifang/events/v1"

	"github.com/huifang/huifang/pkg/stream"
	"github.com/huifang/huifang/services/dispatch/internal/app"
	"github.com/huifang/huifang/services/dispatch/internal/task"
)

const lease = 15 * time.Minute

// claimAt claims for agent at now and returns the visit id, "" when none.
func (b bundle) claimAt(t *testing.T, agent string, now time.Time) string {
	t.Helper()
	b.clock.Set(now)
	got, found, err := b.a.Claim(context.Background(), "default", agent, 0)
	require.NoError(t, err)
	if !found {
		return ""
	}
	require.Equal(t, task.StatusClaimed, got.Status)
	require.Equal(t, agent, got.AgentID)
	require.True(t, got.LeaseExpiresAt.Equal(now.Add(lease)), "lease expires at %s", got.LeaseExpiresAt)
	return got.VisitID
}

func TestClaimConcurrentAgentsTakeEachTaskOnce(t *testing.T) {
	b := setup(t)
	const tasks, agents = 50, 8
	for i := range tasks {
		b.add(t, fmt.Sprintf("v-%02d", i), func(x *task.Task) { x.Deadline = t0.Add(time.Duration(i%5) * time.Hour) })
	}
	for i := range agents {
		b.agent(t, task.Agent{ID: fmt.Sprintf("a-%d", i), Name: "agent"})
	}

	var mu sync.Mutex
	claims := map[string][]string{} // visit → agents that got it
	var wg sync.WaitGroup
	errs := make(chan error, agents)
	for i := range agents {
		wg.Add(1)
		go func() {
			defer wg.Done()
			agent := fmt.Sprintf("a-%d", i)
			for {
				got, found, err := b.a.Claim(context.Background(), "default", agent, 0)
				if err != nil {
					errs <- err
					return
				}
				if !found {
					return
				}
				mu.Lock()
				claims[got.VisitID] = append(claims[got.VisitID], agent)
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}
	require.Len(t, claims, tasks, "every task was claimed")
	for visit, by := range claims {
		require.Len(t, by, 1, "visit %s claimed by %v", visit, by)
	}
	var assigned int
	require.NoError(t, b.pool.QueryRow(context.Background(), `SELECT count(*) FROM outbox WHERE subject = $1`, stream.SubjectVisitAssigned).Scan(&assigned))
	require.Equal(t, tasks, assigned, "one VisitAssigned per claim")
}

func TestExpiredLeaseReturnsTaskToQueue(t *testing.T) {
	b := setup(t)
	b.agent(t, task.Agent{ID: "first", Name: "first"})
	b.agent(t, task.Agent{ID: "second", Name: "second"})
	b.add(t, "v-1")

	require.Equal(t, "v-1", b.claimAt(t, "first", t0))
	require.Equal(t, "", b.claimAt(t, "second", t0.Add(lease-time.Second)), "the lease still holds")
	require.Equal(t, "v-1", b.claimAt(t, "second", t0.Add(lease)), "an expired lease frees the task")

	got, err := b.a.ListTasks(context.Background(), app.TaskQuery{Tenant: "default", Limit: 10})
	require.NoError(t, err)
	require.Len(t, got, 1)
	require.Equal(t, "second", got[0].AgentID)
	require.True(t, got[0].LeaseExpiresAt.Equal(t0.Add(2*lease)))

	events := assignedEvents(t, b.pool)
	require.Len(t, events, 2)
	require.Equal(t, []string{"first", "second"}, []string{events[0].AgentId, events[1].AgentId})
	require.True(t, events[1].AssignedAt.AsTime().Equal(t0.Add(lease)))
}

// TestOrgUnitTree: seed 004: the center, its groups; a unit's parent
// must exist and the tree has no cycle; a leader oversees the units it
// leads and those below.
func TestOrgUnitTree(t *testing.T) {
	b := setup(t)
	ctx := context.Background()
	up := func(id, parent, leader string) error {
		u := task.OrgUnit{ID: id, Name: id, ParentID: parent, LeaderID: leader}
		_, err := b.a.UpsertOrgUnit(ctx, u)
		return err
	}
	require.NoError(t, up("center", "", "director"))
	require.NoError(t, up("group-1", "center", "leader-1"))
	require.NoError(t, up("group-2", "center", ""))
	require.NoError(t, up("team-2a", "group-2", ""))
	require.ErrorIs(t, up("x", "missing", ""), task.ErrParentNotFound)
	require.ErrorIs(t, up("center", "team-2a", ""), task.ErrCycle, "the center cannot move below its own team")

	units, err := b.a.ListOrgUnits(ctx, "default")
	require.NoError(t, err)
	var ids []string
	for _, u := range units {
		ids = append(ids, u.ID)
	}
	require.Equal(t, []string{"center", "group-1", "group-2", "team-2a"}, ids, "parents first")

	b.agent(t, task.Agent{ID: "director", Name: "d", Role: task.RoleDirector, Groups: []string{"center"}})
	b.agent(t, task.Agent{ID: "leader-1", Name: "l", Role: task.RoleLeader, Groups: []string{"group-1"}})
	groups, err := b.a.LeaderGroups(ctx, "default", "director")
	require.NoError(t, err)
	require.ElementsMatch(t, []string{"center", "group-1", "group-2", "team-2a"}, groups, "a director oversees the whole tree")
	groups, err = b.a.LeaderGroups(ctx, "default", "leader-1")
	require.NoError(t, err)
	require.Equal(t, []string{"group-1"}, groups)
}

func assignedEvents(t *testing.T, pool *pgxpool.Pool) []*eventsv1.VisitAssigned {
	t.Helper()
	return events(t, pool, stream.SubjectVisitAssigned, func() *eventsv1.VisitAssigned { return &eventsv1.VisitAssigned{} })
}
