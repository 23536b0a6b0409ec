package consumer_test

import (
	"context"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	eventsv1 "github.com/huifang/huifang/proto/huifang/events/v1"
	typesv1 "github.com/huifang/huifang/proto/huifang/types/v1"

	"github.com/huifang/huifang/pkg/contact"
	"github.com/huifang/huifang/pkg/inbox"
	"github.com/huifang/huifang/pkg/invalid"
	"github.com/huifang/huifang/pkg/outbox"
	"github.com/huifang/huifang/pkg/servicetest"
	"github.com/huifang/huifang/pkg/stream"
	"github.com/huifang/huifang/services/dispatch/internal/app"
	"github.com/huifang/huifang/services/dispatch/internal/consumer"
	"github.com/huifang/huifang/services/dispatch/internal/storetest"
	"github.com/huifang/huifang/services/dispatch/internal/task"
)

var t0 = time.Date(2025, 3, 10, 9, 0, 0, 0, time.UTC)

type bundle struct {
	pool  *pgxpool.Pool
	js    jetstream.JetStream
	app   *app.App
	clock *storetest.Clock // the app's, standing at t0
	cons  *inbox.Consumer
}

func setup(t *testing.T) bundle {
	t.Helper()
	pool := storetest.Pool(t)
	js := servicetest.JetStream(t)
	clock := storetest.NewClock(t0)
	a := &app.App{DB: pool, Now: clock.Now, Log: servicetest.Logger()}
	return bundle{pool: pool, js: js, app: a, clock: clock, cons: filled(pool, js, consumer.VisitDue(a))}
}

// filled fills in what the runtime gives a consumer (rt.Consume).
func filled(pool *pgxpool.Pool, js jetstream.JetStream, c *inbox.Consumer) *inbox.Consumer {
	c.Service, c.Pool, c.JS, c.Log = "dispatch", pool, js, servicetest.Logger()
	c.Relay = outbox.NewRelay(pool, js, c.Log, storetest.Schema)
	return c
}

// run consumes until the test ends.
func (b bundle) run(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- b.cons.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		require.NoError(t, <-done)
	})
}

func (b bundle) publish(t *testing.T, msgID string, data []byte) *jetstream.PubAck {
	t.Helper()
	ack, err := b.js.PublishMsg(context.Background(), &nats.Msg{
		Subject: stream.SubjectVisitDue, Data: data, Header: nats.Header{jetstream.MsgIDHeader: {msgID}},
	})
	require.NoError(t, err)
	return ack
}

func (b bundle) count(t *testing.T, query string, args ...any) int {
	t.Helper()
	var n int
	require.NoError(t, b.pool.QueryRow(context.Background(), query, args...).Scan(&n))
	return n
}

// visitDue is a VisitDue the scheduler would send: a phone survey within 3
// days after a repair (seed 000, auto dealer).
func visitDue(t *testing.T, visit string) []byte {
	t.Helper()
	b, err := proto.Marshal(&eventsv1.VisitDue{
		EventId: "ev-" + visit, TenantId: "default", VisitId: visit, Channel: typesv1.Channel_CHANNEL_PHONE,
		DueAt: timestamppb.New(t0), Deadline: timestamppb.New(t0.Add(72 * time.Hour)),
		Customer: &typesv1.Customer{Id: "c-1", NameMasked: "王芳", PhoneMasked: "13800000000", HasPhone: true}, ServiceType: "repair", OrgUnit: "north",
	})
	require.NoError(t, err)
	return b
}

func TestSameVisitDueTwiceMakesOneTask(t *testing.T) {
	b := setup(t)
	data := visitDue(t, "v-1")

	// JetStream drops a republish with the same Nats-Msg-Id.
	require.False(t, b.publish(t, "ev-v-1", data).Duplicate)
	require.True(t, b.publish(t, "ev-v-1", data).Duplicate)

	// A redelivery of the same message finds the visit's task (the
	// consumer keeps no inbox entries).
	raw, err := b.js.CreateConsumer(context.Background(), stream.EventsStream, jetstream.ConsumerConfig{
		FilterSubject: stream.SubjectVisitDue, AckPolicy: jetstream.AckExplicitPolicy,
	})
	require.NoError(t, err)
	batch, err := raw.Fetch(1, jetstream.FetchMaxWait(5*time.Second))
	require.NoError(t, err)
	msg := <-batch.Messages()
	require.NotNil(t, msg)
	b.cons.Process(context.Background(), msg)
	b.cons.Process(context.Background(), msg)
	require.Equal(t, 1, b.count(t, `SELECT count(*) FROM tasks WHERE visit_id = 'v-1'`))
	require.Zero(t, b.count(t, `SELECT count(*) FROM inbox WHERE consumer = $1`, consumer.Durable))

	// The same visit under another event id (the scheduler emitting it
	// again) finds the task already there.
	b.publish(t, "ev-v-1-again", data)
	acked := servicetest.Acknowledged(t, b.js, stream.EventsStream, consumer.Durable)
	b.run(t)
	require.Eventually(t, func() bool { return acked(context.Background()) }, 60*time.Second, 20*time.Millisecond)
	require.Equal(t, 1, b.count(t, `SELECT count(*) FROM tasks`))
	require.Equal(t, 0, b.count(t, `SELECT count(*) FROM rejected_events`))

	var customer, channel, status string
	var deadline time.Time
	require.NoError(t, b.pool.QueryRow(context.Background(), `SELECT customer->>'nameMasked', channel, status, deadline FROM tasks`).
		Scan(&customer, &channel, &status, &deadline))
	require.Equal(t, "王芳", customer)
	require.Equal(t, "CHANNEL_PHONE", channel)
	require.Equal(t, "open", status)
	require.True(t, deadline.Equal(t0.Add(72*time.Hour)))
}

func TestMalformedVisitDueIsDeadLettered(t *testing.T) {
	b := setup(t)
	noVisitID, err := proto.Marshal(&eventsv1.VisitDue{TenantId: "acme", Channel: typesv1.Channel_CHANNEL_SMS})
	require.NoError(t, err)
	b.publish(t, "garbage", []byte{0xff, 0xff, 0xff})
	b.publish(t, "no-visit-id", noVisitID)
	b.publish(t, "good", visitDue(t, "v-good"))
	b.run(t)

	require.Eventually(t, func() bool {
		return b.count(t, `SELECT count(*) FROM tasks WHERE visit_id = 'v-good'`) == 1
	}, 10*time.Second, 20*time.Millisecond, "the consumer goes on past the bad messages")
	rows, err := b.pool.Query(context.Background(), `SELECT event_id, tenant_id, field FROM rejected_events ORDER BY event_id`)
	require.NoError(t, err)
	type rejected struct{ EventID, Tenant, Field string }
	var got []rejected
	for rows.Next() {
		var r rejected
		require.NoError(t, rows.Scan(&r.EventID, &r.Tenant, &r.Field))
		got = append(got, r)
	}
	require.NoError(t, rows.Err())
	require.Equal(t, []rejected{
		{EventID: "garbage", Tenant: "default", Field: "payload"},
		{EventID: "no-visit-id", Tenant: "acme", Field: "visit_id"},
	}, got)
	require.Equal(t, 1, b.count(t, `SELECT count(*) FROM tasks`))
	require.Equal(t, 2, b.count(t, `SELECT count(*) FROM outbox WHERE subject = $1`, stream.DeadLetterSubject("dispatch")))
}

// TestDue: the adapter's part of reading a VisitDue: valid times, the
// tenant (default when none), the customer and the tenant's calendar.
func TestDue(t *testing.T) {
	d, err := consumer.Due(&eventsv1.VisitDue{VisitId: "v-1", Channel: typesv1.Channel_CHANNEL_PHONE, DueAt: timestamppb.New(t0),
		Customer: &typesv1.Customer{Id: "c-1", Preferences: &typesv1.ContactPreferences{TimeZone: "Asia/Shanghai",
			Windows: []*typesv1.ContactWindow{{StartMinute: 600, EndMinute: 690}}}},
		ContactCalendar: &typesv1.ContactCalendar{Windows: []*typesv1.ContactWindow{{StartMinute: 930, EndMinute: 1020}},
			QuietHours: &typesv1.ContactWindow{StartMinute: 1260, EndMinute: 480}, TimeZone: "Asia/Shanghai", Holidays: []string{"2025-10-01"}, AvoidHolidays: true}})
	require.NoError(t, err)
	require.Equal(t, task.Due{Tenant: "default", VisitID: "v-1", Channel: typesv1.Channel_CHANNEL_PHONE, DueAt: t0,
		Customer: task.Customer{ID: "c-1", Preferences: task.Preferences{TimeZone: "Asia/Shanghai", Windows: []contact.Window{{Start: 600, End: 690}}}},
		Calendar: contact.Calendar{Windows: []contact.Window{{Start: 930, End: 1020}}, Quiet: &contact.Window{Start: 1260, End: 480},
			TimeZone: "Asia/Shanghai", Holidays: []string{"2025-10-01"}, AvoidHolidays: true}}, d)

	_, err = consumer.Due(&eventsv1.VisitDue{VisitId: "v-4", DueAt: &timestamppb.Timestamp{Nanos: -1}, Deadline: &timestamppb.Timestamp{Seconds: 1 << 62}})
	bad, ok := invalid.As(err)
	require.True(t, ok, "%v", err)
	var fields []string
	for _, v := range bad.Violations {
		fields = append(fields, v.Field)
	}
	require.Equal(t, []string{"due_at", "deadline"}, fields, "invalid times")
}
