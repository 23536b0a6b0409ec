package inbox_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync/atomic"
	"testing"
	"testing/fstest"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/huifang/huifang/pkg/inbox"
	"github.com/huifang/huifang/pkg/invalid"
	"github.com/huifang/huifang/pkg/servicetest"
	"github.com/huifang/huifang/pkg/stream"
)

const subject = "huifang.events.test"

type bundle struct {
	ctx  context.Context
	pool *pgxpool.Pool
	js   jetstream.JetStream
	log  *slog.Logger
}

func setup(t *testing.T) bundle {
	t.Helper()
	effects := fstest.MapFS{"001_effects.sql": {Data: []byte(`CREATE TABLE effects (body text NOT NULL)`)}}
	pool := servicetest.Pool(t, "svc", effects)
	return bundle{ctx: context.Background(), pool: pool, js: servicetest.JetStream(t), log: servicetest.Logger()}
}

func (b bundle) consumer(h inbox.Handler) *inbox.Consumer {
	return &inbox.Consumer{Service: "svc", Durable: "svc-test", Stream: stream.EventsStream, Subjects: []string{subject},
		Handle: h, Pool: b.pool, JS: b.js, Log: b.log, MaxDeliver: 3, Backoff: 20 * time.Millisecond}
}

func (b bundle) run(t *testing.T, c *inbox.Consumer) {
	ctx, cancel := context.WithCancel(b.ctx)
	done := make(chan struct{})
	go func() { _ = c.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
}

func (b bundle) publish(t *testing.T, id, body string) {
	t.Helper()
	h := nats.Header{}
	if id != "" {
		h.Set(jetstream.MsgIDHeader, id)
	}
	_, err := b.js.PublishMsg(b.ctx, &nats.Msg{Subject: subject, Data: []byte(body), Header: h})
	require.NoError(t, err)
}

func (b bundle) count(t *testing.T, query string, args ...any) int {
	t.Helper()
	var n int
	require.NoError(t, b.pool.QueryRow(b.ctx, query, args...).Scan(&n))
	return n
}

// durable creates the test's durable consumer, to fetch from by hand (the
// server's default ack wait when ackWait is 0).
func (b bundle) durable(t *testing.T, ackWait time.Duration) jetstream.Consumer {
	t.Helper()
	cons, err := b.js.CreateOrUpdateConsumer(b.ctx, stream.EventsStream, jetstream.ConsumerConfig{Durable: "svc-test", FilterSubject: subject,
		AckPolicy: jetstream.AckExplicitPolicy, AckWait: ackWait})
	require.NoError(t, err)
	return cons
}

// fetch takes the next n messages from cons.
func fetch(t *testing.T, cons jetstream.Consumer, n int) []jetstream.Msg {
	t.Helper()
	fetched, err := cons.Fetch(n, jetstream.FetchMaxWait(30*time.Second))
	require.NoError(t, err)
	var msgs []jetstream.Msg
	for m := range fetched.Messages() {
		msgs = append(msgs, m)
	}
	require.Len(t, msgs, n)
	return msgs
}

func record(ctx context.Context, tx pgx.Tx, msg jetstream.Msg) error {
	_, err := tx.Exec(ctx, `INSERT INTO effects (body) VALUES ($1)`, string(msg.Data()))
	return err
}

// A message delivered twice (the ack was lost after the commit) has its effect once.
func TestRedeliveryAfterCommitHasNoSecondEffect(t *testing.T) {
	b := setup(t)
	c := b.consumer(record)
	b.publish(t, "e-1", "hello")
	cons, err := b.js.CreateOrUpdateConsumer(b.ctx, stream.EventsStream, jetstream.ConsumerConfig{Durable: "svc-test", FilterSubject: subject, AckPolicy: jetstream.AckExplicitPolicy})
	require.NoError(t, err)
	msg, err := cons.Next(jetstream.FetchMaxWait(5 * time.Second))
	require.NoError(t, err)
	c.Process(b.ctx, msg)
	c.Process(b.ctx, msg) // the same delivery handled again, as after a crash before the ack
	require.Equal(t, 1, b.count(t, `SELECT count(*) FROM effects`))
	require.Equal(t, 1, b.count(t, `SELECT count(*) FROM inbox WHERE consumer = 'svc-test' AND event_id = 'e-1'`))
}

// Without Nats-Msg-Id, the same bytes on the same subject are the same event.
func TestSamePayloadWithoutIDIsOneEvent(t *testing.T) {
	b := setup(t)
	b.run(t, b.consumer(record))
	b.publish(t, "", "same")
	b.publish(t, "", "same")
	b.publish(t, "", "other")
	require.Eventually(t, func() bool { return b.count(t, `SELECT count(*) FROM inbox`) == 2 }, 60*time.Second, 10*time.Millisecond)
	require.Equal(t, 2, b.count(t, `SELECT count(*) FROM effects`))
}

// Bad input is dead-lettered with its reason, recorded with the raw payload,
// changes nothing else, and the consumer goes on.
func TestInvalidMessageIsDeadLetteredAndConsumerGoesOn(t *testing.T) {
	b := setup(t)
	c := b.consumer(func(ctx context.Context, tx pgx.Tx, msg jetstream.Msg) error {
		if string(msg.Data()) == "bad" {
			if _, err := tx.Exec(ctx, `INSERT INTO effects (body) VALUES ('half-applied')`); err != nil {
				return err
			}
			return invalid.New("customer.external_id", "is required")
		}
		return record(ctx, tx, msg)
	})
	b.run(t, c)
	b.publish(t, "e-bad", "bad")
	b.publish(t, "e-good", "good")
	require.Eventually(t, func() bool { return b.count(t, `SELECT count(*) FROM effects`) == 1 }, 60*time.Second, 10*time.Millisecond)
	require.Equal(t, 0, b.count(t, `SELECT count(*) FROM effects WHERE body = 'half-applied'`))
	var field, reason, payload string
	require.NoError(t, b.pool.QueryRow(b.ctx, `SELECT field, reason, convert_from(payload, 'UTF8') FROM rejected_events WHERE event_id = 'e-bad'`).Scan(&field, &reason, &payload))
	require.Equal(t, "customer.external_id", field)
	require.Contains(t, reason, "customer.external_id: is required")
	require.Equal(t, "bad", payload)
	require.Equal(t, 1, b.count(t, `SELECT count(*) FROM outbox WHERE subject = $1`, stream.DeadLetterSubject("svc")))
}

// With Seal set, rejected_events keeps the sealed payload; the dead letter
// carries none, only the row it is kept in. A sealer that fails is retried.
func TestSealedRejectedPayload(t *testing.T) {
	b := setup(t)
	c := b.consumer(func(context.Context, pgx.Tx, jetstream.Msg) error {
		return invalid.New("customer.phone", "must be 5–20 digits")
	})
	var sealErrs atomic.Int32
	c.Seal = func(_ context.Context, p []byte) ([]byte, error) {
		if sealErrs.Add(1) == 1 {
			return nil, errors.New("key ring busy")
		}
		return append([]byte("sealed:"), p...), nil
	}
	b.run(t, c)
	b.publish(t, "e-secret", "+8613800138000")
	require.Eventually(t, func() bool {
		return b.count(t, `SELECT count(*) FROM rejected_events WHERE event_id = 'e-secret'`) == 1
	}, 60*time.Second, 10*time.Millisecond)
	var stored, dead string
	require.NoError(t, b.pool.QueryRow(b.ctx, `SELECT convert_from(payload, 'UTF8') FROM rejected_events WHERE event_id = 'e-secret'`).Scan(&stored))
	require.Equal(t, "sealed:+8613800138000", stored)
	var headers string
	require.NoError(t, b.pool.QueryRow(b.ctx, `SELECT convert_from(payload, 'UTF8'), headers::text FROM outbox WHERE subject = $1`, stream.DeadLetterSubject("svc")).Scan(&dead, &headers))
	require.Empty(t, dead, "no personal data on the dead-letter stream")
	require.Contains(t, headers, "sealed in svc's rejected_events row")
	require.GreaterOrEqual(t, sealErrs.Load(), int32(2))
}

// A transient failure is retried and then succeeds; one that never heals is
// dead-lettered after MaxDeliver attempts.
func TestFailuresAreRetriedThenDeadLettered(t *testing.T) {
	b := setup(t)
	var attempts atomic.Int32
	c := b.consumer(func(ctx context.Context, tx pgx.Tx, msg jetstream.Msg) error {
		switch string(msg.Data()) {
		case "flaky":
			if attempts.Add(1) == 1 {
				return errors.New("database hiccup")
			}
		case "broken":
			return errors.New("always fails")
		}
		return record(ctx, tx, msg)
	})
	b.run(t, c)
	b.publish(t, "e-flaky", "flaky")
	b.publish(t, "e-broken", "broken")
	require.Eventually(t, func() bool {
		return b.count(t, `SELECT count(*) FROM rejected_events WHERE event_id = 'e-broken'`) == 1
	}, 60*time.Second, 20*time.Millisecond)
	require.Equal(t, 1, b.count(t, `SELECT count(*) FROM effects WHERE body = 'flaky'`))
	require.Equal(t, int32(2), attempts.Load())
	var reason string
	require.NoError(t, b.pool.QueryRow(b.ctx, `SELECT reason FROM rejected_events WHERE event_id = 'e-broken'`).Scan(&reason))
	require.Contains(t, reason, "always fails")
}

// A typed consumer decodes each payload once into its event; a payload that
// is not that event is dead-lettered with the event's full name in the
// reason, and the consumer goes on.
func TestTypedConsumerDecodesOrDeadLetters(t *testing.T) {
	b := setup(t)
	c := inbox.Of("svc-typed", subject, func(ctx context.Context, tx pgx.Tx, ev *wrapperspb.StringValue) error {
		if inbox.EventIDFrom(ctx) == "" {
			return errors.New("the handler does not know the event id")
		}
		_, err := tx.Exec(ctx, `INSERT INTO effects (body) VALUES ($1)`, ev.GetValue())
		return err
	})
	require.Equal(t, stream.EventsStream, c.Stream)
	c.Service, c.Pool, c.JS, c.Log, c.Backoff = "svc", b.pool, b.js, b.log, 20*time.Millisecond
	b.run(t, c)
	good, err := proto.Marshal(wrapperspb.String("typed"))
	require.NoError(t, err)
	b.publish(t, "e-garbage", "\xff\xff not protobuf")
	b.publish(t, "e-typed", string(good))
	require.Eventually(t, func() bool { return b.count(t, `SELECT count(*) FROM effects WHERE body = 'typed'`) == 1 }, 60*time.Second, 10*time.Millisecond)
	var field, reason, tenantID string
	require.Eventually(t, func() bool {
		return b.count(t, `SELECT count(*) FROM rejected_events WHERE event_id = 'e-garbage'`) == 1
	}, 60*time.Second, 10*time.Millisecond)
	require.NoError(t, b.pool.QueryRow(b.ctx, `SELECT field, reason, tenant_id FROM rejected_events WHERE event_id = 'e-garbage'`).Scan(&field, &reason, &tenantID))
	require.Equal(t, "payload", field)
	require.Contains(t, reason, "must be a google.protobuf.StringValue in protobuf")
	require.Equal(t, "default", tenantID)
}

// Events decodes by subject; a subject it does not know is bad input.
func TestEventsDecodeBySubject(t *testing.T) {
	events := inbox.Events{subject: func() proto.Message { return &wrapperspb.StringValue{} }}
	data, err := proto.Marshal(wrapperspb.String("x"))
	require.NoError(t, err)
	ev, err := events.Decode(subject, data)
	require.NoError(t, err)
	require.Equal(t, "x", ev.(*wrapperspb.StringValue).GetValue())
	_, err = events.Decode("huifang.events.other", data)
	bad, ok := invalid.As(err)
	require.True(t, ok)
	require.Equal(t, "subject", bad.Violations[0].Field)
	c := inbox.OfEvents("svc-all", events, func(context.Context, pgx.Tx, proto.Message) error { return nil })
	require.Equal(t, []string{subject}, c.Subjects)
	require.Equal(t, stream.EventsStream, c.Stream)
}

// A handler that panics does not take the process down: the panic is
// recovered, the transaction rolls back, and the message is tried again.
func TestPanicInHandlerIsRetried(t *testing.T) {
	b := setup(t)
	var calls atomic.Int32
	c := b.consumer(func(ctx context.Context, tx pgx.Tx, msg jetstream.Msg) error {
		if _, err := tx.Exec(ctx, `INSERT INTO effects (body) VALUES ('before the panic')`); err != nil {
			return err
		}
		if calls.Add(1) == 1 {
			var m map[string]int
			m["nil map"] = 1 // panics
		}
		return record(ctx, tx, msg)
	})
	b.run(t, c)
	b.publish(t, "e-panic", "survived")
	require.Eventually(t, func() bool { return b.count(t, `SELECT count(*) FROM effects WHERE body = 'survived'`) == 1 }, 60*time.Second, 10*time.Millisecond)
	require.Equal(t, 1, b.count(t, `SELECT count(*) FROM effects WHERE body = 'before the panic'`), "the panicking attempt must have rolled back")
	require.Equal(t, int32(2), calls.Load())
}

// Several workers share one durable and handle every message once.
func TestWorkersShareTheDurable(t *testing.T) {
	b := setup(t)
	c := b.consumer(record)
	c.Workers = 4
	b.run(t, c)
	for i := range 50 {
		b.publish(t, fmt.Sprintf("e-%d", i), fmt.Sprintf("m-%d", i))
	}
	require.Eventually(t, func() bool { return b.count(t, `SELECT count(*) FROM effects`) == 50 }, 60*time.Second, 10*time.Millisecond)
	require.Equal(t, 50, b.count(t, `SELECT count(DISTINCT body) FROM effects`))
}

// A consumer deleted on the server (by hand, or lost with the server's
// store) is created again and goes on consuming.
func TestDeletedConsumerIsCreatedAgain(t *testing.T) {
	b := setup(t)
	b.run(t, b.consumer(record))
	b.publish(t, "e-1", "first")
	require.Eventually(t, func() bool { return b.count(t, `SELECT count(*) FROM effects`) == 1 }, 60*time.Second, 10*time.Millisecond)
	require.NoError(t, b.js.DeleteConsumer(b.ctx, stream.EventsStream, "svc-test"))
	b.publish(t, "e-2", "second")
	require.Eventually(t, func() bool { return b.count(t, `SELECT count(*) FROM effects`) == 2 }, 30*time.Second, 20*time.Millisecond)
}

// A failure marked Transient (a dependency away, a lease lost) is retried
// past MaxDeliver and never dead-lettered; the message is handled once the
// failure passes.
func TestTransientFailureIsNeverDeadLettered(t *testing.T) {
	b := setup(t)
	var attempts atomic.Int32
	c := b.consumer(func(ctx context.Context, tx pgx.Tx, msg jetstream.Msg) error {
		if attempts.Add(1) <= 5 { // MaxDeliver is 3
			return inbox.Transient(errors.New("database away"))
		}
		return record(ctx, tx, msg)
	})
	b.run(t, c)
	b.publish(t, "e-away", "waited")
	require.Eventually(t, func() bool { return b.count(t, `SELECT count(*) FROM effects WHERE body = 'waited'`) == 1 }, 60*time.Second, 20*time.Millisecond)
	require.Equal(t, 0, b.count(t, `SELECT count(*) FROM rejected_events`))
	require.True(t, inbox.IsTransient(fmt.Errorf("wrapped: %w", inbox.Transient(errors.New("x")))))
	require.NoError(t, inbox.Transient(nil))
}

// A dead-lettered event leaves no inbox row: sent again (after the
// upstream fix) it is handled, not dropped as a duplicate.
func TestDeadLetteredEventCanBeSentAgain(t *testing.T) {
	b := setup(t)
	var fixed atomic.Bool
	c := b.consumer(func(ctx context.Context, tx pgx.Tx, msg jetstream.Msg) error {
		if !fixed.Load() {
			return invalid.New("customer", "is required")
		}
		return record(ctx, tx, msg)
	})
	// The upstream system names the event "order-7" both times; the stream
	// drops a repeated Nats-Msg-Id within its window, so the resend has a new one.
	c.ID = func(jetstream.Msg) string { return "order-7" }
	b.run(t, c)
	b.publish(t, "nats-1", "first try")
	require.Eventually(t, func() bool {
		return b.count(t, `SELECT count(*) FROM rejected_events WHERE event_id = 'order-7'`) == 1
	}, 60*time.Second, 10*time.Millisecond)
	require.Equal(t, 0, b.count(t, `SELECT count(*) FROM inbox WHERE event_id = 'order-7'`))
	fixed.Store(true)
	b.publish(t, "nats-2", "second try")
	require.Eventually(t, func() bool { return b.count(t, `SELECT count(*) FROM effects WHERE body = 'second try'`) == 1 }, 60*time.Second, 10*time.Millisecond)
	require.Equal(t, 1, b.count(t, `SELECT count(*) FROM inbox WHERE event_id = 'order-7'`))
}

// A payload too large to travel with a dead letter's headers is kept in
// rejected_events only; the dead letter names the row.
func TestLargeDeadLetterKeptByReference(t *testing.T) {
	b := setup(t)
	c := b.consumer(func(context.Context, pgx.Tx, jetstream.Msg) error { return invalid.New("payload", "is not JSON") })
	b.run(t, c)
	big := strings.Repeat("x", inbox.MaxDeadLetterPayload+1)
	b.publish(t, "e-big", big)
	require.Eventually(t, func() bool {
		return b.count(t, `SELECT count(*) FROM rejected_events WHERE event_id = 'e-big'`) == 1
	}, 60*time.Second, 10*time.Millisecond)
	var stored, dead int
	var headers string
	require.NoError(t, b.pool.QueryRow(b.ctx, `SELECT length(payload) FROM rejected_events WHERE event_id = 'e-big'`).Scan(&stored))
	require.NoError(t, b.pool.QueryRow(b.ctx, `SELECT length(payload), headers::text FROM outbox WHERE subject = $1`, stream.DeadLetterSubject("svc")).Scan(&dead, &headers))
	require.Equal(t, len(big), stored)
	require.Zero(t, dead)
	require.Contains(t, headers, stream.HeaderPayloadOmitted)
	require.Contains(t, headers, stream.HeaderRejectedID)
}

// While the dependency watcher says the database is down, any failure is
// one of the moment: the message waits, is never dead-lettered, and is
// handled once the database is back.
func TestFailuresWhileDatabaseDownAreNotCounted(t *testing.T) {
	b := setup(t)
	var down atomic.Bool
	down.Store(true)
	var attempts atomic.Int32
	c := b.consumer(func(ctx context.Context, tx pgx.Tx, msg jetstream.Msg) error {
		if down.Load() {
			attempts.Add(1)
			return errors.New("some error while the database is away")
		}
		return record(ctx, tx, msg)
	})
	c.DatabaseUp = func() bool { return !down.Load() }
	b.run(t, c)
	b.publish(t, "e-wait", "waited out")
	require.Eventually(t, func() bool { return attempts.Load() > 5 }, 20*time.Second, 10*time.Millisecond, "more tries than MaxDeliver")
	require.Equal(t, 0, b.count(t, `SELECT count(*) FROM rejected_events`))
	require.Equal(t, 0, b.count(t, `SELECT count(*) FROM inbox_failures`))
	down.Store(false)
	require.Eventually(t, func() bool { return b.count(t, `SELECT count(*) FROM effects WHERE body = 'waited out'`) == 1 }, 60*time.Second, 20*time.Millisecond)
}

// A stream deleted on the server (a NATS server back with an empty store)
// is provisioned again by the consumer that misses it.
func TestMissingStreamIsProvisionedAgain(t *testing.T) {
	b := setup(t)
	c := b.consumer(record)
	var provisioned atomic.Int32
	c.Provision = func(ctx context.Context) error {
		provisioned.Add(1)
		return stream.Ensure(ctx, b.js, stream.Config{})
	}
	b.run(t, c)
	b.publish(t, "e-1", "before")
	require.Eventually(t, func() bool { return b.count(t, `SELECT count(*) FROM effects`) == 1 }, 60*time.Second, 10*time.Millisecond)
	require.NoError(t, b.js.DeleteStream(b.ctx, stream.EventsStream))
	require.Eventually(t, func() bool {
		_, err := b.js.Stream(b.ctx, stream.EventsStream)
		return err == nil && provisioned.Load() > 0
	}, 30*time.Second, 50*time.Millisecond, "the stream is created again")
	require.Eventually(t, func() bool {
		_, err := b.js.PublishMsg(b.ctx, &nats.Msg{Subject: subject, Data: []byte("after"), Header: nats.Header{jetstream.MsgIDHeader: []string{"e-2"}}})
		return err == nil
	}, 60*time.Second, 50*time.Millisecond)
	require.Eventually(t, func() bool { return b.count(t, `SELECT count(*) FROM effects WHERE body = 'after'`) == 1 }, 30*time.Second, 20*time.Millisecond)
}

// Handled ids are kept for the retention window, then purged.
func TestPurgeKeepsTheWindow(t *testing.T) {
	b := setup(t)
	_, err := b.pool.Exec(b.ctx, `INSERT INTO inbox (consumer, event_id, handled_at) VALUES
  ('c', 'old-1', now() - interval '8 days'), ('c', 'old-2', now() - interval '9 days'), ('c', 'new', now() - interval '1 day')`)
	require.NoError(t, err)
	_, err = b.pool.Exec(b.ctx, `INSERT INTO inbox_failures (consumer, event_id, failures, updated_at) VALUES ('c', 'stale', 1, now() - interval '8 days')`)
	require.NoError(t, err)
	n, err := inbox.Purge(b.ctx, b.pool, time.Now().Add(-7*24*time.Hour), 1)
	require.NoError(t, err)
	require.Equal(t, 2, n, "one old id (the limit) and the stale failure count")
	n, err = inbox.Purge(b.ctx, b.pool, time.Now().Add(-7*24*time.Hour), 100)
	require.NoError(t, err)
	require.Equal(t, 1, n)
	require.Equal(t, 1, b.count(t, `SELECT count(*) FROM inbox WHERE event_id = 'new'`))
	require.Equal(t, 1, b.count(t, `SELECT count(*) FROM inbox`))
}

// Two refused messages of one event (the upstream system sent a second,
// still broken version) are both recorded; a redelivery of one is not.
func TestEachRefusedMessageRecordedOnce(t *testing.T) {
	b := setup(t)
	c := b.consumer(func(context.Context, pgx.Tx, jetstream.Msg) error { return invalid.New("customer", "is required") })
	c.ID = func(jetstream.Msg) string { return "order-8" }
	b.publish(t, "nats-1", "broken once")
	b.publish(t, "nats-2", "broken twice")
	msgs := fetch(t, b.durable(t, 0), 2)
	c.Process(b.ctx, msgs[0])
	c.Process(b.ctx, msgs[0]) // redelivered after a lost ack
	c.Process(b.ctx, msgs[1])
	require.Equal(t, 2, b.count(t, `SELECT count(*) FROM rejected_events WHERE event_id = 'order-8'`))
	require.Equal(t, 2, b.count(t, `SELECT count(*) FROM outbox WHERE subject = $1`, stream.DeadLetterSubject("svc")))
}

// A fenced consumer writes nothing, not even a dead letter, while its
// fence refuses (a lease lost), and the message waits for one that holds it.
func TestFenceGuardsEveryTransaction(t *testing.T) {
	b := setup(t)
	var holds atomic.Bool
	c := b.consumer(func(ctx context.Context, tx pgx.Tx, msg jetstream.Msg) error {
		if string(msg.Data()) == "bad" {
			holds.Store(false) // the lease is lost between the handler and its dead letter
			return invalid.New("payload", "is bad")
		}
		return record(ctx, tx, msg)
	})
	var refusals atomic.Int32
	c.Fence = func(context.Context, pgx.Tx) error {
		if !holds.Load() {
			refusals.Add(1)
			return inbox.Transient(errors.New("lease lost"))
		}
		return nil
	}
	b.run(t, c)
	b.publish(t, "e-good", "good")
	require.Eventually(t, func() bool { return refusals.Load() > 2 }, 60*time.Second, 10*time.Millisecond)
	require.Equal(t, 0, b.count(t, `SELECT count(*) FROM effects`))
	holds.Store(true)
	require.Eventually(t, func() bool { return b.count(t, `SELECT count(*) FROM effects`) == 1 }, 30*time.Second, 20*time.Millisecond)

	before := refusals.Load()
	b.publish(t, "e-bad", "bad")
	require.Eventually(t, func() bool { return refusals.Load() > before+2 }, 60*time.Second, 10*time.Millisecond)
	require.Equal(t, 0, b.count(t, `SELECT count(*) FROM rejected_events`), "no dead letter without the lease")
	holds.Store(true)
	require.Eventually(t, func() bool { return b.count(t, `SELECT count(*) FROM rejected_events`) == 1 }, 30*time.Second, 20*time.Millisecond)
}

// A poison message whose error quotes bytes Postgres cannot store (a NUL,
// invalid UTF-8) is still counted and dead-lettered, and the rest goes on.
func TestPoisonWithUnstorableErrorIsDeadLettered(t *testing.T) {
	b := setup(t)
	c := b.consumer(func(ctx context.Context, tx pgx.Tx, msg jetstream.Msg) error {
		if strings.HasPrefix(string(msg.Data()), "poison") {
			_, err := tx.Exec(ctx, `INSERT INTO effects (body) VALUES ($1)`, string(msg.Data()))
			return fmt.Errorf("insert %s: %w", msg.Data(), err) // the raw bytes, as a careless store would
		}
		return record(ctx, tx, msg)
	})
	b.run(t, c)
	b.publish(t, "e-poison", "poison\x00\xff")
	b.publish(t, "e-after", "after")
	require.Eventually(t, func() bool {
		return b.count(t, `SELECT count(*) FROM rejected_events WHERE event_id = 'e-poison'`) == 1
	}, 30*time.Second, 20*time.Millisecond)
	require.Eventually(t, func() bool { return b.count(t, `SELECT count(*) FROM effects WHERE body = 'after'`) == 1 }, 30*time.Second, 20*time.Millisecond)
	var reason string
	require.NoError(t, b.pool.QueryRow(b.ctx, `SELECT reason FROM rejected_events WHERE event_id = 'e-poison'`).Scan(&reason))
	require.Contains(t, reason, "gave up after 3 failures")
}

// Refused inputs are kept for REJECTED_RETENTION, then purged in batches.
func TestPurgeRejected(t *testing.T) {
	b := setup(t)
	_, err := b.pool.Exec(b.ctx, `INSERT INTO rejected_events (id, source, reason, payload, received_at) VALUES
  ('old-1', 'nats', 'bad', '\x00', now() - interval '31 days'), ('old-2', 'nats', 'bad', '\x00', now() - interval '40 days'),
  ('new', 'nats', 'bad', '\x00', now() - interval '29 days')`)
	require.NoError(t, err)
	cutoff := time.Now().Add(-30 * 24 * time.Hour)
	n, err := inbox.PurgeRejected(b.ctx, b.pool, cutoff, 1)
	require.NoError(t, err)
	require.Equal(t, 1, n, "the limit")
	n, err = inbox.PurgeRejected(b.ctx, b.pool, cutoff, 100)
	require.NoError(t, err)
	require.Equal(t, 1, n)
	require.Equal(t, 1, b.count(t, `SELECT count(*) FROM rejected_events WHERE id = 'new'`))
	require.Equal(t, 1, b.count(t, `SELECT count(*) FROM rejected_events`))
}
