package consumer_test

import (
	"context"
	"log/slog"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	eventsv1 "github.com/huifang/huifang/proto/huifang/events/v1"
	typesv1 "github.com/huifang/huifang/proto/huifang/types/v1"

	"github.com/huifang/huifang/pkg/servicetest"
	"github.com/huifang/huifang/pkg/stream"
	"github.com/huifang/huifang/services/feedback/internal/app"
	"github.com/huifang/huifang/services/feedback/internal/consumer"
	"github.com/huifang/huifang/services/feedback/migrations"
)

type env struct {
	ctx  context.Context
	log  *slog.Logger
	pool *pgxpool.Pool
	js   jetstream.JetStream
	app  *app.App
}

func setup(t *testing.T) *env {
	t.Helper()
	log := slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelWarn}))
	pool := servicetest.Pool(t, "feedback", migrations.FS)
	return &env{ctx: t.Context(), log: log, pool: pool, js: servicetest.JetStream(t), app: &app.App{DB: pool}}
}

func TestNewKeepsTheDurables(t *testing.T) {
	var durables, subjects []string
	for _, c := range consumer.New(&app.App{}) {
		durables, subjects = append(durables, c.Durable), append(subjects, c.Subjects...)
		require.Equal(t, stream.EventsStream, c.Stream)
	}
	require.Equal(t, []string{"feedback-visit-due", "feedback-visit-assigned", "feedback-customer-updated"}, durables)
	require.Equal(t, []string{stream.SubjectVisitDue, stream.SubjectVisitAssigned, stream.SubjectCustomerUpdated}, subjects)
}

// run starts the VisitDue consumer and returns a function that stops it.
func (e *env) run(t *testing.T) (stop func()) {
	t.Helper()
	c := consumer.VisitDue(e.app)
	c.Service, c.Pool, c.JS, c.Log = "feedback", e.pool, e.js, e.log
	ctx, cancel := context.WithCancel(e.ctx)
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	var stopped bool
	stop = func() {
		if stopped {
			return
		}
		stopped = true
		cancel()
		require.NoError(t, <-done)
	}
	t.Cleanup(stop)
	return stop
}

func (e *env) publish(t *testing.T, msgID string, data []byte) {
	t.Helper()
	msg := nats.NewMsg(stream.SubjectVisitDue)
	msg.Data = data
	msg.Header.Set(jetstream.MsgIDHeader, msgID)
	_, err := e.js.PublishMsg(e.ctx, msg)
	require.NoError(t, err)
}

func (e *env) count(t *testing.T, query string, args ...any) int {
	t.Helper()
	var n int
	require.NoError(t, e.pool.QueryRow(e.ctx, query, args...).Scan(&n))
	return n
}

// waitAcked waits until the consumer has acknowledged every message in the stream.
func (e *env) waitAcked(t *testing.T) {
	t.Helper()
	require.Eventually(t, func() bool {
		s, err := e.js.Stream(e.ctx, stream.EventsStream)
		if err != nil {
			return false
		}
		si, err := s.Info(e.ctx)
		if err != nil {
			return false
		}
		c, err := s.Consumer(e.ctx, consumer.VisitDueDurable)
		if err != nil {
			return false
		}
		ci, err := c.Info(e.ctx)
		return err == nil && ci.AckFloor.Stream == si.State.LastSeq && ci.NumAckPending == 0
	}, 60*time.Second, 20*time.Millisecond)
}

func marshal(t *testing.T, m proto.Message) []byte {
	t.Helper()
	b, err := proto.Marshal(m)
	require.NoError(t, err)
	return b
}

func TestVisitDueStoresOneVisitAndDeadLettersMalformed(t *testing.T) {
	e := setup(t)
	stop := e.run(t)

	due := time.Date(2025, 3, 1, 9, 0, 0, 0, time.UTC)
	ev := &eventsv1.VisitDue{
		EventId: "due-1", VisitId: "v-1", ServiceId: "s-1", PolicyId: "p-1", Channel: typesv1.Channel_CHANNEL_PHONE,
		DueAt: timestamppb.New(due), Deadline: timestamppb.New(due.Add(48 * time.Hour)),
		Customer: &typesv1.Customer{Id: "c-1"}, OrgUnit: "branch-north", ServiceType: "repair",
		ServiceCompletedAt: timestamppb.New(due.Add(-24 * time.Hour)), ComplaintId: "comp-1",
	}
	e.publish(t, "due-1", marshal(t, ev))
	// The scheduler emitting the same visit again under a new event id.
	ev.EventId = "due-2"
	e.publish(t, "due-2", marshal(t, ev))
	e.publish(t, "bad-bytes", []byte{0xff, 0xff, 0xff})
	e.publish(t, "bad-no-visit", marshal(t, &eventsv1.VisitDue{EventId: "bad-no-visit", TenantId: "acme", ServiceId: "s-2"}))
	e.waitAcked(t)

	require.Equal(t, []string{"due-2"}, e.inbox(t, consumer.VisitDueDurable), "the visit keeps due-1's id; due-2, of a visit stored, is claimed")
	require.Equal(t, 2, e.count(t, `SELECT count(*) FROM rejected_events`), "the two bad ones")
	require.Equal(t, 1, e.count(t, `SELECT count(*) FROM visits`))
	var (
		customer, service, policy, channel, org, stype, complaint string
		dueAt, deadline, completed                                time.Time
	)
	require.NoError(t, e.pool.QueryRow(e.ctx, `SELECT customer_id, service_id, policy_id, channel, org_unit, service_type, due_at, deadline, service_completed_at, complaint_id
FROM visits WHERE tenant_id = 'default' AND visit_id = 'v-1'`).Scan(&customer, &service, &policy, &channel, &org, &stype, &dueAt, &deadline, &completed, &complaint))
	require.Equal(t, []string{"c-1", "s-1", "p-1", "CHANNEL_PHONE", "branch-north", "repair", "comp-1"},
		[]string{customer, service, policy, channel, org, stype, complaint}, "a confirmation visit names its complaint")
	require.True(t, dueAt.Equal(due))
	require.True(t, deadline.Equal(due.Add(48*time.Hour)))
	require.True(t, completed.Equal(due.Add(-24*time.Hour)))

	type rejected struct{ eventID, tenant, field string }
	rows, err := e.pool.Query(e.ctx, `SELECT event_id, tenant_id, field FROM rejected_events ORDER BY event_id`)
	require.NoError(t, err)
	var got []rejected
	for rows.Next() {
		var r rejected
		require.NoError(t, rows.Scan(&r.eventID, &r.tenant, &r.field))
		got = append(got, r)
	}
	require.NoError(t, rows.Err())
	require.Equal(t, []rejected{{"bad-bytes", "default", "payload"}, {"bad-no-visit", "acme", "visit_id"}}, got)
	require.Equal(t, 2, e.count(t, `SELECT count(*) FROM outbox WHERE subject = $1`, stream.DeadLetterSubject("feedback")))

	// Redelivery: the JetStream consumer is recreated and every message comes again.
	stop()
	require.NoError(t, e.js.DeleteConsumer(e.ctx, stream.EventsStream, consumer.VisitDueDurable))
	e.run(t)
	e.waitAcked(t)
	require.Equal(t, []string{"due-2"}, e.inbox(t, consumer.VisitDueDurable))
	require.Equal(t, 1, e.count(t, `SELECT count(*) FROM visits`))
	require.Equal(t, 2, e.count(t, `SELECT count(*) FROM rejected_events`), "a redelivered dead letter is not recorded twice")
	require.Equal(t, 2, e.count(t, `SELECT count(*) FROM outbox WHERE subject = $1`, stream.DeadLetterSubject("feedback")))
}

// runAssigned starts the VisitAssigned consumer and returns a function that stops it.
func (e *env) runAssigned(t *testing.T) (stop func()) {
	t.Helper()
	c := consumer.VisitAssigned(e.app)
	c.Service, c.Pool, c.JS, c.Log = "feedback", e.pool, e.js, e.log
	ctx, cancel := context.WithCancel(e.ctx)
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	var stopped bool
	stop = func() {
		if stopped {
			return
		}
		stopped = true
		cancel()
		require.NoError(t, <-done)
	}
	t.Cleanup(stop)
	return stop
}

func (e *env) publishAssigned(t *testing.T, msgID string, data []byte) {
	t.Helper()
	msg := nats.NewMsg(stream.SubjectVisitAssigned)
	msg.Data = data
	msg.Header.Set(jetstream.MsgIDHeader, msgID)
	_, err := e.js.PublishMsg(e.ctx, msg)
	require.NoError(t, err)
}

// waitAckedBy waits until durable has acknowledged every message of the
// stream: handled or refused (the consumers keep no inbox entry for most
// events, so the durable's acknowledgements tell).
func (e *env) waitAckedBy(t *testing.T, durable string) {
	t.Helper()
	require.Eventually(t, func() bool {
		s, err := e.js.Stream(e.ctx, stream.EventsStream)
		if err != nil {
			return false
		}
		si, err := s.Info(e.ctx)
		if err != nil {
			return false
		}
		c, err := s.Consumer(e.ctx, durable)
		if err != nil {
			return false
		}
		ci, err := c.Info(e.ctx)
		return err == nil && ci.AckFloor.Stream >= si.State.LastSeq && ci.NumPending == 0 && ci.NumAckPending == 0
	}, 60*time.Second, 20*time.Millisecond)
}

// inbox returns the event ids the inbox holds for durable, in order.
func (e *env) inbox(t *testing.T, durable string) []string {
	t.Helper()
	rows, err := e.pool.Query(e.ctx, `SELECT event_id FROM inbox WHERE consumer = $1 ORDER BY event_id`, durable)
	require.NoError(t, err)
	ids, err := pgx.CollectRows(rows, pgx.RowTo[string])
	require.NoError(t, err)
	return ids
}

func (e *env) assignedAgent(t *testing.T, tenant, visitID string) string {
	t.Helper()
	var agent string
	require.NoError(t, e.pool.QueryRow(e.ctx, `SELECT agent_id FROM visit_assignments WHERE tenant_id = $1 AND visit_id = $2`, tenant, visitID).Scan(&agent))
	return agent
}

func TestVisitAssignedRecordsTheNewestAssignmentOnce(t *testing.T) {
	e := setup(t)
	stop := e.runAssigned(t)

	at := time.Date(2025, 3, 1, 9, 0, 0, 0, time.UTC)
	claim := &eventsv1.VisitAssigned{EventId: "as-1", TenantId: "acme", VisitId: "v-1", AgentId: "a-1", AssignedAt: timestamppb.New(at)}
	// The visit's VisitDue has not been consumed yet: the assignment is kept all the same.
	e.publishAssigned(t, "as-1", marshal(t, claim))
	e.waitAckedBy(t, consumer.VisitAssignedDurable)
	require.Equal(t, "a-1", e.assignedAgent(t, "acme", "v-1"))

	// A leader reassigns the task; then the first claim arrives again under
	// a new message id (an older assignment arriving late): the newest wins.
	reassign := &eventsv1.VisitAssigned{EventId: "as-2", TenantId: "acme", VisitId: "v-1", AgentId: "a-2", AssignedAt: timestamppb.New(at.Add(time.Hour))}
	e.publishAssigned(t, "as-2", marshal(t, reassign))
	e.publishAssigned(t, "as-1-late", marshal(t, claim))
	e.publishAssigned(t, "bad-bytes", []byte{0xff, 0xff, 0xff})
	e.publishAssigned(t, "bad-empty", marshal(t, &eventsv1.VisitAssigned{EventId: "bad-empty", TenantId: "acme"}))
	e.waitAckedBy(t, consumer.VisitAssignedDurable)
	require.Equal(t, "a-2", e.assignedAgent(t, "acme", "v-1"))
	require.Equal(t, 1, e.count(t, `SELECT count(*) FROM visit_assignments`))

	type rejected struct{ eventID, tenant, field string }
	rows, err := e.pool.Query(e.ctx, `SELECT event_id, tenant_id, field FROM rejected_events ORDER BY event_id, field`)
	require.NoError(t, err)
	var got []rejected
	for rows.Next() {
		var r rejected
		require.NoError(t, rows.Scan(&r.eventID, &r.tenant, &r.field))
		got = append(got, r)
	}
	require.NoError(t, rows.Err())
	require.Len(t, got, 2)
	require.Equal(t, rejected{"bad-bytes", "default", "payload"}, got[0])
	require.Equal(t, "bad-empty", got[1].eventID)
	require.Equal(t, "acme", got[1].tenant)
	require.Contains(t, []string{"visit_id", "agent_id", "assigned_at"}, got[1].field)

	// Redelivery of everything changes nothing.
	stop()
	require.NoError(t, e.js.DeleteConsumer(e.ctx, stream.EventsStream, consumer.VisitAssignedDurable))
	e.runAssigned(t)
	e.waitAckedBy(t, consumer.VisitAssignedDurable)
	require.Empty(t, e.inbox(t, consumer.VisitAssignedDurable), "each assignment newer or older than the one kept")
	require.Equal(t, "a-2", e.assignedAgent(t, "acme", "v-1"))
	require.Equal(t, 2, e.count(t, `SELECT count(*) FROM rejected_events`))
}

// TestCustomerUpdatedErasureAppliedOnceOthersKeepNoInbox: the consumer
// keeps an inbox entry only for an erasure (inbox.Claim): an erasure
// delivered again (the durable made anew) writes no second audit entry
// and no outbox row; the other updates change nothing and keep none.
func TestCustomerUpdatedErasureAppliedOnceOthersKeepNoInbox(t *testing.T) {
	e := setup(t)
	runCustomer := func() (stop func()) {
		c := consumer.CustomerUpdated(e.app)
		c.Service, c.Pool, c.JS, c.Log = "feedback", e.pool, e.js, e.log
		ctx, cancel := context.WithCancel(e.ctx)
		done := make(chan error, 1)
		go func() { done <- c.Run(ctx) }()
		var stopped bool
		stop = func() {
			if stopped {
				return
			}
			stopped = true
			cancel()
			require.NoError(t, <-done)
		}
		t.Cleanup(stop)
		return stop
	}
	acked := func() {
		t.Helper()
		done := servicetest.Acknowledged(t, e.js, stream.EventsStream, consumer.CustomerUpdatedDurable)
		require.Eventually(t, func() bool { return done(e.ctx) }, 60*time.Second, 20*time.Millisecond)
	}
	for _, ev := range []*eventsv1.CustomerUpdated{
		{EventId: "cu-1", TenantId: "acme", Customer: &typesv1.Customer{Id: "c-1", NameMasked: "王*"}, Version: 1},
		{EventId: "cu-2", TenantId: "acme", Customer: &typesv1.Customer{Id: "c-1"}, Version: 2, Erased: true},
		{EventId: "cu-3", TenantId: "acme", Customer: &typesv1.Customer{Id: "c-2", NameMasked: "李*"}, Version: 1},
	} {
		msg := nats.NewMsg(stream.SubjectCustomerUpdated)
		msg.Data = marshal(t, ev)
		msg.Header.Set(jetstream.MsgIDHeader, ev.GetEventId())
		_, err := e.js.PublishMsg(e.ctx, msg)
		require.NoError(t, err)
	}
	stop := runCustomer()
	acked()
	state := func() string {
		var s string
		require.NoError(t, e.pool.QueryRow(e.ctx, `SELECT concat_ws(E'\n',
  (SELECT string_agg(concat_ws(' ', tenant_id, seq, action, target_kind, target_id, detail, hash), E'\n' ORDER BY tenant_id, seq) FROM audit_log),
  (SELECT string_agg(concat_ws(' ', id, subject), E'\n' ORDER BY id) FROM outbox),
  (SELECT string_agg(concat_ws(' ', consumer, event_id), E'\n' ORDER BY consumer, event_id) FROM inbox))`).Scan(&s))
		return s
	}
	require.Equal(t, 1, e.count(t, `SELECT count(*) FROM audit_log WHERE action = 'customer.redact' AND target_id = 'c-1'`))
	require.Equal(t, 1, e.count(t, `SELECT count(*) FROM inbox`), "only the erasure keeps an entry")
	require.Equal(t, 1, e.count(t, `SELECT count(*) FROM inbox WHERE consumer = $1 AND event_id = 'cu-2'`, consumer.CustomerUpdatedDurable))
	before := state()

	// Everything delivered again: nothing changes.
	stop()
	require.NoError(t, e.js.DeleteConsumer(e.ctx, stream.EventsStream, consumer.CustomerUpdatedDurable))
	runCustomer()
	acked()
	require.Equal(t, before, state())
	require.Zero(t, e.count(t, `SELECT count(*) FROM rejected_events`))
}
