package grpcapi_test

import (
	"context"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	dispatchv1 "github.com/huifang/huifang/proto/huifang/dispatch/v1"
	eventsv1 "github.com/huifang/huifang/proto/huifang/events/v1"
	typesv1 "github.com/huifang/huifang/proto/huifang/types/v1"

	"github.com/huifang/huifang/pkg/grpcserver"
	"github.com/huifang/huifang/pkg/outbox"
	"github.com/huifang/huifang/pkg/servicetest"
	"github.com/huifang/huifang/pkg/stream"
	"github.com/huifang/huifang/services/dispatch/internal/app"
	"github.com/huifang/huifang/services/dispatch/internal/grpcapi"
	"github.com/huifang/huifang/services/dispatch/internal/store"
	"github.com/huifang/huifang/services/dispatch/internal/storetest"
	"github.com/huifang/huifang/services/dispatch/internal/task"
)

var t0 = time.Date(2025, 3, 10, 9, 0, 0, 0, time.UTC)

const lease = 15 * time.Minute

type bundle struct {
	pool   *pgxpool.Pool
	js     jetstream.JetStream
	client dispatchv1.DispatchServiceClient
}

// setup serves the API through the same gRPC server (and error mapping) the
// service runs, with the outbox relay publishing to an embedded NATS.
func setup(t *testing.T) bundle {
	t.Helper()
	pool := storetest.Pool(t)
	js := servicetest.JetStream(t)
	log := servicetest.Logger()
	relay := outbox.NewRelay(pool, js, log, storetest.Schema)
	ctx, cancel := context.WithCancel(context.Background())
	relayDone := make(chan error, 1)
	go func() { relayDone <- relay.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		<-relayDone
	})

	srv := grpcserver.New(log, "", "")
	clock := storetest.NewClock(t0)
	dispatchv1.RegisterDispatchServiceServer(srv.GRPC, &grpcapi.Server{App: &app.App{
		DB: pool, Relay: relay, Now: clock.Now, Log: log, Lease: lease, Waker: &app.Waker{}, Poll: 20 * time.Millisecond, SLAWarn: 6 * time.Hour,
		Retry: task.RetryPolicy{typesv1.Channel_CHANNEL_PHONE: {typesv1.Disposition_DISPOSITION_NO_ANSWER: {After: 2 * time.Hour, Max: 3}}},
	}})
	conn := servicetest.Serve(t, srv)
	return bundle{pool: pool, js: js, client: dispatchv1.NewDispatchServiceClient(conn)}
}

func fromJSON[T proto.Message](t *testing.T, js string, m T) T {
	t.Helper()
	require.NoError(t, protojson.Unmarshal([]byte(js), m))
	return m
}

func requireViolations(t *testing.T, err error, fields ...string) {
	t.Helper()
	st, ok := status.FromError(err)
	require.True(t, ok, "want a status error, got %v", err)
	require.Equal(t, codes.InvalidArgument, st.Code(), st.Message())
	var got []string
	for _, d := range st.Details() {
		if br, ok := d.(*errdetails.BadRequest); ok {
			for _, v := range br.GetFieldViolations() {
				got = append(got, v.GetField())
			}
		}
	}
	require.Equal(t, fields, got)
}

func TestUpsertAgentValidation(t *testing.T) {
	b := setup(t)
	ctx := context.Background()
	_, err := b.client.UpsertAgent(ctx, fromJSON(t, `{"agent":{"name":"李娜"}}`, &dispatchv1.UpsertAgentRequest{}))
	requireViolations(t, err, "agent.id")
	_, err = b.client.UpsertAgent(ctx, &dispatchv1.UpsertAgentRequest{})
	requireViolations(t, err, "agent")

	list, err := b.client.ListAgents(ctx, &dispatchv1.ListAgentsRequest{})
	require.NoError(t, err)
	require.Empty(t, list.GetAgents(), "refused requests store nothing")
}

func TestAgentsRoundTrip(t *testing.T) {
	b := setup(t)
	ctx := context.Background()
	resp, err := b.client.UpsertAgent(ctx, fromJSON(t, `{"agent":{"id":"a-1","name":"李娜","groups":["default"]}}`, &dispatchv1.UpsertAgentRequest{}))
	require.NoError(t, err)
	require.True(t, proto.Equal(&dispatchv1.Agent{Id: "a-1", TenantId: "default", Name: "李娜", Groups: []string{"default"},
		Role: dispatchv1.Role_ROLE_AGENT, Active: proto.Bool(true), Presence: dispatchv1.Presence_PRESENCE_AVAILABLE}, resp.GetAgent()), "%v", resp.GetAgent())
	for _, id := range []string{"a-3", "a-2"} {
		_, err := b.client.UpsertAgent(ctx, &dispatchv1.UpsertAgentRequest{Agent: &dispatchv1.Agent{Id: id, Name: id}})
		require.NoError(t, err)
	}

	var ids []string
	req := &dispatchv1.ListAgentsRequest{PageSize: 2}
	for range 5 {
		page, err := b.client.ListAgents(ctx, req)
		require.NoError(t, err)
		for _, a := range page.GetAgents() {
			ids = append(ids, a.GetId())
		}
		if page.GetNextPageToken() == "" {
			break
		}
		req.PageToken = page.GetNextPageToken()
	}
	require.Equal(t, []string{"a-1", "a-2", "a-3"}, ids)

	_, err = b.client.ListAgents(ctx, &dispatchv1.ListAgentsRequest{PageToken: "not-a-token"})
	requireViolations(t, err, "page_token")
}

func TestClaimNextTask(t *testing.T) {
	b := setup(t)
	ctx := context.Background()
	_, err := b.client.ClaimNextTask(ctx, &dispatchv1.ClaimNextTaskRequest{})
	requireViolations(t, err, "agent_id")
	_, err = b.client.ClaimNextTask(ctx, fromJSON(t, `{"agent_id":"a-1"}`, &dispatchv1.ClaimNextTaskRequest{}))
	require.Equal(t, codes.NotFound, status.Code(err), "unknown agent: %v", err)

	_, err = b.client.UpsertAgent(ctx, fromJSON(t, `{"agent":{"id":"a-1","name":"李娜","groups":["default"]}}`, &dispatchv1.UpsertAgentRequest{}))
	require.NoError(t, err)
	empty, err := b.client.ClaimNextTask(ctx, fromJSON(t, `{"agent_id":"a-1"}`, &dispatchv1.ClaimNextTaskRequest{}))
	require.NoError(t, err)
	require.Nil(t, empty.GetTask(), "no open task: OK without a task")

	customer := &typesv1.Customer{Id: "c-1", NameMasked: "王芳", PhoneMasked: "13800000000", HasPhone: true}
	require.NoError(t, pgx.BeginFunc(ctx, b.pool, func(tx pgx.Tx) error {
		_, err := store.CreateTask(ctx, tx, task.Task{
			ID: "t-1", Tenant: "default", VisitID: "v-1", Customer: task.Customer{ID: "c-1", NameMasked: "王芳", PhoneMasked: "13800000000", HasPhone: true}, Channel: typesv1.Channel_CHANNEL_PHONE,
			ServiceType: "installation", DueAt: t0, Deadline: t0.Add(48 * time.Hour), Status: task.StatusOpen, CreatedAt: t0,
		})
		return err
	}))
	got, err := b.client.ClaimNextTask(ctx, fromJSON(t, `{"agent_id":"a-1"}`, &dispatchv1.ClaimNextTaskRequest{}))
	require.NoError(t, err)
	tk := got.GetTask()
	require.Equal(t, "v-1", tk.GetVisitId())
	require.True(t, proto.Equal(customer, tk.GetCustomer()))
	require.Equal(t, typesv1.Channel_CHANNEL_PHONE, tk.GetChannel())
	require.Equal(t, "claimed", tk.GetStatus())
	require.Equal(t, "a-1", tk.GetAgentId())
	require.True(t, tk.GetLeaseExpiresAt().AsTime().Equal(t0.Add(lease)))
	require.True(t, tk.GetDeadline().AsTime().Equal(t0.Add(48*time.Hour)))

	// The relay publishes VisitAssigned.
	cons, err := b.js.CreateConsumer(ctx, stream.EventsStream, jetstream.ConsumerConfig{FilterSubject: stream.SubjectVisitAssigned})
	require.NoError(t, err)
	batch, err := cons.Fetch(1, jetstream.FetchMaxWait(10*time.Second))
	require.NoError(t, err)
	msg := <-batch.Messages()
	require.NotNil(t, msg, "VisitAssigned published")
	ev := &eventsv1.VisitAssigned{}
	require.NoError(t, proto.Unmarshal(msg.Data(), ev))
	require.Equal(t, "v-1", ev.GetVisitId())
	require.Equal(t, "a-1", ev.GetAgentId())
	require.Equal(t, "default", ev.GetTenantId())
	require.Equal(t, ev.GetEventId(), msg.Headers().Get(jetstream.MsgIDHeader))
	require.True(t, ev.GetAssignedAt().AsTime().Equal(t0))

	listed, err := b.client.ListTasks(ctx, &dispatchv1.ListTasksRequest{AgentId: "a-1", Status: "claimed"})
	require.NoError(t, err)
	require.Len(t, listed.GetTasks(), 1)
	require.Equal(t, "t-1", listed.GetTasks()[0].GetId())
	_, err = b.client.ListTasks(ctx, &dispatchv1.ListTasksRequest{Status: "finished"})
	requireViolations(t, err, "status")
}

func TestListTasksPages(t *testing.T) {
	b := setup(t)
	ctx := context.Background()
	require.NoError(t, pgx.BeginFunc(ctx, b.pool, func(tx pgx.Tx) error {
		deadlines := map[string]time.Duration{"v-a": time.Hour, "v-b": 2 * time.Hour, "v-c": 3 * time.Hour, "v-d": 0}
		for _, v := range []string{"v-c", "v-a", "v-d", "v-b"} {
			x := task.Task{ID: outbox.NewEventID(), Tenant: "default", VisitID: v, DueAt: t0, Status: task.StatusOpen, CreatedAt: t0}
			if d := deadlines[v]; d != 0 {
				x.Deadline = t0.Add(d)
			}
			if _, err := store.CreateTask(ctx, tx, x); err != nil {
				return err
			}
		}
		return nil
	}))
	var visits []string
	req := &dispatchv1.ListTasksRequest{PageSize: 3}
	for range 5 {
		page, err := b.client.ListTasks(ctx, req)
		require.NoError(t, err)
		for _, x := range page.GetTasks() {
			visits = append(visits, x.GetVisitId())
		}
		if page.GetNextPageToken() == "" {
			break
		}
		req.PageToken = page.GetNextPageToken()
	}
	require.Equal(t, []string{"v-a", "v-b", "v-c", "v-d"}, visits, "most urgent first; no deadline last")
}
