package consumer_test

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/types/known/timestamppb"

	eventsv1 "github.com/huifang/huifang/proto/huifang/events/v1"

	"github.com/huifang/huifang/pkg/audit"
	"github.com/huifang/huifang/pkg/inbox"
	"github.com/huifang/huifang/pkg/stream"
	"github.com/huifang/huifang/services/analytics/internal/app"
	"github.com/huifang/huifang/services/analytics/internal/consumer"
	"github.com/huifang/huifang/services/analytics/internal/scenario"
	"github.com/huifang/huifang/services/analytics/internal/store"
)

// replica is one analytics replica's consumer behind its gate.
type replica struct {
	runner *consumer.Gate
	stop   func()
	done   chan error
	// term is the context its consumer runs with now: it carries the term.
	term atomic.Pointer[context.Context]
}

// replica starts one more replica; lease 0 keeps the default duration.
func (b bundle) replica(t *testing.T, lease time.Duration) *replica {
	t.Helper()
	c, g := b.wire()
	r := &replica{runner: g, done: make(chan error, 1)}
	r.runner.Leader.Retry = 50 * time.Millisecond
	if lease > 0 {
		r.runner.Leader.Lease = lease
	}
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		r.done <- r.runner.Run(ctx, func(ctx context.Context) error {
			r.term.Store(&ctx)
			return c.Run(ctx)
		})
	}()
	stopped := false
	t.Cleanup(func() {
		if !stopped {
			cancel()
			require.NoError(t, <-r.done)
		}
	})
	r.stop = func() {
		stopped = true
		cancel()
		require.NoError(t, <-r.done)
	}
	return r
}

// leads reports whether the replica leads and its consumer runs.
func (r *replica) leads() bool { return r.runner.Leading() && r.term.Load() != nil }

// token is the lease token of the replica's current (or last) term.
func (r *replica) token(t *testing.T) int64 {
	t.Helper()
	ctx := r.term.Load()
	require.NotNil(t, ctx, "the replica never led")
	term, ok := app.TermOf(*ctx)
	require.True(t, ok, "the consumer's context carries the term")
	return term.Lease.Token
}

// watchBoth records whether the two replicas ever lead at once.
func watchBoth(t *testing.T, r1, r2 *replica) *atomic.Bool {
	var both atomic.Bool
	watchCtx, stopWatch := context.WithCancel(context.Background())
	watched := make(chan struct{})
	go func() {
		defer close(watched)
		for watchCtx.Err() == nil {
			if r1.runner.Leading() && r2.runner.Leading() {
				both.Store(true)
			}
			time.Sleep(time.Millisecond)
		}
	}()
	t.Cleanup(func() { stopWatch(); <-watched })
	return &both
}

func leaderOf(t *testing.T, r1, r2 *replica) (leader, standby *replica) {
	t.Helper()
	require.Eventually(t, func() bool { return r1.leads() || r2.leads() }, 60*time.Second, 10*time.Millisecond)
	if r2.leads() {
		return r2, r1
	}
	return r1, r2
}

// Two replicas against one database and one NATS: only the one holding the
// lease consumes, so the events of a visit and its service are handled in
// stream order (the visit's product comes from its service; "won back"
// compares a customer's service with the one before it). When the leader
// stops, it gives the lease back and the standby takes over where it left
// off; the figures are the ones computed by hand, as with one replica.
func TestOneReplicaConsumesAtATime(t *testing.T) {
	b := setup(t)
	r1, r2 := b.replica(t, 0), b.replica(t, 0)
	both := watchBoth(t, r1, r2)
	leader, standby := leaderOf(t, r1, r2)
	_, err := standby.runner.Rebuild(context.Background(), audit.System("test"))
	require.ErrorIs(t, err, app.ErrStandby, "only the leader rebuilds")

	evs := scenario.Events()
	half := len(evs) / 2
	b.publish(t, evs[:half]...)
	b.waitHandled(t, half)
	require.False(t, standby.runner.Leading())
	first := leader.token(t)

	leader.stop()
	require.Eventually(t, standby.leads, 10*time.Second, 10*time.Millisecond,
		"the standby takes over at once: the lease was given back (its duration is 15 s)")
	require.Greater(t, standby.token(t), first, "a new term, a new token")
	b.publish(t, evs[half:]...)
	b.waitHandled(t, len(evs))
	b.checkScenario(t)
	require.False(t, both.Load(), "two replicas led at once")
}

// A leader that stops renewing its lease (a paused process, a partition:
// nothing is closed, its consumer still runs and believes it leads) is
// replaced within about one lease duration, and from then on its writes are
// refused by the fence: its ApplyEventTx returns a transient error and
// changes nothing, it stands down, and the events go to the new leader,
// counted once. The token grows with every take-over.
func TestPausedLeaderIsReplacedAndFenced(t *testing.T) {
	const lease = 2 * time.Second
	b := setup(t)
	ctx := context.Background()
	r1, r2 := b.replica(t, lease), b.replica(t, lease)
	old, next := leaderOf(t, r1, r2)
	evs := scenario.Events()
	half := len(evs) / 2
	b.publish(t, evs[:half]...)
	b.waitHandled(t, half)
	require.Eventually(t, func() bool {
		var n int
		return b.pool.QueryRow(ctx, `SELECT count(*) FROM rebuild_requests`).Scan(&n) == nil && n == 0
	}, 20*time.Second, 20*time.Millisecond, "the migrations' rebuild is done")
	before, customers := b.snapshot(t), b.customers(t)
	oldCtx, oldToken := *old.term.Load(), old.token(t)

	resume := consumer.PauseRenewals(old.runner.Leader)
	t.Cleanup(resume)
	paused := time.Now()
	require.Eventually(t, next.leads, 10*lease, 10*time.Millisecond, "the standby takes the expired lease")
	took := time.Since(paused)
	t.Logf("taken over %s after the leader stopped renewing (lease %s)", took, lease)
	require.Less(t, took, lease+1500*time.Millisecond, "within about one lease duration")
	require.Greater(t, took, lease/2, "not before the lease expired")
	require.Greater(t, next.token(t), oldToken, "the take-over increments the token")
	require.True(t, old.runner.Leading(), "the paused leader has not noticed yet")

	// The old leader writes before noticing: the fence refuses, nothing changes.
	late := &eventsv1.VisitLogged{VisitId: "late", LoggedAt: timestamppb.New(scenario.From)}
	err := b.app.ApplyEvent(context.WithoutCancel(oldCtx), late)
	require.ErrorIs(t, err, app.ErrLeaseLost)
	require.True(t, inbox.IsTransient(err), "retried later, never dead-lettered: %v", err)
	require.Equal(t, before, b.snapshot(t), "the refused write changed nothing")
	require.Equal(t, customers, b.customers(t))
	require.Eventually(t, func() bool { return !old.runner.Leading() }, 10*time.Second, 10*time.Millisecond,
		"a write that finds the lease lost makes the replica stand down")

	// The rest of the stream goes to the new leader, counted once.
	b.publish(t, evs[half:]...)
	b.waitHandled(t, len(evs))
	b.checkScenario(t)
	resume()
	require.True(t, next.runner.Leading())
	require.False(t, old.runner.Leading())

	// The old replica stands by and takes over, with a greater token, when
	// the new leader stops.
	nextToken := next.token(t)
	next.stop()
	require.Eventually(t, func() bool { return old.runner.Leading() && old.token(t) > nextToken }, 60*time.Second, 10*time.Millisecond)
	holder, token, err := store.LeaseHolder(ctx, b.pool, consumer.LockKey)
	require.NoError(t, err)
	require.Equal(t, old.runner.Leader.Holder, holder)
	require.Equal(t, old.token(t), token)
	b.checkScenario(t)
}

// A leader whose renewal fails (here: another replica's term took the
// lease over behind its back) stands down at its next renewal, without any
// write telling it.
func TestLeaderStandsDownWhenARenewalFails(t *testing.T) {
	const lease = 2 * time.Second
	b := setup(t)
	ctx := context.Background()
	r := b.replica(t, lease)
	require.Eventually(t, r.leads, 10*time.Second, 10*time.Millisecond)
	token := r.token(t)
	_, err := b.pool.Exec(ctx, `UPDATE leases SET holder = 'elsewhere', token = token + 1 WHERE name = $1`, consumer.LockKey)
	require.NoError(t, err)
	require.Eventually(t, func() bool { return !r.runner.Leading() }, 2*lease, 10*time.Millisecond, "stands down at the next renewal")
	_, err = b.pool.Exec(ctx, `UPDATE leases SET expires_at = now() WHERE name = $1`, consumer.LockKey)
	require.NoError(t, err)
	require.Eventually(t, func() bool { return r.runner.Leading() && r.token(t) > token+1 }, 10*time.Second, 10*time.Millisecond,
		"takes the lease again once it expired")
}

// Migrations 005, 006, 008 and 009 ask for a rebuild (the per-service coverage,
// the acknowledgement times, the customer buckets, the churn cases and the round visits must
// cover past events too): the first leader replays the stream into new tables and swaps them
// in, replacing the rollups left by the previous version.
func TestMigrationRequestedRebuild(t *testing.T) {
	b := setup(t)
	ctx := context.Background()
	var requested int
	require.NoError(t, b.pool.QueryRow(ctx, `SELECT count(*) FROM rebuild_requests`).Scan(&requested))
	require.Equal(t, 4, requested, "migrations 005, 006, 008 and 009 ask for one each")
	// A counter the previous version left behind.
	_, err := b.pool.Exec(ctx, `INSERT INTO daily (tenant_id, metric, day, n) VALUES ('default', 'visit.due', '2025-03-01', 7)`)
	require.NoError(t, err)
	evs := scenario.Events()
	b.publish(t, evs...)
	b.gate.Refused = consumer.NewRebuildRefusedGauge()
	b.run(t)
	require.Eventually(t, func() bool {
		return b.pool.QueryRow(ctx, `SELECT count(*) FROM rebuild_requests`).Scan(&requested) == nil && requested == 0
	}, 20*time.Second, 20*time.Millisecond, "done once")
	b.waitHandled(t, len(evs))
	b.checkScenario(t)
	require.Zero(t, testutil.ToFloat64(b.gate.Refused))
}

// A migration's rebuild on a stream that lost its first messages (a
// STREAM_MAX_AGE): the figures stay as they are, the refusal is exposed
// (huifang_analytics_rebuild_refused 1, the request stays), and the
// consumer goes on consuming.
func TestMigrationRequestedRebuildRefused(t *testing.T) {
	b := setup(t)
	ctx := context.Background()
	evs := scenario.Events()
	// The previous version consumed the whole stream.
	for _, e := range evs {
		require.NoError(t, b.app.ApplyEvent(ctx, e.Msg))
		_, err := b.pool.Exec(ctx, `INSERT INTO inbox (consumer, event_id) VALUES ($1, $2)`, consumer.Durable, e.ID)
		require.NoError(t, err)
	}
	before := b.snapshot(t)
	b.publish(t, evs...)
	s, err := b.js.Stream(ctx, stream.EventsStream)
	require.NoError(t, err)
	require.NoError(t, s.DeleteMsg(ctx, 1), "the stream's first message is gone (max age)")

	b.gate.Refused = consumer.NewRebuildRefusedGauge()
	b.run(t)
	require.Eventually(t, func() bool { return testutil.ToFloat64(b.gate.Refused) == 1 }, 60*time.Second, 20*time.Millisecond)
	var requested int
	require.NoError(t, b.pool.QueryRow(ctx, `SELECT count(*) FROM rebuild_requests`).Scan(&requested))
	require.Equal(t, 4, requested, "the requests stay: the next leader tries again")
	require.Equal(t, before, b.snapshot(t), "the figures stay")
	b.checkScenario(t)

	// The consumer goes on: a new event counts once.
	b.publish(t, scenario.Event{Subject: stream.SubjectReviewSubmitted, ID: "q-new",
		Msg: &eventsv1.ReviewSubmitted{ReviewId: "q-new", At: timestamppb.New(scenario.From), Score: 90}})
	b.waitHandled(t, len(evs)+1)
	var reviews int64
	require.NoError(t, b.pool.QueryRow(ctx, `SELECT sum(n) FROM daily WHERE metric = 'review'`).Scan(&reviews))
	require.EqualValues(t, 3, reviews, "the scenario's two reviews and the new one")
}
