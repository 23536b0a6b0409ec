package store_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/huifang/huifang/services/dispatch/internal/store"
	"github.com/huifang/huifang/services/dispatch/internal/task"
)

// TestClaimFencingToken: every claim of a task makes its lease_token one
// more, in the claim's own statement: the first claim, a claim of the task
// whose lease ran out, a reassignment saved through UpdateTask; a claim
// raced by many agents at the moment the lease runs out goes to one of them
// and counts once. The token is kept as SaveTask wrote it.
func TestClaimFencingToken(t *testing.T) {
	b := setup(t)
	ctx := context.Background()
	const racers = 8
	b.agent(t, "a-1")
	for i := range racers {
		b.agent(t, fmt.Sprintf("r-%d", i))
	}
	x := newTask("v-1")
	b.add(t, x)
	token := func() int64 {
		t.Helper()
		got, err := store.Task(ctx, b.pool, "default", x.ID)
		require.NoError(t, err)
		return got.LeaseToken
	}
	require.Zero(t, token(), "a new task was never claimed")

	first, found, err := b.claimIn("default", "a-1", t0, lease, store.Routing{})
	require.NoError(t, err)
	require.True(t, found)
	require.Equal(t, int64(1), first.LeaseToken, "the claim answers its token")
	require.Equal(t, int64(1), token())

	// Many agents claim at the moment a-1's lease runs out: one takes it.
	var (
		wg     sync.WaitGroup
		mu     sync.Mutex
		winner []task.Task
		errs   []error
	)
	for i := range racers {
		wg.Go(func() {
			got, found, err := b.claimIn("default", fmt.Sprintf("r-%d", i), t0.Add(lease), lease, store.Routing{})
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				errs = append(errs, err)
			}
			if found {
				winner = append(winner, got)
			}
		})
	}
	wg.Wait()
	require.Empty(t, errs)
	require.Len(t, winner, 1, "one claim takes the task")
	require.Equal(t, int64(2), winner[0].LeaseToken)
	require.Equal(t, int64(2), token())

	// A reassignment is a claim too; SaveTask keeps what the domain set.
	require.NoError(t, pgx.BeginFunc(ctx, b.pool, func(tx pgx.Tx) error {
		_, err := store.UpdateTask(ctx, tx, "default", x.ID, t0.Add(lease+time.Minute), func(t *task.Task) error {
			return t.AssignTo(task.Agent{ID: "a-1"}, t0.Add(lease+time.Minute), lease)
		})
		return err
	}))
	require.Equal(t, int64(3), token())
	got, err := store.Task(ctx, b.pool, "default", x.ID)
	require.NoError(t, err)
	require.ErrorIs(t, got.HeldBy(task.Holder{AgentID: "a-1", Token: first.LeaseToken}), task.ErrClaimedAgain,
		"a-1's first claim is not its current one")
	require.NoError(t, got.HeldBy(task.Holder{AgentID: "a-1", Token: 3}))
}
