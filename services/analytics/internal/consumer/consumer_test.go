package consumer_test

import (
	"context"
	"log/slog"
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

	"github.com/huifang/huifang/pkg/inbox"
	"github.com/huifang/huifang/pkg/outbox"
	"github.com/huifang/huifang/pkg/servicetest"
	"github.com/huifang/huifang/pkg/stream"
	"github.com/huifang/huifang/services/analytics/internal/consumer"
	"github.com/huifang/huifang/services/analytics/internal/satisfaction"
	"github.com/huifang/huifang/services/analytics/internal/store"
	"github.com/huifang/huifang/services/analytics/migrations"
)

type bundle struct {
	pool     *pgxpool.Pool
	js       jetstream.JetStream
	log      *slog.Logger
	consumer *inbox.Consumer
	store    *store.Store
}

// setup builds storage as app.Start does (schema "analytics" with the outbox,
// inbox and analytics migrations), a real NATS server with the streams, and
// the VisitLogged consumer wired to both.
func setup(t *testing.T) bundle {
	t.Helper()
	log := servicetest.Logger()
	pool := servicetest.Pool(t, "analytics", migrations.FS)
	js := servicetest.JetStream(t)
	c := consumer.VisitLogged()
	c.Service, c.Pool, c.JS, c.Log = "analytics", pool, js, log
	return bundle{pool: pool, js: js, log: log, consumer: c, store: &store.Store{Pool: pool}}
}

// run starts the durable consumer until the test ends.
func (b bundle) run(t *testing.T) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- b.consumer.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		require.NoError(t, <-done)
	})
}

func (b bundle) publish(t *testing.T, msgID string, data []byte) *jetstream.PubAck {
	t.Helper()
	msg := nats.NewMsg(stream.SubjectVisitLogged)
	msg.Data = data
	msg.Header.Set(jetstream.MsgIDHeader, msgID)
	msg.Header.Set(stream.HeaderContentType, stream.ContentTypeProtobuf)
	ack, err := b.js.PublishMsg(context.Background(), msg)
	require.NoError(t, err)
	return ack
}

// waitHandled waits until the consumer has written n inbox rows (handled or dead-lettered).
func (b bundle) waitHandled(t *testing.T, n int) {
	t.Helper()
	require.Eventually(t, func() bool {
		var got int
		err := b.pool.QueryRow(context.Background(), `SELECT count(*) FROM inbox WHERE consumer = $1`, consumer.Durable).Scan(&got)
		return err == nil && got >= n
	}, 15*time.Second, 20*time.Millisecond)
}

func (b bundle) sum(t *testing.T, f store.Filter) satisfaction.Counts {
	t.Helper()
	if f.Tenant == "" {
		f.Tenant = "default"
	}
	c, err := b.store.Sum(context.Background(), f)
	require.NoError(t, err)
	return c
}

var day = time.Date(2025, 3, 14, 0, 0, 0, 0, time.UTC)

func visitLogged(visitID string, answers ...*typesv1.Answer) []byte {
	b, err := proto.Marshal(&eventsv1.VisitLogged{
		EventId:  "ev-" + visitID,
		VisitId:  visitID,
		OrgUnit:  "north",
		LoggedAt: timestamppb.New(day.Add(9 * time.Hour)),
		Answers:  answers,
	})
	if err != nil {
		panic(err)
	}
	return b
}

func answer(aspect string, r typesv1.Rating) *typesv1.Answer {
	return &typesv1.Answer{Aspect: aspect, Rating: r}
}

func TestVisitLoggedAddsVotes(t *testing.T) {
	b := setup(t)
	b.run(t)
	b.publish(t, "ev-1", visitLogged("visit-1", answer("overall", typesv1.Rating_RATING_SATISFIED), answer("cleaning", typesv1.Rating_RATING_UNSATISFIED), answer("parking", typesv1.Rating_RATING_UNSPECIFIED)))
	b.publish(t, "ev-2", visitLogged("visit-2", answer("overall", typesv1.Rating_RATING_FAIRLY_SATISFIED)))
	b.waitHandled(t, 2)

	require.Equal(t, satisfaction.Counts{Satisfied: 1, FairlySatisfied: 1}, b.sum(t, store.Filter{Aspect: "overall"}))
	require.Equal(t, satisfaction.Counts{Unsatisfied: 1}, b.sum(t, store.Filter{Aspect: "cleaning"}))
	require.Equal(t, satisfaction.Counts{}, b.sum(t, store.Filter{Aspect: "parking"}), "an answer without a rating is no vote")

	var rows, org int
	require.NoError(t, b.pool.QueryRow(context.Background(),
		`SELECT count(*), count(*) FILTER (WHERE org_unit = 'north' AND day = $1) FROM satisfaction_daily WHERE tenant_id = 'default'`, day).Scan(&rows, &org))
	require.Equal(t, 2, rows, "one bucket per (day, org unit, aspect): overall and cleaning")
	require.Equal(t, 2, org)
}

// A republished event with the same Nats-Msg-Id is dropped by JetStream
// within its duplicate window.
func TestDuplicatePublishCountsOnce(t *testing.T) {
	b := setup(t)
	b.run(t)
	data := visitLogged("visit-1", answer("overall", typesv1.Rating_RATING_SATISFIED))
	require.False(t, b.publish(t, "ev-1", data).Duplicate)
	require.True(t, b.publish(t, "ev-1", data).Duplicate)
	b.publish(t, "ev-2", visitLogged("visit-2", answer("overall", typesv1.Rating_RATING_UNSATISFIED)))
	b.waitHandled(t, 2)

	require.Equal(t, satisfaction.Counts{Satisfied: 1, Unsatisfied: 1}, b.sum(t, store.Filter{Aspect: "overall"}))
}

// An event handled once whose ack was lost comes again from the durable
// consumer; the inbox row, written in the same transaction as the votes,
// makes the second delivery change nothing.
func TestRedeliveryCountsOnce(t *testing.T) {
	b := setup(t)
	ctx := context.Background()
	ack := b.publish(t, "ev-1", visitLogged("visit-1", answer("overall", typesv1.Rating_RATING_SATISFIED)))

	// First delivery, through a consumer of its own, handled but never acked
	// to the durable consumer.
	first, err := b.js.CreateConsumer(ctx, stream.EventsStream, jetstream.ConsumerConfig{
		AckPolicy: jetstream.AckExplicitPolicy, FilterSubject: stream.SubjectVisitLogged,
	})
	require.NoError(t, err)
	msg, err := first.Next(jetstream.FetchMaxWait(5 * time.Second))
	require.NoError(t, err)
	require.Equal(t, "ev-1", msg.Headers().Get(jetstream.MsgIDHeader))
	b.consumer.Process(ctx, msg)
	require.Equal(t, satisfaction.Counts{Satisfied: 1}, b.sum(t, store.Filter{Aspect: "overall"}))

	// Second delivery: the durable consumer gets the same message and acks it.
	b.run(t)
	require.Eventually(t, func() bool {
		info, err := b.js.Consumer(ctx, stream.EventsStream, consumer.Durable)
		if err != nil {
			return false
		}
		ci, err := info.Info(ctx)
		return err == nil && ci.AckFloor.Stream >= ack.Sequence
	}, 15*time.Second, 20*time.Millisecond)

	require.Equal(t, satisfaction.Counts{Satisfied: 1}, b.sum(t, store.Filter{Aspect: "overall"}))
	var handled int
	require.NoError(t, b.pool.QueryRow(ctx, `SELECT count(*) FROM inbox WHERE consumer = $1 AND event_id = 'ev-1'`, consumer.Durable).Scan(&handled))
	require.Equal(t, 1, handled)
}

func TestMalformedEventIsDeadLettered(t *testing.T) {
	b := setup(t)
	ctx := context.Background()
	b.run(t)
	b.publish(t, "bad-payload", []byte{0xff, 0xff, 0xff})
	b.publish(t, "bad-visit", visitLogged("", answer("overall", typesv1.Rating_RATING_SATISFIED)))
	b.publish(t, "good", visitLogged("visit-1", answer("overall", typesv1.Rating_RATING_FAIRLY_SATISFIED)))
	b.waitHandled(t, 3)

	// The consumer went on: the good event after the bad ones counted, and
	// only it.
	require.Equal(t, satisfaction.Counts{FairlySatisfied: 1}, b.sum(t, store.Filter{Aspect: "overall"}))

	rows, err := b.pool.Query(ctx, `SELECT event_id, field, source FROM rejected_events ORDER BY event_id`)
	require.NoError(t, err)
	type rejected struct{ EventID, Field, Source string }
	got := []rejected{}
	for rows.Next() {
		var r rejected
		require.NoError(t, rows.Scan(&r.EventID, &r.Field, &r.Source))
		got = append(got, r)
	}
	require.NoError(t, rows.Err())
	require.Equal(t, []rejected{
		{EventID: "bad-payload", Field: "payload", Source: stream.SubjectVisitLogged},
		{EventID: "bad-visit", Field: "visit_id", Source: stream.SubjectVisitLogged},
	}, got)

	// The relay puts them on the dead-letter subject with the reason.
	relay := outbox.NewRelay(b.pool, b.js, b.log, "analytics")
	n, err := relay.RunOnce(ctx)
	require.NoError(t, err)
	require.Equal(t, 2, n)
	dlq, err := b.js.Stream(ctx, stream.DLQStream)
	require.NoError(t, err)
	last, err := dlq.GetLastMsgForSubject(ctx, stream.DeadLetterSubject("analytics"))
	require.NoError(t, err)
	require.Equal(t, "visit_id", last.Header.Get(stream.HeaderField))
	require.Equal(t, stream.SubjectVisitLogged, last.Header.Get(stream.HeaderOrigSubject))
	require.Contains(t, last.Header.Get(stream.HeaderReason), "visit_id")
}
