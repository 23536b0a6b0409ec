package consumer_test

import (
	"context"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	eventsv1 "github.com/huifang/huifang/proto/huifang/events/v1"
	typesv1 "github.com/huifang/huifang/proto/huifang/types/v1"

	"github.com/huifang/huifang/pkg/inbox"
	"github.com/huifang/huifang/pkg/servicetest"
	"github.com/huifang/huifang/pkg/stream"
	"github.com/huifang/huifang/services/feedback/internal/app"
	"github.com/huifang/huifang/services/feedback/internal/consumer"
)

// keyed is one database and stream with the consumer made by of, whose
// messages the test hands to it itself (Process, ProcessBatch).
type keyed struct {
	*env
	c *inbox.Consumer
}

func setupKeyed(t *testing.T, of func(*app.App) *inbox.Consumer) keyed {
	t.Helper()
	e := setup(t)
	c := of(e.app)
	c.Service, c.Pool, c.JS, c.Log = "feedback", e.pool, e.js, e.log
	c.Batch = 100
	return keyed{env: e, c: c}
}

// publishAll publishes the events (message id = event id) and returns
// them as messages, in order, fetched through a consumer of the test's.
func (k keyed) publishAll(t *testing.T, subject string, evs []proto.Message) []jetstream.Msg {
	t.Helper()
	for _, ev := range evs {
		msg := nats.NewMsg(subject)
		msg.Data = marshal(t, ev)
		msg.Header.Set(jetstream.MsgIDHeader, ev.(interface{ GetEventId() string }).GetEventId())
		_, err := k.js.PublishMsg(k.ctx, msg)
		require.NoError(t, err)
	}
	return servicetest.Fetch(t, k.js, stream.EventsStream, []string{subject}, len(evs))
}

// rows returns the rows of query, one string each.
func (k keyed) rows(t *testing.T, query string) []string {
	t.Helper()
	rows, err := k.pool.Query(k.ctx, query)
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

// redeliver hands msgs to the consumer again in every way a redelivery
// comes, and checks after each that the rows of query (the time of their
// last write included) are what they were: held twice in one batch, again
// in a later batch (the ack lost after the commit: a crash between the
// two), again alone.
func (k keyed) redeliver(t *testing.T, msgs []jetstream.Msg, query string) {
	t.Helper()
	want := k.rows(t, query)
	k.c.ProcessBatch(k.ctx, append(slices.Clone(msgs), msgs...))
	require.Equal(t, want, k.rows(t, query), "held twice in one batch")
	k.c.ProcessBatch(k.ctx, msgs)
	require.Equal(t, want, k.rows(t, query), "again in a later batch")
	for _, m := range msgs {
		k.c.Process(k.ctx, m)
	}
	require.Equal(t, want, k.rows(t, query), "again alone")
	k.c.ProcessBatch(k.ctx, []jetstream.Msg{msgs[0]})
	require.Equal(t, want, k.rows(t, query), "the first again, after the others")
}

// twiceAtOnce applies msgs in two transactions at once, rounds times in
// fresh databases, and checks that the rows of query are want each time.
func twiceAtOnce(t *testing.T, of func(*app.App) *inbox.Consumer, subject string, evs []proto.Message, query string, want []string) {
	t.Helper()
	for round := range 5 {
		k := setupKeyed(t, of)
		msgs := k.publishAll(t, subject, evs)
		var wg sync.WaitGroup
		for range 2 {
			wg.Go(func() { k.c.ProcessBatch(context.Background(), slices.Clone(msgs)) })
		}
		wg.Wait()
		require.Equal(t, want, k.rows(t, query), "applied twice at once, round %d", round)
	}
}

const keyedVisits = `SELECT concat_ws('|', visit_id, customer_id, channel, coalesce(event_id, '-')) FROM visits ORDER BY visit_id`

// The VisitDue consumer keeps no inbox row for the VisitDue that stores a
// visit (the visit keeps its id), and claims in the inbox only one of a
// visit already stored (the scheduler emitting it again: the later wins).
// Delivered again in any way, after the later one too, or in two
// transactions at once, they change nothing.
func TestVisitDueKeyedAppliesOnce(t *testing.T) {
	due := func(id, visitID, customer string, ch typesv1.Channel) proto.Message {
		return &eventsv1.VisitDue{EventId: id, TenantId: "acme", VisitId: visitID, Customer: &typesv1.Customer{Id: customer}, Channel: ch}
	}
	evs := []proto.Message{
		due("d-1", "v-1", "c-1", typesv1.Channel_CHANNEL_PHONE),
		due("d-2", "v-2", "c-2", typesv1.Channel_CHANNEL_SMS),
		due("d-3", "v-1", "c-9", typesv1.Channel_CHANNEL_EMAIL), // v-1 again, another context: the later wins
	}
	want := []string{"v-1|c-9|CHANNEL_EMAIL|d-1", "v-2|c-2|CHANNEL_SMS|d-2"}

	k := setupKeyed(t, consumer.VisitDue)
	msgs := k.publishAll(t, stream.SubjectVisitDue, evs)
	k.c.ProcessBatch(k.ctx, msgs)
	require.Equal(t, want, k.rows(t, keyedVisits))
	require.Equal(t, []string{"d-3"}, k.inbox(t, consumer.VisitDueDurable), "only the VisitDue of a visit stored is claimed")
	k.redeliver(t, msgs, keyedVisits+`, updated_at`)
	require.Equal(t, []string{"d-3"}, k.inbox(t, consumer.VisitDueDurable))

	twiceAtOnce(t, consumer.VisitDue, stream.SubjectVisitDue, evs, keyedVisits, want)
}

// Visits stored before their VisitDue's id was kept (every event kept an
// inbox row then) take nothing twice either: a redelivery finds no id
// kept, is claimed in the inbox, and finds its row there.
func TestVisitDueKeyedStoredBefore(t *testing.T) {
	k := setupKeyed(t, consumer.VisitDue)
	msgs := k.publishAll(t, stream.SubjectVisitDue, []proto.Message{
		&eventsv1.VisitDue{EventId: "d-1", VisitId: "v-1", Customer: &typesv1.Customer{Id: "c-1"}},
		&eventsv1.VisitDue{EventId: "d-2", VisitId: "v-1", Customer: &typesv1.Customer{Id: "c-2"}},
	})
	k.c.ProcessBatch(k.ctx, msgs)
	// What the previous version left: no id kept, an inbox row per event.
	_, err := k.pool.Exec(k.ctx, `UPDATE visits SET event_id = NULL`)
	require.NoError(t, err)
	_, err = k.pool.Exec(k.ctx, `INSERT INTO inbox (consumer, event_id) VALUES ($1, 'd-1'), ($1, 'd-2') ON CONFLICT DO NOTHING`, consumer.VisitDueDurable)
	require.NoError(t, err)
	require.Equal(t, []string{"v-1|c-2|CHANNEL_UNSPECIFIED|-"}, k.rows(t, keyedVisits))
	k.redeliver(t, msgs, keyedVisits+`, updated_at`)
}

const keyedAssignments = `SELECT concat_ws('|', visit_id, agent_id, assigned_at, event_id) FROM visit_assignments ORDER BY visit_id`

// The VisitAssigned consumer keeps no inbox row for an assignment newer or
// older than the one its visit keeps; one of the same time as the one kept
// (the later heard wins) is claimed in the inbox, and the one it replaces
// is entered there. Delivered again in any way, also the one replaced at
// the same time, or in two transactions at once, they change nothing.
func TestVisitAssignedKeyedAppliesOnce(t *testing.T) {
	at := time.Date(2025, 3, 1, 9, 0, 0, 0, time.UTC)
	assigned := func(id, visitID, agent string, when time.Time) proto.Message {
		return &eventsv1.VisitAssigned{EventId: id, TenantId: "acme", VisitId: visitID, AgentId: agent, AssignedAt: timestamppb.New(when)}
	}
	evs := []proto.Message{
		assigned("a-1", "v-1", "agent-1", at),
		assigned("a-2", "v-1", "agent-2", at.Add(time.Hour)), // reassigned
		assigned("a-3", "v-2", "agent-3", at),
		assigned("a-4", "v-2", "agent-4", at),                  // the same time: the later heard wins
		assigned("a-5", "v-3", "agent-5", at.Add(2*time.Hour)), // heard first, newer
		assigned("a-6", "v-3", "agent-6", at),
	}
	want := []string{
		"v-1|agent-2|2025-03-01 10:00:00+00|a-2",
		"v-2|agent-4|2025-03-01 09:00:00+00|a-4",
		"v-3|agent-5|2025-03-01 11:00:00+00|a-5",
	}

	k := setupKeyed(t, consumer.VisitAssigned)
	msgs := k.publishAll(t, stream.SubjectVisitAssigned, evs)
	for _, m := range msgs {
		k.c.Process(k.ctx, m)
	}
	require.Equal(t, want, k.rows(t, keyedAssignments))
	require.Equal(t, []string{"a-3", "a-4"}, k.inbox(t, consumer.VisitAssignedDurable),
		"a-4 of a-3's time is claimed, and a-3, which it replaced, entered")
	k.redeliver(t, msgs, keyedAssignments+`, updated_at`)
	require.Equal(t, []string{"a-3", "a-4"}, k.inbox(t, consumer.VisitAssignedDurable))

	// In one batch, the same.
	b := setupKeyed(t, consumer.VisitAssigned)
	msgs = b.publishAll(t, stream.SubjectVisitAssigned, evs)
	b.c.ProcessBatch(b.ctx, msgs)
	require.Equal(t, want, b.rows(t, keyedAssignments))
	require.Equal(t, []string{"a-3", "a-4"}, b.inbox(t, consumer.VisitAssignedDurable))
	b.redeliver(t, msgs, keyedAssignments+`, updated_at`)

	twiceAtOnce(t, consumer.VisitAssigned, stream.SubjectVisitAssigned, evs, keyedAssignments, want)
}
