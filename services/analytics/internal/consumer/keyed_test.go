package consumer_test

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/types/known/timestamppb"

	eventsv1 "github.com/huifang/huifang/proto/huifang/events/v1"
	typesv1 "github.com/huifang/huifang/proto/huifang/types/v1"

	"github.com/huifang/huifang/pkg/servicetest"
	"github.com/huifang/huifang/pkg/stream"
	"github.com/huifang/huifang/services/analytics/internal/consumer"
	"github.com/huifang/huifang/services/analytics/internal/scenario"
)

// keyedEvents are a service and two visits whose ServiceCompleted,
// VisitPlanned and VisitDue keep no inbox row: visit kv is planned,
// rescheduled (a second VisitPlanned, another due day), falls due, is
// attempted from another org unit and falls due again (a retry); visit kw
// falls due before its VisitPlanned comes; service ks2 names no customer.
func keyedEvents() []scenario.Event {
	at := func(day, hour int) *timestamppb.Timestamp {
		return timestamppb.New(time.Date(2025, time.March, day, hour, 0, 0, 0, time.UTC))
	}
	planned := func(id, visit string, due int) scenario.Event {
		return scenario.Event{ID: id, Subject: stream.SubjectVisitPlanned, Msg: &eventsv1.VisitPlanned{EventId: id, VisitId: visit, ServiceId: "ks",
			PolicyId: "p-repair", Channel: typesv1.Channel_CHANNEL_PHONE, DueAt: at(due, 10), Deadline: at(due+2, 10), OrgUnit: "north",
			ServiceType: "repair", CustomerId: "kc"}}
	}
	due := func(id, visit string, day int) scenario.Event {
		return scenario.Event{ID: id, Subject: stream.SubjectVisitDue, Msg: &eventsv1.VisitDue{EventId: id, VisitId: visit, ServiceId: "ks",
			PolicyId: "p-repair", Channel: typesv1.Channel_CHANNEL_PHONE, DueAt: at(day, 10), Deadline: at(7, 10), OrgUnit: "north",
			ServiceType: "repair", ServiceCompletedAt: at(1, 10), Customer: &typesv1.Customer{Id: "kc"}}}
	}
	return []scenario.Event{
		{ID: "k-s", Subject: stream.SubjectServiceCompleted, Msg: &eventsv1.ServiceCompleted{EventId: "k-s", ServiceId: "ks", ServiceType: "repair",
			OrgUnit: "north", CompletedAt: at(1, 10), Customer: &typesv1.Customer{Id: "kc"}, Product: &typesv1.Product{Category: "washer"}}},
		planned("k-p1", "kv", 2),
		planned("k-p2", "kv", 5),
		due("k-due1", "kv", 5),
		{ID: "k-att", Subject: stream.SubjectVisitAttempted, Msg: &eventsv1.VisitAttempted{EventId: "k-att", VisitId: "kv", AgentId: "a1",
			OrgUnit: "south", Disposition: typesv1.Disposition_DISPOSITION_ANSWERED}},
		due("k-due2", "kv", 6),
		due("k-wdue", "kw", 9),
		planned("k-wplan", "kw", 8),
		{ID: "k-s2", Subject: stream.SubjectServiceCompleted, Msg: &eventsv1.ServiceCompleted{EventId: "k-s2", ServiceId: "ks2", ServiceType: "repair",
			OrgUnit: "north", CompletedAt: at(2, 10), Product: &typesv1.Product{Category: "dryer"}}},
	}
}

// fetchAll takes every message of the stream the consumer reads, in order,
// through a consumer of its own (the test handles them).
func (b bundle) fetchAll(t *testing.T, n int) []jetstream.Msg {
	t.Helper()
	return servicetest.Fetch(t, b.js, stream.EventsStream, consumer.Subjects, n)
}

// figuresOf is what the events made: counters, customer buckets, the
// visits' dimensions and flags (without the ids they keep), services.
func (b bundle) figuresOf(t *testing.T) []string {
	t.Helper()
	out := append(b.snapshot(t), b.customers(t)...)
	out = append(out, b.rows(t, `SELECT concat_ws('|', 'visit', visit_id, (state - 'seen')::text) FROM visits ORDER BY 1`)...)
	out = append(out, b.rows(t, `SELECT concat_ws('|', 'coverage', service_id, state::text) FROM service_coverage ORDER BY 1`)...)
	return append(out, b.rows(t, `SELECT concat_ws('|', 'service', service_id, product_category) FROM services ORDER BY 1`)...)
}

// The events of the keyed subjects keep no inbox row, yet each counts
// once: held twice in one batch, delivered again in a later batch (an ack
// lost after the commit: the consumer crashed between the two), again
// alone, again after later events moved their visit (the first
// VisitPlanned of a rescheduled visit, whose due day the second moved),
// and in two transactions at once.
// Only the events whose entry already holds another event of their kind
// (the second VisitPlanned and VisitDue of kv) are claimed in the inbox.
func TestKeyedEventsApplyOnce(t *testing.T) {
	evs := keyedEvents()
	ctx := context.Background()

	ref := setup(t)
	ref.publish(t, evs...)
	for _, m := range ref.fetchAll(t, len(evs)) {
		ref.consumer.Process(ctx, m)
	}
	want := ref.figuresOf(t)
	require.Contains(t, want, "default|visit.due|2025-03-06|north|p-repair|repair|washer|CHANNEL_PHONE|a1|||1|0",
		"kv counts on the day its last VisitDue names, in its org unit")
	require.Contains(t, want, "default|visit.due|2025-03-08|north|p-repair|repair|washer|CHANNEL_PHONE||||1|0",
		"kw counts on the day its VisitPlanned names, which came after its VisitDue")

	b := setup(t)
	b.consumer.Batch = 100
	b.publish(t, evs...)
	msgs := b.fetchAll(t, len(evs))
	b.consumer.ProcessBatch(ctx, append(slices.Clone(msgs), msgs[0], msgs[1], msgs[3], msgs[7]))
	require.Equal(t, want, b.figuresOf(t), "held twice in one batch")
	b.consumer.ProcessBatch(ctx, msgs)
	require.Equal(t, want, b.figuresOf(t), "delivered again in a later batch")
	for _, m := range msgs {
		b.consumer.Process(ctx, m)
	}
	require.Equal(t, want, b.figuresOf(t), "delivered again alone")
	b.consumer.ProcessBatch(ctx, []jetstream.Msg{msgs[4], msgs[1], msgs[0]})
	require.Equal(t, want, b.figuresOf(t), "the first VisitPlanned again, after the visit was rescheduled and attempted")
	require.Equal(t, []string{"k-att", "k-due2", "k-p2"}, b.rows(t, `SELECT event_id FROM inbox WHERE consumer = 'analytics-events' ORDER BY 1`),
		"inbox rows: the event that is not keyed, and the second VisitPlanned and VisitDue of kv")
	require.Equal(t, []string{"k-s", "k-s2"}, b.rows(t, `SELECT event_id FROM services ORDER BY 1`))

	// Two transactions applying the same events at once, from the start.
	c := setup(t)
	c.consumer.Batch = 100
	c.publish(t, evs...)
	msgs = c.fetchAll(t, len(evs))
	var wg sync.WaitGroup
	for range 2 {
		wg.Go(func() { c.consumer.ProcessBatch(ctx, slices.Clone(msgs)) })
	}
	wg.Wait()
	require.Equal(t, want, c.figuresOf(t), "applied twice at once")
	require.Equal(t, []string{`kv|{"due": "k-due1", "planned": "k-p1"}`, `kw|{"due": "k-wdue", "planned": "k-wplan"}`},
		b.rows(t, `SELECT visit_id || '|' || (state->'seen')::text FROM visits ORDER BY 1`))
}

// Services and visits stored before their events' ids were kept (their
// events were applied with an inbox row, as every event was) take nothing
// twice either: a redelivered event of theirs is claimed in the inbox,
// which holds it.
func TestKeyedEventsOfEntriesStoredBefore(t *testing.T) {
	evs := keyedEvents()
	ctx := context.Background()
	b := setup(t)
	b.publish(t, evs...)
	msgs := b.fetchAll(t, len(evs))
	for _, m := range msgs {
		b.consumer.Process(ctx, m)
	}
	want := b.figuresOf(t)
	// What the previous version left: no ids in the entries, an inbox row per event.
	_, err := b.pool.Exec(ctx, `UPDATE services SET event_id = NULL`)
	require.NoError(t, err)
	_, err = b.pool.Exec(ctx, `UPDATE visits SET state = state - 'seen'`)
	require.NoError(t, err)
	ids := make([]string, len(evs))
	for i, e := range evs {
		ids[i] = e.ID
	}
	_, err = b.pool.Exec(ctx, `INSERT INTO inbox (consumer, event_id) SELECT 'analytics-events', unnest($1::text[]) ON CONFLICT DO NOTHING`, ids)
	require.NoError(t, err)

	b.consumer.Batch = 100
	b.consumer.ProcessBatch(ctx, msgs)
	for _, m := range msgs {
		b.consumer.Process(ctx, m)
	}
	require.Equal(t, want, b.figuresOf(t))
	require.Zero(t, b.count(t, `SELECT count(*) FROM visits WHERE state ? 'seen'`), "no id kept for an event applied before")
}

// A rebuild replays the stream in its order, while the consumer applied
// kv's two VisitPlanned the other way round (after a take-over, say): the
// replay keeps the first one's id in the visit and claims the second in
// its inbox, the consumer did the reverse. The swap's check finds the
// event the consumer claimed among the ids the replay's visits keep, and
// the rebuilt figures are the consumer's.
func TestRebuildAfterKeyedEventsOutOfOrder(t *testing.T) {
	evs := keyedEvents()
	ctx := context.Background()
	b := setup(t)
	_, err := b.pool.Exec(ctx, `DELETE FROM rebuild_requests`)
	require.NoError(t, err)
	b.publish(t, evs...)
	msgs := b.fetchAll(t, len(evs))
	order := []int{0, 2, 1, 3, 4, 5, 6, 7, 8} // k-p2 before k-p1
	for _, i := range order {
		b.consumer.Process(ctx, msgs[i])
	}
	require.Equal(t, []string{"k-att", "k-due2", "k-p1"}, b.rows(t, `SELECT event_id FROM inbox WHERE consumer = 'analytics-events' ORDER BY 1`))
	counters := b.snapshot(t)
	customers := b.customers(t)

	b.run(t) // the durable delivers every event again: no effect
	acked := servicetest.Acknowledged(t, b.js, stream.EventsStream, consumer.Durable)
	require.Eventually(t, func() bool { return acked(ctx) }, 60*time.Second, 20*time.Millisecond, "the leader consumed the stream")
	require.Equal(t, counters, b.snapshot(t))
	_, err = b.app.Rebuild(ctx)
	require.NoError(t, err)
	require.Equal(t, []string{"k-att", "k-due2", "k-p2"}, b.rows(t, `SELECT event_id FROM inbox WHERE consumer = 'analytics-events' ORDER BY 1`),
		"the replay's inbox")
	require.Equal(t, counters, b.snapshot(t))
	require.Equal(t, customers, b.customers(t))
}

// A ServiceCompleted that names no customer, handled in two transactions
// at once, counts once: the second reads its service only once the first
// committed (the service's entry lock).
func TestKeyedServiceAppliedTwiceAtOnce(t *testing.T) {
	ctx := context.Background()
	b := setup(t)
	const n = 10
	var evs []scenario.Event
	for i := range n {
		id := fmt.Sprintf("k-n%d", i)
		evs = append(evs, scenario.Event{ID: id, Subject: stream.SubjectServiceCompleted, Msg: &eventsv1.ServiceCompleted{EventId: id,
			ServiceId: id, ServiceType: "repair", OrgUnit: "north", CompletedAt: timestamppb.New(time.Date(2025, time.March, 1, 10, 0, 0, 0, time.UTC))}})
	}
	b.publish(t, evs...)
	for _, m := range b.fetchAll(t, n) {
		var wg sync.WaitGroup
		for range 2 {
			wg.Go(func() { b.consumer.Process(ctx, m) })
		}
		wg.Wait()
	}
	require.Equal(t, n, b.count(t, `SELECT sum(n)::int FROM daily WHERE metric = 'service.completed'`))
	require.Equal(t, n, b.count(t, `SELECT count(*) FROM services WHERE event_id = service_id`))
}
