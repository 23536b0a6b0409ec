package consumer_test

import (
	"context"
	"slices"
	"sync"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"

	eventsv1 "github.com/huifang/huifang/proto/huifang/events/v1"
	typesv1 "github.com/huifang/huifang/proto/huifang/types/v1"

	"github.com/huifang/huifang/services/dispatch/internal/consumer"
)

// againEvents are VisitDue whose tasks are each made once: v-1 (with the
// customer's newer snapshot kept: newerAndCancelled), v-2 (SMS), v-3 (its
// task later withdrawn by VisitCancelled), v-4 (its task later worked),
// v-cancelled (cancelled before it fell due: no task) and v-1 again under
// another event id.
func againEvents(t *testing.T, b bundle) []jetstream.Msg {
	t.Helper()
	b.newerAndCancelled(t)
	phone, sms := typesv1.Channel_CHANNEL_PHONE, typesv1.Channel_CHANNEL_SMS
	data := map[string][]byte{
		"v-1":         dueEvent(t, &eventsv1.VisitDue{VisitId: "v-1", Channel: phone, Customer: &typesv1.Customer{Id: "c-new", HasPhone: true}, ServiceId: "s-1"}),
		"v-1-other":   dueEvent(t, &eventsv1.VisitDue{VisitId: "v-1", Channel: sms, Customer: &typesv1.Customer{Id: "c-new"}, ServiceId: "s-other"}),
		"v-2":         dueEvent(t, &eventsv1.VisitDue{VisitId: "v-2", Channel: sms, Customer: &typesv1.Customer{Id: "c-2", HasPhone: true}}),
		"v-3":         dueEvent(t, &eventsv1.VisitDue{VisitId: "v-3", Channel: phone, Customer: &typesv1.Customer{Id: "c-3"}, ServiceId: "s-3"}),
		"v-4":         dueEvent(t, &eventsv1.VisitDue{VisitId: "v-4", Channel: phone, Customer: &typesv1.Customer{Id: "c-4"}, ServiceId: "s-4"}),
		"v-cancelled": dueEvent(t, &eventsv1.VisitDue{VisitId: "v-cancelled", Channel: phone, Customer: &typesv1.Customer{Id: "c-5"}}),
	}
	return b.fetchDue(t, [][2]string{{"e-1", "v-1"}, {"e-2", "v-2"}, {"e-3", "v-3"}, {"e-4", "v-4"}, {"e-cancelled", "v-cancelled"},
		{"e-1-again", "v-1-other"}}, data)
}

// dueState is what the VisitDue consumer may change, row versions (xmin)
// included: the tasks and their details, the outbox, every inbox entry,
// the refused events and the cancelled visits.
func (b bundle) dueState(t *testing.T) string {
	t.Helper()
	var s string
	require.NoError(t, b.pool.QueryRow(context.Background(), `SELECT concat_ws(E'\n',
  (SELECT string_agg(concat_ws(' ', t.visit_id, t.id, t.status, t.channel, t.customer, t.customer_version, t.primary_owner, t.updated_at, t.xmin,
     d.service_id, d.xmin), E'\n' ORDER BY t.visit_id) FROM tasks t LEFT JOIN task_details d ON d.task_id = t.id),
  (SELECT count(*) FROM task_details),
  (SELECT string_agg(concat_ws(' ', id, subject), E'\n' ORDER BY id) FROM outbox),
  (SELECT string_agg(concat_ws(' ', consumer, event_id), E'\n' ORDER BY consumer, event_id) FROM inbox),
  (SELECT count(*) FROM rejected_events),
  (SELECT string_agg(visit_id, ' ' ORDER BY visit_id) FROM cancelled_visits))`).Scan(&s))
	return s
}

// TestVisitDueAgainChangesNothing: the VisitDue consumer keeps no inbox
// entries, yet a VisitDue makes its task once: held twice in one batch,
// delivered again in a later batch (the acknowledgements lost after the
// commit: a crash between the two), again alone, after its task was
// withdrawn (VisitCancelled) or worked, and in two transactions at once
// (batches and single messages).
func TestVisitDueAgainChangesNothing(t *testing.T) {
	ctx := context.Background()
	b := setup(t)
	b.cons.Batch = 100
	msgs := againEvents(t, b)
	b.cons.ProcessBatch(ctx, append(slices.Clone(msgs), msgs[0], msgs[2]))
	require.Equal(t, []string{"v-1", "v-2", "v-3", "v-4"}, b.visits(t))
	require.Equal(t, 4, b.count(t, `SELECT count(*) FROM task_details`))
	var name, primary, service string
	require.NoError(t, b.pool.QueryRow(ctx, `SELECT t.customer->>'nameMasked', t.primary_owner, d.service_id FROM tasks t
JOIN task_details d ON d.task_id = t.id WHERE t.visit_id = 'v-1'`).Scan(&name, &primary, &service))
	require.Equal(t, []string{"新名", "a-1", "s-1"}, []string{name, primary, service}, "the first VisitDue of v-1, with the newer snapshot")
	first := b.dueState(t)

	b.cons.ProcessBatch(ctx, msgs)
	require.Equal(t, first, b.dueState(t), "delivered again in a later batch")
	for _, m := range msgs {
		b.cons.Process(ctx, m)
	}
	require.Equal(t, first, b.dueState(t), "delivered again alone")

	// v-3's task withdrawn, v-4's worked: their VisitDue again changes neither.
	require.NoError(t, b.app.CancelVisit(ctx, "default", "v-3", "customer opted out"))
	_, err := b.pool.Exec(ctx, `UPDATE tasks SET status = 'done', updated_at = now() WHERE visit_id = 'v-4'`)
	require.NoError(t, err)
	later := b.dueState(t)
	require.NotEqual(t, first, later)
	b.cons.ProcessBatch(ctx, msgs)
	for _, m := range msgs {
		b.cons.Process(ctx, m)
	}
	require.Equal(t, later, b.dueState(t), "after the tasks were withdrawn and worked")
	require.Zero(t, b.count(t, `SELECT count(*) FROM inbox WHERE consumer = $1`, consumer.Durable), "no inbox entries")

	// Two transactions at once: two batches, then pairs of single messages.
	for _, alone := range []bool{false, true} {
		c := setup(t)
		c.cons.Batch = 100
		msgs := againEvents(t, c)
		var wg sync.WaitGroup
		for range 2 {
			if alone {
				wg.Go(func() {
					for _, m := range msgs {
						c.cons.Process(ctx, m)
					}
				})
			} else {
				wg.Go(func() { c.cons.ProcessBatch(ctx, slices.Clone(msgs)) })
			}
		}
		wg.Wait()
		require.Equal(t, []string{"v-1", "v-2", "v-3", "v-4"}, c.visits(t), "alone: %v", alone)
		require.Equal(t, 4, c.count(t, `SELECT count(*) FROM task_details d JOIN tasks t ON t.id = d.task_id`), "alone: %v", alone)
		require.Equal(t, 4, c.count(t, `SELECT count(*) FROM task_details`), "alone: %v", alone)
		require.Zero(t, c.count(t, `SELECT count(*) FROM inbox`), "alone: %v", alone)
		require.Zero(t, c.count(t, `SELECT count(*) FROM rejected_events`), "alone: %v", alone)
	}
}

// visits lists the visits that have tasks, one line per task.
func (b bundle) visits(t *testing.T) []string {
	t.Helper()
	rows, err := b.pool.Query(context.Background(), `SELECT visit_id FROM tasks ORDER BY visit_id`)
	require.NoError(t, err)
	out, err := pgx.CollectRows(rows, pgx.RowTo[string])
	require.NoError(t, err)
	return out
}
