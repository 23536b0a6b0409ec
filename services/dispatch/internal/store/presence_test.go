package store_test

import (
	"context"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/huifang/huifang/services/dispatch/internal/store"
	"github.com/huifang/huifang/services/dispatch/internal/task"
)

func (b bundle) presence(t *testing.T, id, state, reason string, at time.Time) task.Agent {
	t.Helper()
	ctx := context.Background()
	var out task.Agent
	require.NoError(t, pgx.BeginFunc(ctx, b.pool, func(tx pgx.Tx) error {
		if _, err := store.LockAgent(ctx, tx, "default", id); err != nil {
			return err
		}
		p, err := task.NewPresence(state, reason, at)
		if err != nil {
			return err
		}
		out, err = store.SetPresence(ctx, tx, "default", id, p, id)
		return err
	}))
	return out
}

// TestRoutingSkipsOwnersAway: a customer's owner on a break or offline does
// not hold its task back (the owners' stages skip it at once, as one off
// shift); the owner itself is refused the claim until it is available,
// and then takes its customer's task first again. An agent that never set
// a presence reads as the zero Presence (available).
func TestRoutingSkipsOwnersAway(t *testing.T) {
	b := setup(t)
	b.agent(t, "other")
	b.agent(t, "owner")
	b.agent(t, "owner-2")
	fresh, err := store.Agent(context.Background(), b.pool, "default", "owner")
	require.NoError(t, err)
	require.Equal(t, task.Presence{}, fresh.Presence)

	got := b.presence(t, "owner", task.PresenceOnBreak, "lunch", t0)
	require.Equal(t, task.Presence{State: task.PresenceOnBreak, Reason: "lunch", Since: t0}, task.Presence{State: got.Presence.State,
		Reason: got.Presence.Reason, Since: got.Presence.Since.UTC()})
	b.presence(t, "owner-2", task.PresenceOffline, "", t0)
	b.add(t,
		newTask("owner-on-break", func(x *task.Task) { x.PrimaryOwner = "owner" }),
		newTask("owner-offline", func(x *task.Task) { x.PrimaryOwner = "owner-2"; x.Deadline = t0.Add(49 * time.Hour) }),
		newTask("owner-back", func(x *task.Task) { x.PrimaryOwner = "owner"; x.Deadline = t0.Add(50 * time.Hour) }),
	)
	require.Equal(t, "owner-on-break", b.route(t, "other", t0))
	require.Equal(t, "owner-offline", b.route(t, "other", t0))

	_, _, err = b.claimIn("default", "owner", t0, lease, routing)
	require.ErrorIs(t, err, task.ErrOnBreak)
	_, _, err = b.claimIn("default", "owner-2", t0, lease, routing)
	require.ErrorIs(t, err, task.ErrOffline)

	b.presence(t, "owner", task.PresenceAvailable, "", t0.Add(time.Hour))
	require.Equal(t, "", b.route(t, "other", t0), "the owner is back: its customer's task waits for it (OWNER_WAIT)")
	require.Equal(t, "owner-back", b.route(t, "owner", t0))
}
