package app_test

import (
	"context"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	typesv1 "github.com/huifang/huifang/proto/huifang/types/v1"

	"github.com/huifang/huifang/services/dispatch/internal/app"
	"github.com/huifang/huifang/services/dispatch/internal/store"
	"github.com/huifang/huifang/services/dispatch/internal/task"
)

// rowState is everything a write could change about a task: its row (every
// column, updated_at included), its attempts, its message and the outbox.
type rowState struct {
	task, message  string
	attempts, outs int
}

func stateOf(t *testing.T, pool *pgxpool.Pool, taskID string) rowState {
	t.Helper()
	ctx := context.Background()
	var s rowState
	require.NoError(t, pool.QueryRow(ctx, `SELECT to_jsonb(t)::text FROM tasks t WHERE id = $1`, taskID).Scan(&s.task))
	require.NoError(t, pool.QueryRow(ctx, `SELECT COALESCE((SELECT to_jsonb(m)::text FROM messages m WHERE task_id = $1), '')`, taskID).Scan(&s.message))
	require.NoError(t, pool.QueryRow(ctx, `SELECT count(*) FROM attempts WHERE task_id = $1`, taskID).Scan(&s.attempts))
	require.NoError(t, pool.QueryRow(ctx, `SELECT count(*) FROM outbox`).Scan(&s.outs))
	return s
}

// staleWrites are the three writes a holder makes, under the claim h.
var staleWrites = []struct {
	name  string
	write func(b bundle, taskID string, h task.Holder) error
}{
	{"RecordAttempt", func(b bundle, taskID string, h task.Holder) error {
		_, err := b.a.RecordAttempt(context.Background(), app.Attempt{Tenant: "default", TaskID: taskID, AgentID: h.AgentID, LeaseToken: h.Token,
			Disposition: typesv1.Disposition_DISPOSITION_ANSWERED, Note: "from the paused desk"})
		return err
	}},
	{"Heartbeat", func(b bundle, taskID string, h task.Holder) error {
		_, err := b.a.Heartbeat(context.Background(), "default", taskID, h.AgentID, h.Token)
		return err
	}},
	{"Release", func(b bundle, taskID string, h task.Holder) error {
		_, err := b.a.Release(context.Background(), "default", taskID, h.AgentID, h.Token)
		return err
	}},
}

func holderOf(x task.Task) task.Holder { return task.Holder{AgentID: x.AgentID, Token: x.LeaseToken} }

// TestStaleAgentIsFenced: an agent whose desk was paused past its lease,
// and whose task another claim took meanwhile, can change nothing when it
// resumes (RecordAttempt, Heartbeat, Release): task.ErrClaimedAgain, the
// task, its attempts and the outbox as they were; the new holder's work
// stands. The new claim is another agent's, a leader's reassignment, or one
// that brought the task back to the first agent (a-1 → a-2 → a-1: the old
// code, which checked only the agent, took the paused desk's attempt).
func TestStaleAgentIsFenced(t *testing.T) {
	reclaims := []struct {
		name string
		// reclaim takes the task from a-1's expired first claim and returns
		// the claim that holds it now.
		reclaim func(t *testing.T, b bundle, x task.Task) task.Task
	}{
		{"by another agent", func(t *testing.T, b bundle, x task.Task) task.Task {
			got, found := b.claim(t, "a-2")
			require.True(t, found)
			return got
		}},
		{"back to the same agent", func(t *testing.T, b bundle, x task.Task) task.Task {
			second, found := b.claim(t, "a-2")
			require.True(t, found)
			_, err := b.a.Release(context.Background(), "default", x.ID, "a-2", second.LeaseToken)
			require.NoError(t, err)
			got, found := b.claim(t, "a-1")
			require.True(t, found)
			require.Equal(t, "a-1", got.AgentID, "a-1's id matches the holder's again")
			return got
		}},
		{"by a leader's reassignments", func(t *testing.T, b bundle, x task.Task) task.Task {
			_, err := b.a.Reassign(context.Background(), "default", x.ID, "lead", "a-2", "a-1 is away")
			require.NoError(t, err)
			got, err := b.a.Reassign(context.Background(), "default", x.ID, "lead", "a-1", "a-1 is back")
			require.NoError(t, err)
			return got
		}},
	}
	for _, rc := range reclaims {
		for _, w := range staleWrites {
			t.Run(rc.name+"/"+w.name, func(t *testing.T) {
				b := setup(t)
				b.agent(t, task.Agent{ID: "a-1", Name: "a"})
				b.agent(t, task.Agent{ID: "a-2", Name: "b"})
				b.agent(t, task.Agent{ID: "lead", Name: "l", Role: task.RoleLeader})
				x := b.add(t, "v-1")
				first, found := b.claim(t, "a-1")
				require.True(t, found)
				require.Positive(t, first.LeaseToken)

				b.clock.Advance(lease + time.Second) // a-1's desk is paused past its lease
				now := rc.reclaim(t, b, x)
				require.Greater(t, now.LeaseToken, first.LeaseToken, "every claim makes the token one more")

				before := stateOf(t, b.pool, x.ID)
				err := w.write(b, x.ID, holderOf(first))
				require.ErrorIs(t, err, task.ErrClaimedAgain)
				require.Equal(t, before, stateOf(t, b.pool, x.ID), "the stale write changed nothing")

				// The current claim's work stands and goes on.
				res, err := b.a.RecordAttempt(context.Background(), app.Attempt{Tenant: "default", TaskID: x.ID, AgentID: now.AgentID,
					LeaseToken: now.LeaseToken, Disposition: typesv1.Disposition_DISPOSITION_NO_ANSWER})
				require.NoError(t, err)
				require.Equal(t, 1, res.Attempt)
				require.Equal(t, task.StatusOpen, res.Task.Status)
				attempts, err := store.Attempts(context.Background(), b.pool, x.ID)
				require.NoError(t, err)
				require.Len(t, attempts, 1)
				require.Equal(t, now.AgentID, attempts[0].AgentID)
				require.Equal(t, typesv1.Disposition_DISPOSITION_NO_ANSWER, attempts[0].Disposition)

				// The paused desk's write stays refused after the new holder finished.
				require.ErrorIs(t, w.write(b, x.ID, holderOf(first)), task.ErrClaimedAgain)
			})
		}
	}
}

// TestHolderWithToken: a normal claim → heartbeat → attempt with the
// claim's token works; a lease that ran out with nobody claiming the task
// since still belongs to its holder; a caller without a token is checked by
// agent only, as before.
func TestHolderWithToken(t *testing.T) {
	b := setup(t)
	ctx := context.Background()
	b.agent(t, task.Agent{ID: "a-1", Name: "a"})
	b.agent(t, task.Agent{ID: "a-2", Name: "b"})
	x := b.add(t, "v-1")
	first, found := b.claim(t, "a-1")
	require.True(t, found)

	b.clock.Advance(lease + time.Minute) // expired, nobody claimed it
	hb, err := b.a.Heartbeat(ctx, "default", x.ID, "a-1", first.LeaseToken)
	require.NoError(t, err)
	require.Equal(t, first.LeaseToken, hb.LeaseToken, "a heartbeat is not a new claim")
	require.True(t, hb.LeaseExpiresAt.Equal(b.clock.Now().Add(lease)))

	_, err = b.a.Heartbeat(ctx, "default", x.ID, "a-2", first.LeaseToken)
	require.ErrorIs(t, err, task.ErrNotHolder, "the token names the claim, the agent must be its agent")
	_, err = b.a.Heartbeat(ctx, "default", x.ID, "a-1", first.LeaseToken+1)
	require.ErrorIs(t, err, task.ErrClaimedAgain, "a token that is not the task's")

	res, err := b.a.RecordAttempt(ctx, app.Attempt{Tenant: "default", TaskID: x.ID, AgentID: "a-1", LeaseToken: first.LeaseToken,
		Disposition: typesv1.Disposition_DISPOSITION_ANSWERED})
	require.NoError(t, err)
	require.Equal(t, task.StatusDone, res.Task.Status)

	// Without a token: the agent check of old.
	y := b.add(t, "v-2")
	_, found = b.claim(t, "a-1")
	require.True(t, found)
	b.clock.Advance(lease)
	_, found = b.claim(t, "a-2")
	require.True(t, found)
	_, err = b.a.Heartbeat(ctx, "default", y.ID, "a-1", 0)
	require.ErrorIs(t, err, task.ErrNotHolder)
	_, err = b.a.Release(ctx, "default", y.ID, "a-2", 0)
	require.NoError(t, err)
}

// TestStaleWriteWaitsForTheClaim: the check of the token and the write are
// one transaction under the row's lock: a stale holder's heartbeat that
// arrives while another agent's claim of the task is not yet committed
// waits for it and is refused, rather than extending a lease that is no
// longer its.
func TestStaleWriteWaitsForTheClaim(t *testing.T) {
	b := setup(t)
	ctx := context.Background()
	b.agent(t, task.Agent{ID: "a-1", Name: "a"})
	b.agent(t, task.Agent{ID: "a-2", Name: "b"})
	x := b.add(t, "v-1")
	first, found := b.claim(t, "a-1")
	require.True(t, found)
	b.clock.Advance(lease)

	tx, err := b.pool.Begin(ctx)
	require.NoError(t, err)
	defer func() { _ = tx.Rollback(ctx) }()
	agent, rank, _, err := store.Eligibility(ctx, tx, "default", "a-2", b.clock.Now(), 0)
	require.NoError(t, err)
	second, found, err := store.Claim(ctx, tx, store.ClaimRequest{Tenant: "default", Agent: agent, Rank: rank, Now: b.clock.Now(), Lease: lease})
	require.NoError(t, err)
	require.True(t, found)

	done := make(chan error, 1)
	go func() {
		_, err := b.a.Heartbeat(ctx, "default", x.ID, "a-1", first.LeaseToken)
		done <- err
	}()
	require.Eventually(t, func() bool { return waitingOnLock(t, b.pool) }, 10*time.Second, 10*time.Millisecond,
		"the heartbeat waits for the claim's lock")
	require.NoError(t, tx.Commit(ctx))
	select {
	case err := <-done:
		require.ErrorIs(t, err, task.ErrClaimedAgain)
	case <-time.After(10 * time.Second):
		t.Fatal("the heartbeat did not return")
	}
	got, err := b.a.Task(ctx, "default", x.ID)
	require.NoError(t, err)
	require.Equal(t, "a-2", got.AgentID)
	require.Equal(t, second.LeaseToken, got.LeaseToken)
	require.True(t, got.LeaseExpiresAt.Equal(b.clock.Now().Add(lease)), "a-2's lease, not extended by a-1")
}

// waitingOnLock reports whether a session of the test's database waits for
// a row lock.
func waitingOnLock(t *testing.T, pool *pgxpool.Pool) bool {
	t.Helper()
	var n int
	require.NoError(t, pool.QueryRow(context.Background(), `SELECT count(*) FROM pg_stat_activity
WHERE datname = current_database() AND wait_event_type = 'Lock'`).Scan(&n))
	return n > 0
}
