package consumer_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	eventsv1 "github.com/huifang/huifang/proto/huifang/events/v1"

	"github.com/huifang/huifang/pkg/stream"
	"github.com/huifang/huifang/services/analytics/internal/app"
	"github.com/huifang/huifang/services/analytics/internal/consumer"
	"github.com/huifang/huifang/services/analytics/internal/figures"
	"github.com/huifang/huifang/services/analytics/internal/scenario"
)

// consumed runs the consumer over the scenario and waits until the
// migrations' rebuild is done too; rebuilds replay batches of batch events.
func (b bundle) consumed(t *testing.T, batch int) []scenario.Event {
	t.Helper()
	b.gate.Batch = batch
	b.run(t)
	evs := scenario.Events()
	b.publish(t, evs...)
	b.waitHandled(t, len(evs))
	require.Eventually(t, func() bool { return b.count(t, `SELECT count(*) FROM rebuild_requests`) == 0 }, 60*time.Second, 20*time.Millisecond)
	b.checkScenario(t)
	return evs
}

func (b bundle) count(t *testing.T, sql string, args ...any) int {
	t.Helper()
	var n int
	require.NoError(t, b.pool.QueryRow(context.Background(), sql, args...).Scan(&n))
	return n
}

// strings of a query's single text column, in order.
func (b bundle) rows(t *testing.T, sql string) []string {
	t.Helper()
	rows, err := b.pool.Query(context.Background(), sql)
	require.NoError(t, err)
	var out []string
	for rows.Next() {
		var s string
		require.NoError(t, rows.Scan(&s))
		out = append(out, s)
	}
	require.NoError(t, rows.Err())
	return out
}

// state is everything a rebuild may change: counters, customer buckets,
// ledgers, the consumer's inbox and refusals.
func (b bundle) state(t *testing.T) []string {
	t.Helper()
	out := append(b.snapshot(t), b.customers(t)...)
	out = append(out, b.rows(t, `SELECT 'visit|' || visit_id || '|' || state::text FROM visits ORDER BY 1`)...)
	out = append(out, b.rows(t, `SELECT 'inbox|' || event_id FROM inbox WHERE consumer = 'analytics-events' ORDER BY 1`)...)
	return append(out, b.rows(t, `SELECT 'rejected|' || id || '|' || event_id FROM rejected_events ORDER BY 1`)...)
}

// marker adds a counter no event makes (left by an earlier version): a
// rebuild removes it, so it tells the old tables from the rebuilt ones.
func (b bundle) marker(t *testing.T) {
	t.Helper()
	_, err := b.pool.Exec(context.Background(), `INSERT INTO daily (tenant_id, metric, day, n) VALUES ('default', 'visit.due', '2025-03-01', 7)`)
	require.NoError(t, err)
}

func (b bundle) shadowExists(t *testing.T) bool {
	return b.count(t, `SELECT count(*) FROM pg_namespace WHERE nspname = 'analytics_rebuild'`) == 1
}

var review = scenario.Event{Subject: stream.SubjectReviewSubmitted, ID: "q-new",
	Msg: &eventsv1.ReviewSubmitted{ReviewId: "q-new", At: timestamppb.New(scenario.From), Score: 80}}

// A stream that lost its first messages (STREAM_MAX_AGE, a limit, a purge)
// or messages inside it cannot rebuild the figures: Rebuild is refused,
// naming the first time the stream still holds, and nothing changes.
func TestRebuildRefusedWhenTheStreamLostHistory(t *testing.T) {
	b := setup(t)
	ctx := context.Background()
	evs := b.consumed(t, consumer.DefaultBatch)
	before := b.state(t)
	s, err := b.js.Stream(ctx, stream.EventsStream)
	require.NoError(t, err)

	require.NoError(t, s.DeleteMsg(ctx, 10))
	_, err = b.app.Rebuild(ctx)
	require.ErrorIs(t, err, app.ErrStreamIncomplete)
	require.Contains(t, err.Error(), "1 messages were removed from inside stream HUIFANG_EVENTS")

	require.NoError(t, s.Purge(ctx, jetstream.WithPurgeSequence(3)))
	info, err := s.Info(ctx)
	require.NoError(t, err)
	require.EqualValues(t, 3, info.State.FirstSeq)
	_, err = b.app.Rebuild(ctx)
	require.ErrorIs(t, err, app.ErrStreamIncomplete)
	require.Contains(t, err.Error(), "its first message is sequence 3, the 2 before it were removed")
	require.Contains(t, err.Error(), "holds events from "+info.State.FirstTime.UTC().Format(time.RFC3339)+" on only")

	require.Equal(t, before, b.state(t), "the figures, the inbox and the refusals are as they were")
	require.False(t, b.shadowExists(t))
	b.checkScenario(t)
	// The consumer goes on.
	b.publish(t, review)
	b.waitHandled(t, len(evs)+1)
	require.Equal(t, 3, b.count(t, `SELECT sum(n)::int FROM daily WHERE metric = 'review'`))
}

// A stream created again (its store lost and re-provisioned) holds only
// what came after: the rebuild is refused even though it starts at 1.
func TestRebuildRefusedWhenTheStreamWasCreatedAgain(t *testing.T) {
	b := setup(t)
	ctx := context.Background()
	evs := b.consumed(t, consumer.DefaultBatch)
	before := b.state(t)
	require.NoError(t, b.js.DeleteStream(ctx, stream.EventsStream))
	require.NoError(t, stream.Ensure(ctx, b.js, stream.Config{}))
	b.publish(t, evs[len(evs)-3:]...)
	_, err := b.app.Rebuild(ctx)
	require.ErrorIs(t, err, app.ErrStreamIncomplete)
	require.Contains(t, err.Error(), "was created again at")
	require.Equal(t, before, b.state(t))
}

// Every event the figures in use applied must be in the replay: one the
// stream does not hold (here an inbox row of an event it never had, as
// after a re-provisioning before this version recorded the stream) makes
// the swap refuse, and nothing changes.
func TestRebuildRefusedWhenAnAppliedEventIsNotInTheStream(t *testing.T) {
	b := setup(t)
	ctx := context.Background()
	b.consumed(t, consumer.DefaultBatch)
	_, err := b.pool.Exec(ctx, `INSERT INTO inbox (consumer, event_id, handled_at) VALUES ($1, 'gone', '2025-01-02T03:04:05Z')`, consumer.Durable)
	require.NoError(t, err)
	before := b.state(t)
	_, err = b.app.Rebuild(ctx)
	require.ErrorIs(t, err, app.ErrStreamIncomplete)
	require.Contains(t, err.Error(), "1 events applied to the figures in use (the earliest handled at 2025-01-02T03:04:05Z) are no longer in the stream")
	require.Equal(t, before, b.state(t))
	require.False(t, b.shadowExists(t), "the shadow tables are dropped")
}

// A failure in the middle of a rebuild (while replaying, or in the swap's
// transaction after the tables were swapped and before the commit) leaves
// the figures, the inbox and the refusals as they were, and the consumer
// consuming; the next rebuild succeeds.
func TestRebuildFailureLeavesTheFiguresInUse(t *testing.T) {
	for _, stage := range []string{"replay", "swap"} {
		t.Run(stage, func(t *testing.T) {
			b := setup(t)
			ctx := context.Background()
			evs := b.consumed(t, 5)
			b.marker(t)
			before := b.state(t)
			injected := errors.New("injected failure")
			calls := 0
			consumer.SetFault(b.gate, func(s string) error {
				if s != stage {
					return nil
				}
				calls++
				if stage == "replay" && calls < 3 {
					return nil // fail the third batch, after two were written
				}
				return injected
			})
			_, err := b.app.Rebuild(ctx)
			require.ErrorIs(t, err, injected)
			require.Equal(t, before, b.state(t), "as before the rebuild, the marker included")
			require.False(t, b.shadowExists(t))

			b.publish(t, review)
			b.waitHandled(t, len(evs)+1)
			consumer.SetFault(b.gate, nil)
			seq, err := b.app.Rebuild(ctx)
			require.NoError(t, err)
			require.EqualValues(t, len(evs)+1, seq)
			require.Zero(t, b.count(t, `SELECT count(*) FROM daily WHERE metric = 'visit.due' AND n = 7`), "rebuilt: the marker is gone")
			b.checkScenario(t)
			require.Equal(t, 3, b.count(t, `SELECT sum(n)::int FROM daily WHERE metric = 'review'`))
		})
	}
}

// While a rebuild replays, queries answer from the tables in use (the old
// figures) and the consumer goes on consuming into them; the events it
// consumed meanwhile are in the rebuilt tables once, and a rebuild of the
// rebuilt tables changes nothing.
func TestQueriesDuringARebuildReadTheFiguresInUse(t *testing.T) {
	b := setup(t)
	ctx := context.Background()
	evs := b.consumed(t, 5)
	b.marker(t)
	before := b.snapshot(t)
	scope := app.Scope{Tenant: "default", From: scenario.From, To: scenario.To}
	oldFigures, err := b.app.Figures(ctx, scope, figures.VisitCompletion, figures.Coverage)
	require.NoError(t, err)

	reached, hold := make(chan struct{}), make(chan struct{})
	calls := 0
	consumer.SetFault(b.gate, func(s string) error {
		if s == "replay" {
			if calls++; calls == 2 {
				close(reached)
				<-hold
			}
		}
		return nil
	})
	type result struct {
		seq uint64
		err error
	}
	done := make(chan result, 1)
	go func() {
		seq, err := b.app.Rebuild(ctx)
		done <- result{seq, err}
	}()
	released := false
	release := func() {
		if !released {
			released = true
			close(hold)
		}
	}
	t.Cleanup(release)
	select {
	case <-reached:
	case res := <-done:
		t.Fatalf("the rebuild ended before its second batch: %d, %v", res.seq, res.err)
	case <-time.After(30 * time.Second):
		t.Fatal("the rebuild never reached its second batch")
	}

	require.True(t, b.shadowExists(t))
	require.Positive(t, b.count(t, `SELECT count(*) FROM analytics_rebuild.daily`), "the replay has written the first batch")
	require.Equal(t, before, b.snapshot(t), "queries read the tables in use")
	figs, err := b.app.Figures(ctx, scope, figures.VisitCompletion, figures.Coverage)
	require.NoError(t, err)
	require.Equal(t, oldFigures, figs)
	require.Equal(t, 1, b.count(t, `SELECT count(*) FROM daily WHERE metric = 'visit.due' AND n = 7`), "the old tables, marker included")

	// The consumer goes on meanwhile.
	b.publish(t, review)
	b.waitHandled(t, len(evs)+1)
	require.Equal(t, 3, b.count(t, `SELECT sum(n)::int FROM daily WHERE metric = 'review'`))

	release()
	res := <-done
	require.NoError(t, res.err)
	require.EqualValues(t, len(evs)+1, res.seq)
	require.Zero(t, b.count(t, `SELECT count(*) FROM daily WHERE metric = 'visit.due' AND n = 7`), "rebuilt: the marker is gone")
	b.checkScenario(t)
	require.Equal(t, 3, b.count(t, `SELECT sum(n)::int FROM daily WHERE metric = 'review'`), "the review consumed during the rebuild counts once")

	// The consumer goes on from its durable: nothing again, nothing skipped;
	// and a rebuild of the rebuilt tables changes nothing.
	late := scenario.Event{Subject: stream.SubjectReviewSubmitted, ID: "q-late",
		Msg: &eventsv1.ReviewSubmitted{ReviewId: "q-late", At: timestamppb.New(scenario.From), Score: 60}}
	b.publish(t, late)
	b.waitHandled(t, len(evs)+2)
	require.Equal(t, 4, b.count(t, `SELECT sum(n)::int FROM daily WHERE metric = 'review'`))
	once := b.state(t)
	consumer.SetFault(b.gate, nil)
	_, err = b.app.Rebuild(ctx)
	require.NoError(t, err)
	require.Equal(t, once, b.state(t))
}

// Events refused before are refused again by the replay, but neither their
// rejected rows nor their dead letters are made twice.
func TestRebuildKeepsRefusals(t *testing.T) {
	b := setup(t)
	ctx := context.Background()
	b.run(t)
	badScore, err := proto.Marshal(&eventsv1.ReviewSubmitted{ReviewId: "q", At: timestamppb.New(scenario.From), Score: 101})
	require.NoError(t, err)
	b.publishRaw(t, stream.SubjectVisitLogged, "bad-payload", []byte{0xff, 0xff, 0xff})
	b.publishRaw(t, stream.SubjectReviewSubmitted, "bad-score", badScore)
	b.publish(t, scenario.Events()...)
	b.waitHandled(t, len(scenario.Events())+2)
	require.Eventually(t, func() bool { return b.count(t, `SELECT count(*) FROM rebuild_requests`) == 0 }, 60*time.Second, 20*time.Millisecond)
	rejected := b.rows(t, `SELECT id || '|' || event_id || '|' || field FROM rejected_events ORDER BY 1`)
	require.Len(t, rejected, 2)
	letters := b.count(t, `SELECT count(*) FROM outbox`)
	require.Equal(t, 2, letters)

	_, err = b.app.Rebuild(ctx)
	require.NoError(t, err)
	require.Equal(t, rejected, b.rows(t, `SELECT id || '|' || event_id || '|' || field FROM rejected_events ORDER BY 1`), "the same rows")
	require.Equal(t, letters, b.count(t, `SELECT count(*) FROM outbox`), "no dead letter again")
	b.checkScenario(t)
}
