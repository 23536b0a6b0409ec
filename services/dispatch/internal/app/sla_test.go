package app_test

import (
	"context"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/proto"

	eventsv1 "github.com/huifang/huifang/proto/huifang/events/v1"
	typesv1 "github.com/huifang/huifang/proto/huifang/types/v1"

	"github.com/huifang/huifang/pkg/outbox"
	"github.com/huifang/huifang/pkg/servicetest"
	"github.com/huifang/huifang/pkg/stream"
	"github.com/huifang/huifang/services/dispatch/internal/app"
	"github.com/huifang/huifang/services/dispatch/internal/store"
	"github.com/huifang/huifang/services/dispatch/internal/storetest"
	"github.com/huifang/huifang/services/dispatch/internal/task"
)

// TestSLAClock: seed 003 (48 h) and the auto dealer's 3-day survey
// (seed 000): each task is reported near its deadline once and past it
// once; a finished task is not.
func TestSLAClock(t *testing.T) {
	pool := storetest.Pool(t)
	ctx := context.Background()
	clock := storetest.NewClock(t0)
	add := func(visit string, deadline time.Duration, status string) {
		x := task.Task{ID: outbox.NewEventID(), Tenant: "default", VisitID: visit, Channel: typesv1.Channel_CHANNEL_PHONE,
			Customer: task.Customer{ID: "c-" + visit}, DueAt: t0, Deadline: t0.Add(deadline), Status: task.StatusOpen, CreatedAt: t0}
		require.NoError(t, pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
			if _, err := store.CreateTask(ctx, tx, x); err != nil {
				return err
			}
			x.Status = status
			return store.SaveTask(ctx, tx, x, t0)
		}))
	}
	add("seed-003", 48*time.Hour, task.StatusOpen)
	add("survey-3d", 72*time.Hour, task.StatusClaimed)
	add("done", 48*time.Hour, task.StatusDone)
	a := &app.App{DB: pool, Relay: nop{}, Log: servicetest.Logger(), Now: clock.Now, SLAWarn: 6 * time.Hour, SLABatch: 10}

	run := func() int {
		n, err := a.MarkDeadlines(ctx)
		require.NoError(t, err)
		return n
	}
	require.Zero(t, run())
	clock.Advance(42 * time.Hour)
	require.Equal(t, 1, run(), "seed-003 is 6 h from its deadline")
	require.Zero(t, run(), "once per stage")
	clock.Advance(6 * time.Hour)
	require.Equal(t, 1, run(), "seed-003 is past its deadline")
	clock.Advance(24 * time.Hour)
	require.Equal(t, 1, run(), "survey-3d goes straight to past")
	require.Zero(t, run())

	rows, err := pool.Query(ctx, `SELECT payload FROM outbox WHERE subject = $1 ORDER BY seq`, stream.SubjectVisitOverdue)
	require.NoError(t, err)
	payloads, err := pgx.CollectRows(rows, pgx.RowTo[[]byte])
	require.NoError(t, err)
	var got []string
	for _, p := range payloads {
		ev := &eventsv1.VisitOverdue{}
		require.NoError(t, proto.Unmarshal(p, ev))
		got = append(got, ev.GetVisitId()+":"+ev.GetStage())
	}
	require.Equal(t, []string{"seed-003:near", "seed-003:past", "survey-3d:past"}, got)
}
