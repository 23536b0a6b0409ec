package store_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	typesv1 "github.com/huifang/huifang/proto/huifang/types/v1"

	"github.com/huifang/huifang/pkg/outbox"
	"github.com/huifang/huifang/services/dispatch/internal/store"
	"github.com/huifang/huifang/services/dispatch/internal/storetest"
	"github.com/huifang/huifang/services/dispatch/internal/task"
)

var t0 = time.Date(2025, 3, 10, 9, 0, 0, 0, time.UTC)

const lease = 15 * time.Minute

type bundle struct {
	pool *pgxpool.Pool
}

func setup(t *testing.T) bundle {
	t.Helper()
	return bundle{pool: storetest.Pool(t)}
}

// newTask builds an open task due at t0 with a deadline 48 hours later (seed 003).
func newTask(visit string, opts ...func(*task.Task)) task.Task {
	t := task.Task{
		ID: outbox.NewEventID(), Tenant: "default", VisitID: visit, Channel: typesv1.Channel_CHANNEL_PHONE,
		DueAt: t0, Deadline: t0.Add(48 * time.Hour), Status: task.StatusOpen, CreatedAt: t0,
	}
	for _, o := range opts {
		o(&t)
	}
	return t
}

func (b bundle) add(t *testing.T, tasks ...task.Task) {
	t.Helper()
	err := pgx.BeginFunc(context.Background(), b.pool, func(tx pgx.Tx) error {
		for _, x := range tasks {
			if _, err := store.CreateTask(context.Background(), tx, x); err != nil {
				return err
			}
		}
		return nil
	})
	require.NoError(t, err)
}

func (b bundle) agent(t *testing.T, id string, groups ...string) {
	t.Helper()
	a := task.Agent{ID: id, Name: "agent " + id, Groups: groups}
	require.NoError(t, task.NormalizeAgent(&a))
	_, err := store.UpsertAgent(context.Background(), b.pool, a, t0)
	require.NoError(t, err)
}

// claimIn makes one claim as app.Claim does, without its event: the
// agent's eligibility (task.Eligibility.Err), then the claim query.
func (b bundle) claimIn(tenant, agent string, now time.Time, lease time.Duration, routing store.Routing) (task.Task, bool, error) {
	ctx := context.Background()
	var (
		got   task.Task
		found bool
	)
	err := pgx.BeginFunc(ctx, b.pool, func(tx pgx.Tx) error {
		a, rank, eligible, err := store.Eligibility(ctx, tx, tenant, agent, now, routing.DefaultCapacity)
		if err != nil {
			return err
		}
		if err := eligible.Err(); err != nil {
			return err
		}
		got, found, err = store.Claim(ctx, tx, store.ClaimRequest{Tenant: tenant, Agent: a, Rank: rank, Now: now, Lease: lease, Routing: routing})
		return err
	})
	return got, found, err
}

// claim claims for agent at now and returns the visit id, "" when none.
func (b bundle) claim(t *testing.T, agent string, now time.Time) string {
	t.Helper()
	got, found, err := b.claimIn("default", agent, now, lease, store.Routing{})
	require.NoError(t, err)
	if !found {
		return ""
	}
	require.Equal(t, task.StatusClaimed, got.Status)
	require.Equal(t, agent, got.AgentID)
	require.True(t, got.LeaseExpiresAt.Equal(now.Add(lease)), "lease expires at %s", got.LeaseExpiresAt)
	return got.VisitID
}

func TestCreateTaskOncePerVisit(t *testing.T) {
	b := setup(t)
	ctx := context.Background()
	first := newTask("v-1", func(x *task.Task) {
		x.Customer = task.Customer{ID: "c-1", NameMasked: "王芳", PhoneMasked: "13800000000", HasPhone: true}
	})
	var created []bool
	for _, x := range []task.Task{first, newTask("v-1"), newTask("v-1", func(x *task.Task) { x.Tenant = "other" })} {
		err := pgx.BeginFunc(ctx, b.pool, func(tx pgx.Tx) error {
			ok, err := store.CreateTask(ctx, tx, x)
			created = append(created, ok)
			return err
		})
		require.NoError(t, err)
	}
	require.Equal(t, []bool{true, false, true}, created, "the same visit makes one task per tenant")

	got, err := store.ListTasks(ctx, b.pool, store.TaskFilter{Tenant: "default"}, store.TaskCursor{}, 10)
	require.NoError(t, err)
	require.Len(t, got, 1)
	require.Equal(t, first.ID, got[0].ID)
	require.Equal(t, first.Customer, got[0].Customer, "customer snapshot kept")
	require.Equal(t, typesv1.Channel_CHANNEL_PHONE, got[0].Channel)
	require.True(t, got[0].Deadline.Equal(first.Deadline))
}

func TestClaimRouting(t *testing.T) {
	b := setup(t)
	b.agent(t, "plain")
	b.agent(t, "vip-agent", "vip")
	// The vip task is the most urgent, yet only a vip agent may take it.
	b.add(t,
		newTask("vip-visit", func(x *task.Task) { x.Group = "vip"; x.Deadline = t0.Add(time.Hour) }),
		newTask("any-visit", func(x *task.Task) { x.Deadline = t0.Add(2 * time.Hour) }),
		newTask("complaints-visit", func(x *task.Task) { x.Group = "complaints" }),
	)
	require.Equal(t, "any-visit", b.claim(t, "plain", t0))
	require.Equal(t, "", b.claim(t, "plain", t0), "the vip and complaints tasks are not for a default agent")
	require.Equal(t, "vip-visit", b.claim(t, "vip-agent", t0))
	require.Equal(t, "", b.claim(t, "vip-agent", t0))
}

func TestClaimOrder(t *testing.T) {
	b := setup(t)
	b.agent(t, "a-1")
	b.add(t,
		newTask("no-deadline", func(x *task.Task) { x.Deadline = time.Time{}; x.DueAt = t0.Add(-time.Hour) }),
		newTask("late", func(x *task.Task) { x.Deadline = t0.Add(72 * time.Hour) }),
		newTask("soon-due-later", func(x *task.Task) { x.Deadline = t0.Add(24 * time.Hour); x.DueAt = t0.Add(time.Minute) }),
		newTask("soon-due-first", func(x *task.Task) { x.Deadline = t0.Add(24 * time.Hour) }),
		newTask("soonest", func(x *task.Task) { x.Deadline = t0.Add(3 * time.Hour) }),
	)
	want := []string{"soonest", "soon-due-first", "soon-due-later", "late", "no-deadline"}

	listed, err := store.ListTasks(context.Background(), b.pool, store.TaskFilter{Tenant: "default"}, store.TaskCursor{}, 10)
	require.NoError(t, err)
	require.Equal(t, want, visits(listed), "listing is most urgent first")

	var got []string
	at := t0.Add(time.Minute) // every task is available by then
	for v := b.claim(t, "a-1", at); v != ""; v = b.claim(t, "a-1", at) {
		got = append(got, v)
	}
	require.Equal(t, want, got, "claims go by deadline, then due time; no deadline last")
}

func TestListTasksPagesAndFilters(t *testing.T) {
	b := setup(t)
	ctx := context.Background()
	b.agent(t, "a-1")
	var all []task.Task
	for i := range 7 {
		all = append(all, newTask(fmt.Sprintf("v-%d", i), func(x *task.Task) {
			if i%3 == 0 {
				x.Deadline = time.Time{} // no deadline: sorts last, across pages too
			} else {
				x.Deadline = t0.Add(time.Duration(i%2) * time.Hour)
			}
		}))
	}
	b.add(t, all...)
	require.NotEmpty(t, b.claim(t, "a-1", t0))

	full, err := store.ListTasks(ctx, b.pool, store.TaskFilter{Tenant: "default"}, store.TaskCursor{}, 100)
	require.NoError(t, err)
	require.Len(t, full, 7)
	var paged []task.Task
	cur := store.TaskCursor{}
	for range 10 {
		page, err := store.ListTasks(ctx, b.pool, store.TaskFilter{Tenant: "default"}, cur, 2)
		require.NoError(t, err)
		paged = append(paged, page...)
		if len(page) < 2 {
			break
		}
		cur = store.CursorOf(page[len(page)-1])
	}
	require.Equal(t, visits(full), visits(paged), "pages of 2 give the same order as one page")

	claimed, err := store.ListTasks(ctx, b.pool, store.TaskFilter{Tenant: "default", Status: task.StatusClaimed}, store.TaskCursor{}, 100)
	require.NoError(t, err)
	require.Len(t, claimed, 1)
	mine, err := store.ListTasks(ctx, b.pool, store.TaskFilter{Tenant: "default", AgentID: "a-1"}, store.TaskCursor{}, 100)
	require.NoError(t, err)
	require.Equal(t, visits(claimed), visits(mine))
	open, err := store.ListTasks(ctx, b.pool, store.TaskFilter{Tenant: "default", Status: task.StatusOpen}, store.TaskCursor{}, 100)
	require.NoError(t, err)
	require.Len(t, open, 6)
}

func TestClaimUnknownAgent(t *testing.T) {
	b := setup(t)
	b.agent(t, "a-1")
	b.add(t, newTask("v-1"))
	_, _, err := b.claimIn("default", "nobody", t0, lease, store.Routing{})
	require.ErrorIs(t, err, store.ErrAgentNotFound)
	_, _, err = b.claimIn("other-tenant", "a-1", t0, lease, store.Routing{})
	require.ErrorIs(t, err, store.ErrAgentNotFound, "agents belong to one tenant")
	require.Equal(t, "v-1", b.claim(t, "a-1", t0), "the failed claims took nothing")
}

func TestClaimStaysInTenant(t *testing.T) {
	b := setup(t)
	b.agent(t, "a-1")
	b.add(t, newTask("other-visit", func(x *task.Task) { x.Tenant = "other"; x.Deadline = t0 }))
	require.Equal(t, "", b.claim(t, "a-1", t0))
}

func TestUpsertAndListAgents(t *testing.T) {
	b := setup(t)
	ctx := context.Background()
	b.agent(t, "a-2")
	b.agent(t, "a-1", "vip")
	b.agent(t, "a-3")
	updated := task.Agent{ID: "a-1", Name: "李娜", Groups: []string{"vip", "complaints"}, OrgUnit: "north"}
	require.NoError(t, task.NormalizeAgent(&updated))
	got, err := store.UpsertAgent(ctx, b.pool, updated, t0.Add(time.Hour))
	require.NoError(t, err)
	require.Equal(t, updated, got)

	first, err := store.ListAgents(ctx, b.pool, "default", "", 2, "")
	require.NoError(t, err)
	a2 := task.Agent{ID: "a-2", Name: "agent a-2"}
	require.NoError(t, task.NormalizeAgent(&a2))
	require.Equal(t, []task.Agent{updated, a2}, first)
	rest, err := store.ListAgents(ctx, b.pool, "default", "", 2, "a-2")
	require.NoError(t, err)
	require.Len(t, rest, 1)
	require.Equal(t, "a-3", rest[0].ID)
	none, err := store.ListAgents(ctx, b.pool, "other", "", 2, "")
	require.NoError(t, err)
	require.Empty(t, none)
}

func visits(tasks []task.Task) []string {
	out := make([]string, len(tasks))
	for i, x := range tasks {
		out[i] = x.VisitID
	}
	return out
}

// SaveTasks writes each task as SaveTask does, in one statement: every
// field that changes after creation, NULLs included; other tasks stay.
func TestSaveTasksWritesEachAsSaveTask(t *testing.T) {
	b := setup(t)
	ctx := context.Background()
	one, two, other := newTask("v-1"), newTask("v-2"), newTask("v-3")
	b.add(t, one, two, other)
	one.Status, one.AgentID, one.LeaseExpiresAt, one.LeaseToken, one.ClaimRequestID = task.StatusClaimed, "a-1", t0.Add(lease), 7, "req-1"
	one.Attempts, one.LastDisposition, one.AvailableAt = 2, typesv1.Disposition_DISPOSITION_NO_ANSWER, t0.Add(time.Hour)
	one.Customer = task.Customer{ID: "c-1", Tier: "key"}
	one.TierRank, one.PrimaryOwner, one.BackupOwner, one.Language = 0, "s-1", "s-2", "zh"
	two.Customer, two.TierRank, two.AvailableAt = task.Customer{}, 3, t0.Add(2*time.Hour)
	require.NoError(t, store.SaveTasks(ctx, b.pool, []task.Task{one, two}, t0.Add(time.Minute)))
	for _, want := range []task.Task{one, two} {
		got, err := store.Task(ctx, b.pool, "default", want.ID)
		require.NoError(t, err)
		require.Equal(t, want.Status, got.Status)
		require.Equal(t, want.AgentID, got.AgentID)
		require.True(t, want.LeaseExpiresAt.Equal(got.LeaseExpiresAt), "%s: lease %s", want.VisitID, got.LeaseExpiresAt)
		require.True(t, want.AvailableAt.Equal(got.AvailableAt), "%s: available %s", want.VisitID, got.AvailableAt)
		require.Equal(t, want.Attempts, got.Attempts)
		require.Equal(t, want.LastDisposition, got.LastDisposition)
		require.Equal(t, want.Customer.ID, got.Customer.ID)
		require.Equal(t, want.Customer.Tier, got.Customer.Tier)
		require.Equal(t, want.TierRank, got.TierRank)
		require.Equal(t, want.PrimaryOwner, got.PrimaryOwner)
		require.Equal(t, want.BackupOwner, got.BackupOwner)
		require.Equal(t, want.Language, got.Language)
		require.Equal(t, want.LeaseToken, got.LeaseToken)
		require.Equal(t, want.ClaimRequestID, got.ClaimRequestID)
	}
	got, err := store.Task(ctx, b.pool, "default", other.ID)
	require.NoError(t, err)
	require.Equal(t, task.StatusOpen, got.Status)
	require.Empty(t, got.AgentID)
	require.Zero(t, got.Attempts)
}

// CreateTasks writes the details of exactly the tasks it makes (task_details
// has no foreign key to check it since migration 012): none for a second
// task of a visit, in the same call or a later one, nor for a cancelled
// visit, and the first task's details stay as they were.
func TestCreateTasksDetailsOnlyOfTasksMade(t *testing.T) {
	b := setup(t)
	ctx := context.Background()
	_, err := b.pool.Exec(ctx, `INSERT INTO cancelled_visits (tenant_id, visit_id, reason, cancelled_at) VALUES ('default', 'v-4', 'test', now())`)
	require.NoError(t, err)
	details := func(service string) store.TaskDetails {
		return store.TaskDetails{ServiceID: service, CompletedAt: t0.Add(-time.Hour), ComplaintID: "k-" + service, Late: service == "s-2"}
	}
	v1, v2 := newTask("v-1"), newTask("v-2")
	create := func(ts ...store.NewTask) map[string]bool {
		t.Helper()
		var made map[string]bool
		require.NoError(t, pgx.BeginFunc(ctx, b.pool, func(tx pgx.Tx) error {
			var err error
			made, err = store.CreateTasks(ctx, tx, ts)
			return err
		}))
		return made
	}
	require.Equal(t, map[string]bool{v1.ID: true, v2.ID: true},
		create(store.NewTask{Task: v1, Details: details("s-1")}, store.NewTask{Task: v2, Details: details("s-2")},
			store.NewTask{Task: newTask("v-1"), Details: details("s-9")}))
	v3 := newTask("v-3")
	require.Equal(t, map[string]bool{v3.ID: true},
		create(store.NewTask{Task: newTask("v-1"), Details: details("s-8")}, store.NewTask{Task: v3, Details: details("s-3")},
			store.NewTask{Task: newTask("v-4"), Details: details("s-4")}))

	var orphans, rows int
	require.NoError(t, b.pool.QueryRow(ctx, `SELECT count(*) FILTER (WHERE t.id IS NULL), count(*) FROM task_details d
LEFT JOIN tasks t ON t.id = d.task_id AND t.tenant_id = d.tenant_id`).Scan(&orphans, &rows))
	require.Equal(t, 0, orphans, "every row of task_details has its task")
	require.Equal(t, 3, rows)
	for id, want := range map[string]store.TaskDetails{v1.ID: details("s-1"), v2.ID: details("s-2"), v3.ID: details("s-3")} {
		got, err := store.DetailsOfTask(ctx, b.pool, id)
		require.NoError(t, err)
		require.Equal(t, want.ServiceID, got.ServiceID)
		require.Equal(t, want.ComplaintID, got.ComplaintID)
		require.Equal(t, want.Late, got.Late)
		require.True(t, want.CompletedAt.Equal(got.CompletedAt))
	}
}
