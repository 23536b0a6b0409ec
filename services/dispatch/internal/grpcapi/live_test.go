package grpcapi_test

import (
	"context"
	"fmt"
	"io"
	"net"
	"slices"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	dispatchv1 "github.com/huifang/huifang/proto/huifang/dispatch/v1"
	eventsv1 "github.com/huifang/huifang/proto/huifang/events/v1"
	typesv1 "github.com/huifang/huifang/proto/huifang/types/v1"
	watchv1 "github.com/huifang/huifang/proto/huifang/watch/v1"

	"github.com/huifang/huifang/pkg/auth"
	"github.com/huifang/huifang/pkg/grpcserver"
	"github.com/huifang/huifang/pkg/issuer"
	"github.com/huifang/huifang/pkg/outbox"
	"github.com/huifang/huifang/pkg/servicetest"
	"github.com/huifang/huifang/pkg/stream"
	"github.com/huifang/huifang/pkg/watch"
	"github.com/huifang/huifang/services/dispatch/internal/app"
	"github.com/huifang/huifang/services/dispatch/internal/consumer"
	"github.com/huifang/huifang/services/dispatch/internal/grpcapi"
	"github.com/huifang/huifang/services/dispatch/internal/store"
	"github.com/huifang/huifang/services/dispatch/internal/storetest"
	"github.com/huifang/huifang/services/dispatch/internal/task"
)

// floor is a call center served as the service serves it: the guard with
// real tokens (stream calls authorized like unary ones), the watches' hub
// on an embedded NATS, the outbox relay; serve starts (again) the gRPC
// server, as a restart of the service does.
type floor struct {
	pool   *pgxpool.Pool
	js     jetstream.JetStream
	clock  *storetest.Clock
	app    *app.App
	guard  *auth.Guard
	is     *issuer.Issuer
	limits watch.Limits
}

func newFloor(t *testing.T, limits watch.Limits) *floor {
	t.Helper()
	pool := storetest.Pool(t)
	js := servicetest.JetStream(t)
	log := servicetest.Logger()
	relay := outbox.NewRelay(pool, js, log, storetest.Schema)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- relay.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	clock := storetest.NewClock(t0)
	guard, is := servicetest.Guard(t, "dispatch")
	f := &floor{pool: pool, js: js, clock: clock, guard: guard, is: is, limits: limits,
		app: &app.App{DB: pool, Relay: relay, Now: clock.Now, Log: log, Lease: lease, Waker: &app.Waker{}, Poll: 20 * time.Millisecond,
			SLAWarn: 6 * time.Hour}}
	return f
}

// serve starts a gRPC server (a new hub of watches) and returns a client and
// a stop that drains the watches and stops the server as Runtime.Run does.
func (f *floor) serve(t *testing.T) (dispatchv1.DispatchServiceClient, func()) {
	t.Helper()
	hub := watch.NewHub(f.js, servicetest.Logger(), f.limits)
	srv := grpcserver.New(servicetest.Logger(), "", "", grpc.ChainUnaryInterceptor(f.guard.Unary), grpc.ChainStreamInterceptor(f.guard.Stream))
	dispatchv1.RegisterDispatchServiceServer(srv.GRPC, &grpcapi.Server{App: f.app, Watches: hub,
		QueueCoalesce: 50 * time.Millisecond, WallboardCoalesce: 50 * time.Millisecond})
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	go func() { _ = srv.GRPC.Serve(lis) }()
	conn, err := grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	require.NoError(t, err)
	stopped := false
	stop := func() {
		if stopped {
			return
		}
		stopped = true
		hub.Drain()
		srv.GRPC.GracefulStop()
		_ = conn.Close()
	}
	t.Cleanup(stop)
	return dispatchv1.NewDispatchServiceClient(conn), stop
}

// as is a context carrying a token of tenant default.
func (f *floor) as(t *testing.T, agentID string, role auth.Role) context.Context {
	t.Helper()
	tok, err := f.is.Mint(issuer.Token{Subject: "user-" + agentID, Claims: auth.Claims{Tenant: "default", Roles: []string{string(role)}, AgentID: agentID}})
	require.NoError(t, err)
	return metadata.AppendToOutgoingContext(context.Background(), "authorization", "Bearer "+tok)
}

// org: unit g-1 led by lead, g-2 led by lead-2; agents a-1, a-2, a-3 and
// lead in g-1, b-1 and lead-2 in g-2, an inactive x in g-1, the director.
func (f *floor) org(t *testing.T) {
	t.Helper()
	ctx := context.Background()
	for _, u := range []task.OrgUnit{{ID: "center", Name: "center", LeaderID: "dir"}, {ID: "g-1", Name: "一组", ParentID: "center", LeaderID: "lead"},
		{ID: "g-2", Name: "二组", ParentID: "center", LeaderID: "lead-2"}} {
		_, err := f.app.UpsertOrgUnit(ctx, u)
		require.NoError(t, err)
	}
	for _, a := range []task.Agent{{ID: "a-1", Groups: []string{"g-1"}}, {ID: "a-2", Groups: []string{"g-1"}}, {ID: "a-3", Groups: []string{"g-1"}},
		{ID: "lead", Groups: []string{"g-1"}, Role: task.RoleLeader}, {ID: "x", Groups: []string{"g-1"}, Inactive: true},
		{ID: "b-1", Groups: []string{"g-2"}}, {ID: "lead-2", Groups: []string{"g-2"}, Role: task.RoleLeader},
		{ID: "dir", Groups: []string{"center"}, Role: task.RoleDirector}} {
		a.Name = "agent " + a.ID
		_, err := f.app.UpsertAgent(ctx, a)
		require.NoError(t, err)
	}
}

// seed is one task as a test sets it up: created, then given the state.
type seed struct {
	id, group             string
	status, agent         string
	available, deadline   time.Time
	lease, updated        time.Time
	severity              typesv1.Severity
	automatic, noDeadline bool
}

func (f *floor) seed(t *testing.T, s seed) {
	t.Helper()
	ctx := context.Background()
	require.NoError(t, pgx.BeginFunc(ctx, f.pool, func(tx pgx.Tx) error {
		_, err := store.CreateTask(ctx, tx, task.Task{ID: s.id, Tenant: "default", VisitID: "v-" + s.id, Group: s.group,
			Customer: task.Customer{ID: "c-" + s.id, NameMasked: "王*"}, Channel: typesv1.Channel_CHANNEL_PHONE,
			DueAt: t0.Add(-3 * time.Hour), Deadline: s.deadline, Status: task.StatusOpen, CreatedAt: t0.Add(-3 * time.Hour), Severity: s.severity})
		if err != nil {
			return err
		}
		var lease *time.Time
		if !s.lease.IsZero() {
			lease = &s.lease
		}
		var deadline *time.Time
		if !s.noDeadline {
			deadline = &s.deadline
		}
		if s.updated.IsZero() {
			s.updated = t0.Add(-3 * time.Hour)
		}
		if s.status == "" {
			s.status = task.StatusOpen
		}
		_, err = tx.Exec(ctx, `UPDATE tasks SET status = $2, agent_id = $3, available_at = $4, lease_expires_at = $5, updated_at = $6,
  automatic = $7, deadline = $8, lease_token = CASE WHEN $3 = '' THEN 0 ELSE 1 END WHERE id = $1`,
			s.id, s.status, s.agent, s.available, lease, s.updated, s.automatic, deadline)
		return err
	}))
}

// TestAgentPresence: an agent sets its own presence (a break with a reason
// code); on a break or offline ClaimNextTask is refused FAILED_PRECONDITION
// and takes nothing, available again it claims; a leader may set an agent
// of its groups offline only (nothing else, no agent of another group), an
// agent nobody's but its own; the changes are kept with who made them and
// when (time in state), and ListAgents shows the presence.
func TestAgentPresence(t *testing.T) {
	f := newFloor(t, watch.Limits{})
	f.org(t)
	client, _ := f.serve(t)
	f.seed(t, seed{id: "t-1", group: "g-1", available: t0.Add(-time.Hour), deadline: t0.Add(time.Hour)})
	a1, a2, lead, lead2 := f.as(t, "a-1", auth.Agent), f.as(t, "a-2", auth.Agent), f.as(t, "lead", auth.Leader), f.as(t, "lead-2", auth.Leader)

	resp, err := client.SetAgentPresence(a1, &dispatchv1.SetAgentPresenceRequest{Presence: dispatchv1.Presence_PRESENCE_ON_BREAK, Reason: "lunch"})
	require.NoError(t, err)
	require.Equal(t, dispatchv1.Presence_PRESENCE_ON_BREAK, resp.GetAgent().GetPresence())
	require.Equal(t, "lunch", resp.GetAgent().GetPresenceReason())
	require.Equal(t, t0, resp.GetAgent().GetPresenceSince().AsTime())

	_, err = client.ClaimNextTask(a1, &dispatchv1.ClaimNextTaskRequest{})
	require.Equal(t, codes.FailedPrecondition, status.Code(err))
	require.Contains(t, status.Convert(err).Message(), "on a break")

	for name, c := range map[string]struct {
		ctx   context.Context
		req   *dispatchv1.SetAgentPresenceRequest
		code  codes.Code
		field string
	}{
		"no presence":            {a1, &dispatchv1.SetAgentPresenceRequest{}, codes.InvalidArgument, "presence"},
		"a bad reason code":      {a1, &dispatchv1.SetAgentPresenceRequest{Presence: dispatchv1.Presence_PRESENCE_ON_BREAK, Reason: "Lunch break!"}, codes.InvalidArgument, "reason"},
		"a reason when offline":  {a1, &dispatchv1.SetAgentPresenceRequest{Presence: dispatchv1.Presence_PRESENCE_OFFLINE, Reason: "lunch"}, codes.InvalidArgument, "reason"},
		"an agent, another":      {a1, &dispatchv1.SetAgentPresenceRequest{AgentId: "a-2", Presence: dispatchv1.Presence_PRESENCE_OFFLINE}, codes.PermissionDenied, ""},
		"a leader, not offline":  {lead, &dispatchv1.SetAgentPresenceRequest{AgentId: "a-2", Presence: dispatchv1.Presence_PRESENCE_ON_BREAK}, codes.PermissionDenied, ""},
		"a leader, other groups": {lead2, &dispatchv1.SetAgentPresenceRequest{AgentId: "a-2", Presence: dispatchv1.Presence_PRESENCE_OFFLINE}, codes.PermissionDenied, ""},
		"an unknown agent":       {lead, &dispatchv1.SetAgentPresenceRequest{AgentId: "nobody", Presence: dispatchv1.Presence_PRESENCE_OFFLINE}, codes.NotFound, ""},
	} {
		_, err := client.SetAgentPresence(c.ctx, c.req)
		require.Equal(t, c.code, status.Code(err), "%s: %v", name, err)
		if c.field != "" {
			requireViolations(t, err, c.field)
		}
	}

	f.clock.Advance(time.Minute)
	resp, err = client.SetAgentPresence(lead, &dispatchv1.SetAgentPresenceRequest{AgentId: "a-2", Presence: dispatchv1.Presence_PRESENCE_OFFLINE})
	require.NoError(t, err)
	require.Equal(t, dispatchv1.Presence_PRESENCE_OFFLINE, resp.GetAgent().GetPresence())
	_, err = client.ClaimNextTask(a2, &dispatchv1.ClaimNextTaskRequest{})
	require.Equal(t, codes.FailedPrecondition, status.Code(err))
	require.Contains(t, status.Convert(err).Message(), "offline")

	list, err := client.ListAgents(lead, &dispatchv1.ListAgentsRequest{Group: "g-1"})
	require.NoError(t, err)
	presence := map[string]dispatchv1.Presence{}
	for _, a := range list.GetAgents() {
		presence[a.GetId()] = a.GetPresence()
	}
	require.Equal(t, map[string]dispatchv1.Presence{"a-1": dispatchv1.Presence_PRESENCE_ON_BREAK, "a-2": dispatchv1.Presence_PRESENCE_OFFLINE,
		"a-3": dispatchv1.Presence_PRESENCE_AVAILABLE, "lead": dispatchv1.Presence_PRESENCE_AVAILABLE, "x": dispatchv1.Presence_PRESENCE_AVAILABLE}, presence)

	f.clock.Advance(29 * time.Minute)
	_, err = client.SetAgentPresence(a1, &dispatchv1.SetAgentPresenceRequest{Presence: dispatchv1.Presence_PRESENCE_AVAILABLE})
	require.NoError(t, err)
	claimed, err := client.ClaimNextTask(a1, &dispatchv1.ClaimNextTaskRequest{})
	require.NoError(t, err)
	require.Equal(t, "t-1", claimed.GetTask().GetId())

	ctx := context.Background()
	history, err := store.PresenceHistory(ctx, f.pool, "default", "a-1", t0.Add(-time.Hour), 10)
	require.NoError(t, err)
	require.Equal(t, []store.PresenceChange{
		{Presence: task.Presence{State: task.PresenceOnBreak, Reason: "lunch", Since: t0}, SetBy: "a-1"},
		{Presence: task.Presence{State: task.PresenceAvailable, Since: t0.Add(30 * time.Minute)}, SetBy: "a-1"},
	}, history, "a 30-minute lunch")
	history, err = store.PresenceHistory(ctx, f.pool, "default", "a-2", t0.Add(-time.Hour), 10)
	require.NoError(t, err)
	require.Equal(t, []store.PresenceChange{{Presence: task.Presence{State: task.PresenceOffline, Since: t0.Add(time.Minute)}, SetBy: "lead"}}, history)
}

// wallboardSeed is the hand-computed setup of TestWallboard at t0 (09:00
// UTC), SLA_WARN 6 h:
//
//	g-1  t-1 open, waiting 30 min, deadline +1 h (near), general
//	     t-2 open, waiting 2 h (the oldest), deadline -1 h (past), urgent
//	     t-3 open, available in 3 h (a retry: scheduled), deadline +48 h
//	     t-4 claimed by a-1 on a live lease (in progress), deadline +2 h (near)
//	     t-5 claimed by a-2 on a lease that ran out: waiting 1 h, deadline +24 h, urgent
//	     t-6 done at 08:00 (today), t-7 done at 23:00 yesterday (not today)
//	     t-8 unreachable at 07:00 (closed today)
//	     t-9 an automatic SMS (not counted)
//	g-2  t-10 open, waiting 10 min, no deadline
//
// agents of g-1: a-1 available holding t-4 (on a call), a-2 on a break,
// a-3 offline, lead available and free, x inactive (not shown); of g-2:
// b-1 and lead-2 available.
func (f *floor) wallboardSeed(t *testing.T) {
	t.Helper()
	f.org(t)
	h := time.Hour
	for _, s := range []seed{
		{id: "t-1", group: "g-1", available: t0.Add(-30 * time.Minute), deadline: t0.Add(h), severity: typesv1.Severity_SEVERITY_GENERAL},
		{id: "t-2", group: "g-1", available: t0.Add(-2 * h), deadline: t0.Add(-h), severity: typesv1.Severity_SEVERITY_URGENT},
		{id: "t-3", group: "g-1", available: t0.Add(3 * h), deadline: t0.Add(48 * h)},
		{id: "t-4", group: "g-1", status: task.StatusClaimed, agent: "a-1", available: t0.Add(-h), lease: t0.Add(10 * time.Minute), deadline: t0.Add(2 * h)},
		{id: "t-5", group: "g-1", status: task.StatusClaimed, agent: "a-2", available: t0.Add(-h), lease: t0.Add(-time.Minute), deadline: t0.Add(24 * h),
			severity: typesv1.Severity_SEVERITY_URGENT},
		{id: "t-6", group: "g-1", status: task.StatusDone, agent: "a-1", available: t0.Add(-3 * h), deadline: t0.Add(h), updated: t0.Add(-h)},
		{id: "t-7", group: "g-1", status: task.StatusDone, agent: "a-1", available: t0.Add(-3 * h), deadline: t0.Add(h), updated: t0.Add(-10 * h)},
		{id: "t-8", group: "g-1", status: task.StatusUnreachable, available: t0.Add(-3 * h), deadline: t0.Add(h), updated: t0.Add(-2 * h)},
		{id: "t-9", group: "g-1", available: t0.Add(-h), deadline: t0.Add(h), automatic: true},
		{id: "t-10", group: "g-2", available: t0.Add(-10 * time.Minute), noDeadline: true},
	} {
		f.seed(t, s)
	}
	ctx := context.Background()
	for id, p := range map[string]string{"a-2": task.PresenceOnBreak, "a-3": task.PresenceOffline} {
		_, err := f.app.SetPresence(ctx, app.PresenceCall{Tenant: "default", AgentID: id, State: p})
		require.NoError(t, err)
	}
}

// TestWallboard: the figures of a hand-computed floor, for the leader of
// g-1 (its groups only), the director (every group, and the total); a
// leader naming another group and an agent are refused.
func TestWallboard(t *testing.T) {
	f := newFloor(t, watch.Limits{})
	f.wallboardSeed(t)
	client, _ := f.serve(t)
	lead, dir := f.as(t, "lead", auth.Leader), f.as(t, "dir", auth.Director)

	resp, err := client.GetWallboard(lead, &dispatchv1.GetWallboardRequest{})
	require.NoError(t, err)
	w := resp.GetWallboard()
	require.Equal(t, t0, w.GetAt().AsTime())
	require.Len(t, w.GetGroups(), 1)
	g1 := w.GetGroups()[0]
	require.Equal(t, "g-1", g1.GetGroup())
	require.Equal(t, int32(3), g1.GetWaiting(), "t-1, t-2 and t-5")
	require.Equal(t, []*dispatchv1.SeverityCount{{Severity: typesv1.Severity_SEVERITY_URGENT, Count: 2}, {Severity: typesv1.Severity_SEVERITY_GENERAL, Count: 1}},
		g1.GetWaitingBySeverity())
	require.Equal(t, 2*time.Hour, g1.GetOldestWaiting().AsDuration())
	require.Equal(t, int32(1), g1.GetScheduled())
	require.Equal(t, int32(1), g1.GetInProgress())
	require.Equal(t, int32(2), g1.GetNearDeadline(), "t-1 and t-4")
	require.Equal(t, int32(1), g1.GetPastDeadline())
	require.Equal(t, int32(1), g1.GetDoneToday())
	require.Equal(t, int32(1), g1.GetClosedToday())
	require.Equal(t, &dispatchv1.AgentCounts{Available: 1, OnCall: 1, OnBreak: 1, Offline: 1}, g1.GetAgents())
	var states []string
	for _, a := range g1.GetAgentStates() {
		states = append(states, a.GetAgentId()+":"+a.GetPresence().String())
	}
	require.Equal(t, []string{"a-1:PRESENCE_AVAILABLE", "a-2:PRESENCE_ON_BREAK", "a-3:PRESENCE_OFFLINE", "lead:PRESENCE_AVAILABLE"}, states)
	require.Equal(t, int32(1), g1.GetAgentStates()[0].GetTasksHeld())
	require.Equal(t, t0, g1.GetAgentStates()[1].GetSince().AsTime())

	// "Today" in Asia/Shanghai began at 16:00 UTC the day before: t-7 (23:00) too.
	resp, err = client.GetWallboard(lead, &dispatchv1.GetWallboardRequest{TimeZone: "Asia/Shanghai"})
	require.NoError(t, err)
	require.Equal(t, int32(2), resp.GetWallboard().GetGroups()[0].GetDoneToday())
	// A margin of 90 minutes: only t-1 is near.
	resp, err = client.GetWallboard(lead, &dispatchv1.GetWallboardRequest{Within: durationpb.New(90 * time.Minute)})
	require.NoError(t, err)
	require.Equal(t, int32(1), resp.GetWallboard().GetGroups()[0].GetNearDeadline())

	resp, err = client.GetWallboard(dir, &dispatchv1.GetWallboardRequest{})
	require.NoError(t, err)
	w = resp.GetWallboard()
	require.Len(t, w.GetGroups(), 3, "center (the director's own group, agents only), g-1, g-2")
	require.Equal(t, "g-2", w.GetGroups()[2].GetGroup())
	require.Equal(t, int32(1), w.GetGroups()[2].GetWaiting())
	require.Equal(t, &dispatchv1.AgentCounts{Available: 2}, w.GetGroups()[2].GetAgents())
	require.Equal(t, int32(4), w.GetTotal().GetWaiting())
	require.Equal(t, int32(3), w.GetTotal().GetPastDeadline()+w.GetTotal().GetNearDeadline())
	require.Equal(t, 2*time.Hour, w.GetTotal().GetOldestWaiting().AsDuration())
	require.Equal(t, &dispatchv1.AgentCounts{Available: 4, OnCall: 1, OnBreak: 1, Offline: 1}, w.GetTotal().GetAgents(), "each agent once")

	_, err = client.GetWallboard(lead, &dispatchv1.GetWallboardRequest{Group: "g-2"})
	require.Equal(t, codes.PermissionDenied, status.Code(err), "a leader sees only its groups")
	_, err = client.GetWallboard(f.as(t, "a-1", auth.Agent), &dispatchv1.GetWallboardRequest{Group: "g-1"})
	require.Equal(t, codes.PermissionDenied, status.Code(err), "an agent has no wallboard")
	_, err = client.GetWallboard(lead, &dispatchv1.GetWallboardRequest{TimeZone: "Mars/Olympus"})
	requireViolations(t, err, "time_zone")

	// A task that names no group is any agent's, the leader's agents' too:
	// the leader's board shows it as the group "", unless it names a group.
	f.seed(t, seed{id: "t-11", available: t0.Add(-5 * time.Minute), noDeadline: true})
	resp, err = client.GetWallboard(lead, &dispatchv1.GetWallboardRequest{})
	require.NoError(t, err)
	i := slices.IndexFunc(resp.GetWallboard().GetGroups(), func(g *dispatchv1.GroupBoard) bool { return g.GetGroup() == "" })
	require.GreaterOrEqual(t, i, 0, "the leader sees the tasks any agent may take: %v", resp.GetWallboard().GetGroups())
	require.Equal(t, int32(1), resp.GetWallboard().GetGroups()[i].GetWaiting())
	resp, err = client.GetWallboard(lead, &dispatchv1.GetWallboardRequest{Group: "g-1"})
	require.NoError(t, err)
	require.Len(t, resp.GetWallboard().GetGroups(), 1, "g-1 only")
}

// recv reads the next update that is not a heartbeat.
func recv[T interface{ GetKind() watchv1.Kind }](t *testing.T, s interface{ Recv() (T, error) }) T {
	t.Helper()
	for {
		m, err := s.Recv()
		require.NoError(t, err)
		if m.GetKind() != watchv1.Kind_KIND_HEARTBEAT {
			return m
		}
	}
}

func subjectsOf(evs []*watchv1.Event) []string {
	var out []string
	for _, e := range evs {
		out = append(out, e.GetSubject())
	}
	return out
}

// TestWatches: an agent's queue and a leader's wallboard stream a snapshot,
// then the state again as tasks are claimed and worked (the events the
// relay publishes); the server stops (the streams end UNAVAILABLE), work
// goes on, a new server resumes each watch from its last cursor with what
// happened in between and nothing lost; one caller holds at most
// WATCH_PER_CALLER watches; the stream's request is authorized like a
// unary one (an agent cannot watch another's queue nor any wallboard, a
// leader not another group's).
func TestWatches(t *testing.T) {
	f := newFloor(t, watch.Limits{PerCaller: 2, Heartbeat: time.Second})
	f.wallboardSeed(t)
	client, stop := f.serve(t)
	a1, lead := f.as(t, "a-1", auth.Agent), f.as(t, "lead", auth.Leader)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()

	q, err := client.WatchQueue(metadataOf(ctx, a1), &dispatchv1.WatchQueueRequest{})
	require.NoError(t, err)
	first := recv[*dispatchv1.WatchQueueResponse](t, q)
	require.Equal(t, watchv1.Kind_KIND_SNAPSHOT, first.GetKind())
	require.Equal(t, int32(3), first.GetQueue().GetWaiting())
	require.Equal(t, []string{"t-2", "t-1", "t-5"}, ids(first.GetQueue().GetClaimable()), "claim order: deadline first")
	require.Equal(t, []string{"t-4"}, ids(first.GetQueue().GetHeld()))

	wb, err := client.WatchWallboard(metadataOf(ctx, lead), &dispatchv1.WatchWallboardRequest{})
	require.NoError(t, err)
	board := recv[*dispatchv1.WatchWallboardResponse](t, wb)
	require.Equal(t, watchv1.Kind_KIND_SNAPSHOT, board.GetKind())
	require.Equal(t, first.GetCursor(), board.GetCursor(), "both consistent with the same position of the events stream")
	require.Equal(t, int32(1), board.GetWallboard().GetGroups()[0].GetInProgress())

	// The lead claims a task: VisitAssigned moves both.
	claimed, err := client.ClaimNextTask(lead, &dispatchv1.ClaimNextTaskRequest{})
	require.NoError(t, err)
	require.Equal(t, "t-2", claimed.GetTask().GetId())
	u := recv[*dispatchv1.WatchQueueResponse](t, q)
	require.Equal(t, watchv1.Kind_KIND_CHANGE, u.GetKind())
	require.Equal(t, []string{"huifang.events.visit.assigned"}, subjectsOf(u.GetEvents()))
	require.Equal(t, int32(2), u.GetQueue().GetWaiting())
	require.Equal(t, watch.Cursor(u.GetEvents()[0].GetSequence()), u.GetCursor())
	bu := recv[*dispatchv1.WatchWallboardResponse](t, wb)
	require.Equal(t, int32(2), bu.GetWallboard().GetGroups()[0].GetInProgress())
	queueCursor, boardCursor := u.GetCursor(), bu.GetCursor()

	// Bounds and authorization of the streams.
	_, err = recvErr[*dispatchv1.WatchQueueResponse](client.WatchQueue(metadataOf(ctx, a1), &dispatchv1.WatchQueueRequest{}))
	require.NoError(t, err, "a second watch of a-1")
	_, err = recvErr[*dispatchv1.WatchQueueResponse](client.WatchQueue(metadataOf(ctx, a1), &dispatchv1.WatchQueueRequest{}))
	require.Equal(t, codes.ResourceExhausted, status.Code(err), "a third watch of a-1: %v", err)
	_, err = recvErr[*dispatchv1.WatchQueueResponse](client.WatchQueue(metadataOf(ctx, f.as(t, "a-2", auth.Agent)), &dispatchv1.WatchQueueRequest{}))
	require.NoError(t, err, "another caller has its own bound")
	_, err = recvErr[*dispatchv1.WatchQueueResponse](client.WatchQueue(metadataOf(ctx, f.as(t, "a-3", auth.Agent)), &dispatchv1.WatchQueueRequest{AgentId: "a-1"}))
	require.Equal(t, codes.PermissionDenied, status.Code(err), "another agent's queue")
	_, err = recvErr[*dispatchv1.WatchWallboardResponse](client.WatchWallboard(metadataOf(ctx, f.as(t, "a-3", auth.Agent)), &dispatchv1.WatchWallboardRequest{Group: "g-1"}))
	require.Equal(t, codes.PermissionDenied, status.Code(err), "an agent watches no wallboard")
	_, err = recvErr[*dispatchv1.WatchWallboardResponse](client.WatchWallboard(metadataOf(ctx, lead), &dispatchv1.WatchWallboardRequest{Group: "g-2"}))
	require.Equal(t, codes.PermissionDenied, status.Code(err), "a leader watches only its groups")
	_, err = recvErr[*dispatchv1.WatchWallboardResponse](client.WatchWallboard(metadataOf(ctx, lead), &dispatchv1.WatchWallboardRequest{Cursor: "x"}))
	requireViolations(t, err, "cursor")

	// The service stops: the streams end UNAVAILABLE (resume with the cursor).
	stop()
	_, err = q.Recv()
	for err == nil {
		_, err = q.Recv()
	}
	require.Equal(t, codes.Unavailable, status.Code(err), "%v", err)

	// Meanwhile (another replica) the lead's call is answered and a-2 comes back and claims.
	_, err = f.app.RecordAttempt(context.Background(), app.Attempt{Tenant: "default", TaskID: "t-2", AgentID: "lead",
		LeaseToken: claimed.GetTask().GetLeaseToken(), Disposition: typesv1.Disposition_DISPOSITION_ANSWERED})
	require.NoError(t, err)
	_, err = f.app.SetPresence(context.Background(), app.PresenceCall{Tenant: "default", AgentID: "a-2", State: task.PresenceAvailable})
	require.NoError(t, err)
	_, found, err := f.app.Claim(context.Background(), "default", "a-2", 0)
	require.NoError(t, err)
	require.True(t, found)

	// The relay publishes after the commits: wait until both events are in.
	require.Eventually(t, func() bool {
		s, err := f.js.Stream(ctx, stream.EventsStream)
		return err == nil && s.CachedInfo().State.LastSeq >= mustSeq(t, queueCursor)+2
	}, 20*time.Second, 20*time.Millisecond)
	client, _ = f.serve(t)
	q, err = client.WatchQueue(metadataOf(ctx, a1), &dispatchv1.WatchQueueRequest{Cursor: queueCursor})
	require.NoError(t, err)
	resumed := recv[*dispatchv1.WatchQueueResponse](t, q)
	require.Equal(t, watchv1.Kind_KIND_SNAPSHOT, resumed.GetKind())
	require.Equal(t, []string{"huifang.events.visit.attempted", "huifang.events.visit.assigned"}, subjectsOf(resumed.GetEvents()))
	require.Greater(t, resumed.GetEvents()[0].GetSequence(), mustSeq(t, queueCursor), "nothing before the cursor again")
	require.Equal(t, int32(1), resumed.GetQueue().GetWaiting(), "t-2 done, t-1 claimed by a-2: t-5 waits")

	wb, err = client.WatchWallboard(metadataOf(ctx, lead), &dispatchv1.WatchWallboardRequest{Cursor: boardCursor})
	require.NoError(t, err)
	rb := recv[*dispatchv1.WatchWallboardResponse](t, wb)
	require.Equal(t, watchv1.Kind_KIND_SNAPSHOT, rb.GetKind())
	require.Equal(t, []string{"huifang.events.visit.attempted", "huifang.events.visit.assigned"}, subjectsOf(rb.GetEvents()))
	g1 := rb.GetWallboard().GetGroups()[0]
	require.Equal(t, int32(2), g1.GetDoneToday(), "t-6 and t-2")
	require.Equal(t, &dispatchv1.AgentCounts{Available: 1, OnCall: 2, Offline: 1}, g1.GetAgents(), "a-1 and a-2 on calls, lead free")

	// And live again on the new server.
	_, err = client.RecordAttempt(a1, &dispatchv1.RecordAttemptRequest{TaskId: "t-4", Disposition: typesv1.Disposition_DISPOSITION_ANSWERED})
	require.NoError(t, err)
	u = recv[*dispatchv1.WatchQueueResponse](t, q)
	require.Equal(t, watchv1.Kind_KIND_CHANGE, u.GetKind())
	require.Empty(t, u.GetQueue().GetHeld())

	// A heartbeat comes while nothing happens, with the cursor to resume from.
	for {
		m, err := q.Recv()
		require.NoError(t, err)
		if m.GetKind() == watchv1.Kind_KIND_HEARTBEAT {
			require.Nil(t, m.GetQueue())
			require.Equal(t, u.GetCursor(), m.GetCursor())
			break
		}
	}
}

func ids(ts []*dispatchv1.Task) []string {
	var out []string
	for _, t := range ts {
		out = append(out, t.GetId())
	}
	return out
}

func mustSeq(t *testing.T, cursor string) uint64 {
	t.Helper()
	seq, ok, err := watch.Sequence(cursor)
	require.NoError(t, err)
	require.True(t, ok)
	return seq
}

// metadataOf is ctx (cancelled when the test ends) with the token of who.
func metadataOf(ctx context.Context, who context.Context) context.Context {
	md, _ := metadata.FromOutgoingContext(who)
	return metadata.NewOutgoingContext(ctx, md)
}

// recvErr reads a stream's first message (or its error).
func recvErr[T any](s interface{ Recv() (T, error) }, err error) (T, error) {
	if err != nil {
		var zero T
		return zero, err
	}
	m, err := s.Recv()
	if err == io.EOF {
		err = nil
	}
	return m, err
}

// TestWatchQueueSeesNewTasks: a visit falling due (the scheduler's
// VisitDue) reaches an agent's queue watch once dispatch's own consumer has
// made the task: the update waits for the visit's task (the consumer keeps
// no inbox entries) before it reads the queue, so it shows the new task,
// never the queue before it.
func TestWatchQueueSeesNewTasks(t *testing.T) {
	f := newFloor(t, watch.Limits{})
	f.org(t)
	client, _ := f.serve(t)
	c := consumer.VisitDue(f.app)
	c.Service, c.Pool, c.JS, c.Log = "dispatch", f.pool, f.js, servicetest.Logger()
	c.Relay = outbox.NewRelay(f.pool, f.js, c.Log, storetest.Schema)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })

	q, err := client.WatchQueue(metadataOf(ctx, f.as(t, "a-1", auth.Agent)), &dispatchv1.WatchQueueRequest{})
	require.NoError(t, err)
	require.Equal(t, int32(0), recv[*dispatchv1.WatchQueueResponse](t, q).GetQueue().GetWaiting())

	for i, group := range []string{"g-2", "g-1"} {
		data, err := proto.Marshal(&eventsv1.VisitDue{EventId: fmt.Sprintf("ev-%d", i), TenantId: "default", VisitId: fmt.Sprintf("v-new-%d", i),
			Channel: typesv1.Channel_CHANNEL_PHONE, Group: group, DueAt: timestamppb.New(t0), Deadline: timestamppb.New(t0.Add(72 * time.Hour)),
			Customer: &typesv1.Customer{Id: "c-1", NameMasked: "王*", PhoneMasked: "*******8000", HasPhone: true}, ServiceType: "repair"})
		require.NoError(t, err)
		_, err = f.js.PublishMsg(ctx, &nats.Msg{Subject: stream.SubjectVisitDue, Data: data, Header: nats.Header{jetstream.MsgIDHeader: {fmt.Sprintf("ev-%d", i)}}})
		require.NoError(t, err)
	}
	// Both events are of the tenant (relevant); the queue shows g-1's task.
	for {
		u := recv[*dispatchv1.WatchQueueResponse](t, q)
		require.Equal(t, watchv1.Kind_KIND_CHANGE, u.GetKind())
		if u.GetQueue().GetWaiting() == 1 {
			require.Equal(t, "v-new-1", u.GetQueue().GetClaimable()[0].GetVisitId())
			require.Equal(t, "huifang.events.visit.due", u.GetEvents()[len(u.GetEvents())-1].GetSubject())
			break
		}
		require.Len(t, u.GetEvents(), 1, "g-2's task alone: the g-1 one is still to come")
	}
}
