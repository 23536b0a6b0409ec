package grpcapi_test

import (
	"context"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	eventsv1 "github.com/huifang/huifang/proto/huifang/events/v1"
	feedbackv1 "github.com/huifang/huifang/proto/huifang/feedback/v1"
	typesv1 "github.com/huifang/huifang/proto/huifang/types/v1"

	"github.com/huifang/huifang/pkg/grpcserver"
	"github.com/huifang/huifang/pkg/outbox"
	"github.com/huifang/huifang/pkg/servicetest"
	"github.com/huifang/huifang/pkg/stream"
	"github.com/huifang/huifang/services/feedback/internal/app"
	"github.com/huifang/huifang/services/feedback/internal/complaint"
	"github.com/huifang/huifang/services/feedback/internal/consumer"
	"github.com/huifang/huifang/services/feedback/internal/grpcapi"
	"github.com/huifang/huifang/services/feedback/internal/visit"
	"github.com/huifang/huifang/services/feedback/migrations"
)

// clock is a time tests move by hand.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

type env struct {
	ctx    context.Context
	log    *slog.Logger
	pool   *pgxpool.Pool
	js     jetstream.JetStream
	relay  *outbox.Relay
	clock  *clock
	app    *app.App
	client feedbackv1.FeedbackServiceClient
}

func setup(t testing.TB) *env {
	t.Helper()
	ctx := t.Context()
	log := slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelWarn}))
	pool := servicetest.Pool(t, "feedback", migrations.FS)
	js := servicetest.JetStream(t)

	e := &env{
		ctx: ctx, log: log, pool: pool, js: js,
		relay: outbox.NewRelay(pool, js, log, "feedback"),
		clock: &clock{t: time.Date(2025, 3, 2, 10, 0, 0, 0, time.UTC)},
	}
	e.app = &app.App{DB: pool, Relay: e.relay, Now: e.clock.Now, Rules: complaint.MustRules(complaint.DefaultRulesSpec, complaint.DefaultDeadline)}
	require.NoError(t, e.app.EnsureSeeds(ctx))
	srv := grpcserver.New(log, "", "")
	feedbackv1.RegisterFeedbackServiceServer(srv.GRPC, &grpcapi.Server{App: e.app})
	conn := servicetest.Serve(t, srv)
	e.client = feedbackv1.NewFeedbackServiceClient(conn)
	return e
}

var due = time.Date(2025, 3, 1, 9, 0, 0, 0, time.UTC)

// seedVisit stores a visit as the VisitDue consumer would.
func (e *env) seedVisit(t *testing.T, id string) visit.Visit {
	t.Helper()
	v := visit.Visit{
		TenantID: "default", VisitID: id, CustomerID: "cust-" + id, ServiceID: "svc-" + id, PolicyID: "policy-repair",
		Channel: typesv1.Channel_CHANNEL_PHONE, DueAt: due, Deadline: due.Add(48 * time.Hour),
		OrgUnit: "branch-north", ServiceType: "repair", ServiceCompletedAt: due.Add(-24 * time.Hour),
	}
	require.NoError(t, e.app.LearnVisit(e.ctx, v))
	return v
}

type outboxRow struct {
	ID      string
	Subject string
	Payload []byte
}

func (e *env) outbox(t *testing.T) []outboxRow {
	t.Helper()
	rows, err := e.pool.Query(e.ctx, `SELECT id, subject, payload FROM outbox ORDER BY seq`)
	require.NoError(t, err)
	list, err := pgx.CollectRows(rows, pgx.RowToStructByPos[outboxRow])
	require.NoError(t, err)
	return list
}

func (e *env) count(t *testing.T, table string) int {
	t.Helper()
	var n int
	require.NoError(t, e.pool.QueryRow(e.ctx, `SELECT count(*) FROM `+pgx.Identifier{table}.Sanitize()).Scan(&n))
	return n
}

func logRequest(visitID string, overall typesv1.Rating, problems ...*typesv1.Problem) *feedbackv1.LogVisitRequest {
	return &feedbackv1.LogVisitRequest{
		VisitId:  visitID,
		AgentId:  "a-1",
		Answers:  []*typesv1.Answer{{Aspect: "overall", Rating: overall}},
		Problems: problems,
	}
}

func TestLogVisitStoresRecordAndPublishesVisitLogged(t *testing.T) {
	t.Parallel()
	e := setup(t)
	v := e.seedVisit(t, "v-1")

	// The JSON an operator sends with grpcurl works as it stands.
	req := &feedbackv1.LogVisitRequest{}
	require.NoError(t, protojson.Unmarshal([]byte(`{"visit_id":"v-1","agent_id":"a-1","answers":[{"aspect":"overall","rating":"RATING_SATISFIED"}]}`), req))
	resp, err := e.client.LogVisit(e.ctx, req)
	require.NoError(t, err)
	rec := resp.Record
	require.NotEmpty(t, rec.Id)
	require.Equal(t, "default", rec.TenantId)
	require.Equal(t, typesv1.Channel_CHANNEL_PHONE, rec.Channel, "the planned channel when none is given")
	require.Equal(t, v.CustomerID, rec.CustomerId)
	require.Equal(t, v.OrgUnit, rec.OrgUnit)
	require.Equal(t, e.clock.Now(), rec.LoggedAt.AsTime())
	require.Equal(t, e.clock.Now(), rec.OccurredAt.AsTime(), "no occurred_at: it happened when it was logged")
	require.Empty(t, rec.ComplaintIds)

	for _, id := range []string{rec.Id, "v-1"} {
		got, err := e.client.GetVisitRecord(e.ctx, &feedbackv1.GetVisitRecordRequest{Id: id})
		require.NoError(t, err)
		require.True(t, proto.Equal(rec, got.Record), "by %s:\n got %v\nwant %v", id, got.Record, rec)
	}

	rows := e.outbox(t)
	require.Len(t, rows, 1, "exactly one event: VisitLogged, no complaint")
	require.Equal(t, stream.SubjectVisitLogged, rows[0].Subject)
	stored := &eventsv1.VisitLogged{}
	require.NoError(t, proto.Unmarshal(rows[0].Payload, stored))
	want := &eventsv1.VisitLogged{
		EventId: rows[0].ID, TenantId: "default", VisitId: "v-1", RecordId: rec.Id, AgentId: "a-1",
		Channel: typesv1.Channel_CHANNEL_PHONE, Answers: req.Answers, LoggedAt: rec.LoggedAt, OccurredAt: rec.LoggedAt,
		DueAt: timestamppb.New(v.DueAt), Deadline: timestamppb.New(v.Deadline), OrgUnit: v.OrgUnit,
		ServiceType: v.ServiceType, PolicyId: v.PolicyID, CustomerId: v.CustomerID, ServiceId: v.ServiceID,
		ServiceCompletedAt: timestamppb.New(v.ServiceCompletedAt),
	}
	require.True(t, proto.Equal(want, stored), "got %v\nwant %v", stored, want)

	n, err := e.relay.RunOnce(e.ctx)
	require.NoError(t, err)
	require.Equal(t, 1, n)
	cons, err := e.js.OrderedConsumer(e.ctx, stream.EventsStream, jetstream.OrderedConsumerConfig{FilterSubjects: []string{stream.SubjectVisitLogged}})
	require.NoError(t, err)
	msg, err := cons.Next(jetstream.FetchMaxWait(5 * time.Second))
	require.NoError(t, err)
	require.Equal(t, rows[0].ID, msg.Headers().Get(jetstream.MsgIDHeader))
	published := &eventsv1.VisitLogged{}
	require.NoError(t, proto.Unmarshal(msg.Data(), published))
	require.True(t, proto.Equal(want, published), "got %v\nwant %v", published, want)
}

func TestLogVisitOpensComplaints(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		req      func(visitID string) *feedbackv1.LogVisitRequest
		category string // empty: no complaint
		dept     string
		desc     string
		deadline time.Duration
	}{
		{
			name: "unsatisfied with a product problem goes to R&D and production within the 30 days of an improvement plan (seed 001, seed 003)",
			req: func(id string) *feedbackv1.LogVisitRequest {
				return logRequest(id, typesv1.Rating_RATING_UNSATISFIED, &typesv1.Problem{Category: "product_quality", Description: "the compressor is loud"})
			},
			category: "product_quality", dept: "rnd_production", desc: "the compressor is loud", deadline: 30 * 24 * time.Hour,
		},
		{
			name: "unsatisfied without a problem goes to the service manager within 48 hours (seed 000, seed 003)",
			req: func(id string) *feedbackv1.LogVisitRequest {
				r := logRequest(id, typesv1.Rating_RATING_UNSATISFIED)
				r.Comments = "the advisor never called back"
				return r
			},
			category: "unsatisfied", dept: "service_manager", desc: "the advisor never called back", deadline: 48 * time.Hour,
		},
		{
			name: "satisfied opens none",
			req:  func(id string) *feedbackv1.LogVisitRequest { return logRequest(id, typesv1.Rating_RATING_SATISFIED) },
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := setup(t)
			v := e.seedVisit(t, "v-1")
			resp, err := e.client.LogVisit(e.ctx, tt.req("v-1"))
			require.NoError(t, err)
			list, err := e.client.ListComplaints(e.ctx, &feedbackv1.ListComplaintsRequest{})
			require.NoError(t, err)
			var escalated []*eventsv1.ComplaintEscalated
			for _, r := range e.outbox(t) {
				if r.Subject == stream.SubjectComplaintEscalated {
					ev := &eventsv1.ComplaintEscalated{}
					require.NoError(t, proto.Unmarshal(r.Payload, ev))
					escalated = append(escalated, ev)
				}
			}
			if tt.category == "" {
				require.Empty(t, resp.Record.ComplaintIds)
				require.Empty(t, list.Complaints)
				require.Empty(t, escalated)
				return
			}
			require.Len(t, list.Complaints, 1)
			c := list.Complaints[0]
			require.Equal(t, []string{c.Id}, resp.Record.ComplaintIds)
			require.Equal(t, tt.category, c.Category)
			require.Equal(t, tt.dept, c.Department)
			require.Equal(t, tt.desc, c.Description)
			require.Equal(t, "general", c.Severity)
			require.Equal(t, "open", c.Status)
			require.Equal(t, "a-1", c.OwnerAgentId, "seed 002: first-contact ownership")
			require.Equal(t, e.clock.Now().Add(tt.deadline), c.Deadline.AsTime())
			require.Zero(t, c.Level)
			require.Equal(t, v.CustomerID, c.CustomerId)

			require.Len(t, escalated, 1)
			ev := escalated[0]
			require.Equal(t, c.Id, ev.ComplaintId)
			require.Equal(t, tt.dept, ev.Department)
			require.Equal(t, v.OrgUnit, ev.OrgUnit)
			require.Equal(t, "a-1", ev.OwnerAgentId)
			require.Equal(t, c.Deadline.AsTime(), ev.Deadline.AsTime())
			require.Zero(t, ev.Level)
			require.Equal(t, v.ServiceID, ev.ServiceId)
		})
	}
}

func TestLogVisitRefusesInvalidAnswers(t *testing.T) {
	t.Parallel()
	e := setup(t)
	e.seedVisit(t, "v-1")
	req := &feedbackv1.LogVisitRequest{
		VisitId: "v-1",
		AgentId: "a-1",
		Answers: []*typesv1.Answer{
			{Aspect: "overall", Rating: typesv1.Rating_RATING_SATISFIED},
			{Aspect: "staff_attitude"},
			{Aspect: "overall", Rating: typesv1.Rating_RATING_UNSATISFIED},
		},
	}
	_, err := e.client.LogVisit(e.ctx, req)
	st := status.Convert(err)
	require.Equal(t, codes.InvalidArgument, st.Code(), "%v", err)
	var fields []string
	for _, d := range st.Details() {
		if br, ok := d.(*errdetails.BadRequest); ok {
			for _, v := range br.FieldViolations {
				fields = append(fields, v.Field)
			}
		}
	}
	require.Equal(t, []string{"answers[1].rating", "answers[2].aspect"}, fields)
	require.Zero(t, e.count(t, "visit_records"))
	require.Zero(t, e.count(t, "complaints"))
	require.Empty(t, e.outbox(t))
}

func TestLogVisitTwiceIsRefused(t *testing.T) {
	t.Parallel()
	e := setup(t)
	e.seedVisit(t, "v-1")
	first, err := e.client.LogVisit(e.ctx, logRequest("v-1", typesv1.Rating_RATING_SATISFIED))
	require.NoError(t, err)

	e.clock.Advance(time.Hour)
	second := logRequest("v-1", typesv1.Rating_RATING_UNSATISFIED, &typesv1.Problem{Category: "service_quality", Description: "rude"})
	second.AgentId = "a-2"
	_, err = e.client.LogVisit(e.ctx, second)
	require.Equal(t, codes.AlreadyExists, status.Code(err), "%v", err)

	got, err := e.client.GetVisitRecord(e.ctx, &feedbackv1.GetVisitRecordRequest{Id: "v-1"})
	require.NoError(t, err)
	require.True(t, proto.Equal(first.Record, got.Record), "seed 004: the first record is not altered")
	require.Len(t, e.outbox(t), 1, "only the first VisitLogged")
	require.Zero(t, e.count(t, "complaints"))

	// The database refuses rewrites too.
	_, err = e.pool.Exec(e.ctx, `UPDATE visit_records SET agent_id = 'a-2'`)
	require.ErrorContains(t, err, "append-only")
}

func TestLogVisitUnknownVisitIsNotFoundUntilVisitDue(t *testing.T) {
	t.Parallel()
	e := setup(t)
	_, err := e.client.LogVisit(e.ctx, logRequest("v-late", typesv1.Rating_RATING_SATISFIED))
	st := status.Convert(err)
	require.Equal(t, codes.NotFound, st.Code(), "%v", err)
	require.Contains(t, st.Message(), "VisitDue")
	require.Empty(t, e.outbox(t))

	// Once VisitDue arrives, the caller's retry succeeds.
	c := consumer.VisitDue(e.app)
	c.Service, c.Pool, c.JS, c.Log, c.Relay = "feedback", e.pool, e.js, e.log, e.relay
	ctx, cancel := context.WithCancel(e.ctx)
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	body, err := proto.Marshal(&eventsv1.VisitDue{VisitId: "v-late", Channel: typesv1.Channel_CHANNEL_SMS, Customer: &typesv1.Customer{Id: "cust-9"}})
	require.NoError(t, err)
	msg := nats.NewMsg(stream.SubjectVisitDue)
	msg.Data = body
	msg.Header.Set(jetstream.MsgIDHeader, "due-late")
	_, err = e.js.PublishMsg(e.ctx, msg)
	require.NoError(t, err)

	var resp *feedbackv1.LogVisitResponse
	require.Eventually(t, func() bool {
		resp, err = e.client.LogVisit(e.ctx, logRequest("v-late", typesv1.Rating_RATING_SATISFIED))
		return status.Code(err) != codes.NotFound
	}, 60*time.Second, 20*time.Millisecond)
	require.NoError(t, err)
	require.Equal(t, typesv1.Channel_CHANNEL_SMS, resp.Record.Channel)
	require.Equal(t, "cust-9", resp.Record.CustomerId)
}

func TestListComplaintsPagesNewestFirst(t *testing.T) {
	t.Parallel()
	e := setup(t)
	var want []string // newest first
	for _, id := range []string{"v-1", "v-2", "v-3"} {
		e.seedVisit(t, id)
		resp, err := e.client.LogVisit(e.ctx, logRequest(id, typesv1.Rating_RATING_UNSATISFIED))
		require.NoError(t, err)
		want = append([]string{resp.Record.ComplaintIds[0]}, want...)
		e.clock.Advance(time.Minute)
	}
	other, err := e.client.ListComplaints(e.ctx, &feedbackv1.ListComplaintsRequest{TenantId: "acme"})
	require.NoError(t, err)
	require.Empty(t, other.Complaints, "complaints are per tenant")

	var got []string
	token := ""
	for pages := 0; ; pages++ {
		require.Less(t, pages, 3)
		resp, err := e.client.ListComplaints(e.ctx, &feedbackv1.ListComplaintsRequest{PageSize: 2, PageToken: token})
		require.NoError(t, err)
		for _, c := range resp.Complaints {
			got = append(got, c.Id)
		}
		if token = resp.NextPageToken; token == "" {
			break
		}
	}
	require.Equal(t, want, got)

	_, err = e.client.ListComplaints(e.ctx, &feedbackv1.ListComplaintsRequest{PageToken: "garbage!"})
	require.Equal(t, codes.InvalidArgument, status.Code(err))
}

func TestGetVisitRecordUnknown(t *testing.T) {
	t.Parallel()
	e := setup(t)
	_, err := e.client.GetVisitRecord(e.ctx, &feedbackv1.GetVisitRecordRequest{Id: "nope"})
	require.Equal(t, codes.NotFound, status.Code(err))
	_, err = e.client.GetVisitRecord(e.ctx, &feedbackv1.GetVisitRecordRequest{})
	require.Equal(t, codes.InvalidArgument, status.Code(err))
}
