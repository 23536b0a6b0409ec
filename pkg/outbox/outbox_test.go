package outbox_test

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
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

	"github.com/huifang/huifang/pkg/outbox"
	"github.com/huifang/huifang/pkg/servicetest"
	"github.com/huifang/huifang/pkg/stream"
)

type bundle struct {
	ctx  context.Context
	pool *pgxpool.Pool
	js   jetstream.JetStream
	log  *slog.Logger
}

func setup(t *testing.T) bundle {
	t.Helper()
	// No migrations of its own: the outbox set is all it needs (the inbox
	// tables servicetest adds are unused here).
	pool := servicetest.Pool(t, "svc", fstest.MapFS{})
	return bundle{ctx: context.Background(), pool: pool, js: servicetest.JetStream(t), log: servicetest.Logger()}
}

func add(t *testing.T, b bundle, id, text string) {
	t.Helper()
	require.NoError(t, pgx.BeginFunc(b.ctx, b.pool, func(tx pgx.Tx) error {
		_, err := outbox.Add(b.ctx, tx, outbox.Message{ID: id, Subject: "huifang.events.test", Payload: wrapperspb.String(text)})
		return err
	}))
}

// openLate begins a transaction that adds the event "late" and leaves it
// open (rolled back at the end of the test unless committed); the insert
// has reached the database. It returns the transaction and its id.
func openLate(t *testing.T, b bundle) (pgx.Tx, uint64) {
	t.Helper()
	late, err := b.pool.Begin(b.ctx)
	require.NoError(t, err)
	t.Cleanup(func() { late.Rollback(b.ctx) }) //nolint:errcheck // committed by the test
	_, err = outbox.Add(b.ctx, late, outbox.Message{ID: "late", Subject: "huifang.events.test", Payload: wrapperspb.String("late")})
	require.NoError(t, err)
	var xid uint64 // the query also sends the deferred insert
	require.NoError(t, late.QueryRow(b.ctx, `SELECT pg_current_xact_id()`).Scan(&xid))
	return late, xid
}

// pending is outbox.Pending, which must not fail.
func pending(t *testing.T, b bundle) int64 {
	t.Helper()
	n, err := outbox.Pending(b.ctx, b.pool)
	require.NoError(t, err)
	return n
}

func streamMsgs(t *testing.T, b bundle) []jetstream.Msg {
	t.Helper()
	c, err := b.js.OrderedConsumer(b.ctx, stream.EventsStream, jetstream.OrderedConsumerConfig{})
	require.NoError(t, err)
	var out []jetstream.Msg
	for {
		m, err := c.Next(jetstream.FetchMaxWait(300 * time.Millisecond))
		if err != nil {
			return out
		}
		out = append(out, m)
	}
}

// An event committed but not yet published when the process died is
// published by the next relay, once, in commit order, with Nats-Msg-Id = event id.
func TestCommittedEventsSurviveACrashBeforePublish(t *testing.T) {
	b := setup(t)
	add(t, b, "e-1", "one")
	add(t, b, "e-2", "two")
	// The process "dies" here: nothing relayed. A new relay starts.
	r := outbox.NewRelay(b.pool, b.js, b.log, "svc")
	n, err := r.RunOnce(b.ctx)
	require.NoError(t, err)
	require.Equal(t, 2, n)
	n, err = r.RunOnce(b.ctx)
	require.NoError(t, err)
	require.Zero(t, n, "published rows are not sent again")

	msgs := streamMsgs(t, b)
	require.Len(t, msgs, 2)
	require.Equal(t, "e-1", msgs[0].Headers().Get(jetstream.MsgIDHeader))
	require.Equal(t, "e-2", msgs[1].Headers().Get(jetstream.MsgIDHeader))
	require.Equal(t, stream.ContentTypeProtobuf, msgs[0].Headers().Get(stream.HeaderContentType))
	require.Zero(t, pending(t, b))
}

// A relay that published but died before marking the rows publishes them
// again; JetStream drops the copies by Nats-Msg-Id.
func TestRepublishAfterACrashBeforeMarkingIsDeduplicated(t *testing.T) {
	b := setup(t)
	add(t, b, "e-1", "one")
	r := outbox.NewRelay(b.pool, b.js, b.log, "svc")
	_, err := r.RunOnce(b.ctx)
	require.NoError(t, err)
	_, err = b.pool.Exec(b.ctx, `UPDATE outbox SET published_at = NULL`) // the mark was lost
	require.NoError(t, err)
	n, err := r.RunOnce(b.ctx)
	require.NoError(t, err)
	require.Equal(t, 1, n)
	require.Len(t, streamMsgs(t, b), 1)
}

// A rolled-back transaction publishes nothing.
func TestRolledBackEventsAreNeverPublished(t *testing.T) {
	b := setup(t)
	err := pgx.BeginFunc(b.ctx, b.pool, func(tx pgx.Tx) error {
		if _, err := outbox.Add(b.ctx, tx, outbox.Message{Subject: "huifang.events.test", Payload: wrapperspb.String("x")}); err != nil {
			return err
		}
		return context.Canceled
	})
	require.ErrorIs(t, err, context.Canceled)
	n, err := outbox.NewRelay(b.pool, b.js, b.log, "svc").RunOnce(b.ctx)
	require.NoError(t, err)
	require.Zero(t, n)
	require.Empty(t, streamMsgs(t, b))
}

// Run publishes soon after Notify, without waiting for its tick.
func TestRunPublishesOnNotify(t *testing.T) {
	b := setup(t)
	r := outbox.NewRelay(b.pool, b.js, b.log, "svc")
	r.Interval = time.Hour
	ctx, cancel := context.WithCancel(b.ctx)
	done := make(chan error)
	go func() { done <- r.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	add(t, b, "e-1", "one")
	r.Notify()
	require.Eventually(t, func() bool {
		n, err := outbox.Pending(b.ctx, b.pool)
		return err == nil && n == 0
	}, 60*time.Second, 10*time.Millisecond)
}

// A row NATS refuses for good (larger than the server's max payload) is
// quarantined with the reason and the rows behind it are published: one
// row cannot stop the relay.
func TestRefusedRowIsQuarantinedAndTheRestGoOn(t *testing.T) {
	b := setup(t)
	add(t, b, "e-1", "before")
	require.NoError(t, pgx.BeginFunc(b.ctx, b.pool, func(tx pgx.Tx) error {
		return outbox.AddRaw(b.ctx, tx, "e-huge", "huifang.events.test", make([]byte, 2<<20), nats.Header{})
	}))
	add(t, b, "e-2", "after")
	r := outbox.NewRelay(b.pool, b.js, b.log, "svc")
	n, err := r.RunOnce(b.ctx)
	require.NoError(t, err)
	require.Equal(t, 3, n)
	msgs := streamMsgs(t, b)
	require.Len(t, msgs, 2)
	require.Equal(t, "e-1", msgs[0].Headers().Get(jetstream.MsgIDHeader))
	require.Equal(t, "e-2", msgs[1].Headers().Get(jetstream.MsgIDHeader))
	var reason string
	require.NoError(t, b.pool.QueryRow(b.ctx, `SELECT quarantine_reason FROM outbox WHERE id = 'e-huge' AND quarantined_at IS NOT NULL AND published_at IS NULL`).Scan(&reason))
	require.Contains(t, reason, "maximum payload")
	require.Zero(t, pending(t, b))
	q, err := outbox.Quarantined(b.ctx, b.pool)
	require.NoError(t, err)
	require.EqualValues(t, 1, q)
	n, err = r.RunOnce(b.ctx)
	require.NoError(t, err)
	require.Zero(t, n, "a quarantined row is not tried again")
}

// An acknowledgement that never comes does not hold the relay (and its
// lock) for ever: the round gives up after AckTimeout, keeps the row, and
// the next round may run.
func TestMissingAckTimesOut(t *testing.T) {
	b := setup(t)
	// Something answers on the subject but never acknowledges.
	sub, err := b.js.Conn().Subscribe("blackhole.test", func(*nats.Msg) {})
	require.NoError(t, err)
	defer sub.Unsubscribe()
	require.NoError(t, pgx.BeginFunc(b.ctx, b.pool, func(tx pgx.Tx) error {
		return outbox.AddRaw(b.ctx, tx, "e-lost", "blackhole.test", []byte("x"), nats.Header{})
	}))
	r := outbox.NewRelay(b.pool, b.js, b.log, "svc")
	r.AckTimeout = 300 * time.Millisecond
	done := make(chan error, 1)
	go func() { _, err := r.RunOnce(b.ctx); done <- err }()
	select {
	case err := <-done:
		require.ErrorContains(t, err, "no publish acknowledgement")
	case <-time.After(20 * time.Second):
		t.Fatal("the relay waited for an acknowledgement that never comes")
	}
	require.EqualValues(t, 1, pending(t, b), "the row stays for the next round")
}

// A publish that finds no stream asks for the streams to be provisioned.
func TestNoStreamProvisions(t *testing.T) {
	b := setup(t)
	require.NoError(t, b.js.DeleteStream(b.ctx, stream.EventsStream))
	add(t, b, "e-1", "waiting for its stream")
	r := outbox.NewRelay(b.pool, b.js, b.log, "svc")
	r.Provision = func(ctx context.Context) error { return stream.Ensure(ctx, b.js, stream.Config{}) }
	_, err := r.RunOnce(b.ctx)
	require.Error(t, err, "the first round finds no stream")
	n, err := r.RunOnce(b.ctx)
	require.NoError(t, err)
	require.Equal(t, 1, n)
	require.Len(t, streamMsgs(t, b), 1)
}

// A stream created anew lost what it held: the relay publishes again the
// rows it still keeps, once (one replica queues them), and only those of
// that stream.
func TestRestreamedPublishesAgain(t *testing.T) {
	b := setup(t)
	add(t, b, "e-1", "one")
	add(t, b, "e-2", "two")
	require.NoError(t, pgx.BeginFunc(b.ctx, b.pool, func(tx pgx.Tx) error {
		return outbox.AddRaw(b.ctx, tx, "d-1", stream.DeadLetterSubject("svc"), []byte("dead"), nats.Header{})
	}))
	r := outbox.NewRelay(b.pool, b.js, b.log, "svc")
	_, err := r.RunOnce(b.ctx)
	require.NoError(t, err)
	created := func() time.Time {
		s, err := b.js.Stream(b.ctx, stream.EventsStream)
		require.NoError(t, err)
		return s.CachedInfo().Created
	}
	first := created()
	n, err := r.Restreamed(b.ctx, stream.EventsStream, "huifang.events.", first)
	require.NoError(t, err)
	require.Zero(t, n, "the first look only notes the stream")
	n, err = r.Restreamed(b.ctx, stream.EventsStream, "huifang.events.", first)
	require.NoError(t, err)
	require.Zero(t, n, "the same stream again")

	// The server loses its store: the stream comes back empty.
	require.NoError(t, b.js.DeleteStream(b.ctx, stream.EventsStream))
	require.NoError(t, stream.Ensure(b.ctx, b.js, stream.Config{}))
	require.Empty(t, streamMsgs(t, b))
	second := created()
	require.False(t, first.Equal(second))
	n, err = r.Restreamed(b.ctx, stream.EventsStream, "huifang.events.", second)
	require.NoError(t, err)
	require.EqualValues(t, 2, n, "the two events, not the dead letter of the other stream")
	n, err = r.Restreamed(b.ctx, stream.EventsStream, "huifang.events.", second)
	require.NoError(t, err)
	require.Zero(t, n, "queued once")
	_, err = r.RunOnce(b.ctx)
	require.NoError(t, err)
	msgs := streamMsgs(t, b)
	require.Len(t, msgs, 2)
	require.Equal(t, "e-1", msgs[0].Headers().Get(jetstream.MsgIDHeader))
	require.Equal(t, "e-2", msgs[1].Headers().Get(jetstream.MsgIDHeader))
}

// Published rows are kept for OUTBOX_RETENTION, then purged in batches;
// rows not yet published, and quarantined ones, stay whatever their age.
func TestPurgeKeepsWhatIsNotPublished(t *testing.T) {
	b := setup(t)
	for _, id := range []string{"old-1", "old-2", "new", "waiting", "refused"} {
		add(t, b, id, id)
	}
	_, err := b.pool.Exec(b.ctx, `UPDATE outbox SET published_at = now() - interval '2 days' WHERE id IN ('old-1', 'old-2')`)
	require.NoError(t, err)
	_, err = b.pool.Exec(b.ctx, `UPDATE outbox SET published_at = now() - interval '1 hour' WHERE id = 'new'`)
	require.NoError(t, err)
	_, err = b.pool.Exec(b.ctx, `UPDATE outbox SET quarantined_at = now() - interval '3 days', created_at = now() - interval '3 days' WHERE id = 'refused'`)
	require.NoError(t, err)
	cutoff := time.Now().Add(-24 * time.Hour)
	n, err := outbox.Purge(b.ctx, b.pool, cutoff, 1)
	require.NoError(t, err)
	require.Equal(t, 1, n, "the limit")
	n, err = outbox.Purge(b.ctx, b.pool, cutoff, 100)
	require.NoError(t, err)
	require.Equal(t, 1, n)
	var left []string
	require.NoError(t, b.pool.QueryRow(b.ctx, `SELECT array_agg(id ORDER BY id) FROM outbox`).Scan(&left))
	require.Equal(t, []string{"new", "refused", "waiting"}, left)
}

// A round's events of one stream are stored as one atomic batch (one
// acknowledgement, one write), in commit order, each with its id.
func TestRoundIsOneAtomicBatch(t *testing.T) {
	b := setup(t)
	for i := range 20 {
		add(t, b, fmt.Sprintf("e-%02d", i), "x")
	}
	n, err := outbox.NewRelay(b.pool, b.js, b.log, "svc").RunOnce(b.ctx)
	require.NoError(t, err)
	require.Equal(t, 20, n)
	msgs := streamMsgs(t, b)
	require.Len(t, msgs, 20)
	batch := msgs[0].Headers().Get("Nats-Batch-Id")
	require.NotEmpty(t, batch, "stored by an atomic batch")
	for i, m := range msgs {
		require.Equal(t, fmt.Sprintf("e-%02d", i), m.Headers().Get(jetstream.MsgIDHeader))
		require.Equal(t, batch, m.Headers().Get("Nats-Batch-Id"))
	}
}

// A round that holds events stored before (the relay died before marking
// them) fails as an atomic batch, which JetStream refuses whole; its
// events are then published one by one and the copies dropped by id.
func TestRoundWithEventsStoredBeforeIsPublishedOneByOne(t *testing.T) {
	b := setup(t)
	for i := range 5 {
		add(t, b, fmt.Sprintf("e-%d", i), "x")
	}
	r := outbox.NewRelay(b.pool, b.js, b.log, "svc")
	_, err := r.RunOnce(b.ctx)
	require.NoError(t, err)
	_, err = b.pool.Exec(b.ctx, `UPDATE outbox SET published_at = NULL WHERE id IN ('e-2', 'e-3', 'e-4')`) // the mark was lost
	require.NoError(t, err)
	add(t, b, "e-5", "x")
	add(t, b, "e-6", "x")
	n, err := r.RunOnce(b.ctx)
	require.NoError(t, err)
	require.Equal(t, 5, n)
	msgs := streamMsgs(t, b)
	require.Len(t, msgs, 7)
	for i, m := range msgs {
		require.Equal(t, fmt.Sprintf("e-%d", i), m.Headers().Get(jetstream.MsgIDHeader))
	}
	require.Zero(t, pending(t, b))
}

// AddMany writes a batch in one statement: in its order, each with its
// headers (the content type added, the caller's kept), ids made where
// missing; the relay publishes them as Add's. A failing statement writes
// none of them.
func TestAddManyKeepsTheOrder(t *testing.T) {
	b := setup(t)
	add(t, b, "e-0", "zero")
	var ids []string
	require.NoError(t, pgx.BeginFunc(b.ctx, b.pool, func(tx pgx.Tx) error {
		var err error
		ids, err = outbox.AddMany(b.ctx, tx, []outbox.Message{
			{ID: "e-1", Subject: "huifang.events.test", Payload: wrapperspb.String("one")},
			{Subject: "huifang.events.test", Payload: wrapperspb.String("two"), Header: nats.Header{"X-Origin": []string{"import"}}},
			{ID: "e-3", Subject: "huifang.events.test", Payload: wrapperspb.String("three")},
		})
		return err
	}))
	require.Len(t, ids, 3)
	require.Equal(t, "e-1", ids[0])
	require.NotEmpty(t, ids[1])
	require.Equal(t, "e-3", ids[2])
	none, err := outbox.AddMany(b.ctx, nil, nil)
	require.NoError(t, err, "nothing to write touches no transaction")
	require.Empty(t, none)

	err = pgx.BeginFunc(b.ctx, b.pool, func(tx pgx.Tx) error {
		_, err := outbox.AddMany(b.ctx, tx, []outbox.Message{
			{ID: "e-4", Subject: "huifang.events.test", Payload: wrapperspb.String("four")},
			{ID: "e-1", Subject: "huifang.events.test", Payload: wrapperspb.String("a taken id")},
		})
		return err
	})
	require.ErrorContains(t, err, "outbox: insert 2 messages")

	n, err := outbox.NewRelay(b.pool, b.js, b.log, "svc").RunOnce(b.ctx)
	require.NoError(t, err)
	require.Equal(t, 4, n)
	msgs := streamMsgs(t, b)
	require.Len(t, msgs, 4)
	for i, want := range []string{"zero", "one", "two", "three"} {
		var got wrapperspb.StringValue
		require.NoError(t, proto.Unmarshal(msgs[i].Data(), &got))
		require.Equal(t, want, got.Value)
		require.Equal(t, stream.ContentTypeProtobuf, msgs[i].Headers().Get(stream.HeaderContentType))
	}
	require.Equal(t, ids[1], msgs[2].Headers().Get(jetstream.MsgIDHeader))
	require.Equal(t, "import", msgs[2].Headers().Get("X-Origin"))
}

// addTo writes an event with id to subject.
func addTo(t *testing.T, b bundle, subject, id string) {
	t.Helper()
	require.NoError(t, pgx.BeginFunc(b.ctx, b.pool, func(tx pgx.Tx) error {
		_, err := outbox.Add(b.ctx, tx, outbox.Message{ID: id, Subject: subject, Payload: wrapperspb.String(id)})
		return err
	}))
}

// interleave writes n rows, each every-th a dead letter (a stream of its
// own) and the others events, and returns the ids of each, in order.
func interleave(t *testing.T, b bundle, n, every int) (events, dead []string) {
	t.Helper()
	for i := range n {
		if i%every == every-1 {
			id := fmt.Sprintf("d-%02d", i)
			addTo(t, b, stream.DeadLetterSubject("svc"), id)
			dead = append(dead, id)
			continue
		}
		id := fmt.Sprintf("e-%02d", i)
		addTo(t, b, "huifang.events.test", id)
		events = append(events, id)
	}
	return events, dead
}

// idsOf returns the ids of the messages a stream holds, in its order.
func idsOf(t *testing.T, b bundle, name string) []string {
	t.Helper()
	c, err := b.js.OrderedConsumer(b.ctx, name, jetstream.OrderedConsumerConfig{})
	require.NoError(t, err)
	var out []string
	for {
		m, err := c.Next(jetstream.FetchMaxWait(300 * time.Millisecond))
		if err != nil {
			return out
		}
		out = append(out, m.Headers().Get(jetstream.MsgIDHeader))
	}
}

// With several rounds and streams in flight, each stream holds its events
// in commit order, every one once, and all are marked.
func TestRoundsInFlightKeepEachStreamsOrder(t *testing.T) {
	b := setup(t)
	wantEvents, wantDead := interleave(t, b, 60, 3)
	r := outbox.NewRelay(b.pool, b.js, b.log, "svc")
	r.Batch, r.InFlight = 7, 4 // nine rounds, up to four on their way
	n, err := r.Drain(b.ctx)
	require.NoError(t, err)
	require.Equal(t, 60, n)
	require.Equal(t, wantEvents, idsOf(t, b, stream.EventsStream))
	require.Equal(t, wantDead, idsOf(t, b, stream.DLQStream))
	require.Zero(t, pending(t, b))
}

// A stream whose batch fails (no stream to take it) stops only that
// stream: its rows, of this round and of the rounds behind, stay
// unpublished, to leave in their order once it is back; the other
// stream's rows are published and marked.
func TestAFailingStreamLeavesTheOthersRowsRight(t *testing.T) {
	b := setup(t)
	require.NoError(t, b.js.DeleteStream(b.ctx, stream.DLQStream))
	wantEvents, wantDead := interleave(t, b, 30, 2)
	r := outbox.NewRelay(b.pool, b.js, b.log, "svc")
	r.Batch, r.InFlight = 4, 4
	r.AckTimeout = 5 * time.Second
	_, err := r.Drain(b.ctx)
	require.Error(t, err, "the dead letters have no stream")
	var published []string
	require.NoError(t, b.pool.QueryRow(b.ctx, `SELECT coalesce(array_agg(id ORDER BY seq), '{}') FROM outbox WHERE published_at IS NOT NULL`).Scan(&published))
	for _, id := range published {
		require.True(t, strings.HasPrefix(id, "e-"), "only events are marked, not %s", id)
	}
	require.Equal(t, wantEvents[:len(published)], published, "the events marked are the first ones, in order")
	var quarantined int
	require.NoError(t, b.pool.QueryRow(b.ctx, `SELECT count(*) FROM outbox WHERE quarantined_at IS NOT NULL`).Scan(&quarantined))
	require.Zero(t, quarantined, "a failure of the moment quarantines nothing")

	require.NoError(t, stream.Ensure(b.ctx, b.js, stream.Config{}))
	n, err := r.Drain(b.ctx)
	require.NoError(t, err)
	require.Equal(t, 30-len(published), n)
	require.Equal(t, wantEvents, idsOf(t, b, stream.EventsStream))
	require.Equal(t, wantDead, idsOf(t, b, stream.DLQStream))
}

// A row whose transaction committed after rows behind it were read is
// published all the same.
func TestALateCommitIsPublished(t *testing.T) {
	b := setup(t)
	late, _ := openLate(t, b)
	add(t, b, "e-1", "one")
	r := outbox.NewRelay(b.pool, b.js, b.log, "svc")
	r.Batch = 1
	n, err := r.Drain(b.ctx)
	require.NoError(t, err)
	require.Equal(t, 1, n)
	require.NoError(t, late.Commit(b.ctx))
	n, err = r.Drain(b.ctx)
	require.NoError(t, err)
	require.Equal(t, 1, n)
	require.Equal(t, []string{"e-1", "late"}, idsOf(t, b, stream.EventsStream))
}

// statements records the SQL a pool sends.
type statements struct {
	mu  sync.Mutex
	sql []string
}

func (s *statements) TraceQueryStart(ctx context.Context, _ *pgx.Conn, data pgx.TraceQueryStartData) context.Context {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.sql = append(s.sql, data.SQL)
	return ctx
}

func (s *statements) TraceQueryEnd(context.Context, *pgx.Conn, pgx.TraceQueryEndData) {}

func (s *statements) all() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.sql)
}

// An idle relay runs no transaction and takes no lock: each look is one
// read-only statement. A row another process wrote (nobody wakes this
// relay) is published at the next look.
func TestAnIdleRelayOnlyLooks(t *testing.T) {
	b := setup(t)
	cfg := b.pool.Config()
	var traced statements
	cfg.ConnConfig.Tracer = &traced
	pool, err := pgxpool.NewWithConfig(b.ctx, cfg)
	require.NoError(t, err)
	t.Cleanup(pool.Close)
	r := outbox.NewRelay(pool, b.js, b.log, "svc")
	r.Interval = 20 * time.Millisecond
	ctx, cancel := context.WithCancel(b.ctx)
	done := make(chan error)
	go func() { done <- r.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	require.Eventually(t, func() bool { return len(traced.all()) >= 10 }, 60*time.Second, 10*time.Millisecond)
	for _, sql := range traced.all() {
		require.Contains(t, sql, "SELECT EXISTS", "an idle look is one read-only statement")
	}
	add(t, b, "e-1", "from another process")
	require.Eventually(t, func() bool {
		n, err := outbox.Pending(b.ctx, b.pool)
		return err == nil && n == 0
	}, 60*time.Second, 10*time.Millisecond)
	require.Equal(t, []string{"e-1"}, idsOf(t, b, stream.EventsStream))
}

// BenchmarkRelay measures the relay alone: b.N rows waiting in the outbox
// (a backlog, as after a bulk import), published until none is left, with
// JetStream on file storage and Postgres fsync on. Rounds of 256 (the
// default) and 1,000 rows; one round at a time (each read, published,
// acknowledged and marked before the next is read: the relay before issue
// 15's pipelining) and up to 4 (the default InFlight).
//
//	go test -run '^$' -bench BenchmarkRelay -benchtime 20000x ./outbox/
func BenchmarkRelay(b *testing.B) {
	for _, size := range []int{256, 1000} {
		for _, depth := range []int{1, 4} {
			b.Run(fmt.Sprintf("round=%d/in-flight=%d", size, depth), func(b *testing.B) {
				pool := servicetest.Pool(b, "svc", fstest.MapFS{})
				js := servicetest.JetStream(b)
				ctx := context.Background()
				payload, err := proto.Marshal(wrapperspb.String(strings.Repeat("x", 600))) // about a CustomerUpdated
				require.NoError(b, err)
				_, err = pool.Exec(ctx, `INSERT INTO outbox (id, subject, payload, headers)
SELECT 'bench-' || g, 'huifang.events.test', $2, '{}'::jsonb FROM generate_series(1, $1::int) g`, b.N, payload)
				require.NoError(b, err)
				_, err = pool.Exec(ctx, `ANALYZE outbox`)
				require.NoError(b, err)
				r := outbox.NewRelay(pool, js, servicetest.Logger(), "svc")
				r.Batch, r.InFlight = size, depth
				b.ResetTimer()
				n, err := r.Drain(ctx)
				require.NoError(b, err)
				require.Equal(b, b.N, n)
				b.StopTimer()
				b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
			})
		}
	}
}

// BenchmarkNotifyToPublish measures a woken relay's latency: an event
// committed, the relay notified (as a service's commands and consumers do
// after their commits), and the time until a JetStream consumer of the
// stream gets it; one event at a time, Postgres fsync on, file storage.
//
//	go test -run '^$' -bench BenchmarkNotifyToPublish -benchtime 300x ./outbox/
func BenchmarkNotifyToPublish(b *testing.B) {
	pool := servicetest.Pool(b, "svc", fstest.MapFS{})
	js := servicetest.JetStream(b)
	ctx, cancel := context.WithCancel(context.Background())
	r := outbox.NewRelay(pool, js, servicetest.Logger(), "svc")
	done := make(chan error)
	go func() { done <- r.Run(ctx) }()
	b.Cleanup(func() { cancel(); <-done })
	c, err := js.OrderedConsumer(ctx, stream.EventsStream, jetstream.OrderedConsumerConfig{FilterSubjects: []string{"huifang.events.latency"}})
	require.NoError(b, err)
	it, err := c.Messages()
	require.NoError(b, err)
	defer it.Stop()
	took := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for i := range b.N {
		require.NoError(b, pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
			_, err := outbox.Add(ctx, tx, outbox.Message{ID: fmt.Sprintf("l-%d", i), Subject: "huifang.events.latency", Payload: wrapperspb.String("x")})
			return err
		}))
		start := time.Now()
		r.Notify()
		m, err := it.Next()
		require.NoError(b, err)
		took = append(took, time.Since(start))
		require.Equal(b, fmt.Sprintf("l-%d", i), m.Headers().Get(jetstream.MsgIDHeader))
	}
	b.StopTimer()
	slices.Sort(took)
	b.ReportMetric(float64(took[len(took)/2].Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(took[len(took)*99/100].Microseconds())/1000, "p99-ms")
}

// A draining relay woken by a commit reads the unpublished rows behind its
// cursor that are not on their way: rows of a transaction that took its
// numbers before others and committed after them. Published, quarantined
// and in-flight rows are not read again, nor rows past the cursor.
func TestRelayReadsTheRowsBehindItsCursor(t *testing.T) {
	b := setup(t)
	for i := 1; i <= 7; i++ {
		_, err := b.pool.Exec(b.ctx, `INSERT INTO outbox (seq, id, subject, payload) VALUES ($1, $2, 'huifang.events.test', '')`, i, fmt.Sprintf("e-%d", i))
		require.NoError(t, err)
	}
	_, err := b.pool.Exec(b.ctx, `UPDATE outbox SET published_at = now() WHERE seq IN (2, 3)`)
	require.NoError(t, err)
	_, err = b.pool.Exec(b.ctx, `UPDATE outbox SET quarantined_at = now(), quarantine_reason = 'refused' WHERE seq = 4`)
	require.NoError(t, err)
	r := outbox.NewRelay(b.pool, b.js, b.log, "svc")
	conn, err := b.pool.Acquire(b.ctx)
	require.NoError(t, err)
	defer conn.Release()
	seqs, err := r.ReadBehind(b.ctx, conn, 6, map[int64]struct{}{5: {}})
	require.NoError(t, err)
	require.Equal(t, []int64{1, 6}, seqs)
}

// BenchmarkRelayWAL measures what the outbox costs Postgres per message:
// b.N messages, each written in a transaction of its own (as a service's
// commands and consumers do), relayed after every commit (a relay that
// keeps up: rounds of one row) or every 8, one round at a time; reported
// are the WAL bytes written (inserts, marks, commits and whatever a full
// page image adds after the checkpoint taken first), the rows updated in
// place (HOT) and elsewhere, and the outbox's size (table and indexes)
// per message.
//
//	go test -run '^$' -bench BenchmarkRelayWAL -benchtime 4000x ./outbox/
func BenchmarkRelayWAL(b *testing.B) {
	for _, every := range []int{1, 8} {
		b.Run(fmt.Sprintf("relay-every=%d", every), func(b *testing.B) { benchmarkRelayWAL(b, every) })
	}
}

func benchmarkRelayWAL(b *testing.B, every int) {
	pool := servicetest.Pool(b, "svc", fstest.MapFS{})
	js := servicetest.JetStream(b)
	ctx := context.Background()
	r := outbox.NewRelay(pool, js, servicetest.Logger(), "svc")
	payload := wrapperspb.String(strings.Repeat("x", 600)) // about a CustomerUpdated
	stats := func() (upd, hot int64) {
		require.NoError(b, pool.QueryRow(ctx, `SELECT pg_stat_force_next_flush()`).Scan(new(any)))
		require.NoError(b, pool.QueryRow(ctx, `SELECT n_tup_upd, n_tup_hot_upd FROM pg_stat_user_tables WHERE relname = 'outbox'`).Scan(&upd, &hot))
		return upd, hot
	}
	_, err := pool.Exec(ctx, `CHECKPOINT`)
	require.NoError(b, err)
	upd0, hot0 := stats()
	var lsn0 string
	require.NoError(b, pool.QueryRow(ctx, `SELECT pg_current_wal_lsn()::text`).Scan(&lsn0))
	b.ResetTimer()
	for i := range b.N {
		require.NoError(b, pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
			_, err := outbox.Add(ctx, tx, outbox.Message{Subject: "huifang.events.test", Payload: payload})
			return err
		}))
		if i%every == every-1 || i == b.N-1 {
			_, err := r.Drain(ctx)
			require.NoError(b, err)
		}
	}
	b.StopTimer()
	var wal, size int64
	require.NoError(b, pool.QueryRow(ctx, `SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), $1::pg_lsn)::bigint, pg_total_relation_size('outbox')`, lsn0).Scan(&wal, &size))
	// Other sessions' statistics reach the shared counters when they go
	// idle, at most once a second: wait for the marks to be counted.
	var upd, hot int64
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for deadline := time.After(30 * time.Second); ; {
		if upd, hot = stats(); upd-upd0 >= int64(b.N) {
			break
		}
		select {
		case <-tick.C:
		case <-deadline:
			b.Fatalf("the marks of %d rows were not counted within 30 s", b.N)
		}
	}
	pending, err := outbox.Pending(ctx, pool)
	require.NoError(b, err)
	require.Zero(b, pending)
	n := float64(b.N)
	b.ReportMetric(float64(wal)/n, "WAL-B/msg")
	b.ReportMetric(float64(hot-hot0)/n, "hot-upd/msg")
	b.ReportMetric(float64(upd-upd0-(hot-hot0))/n, "cold-upd/msg")
	b.ReportMetric(float64(size)/n, "outbox-B/msg")
}
