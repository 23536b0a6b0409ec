package consumer_test

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/huifang/huifang/services/analytics/internal/app"
	"github.com/huifang/huifang/services/analytics/internal/consumer"
	"github.com/huifang/huifang/services/analytics/internal/scenario"
)

// replica is one analytics replica's consumer behind its gate.
type replica struct {
	runner *consumer.Gate
	stop   context.CancelFunc
	done   chan error
}

func (b bundle) replica(t *testing.T) *replica {
	t.Helper()
	c, g := b.wire()
	r := &replica{runner: g, done: make(chan error, 1)}
	r.runner.Leader.Retry = 50 * time.Millisecond
	ctx, cancel := context.WithCancel(context.Background())
	go func() { r.done <- r.runner.Run(ctx, c.Run) }()
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

// Two replicas against one database and one NATS: only the one holding the
// leader lock consumes, so the events of a visit and its service are handled
// in stream order (the visit's product comes from its service; "won back"
// compares a customer's service with the one before it). When the leader
// stops, the standby takes over where it left off and the figures are the
// ones computed by hand, as with one replica.
func TestOneReplicaConsumesAtATime(t *testing.T) {
	b := setup(t)
	r1, r2 := b.replica(t), b.replica(t)

	// Watch that the two never lead at once.
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

	require.Eventually(t, func() bool { return r1.runner.Leading() || r2.runner.Leading() }, 10*time.Second, 10*time.Millisecond)
	leader, standby := r1, r2
	if r2.runner.Leading() {
		leader, standby = r2, r1
	}
	_, err := standby.runner.Rebuild(context.Background())
	require.ErrorIs(t, err, app.ErrStandby, "only the leader rebuilds")

	evs := scenario.Events()
	third := len(evs) / 3
	b.publish(t, evs[:third]...)
	b.waitHandled(t, third)
	require.False(t, standby.runner.Leading())

	leader.stop()
	require.Eventually(t, standby.runner.Leading, 10*time.Second, 10*time.Millisecond, "the standby takes over")
	b.publish(t, evs[third:2*third]...)
	b.waitHandled(t, 2*third)

	// The leader's database session ends (a failover, a killed backend):
	// Postgres drops its lock, the leader stands down, and the lock is taken again.
	terms := standby.runner.Leader.Terms()
	var killed bool
	require.NoError(t, b.pool.QueryRow(context.Background(), `SELECT pg_terminate_backend(pid) FROM pg_locks
WHERE locktype = 'advisory' AND granted AND objsubid = 1 AND database = (SELECT oid FROM pg_database WHERE datname = current_database())
  AND ((classid::bigint << 32) | objid::bigint) = hashtextextended($1, 0)`, standby.runner.Leader.Key).Scan(&killed))
	require.True(t, killed)
	require.Eventually(t, func() bool { return standby.runner.Leader.Terms() > terms && standby.runner.Leading() }, 10*time.Second, 10*time.Millisecond,
		"stands down when its session is lost, and leads again")
	b.publish(t, evs[2*third:]...)
	b.waitHandled(t, len(evs))
	b.checkScenario(t)
	require.False(t, both.Load(), "two replicas led at once")
}

// Migrations 005 and 006 ask for a rebuild (the per-service coverage, the
// acknowledgement times and the customer buckets must cover past events too): the first leader resets
// the rollups left by the previous version and replays the stream.
func TestMigrationRequestedRebuild(t *testing.T) {
	b := setup(t)
	ctx := context.Background()
	var requested int
	require.NoError(t, b.pool.QueryRow(ctx, `SELECT count(*) FROM rebuild_requests`).Scan(&requested))
	require.Equal(t, 2, requested, "migrations 005 and 006 ask for one each")
	// A counter the previous version left behind.
	_, err := b.pool.Exec(ctx, `INSERT INTO daily (tenant_id, metric, day, n) VALUES ('default', 'visit.due', '2025-03-01', 7)`)
	require.NoError(t, err)
	evs := scenario.Events()
	b.publish(t, evs...)
	b.run(t)
	b.waitHandled(t, len(evs))
	b.checkScenario(t)
	require.NoError(t, b.pool.QueryRow(ctx, `SELECT count(*) FROM rebuild_requests`).Scan(&requested))
	require.Zero(t, requested, "done once")
}
