package consumer_test

import (
	"context"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	eventsv1 "github.com/huifang/huifang/proto/huifang/events/v1"
	typesv1 "github.com/huifang/huifang/proto/huifang/types/v1"

	"github.com/huifang/huifang/pkg/stream"
)

// fetchDue publishes the VisitDue events, keyed by event id in order, and
// fetches them as one batch from a consumer of the test's own.
func (b bundle) fetchDue(t *testing.T, events [][2]string, data map[string][]byte) []jetstream.Msg {
	t.Helper()
	for _, e := range events {
		b.publish(t, e[0], data[e[1]])
	}
	raw, err := b.js.CreateConsumer(context.Background(), stream.EventsStream, jetstream.ConsumerConfig{
		FilterSubject: stream.SubjectVisitDue, AckPolicy: jetstream.AckExplicitPolicy, AckWait: time.Minute,
	})
	require.NoError(t, err)
	var msgs []jetstream.Msg
	deadline := time.Now().Add(30 * time.Second)
	for len(msgs) < len(events) && time.Now().Before(deadline) {
		batch, err := raw.Fetch(len(events)-len(msgs), jetstream.FetchMaxWait(5*time.Second))
		require.NoError(t, err)
		for m := range batch.Messages() {
			msgs = append(msgs, m)
		}
	}
	require.Len(t, msgs, len(events))
	return msgs
}

// newerAndCancelled keeps version 3 of customer c-new (its name 新名, owners
// a-1 and a-2, language en) and remembers visit v-cancelled as cancelled.
func (b bundle) newerAndCancelled(t *testing.T) {
	t.Helper()
	ctx := context.Background()
	_, err := b.pool.Exec(ctx, `INSERT INTO customer_versions (tenant_id, customer_id, version, customer, updated_at)
VALUES ('default', 'c-new', 3, '{"id":"c-new","nameMasked":"新名","hasPhone":true,"ownerIds":["a-1","a-2"],"preferences":{"language":"en"}}', now())`)
	require.NoError(t, err)
	_, err = b.pool.Exec(ctx, `INSERT INTO cancelled_visits (tenant_id, visit_id, reason, cancelled_at) VALUES ('default', 'v-cancelled', 'test', now())`)
	require.NoError(t, err)
}

func dueEvent(t *testing.T, ev *eventsv1.VisitDue) []byte {
	t.Helper()
	if ev.TenantId == "" {
		ev.TenantId = "default"
	}
	ev.DueAt, ev.Deadline = timestamppb.New(t0), timestamppb.New(t0.Add(72*time.Hour))
	b, err := proto.Marshal(ev)
	require.NoError(t, err)
	return b
}

// TestVisitDueBatchMakesTasksTogether: a batch of VisitDue makes its tasks
// and their details in one transaction, each as one VisitDue alone would:
// the customer's newer snapshot wins (and routes: owners, tier), a visit
// cancelled before it fell due and a visit's second VisitDue in the batch
// make none, a VisitDue that breaks a rule is dead-lettered alone, and the
// batch delivered again changes nothing.
func TestVisitDueBatchMakesTasksTogether(t *testing.T) {
	b := setup(t)
	ctx := context.Background()
	b.newerAndCancelled(t)

	phone := typesv1.Channel_CHANNEL_PHONE
	data := map[string][]byte{
		"v-1": dueEvent(t, &eventsv1.VisitDue{VisitId: "v-1", Channel: phone, Severity: typesv1.Severity_SEVERITY_MAJOR,
			Customer: &typesv1.Customer{Id: "c-new", NameMasked: "旧名", HasPhone: true}, ServiceId: "s-1"}),
		"v-1-other": dueEvent(t, &eventsv1.VisitDue{VisitId: "v-1", Channel: typesv1.Channel_CHANNEL_SMS,
			Customer: &typesv1.Customer{Id: "c-new"}, ServiceId: "s-other"}),
		"v-sms": dueEvent(t, &eventsv1.VisitDue{VisitId: "v-sms", Channel: typesv1.Channel_CHANNEL_SMS,
			Customer: &typesv1.Customer{Id: "c-2", PhoneMasked: "138****0000", HasPhone: true}}),
		"v-late": dueEvent(t, &eventsv1.VisitDue{VisitId: "v-late", Channel: phone, Customer: &typesv1.Customer{Id: "c-3"},
			ServiceId: "s-3", ServiceCompletedAt: timestamppb.New(t0.Add(-time.Hour)), ComplaintId: "cp-3", Late: true}),
		"v-cancelled": dueEvent(t, &eventsv1.VisitDue{VisitId: "v-cancelled", Channel: phone, Customer: &typesv1.Customer{Id: "c-4"}}),
		"no-visit":    dueEvent(t, &eventsv1.VisitDue{Channel: phone}),
		"v-nobody":    dueEvent(t, &eventsv1.VisitDue{VisitId: "v-nobody", Channel: typesv1.Channel_CHANNEL_EMAIL}),
	}
	events := [][2]string{{"e-1", "v-1"}, {"e-sms", "v-sms"}, {"e-bad", "no-visit"}, {"e-1-again", "v-1-other"}, {"e-late", "v-late"},
		{"e-cancelled", "v-cancelled"}, {"e-nobody", "v-nobody"}}
	msgs := b.fetchDue(t, events, data)

	b.cons.Batch = len(msgs)
	b.cons.ProcessBatch(ctx, msgs)

	require.Equal(t, 4, b.count(t, `SELECT count(*) FROM tasks`))
	require.Equal(t, 1, b.count(t, `SELECT count(DISTINCT xmin::text) FROM tasks`), "one transaction")
	require.Equal(t, 4, b.count(t, `SELECT count(*) FROM task_details d JOIN tasks t ON t.id = d.task_id AND t.tenant_id = d.tenant_id`))
	require.Zero(t, b.count(t, `SELECT count(*) FROM tasks WHERE visit_id = 'v-cancelled'`), "cancelled before it fell due")

	// The first VisitDue of v-1 made its task, with the newer snapshot.
	var channel, name, primary, backup, language, service, severity string
	require.NoError(t, b.pool.QueryRow(ctx, `SELECT t.channel, t.customer->>'nameMasked', t.primary_owner, t.backup_owner, t.language, d.service_id,
  t.severity::text FROM tasks t JOIN task_details d ON d.task_id = t.id WHERE t.visit_id = 'v-1'`).
		Scan(&channel, &name, &primary, &backup, &language, &service, &severity))
	require.Equal(t, []string{"CHANNEL_PHONE", "新名", "a-1", "a-2", "en", "s-1"}, []string{channel, name, primary, backup, language, service})
	require.Equal(t, "3", severity)

	var automatic bool
	require.NoError(t, b.pool.QueryRow(ctx, `SELECT automatic FROM tasks WHERE visit_id = 'v-sms'`).Scan(&automatic))
	require.True(t, automatic, "an SMS visit is sent, not called")

	var completed time.Time
	var complaint string
	var late bool
	require.NoError(t, b.pool.QueryRow(ctx, `SELECT d.service_id, d.service_completed_at, d.complaint_id, d.late FROM task_details d
JOIN tasks t ON t.id = d.task_id WHERE t.visit_id = 'v-late'`).Scan(&service, &completed, &complaint, &late))
	require.Equal(t, "s-3", service)
	require.True(t, completed.Equal(t0.Add(-time.Hour)))
	require.Equal(t, "cp-3", complaint)
	require.True(t, late)

	var field string
	require.NoError(t, b.pool.QueryRow(ctx, `SELECT field FROM rejected_events WHERE event_id = 'e-bad'`).Scan(&field))
	require.Equal(t, "visit_id", field)
	require.Equal(t, 1, b.count(t, `SELECT count(*) FROM rejected_events`))

	// Delivered again (the acknowledgements were lost): nothing changes.
	b.cons.ProcessBatch(ctx, msgs)
	require.Equal(t, 4, b.count(t, `SELECT count(*) FROM tasks`))
	require.Equal(t, 4, b.count(t, `SELECT count(*) FROM task_details`))
	require.Equal(t, 1, b.count(t, `SELECT count(*) FROM rejected_events`))
}

// TestVisitDueBatchFailureIsolated: when the statement that stores a
// batch's tasks fails because of one VisitDue (here a trigger refusing its
// visit), the batch is handled message by message: the others get their
// tasks, and the failing one is retried alone and dead-lettered.
func TestVisitDueBatchFailureIsolated(t *testing.T) {
	b := setup(t)
	ctx := context.Background()
	_, err := b.pool.Exec(ctx, `CREATE FUNCTION refuse_poison() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF NEW.visit_id = 'v-poison' THEN RAISE EXCEPTION 'poisoned visit'; END IF;
  RETURN NEW;
END $$;
CREATE TRIGGER refuse_poison BEFORE INSERT ON tasks FOR EACH ROW EXECUTE FUNCTION refuse_poison()`)
	require.NoError(t, err)
	phone := typesv1.Channel_CHANNEL_PHONE
	data := map[string][]byte{}
	var events [][2]string
	for _, v := range []string{"v-1", "v-2", "v-poison", "v-3"} {
		data[v] = dueEvent(t, &eventsv1.VisitDue{VisitId: v, Channel: phone, Customer: &typesv1.Customer{Id: "c-" + v}})
		events = append(events, [2]string{"e-" + v, v})
	}
	msgs := b.fetchDue(t, events, data)

	b.cons.Batch, b.cons.MaxDeliver, b.cons.Backoff = len(msgs), 2, time.Millisecond
	b.cons.ProcessBatch(ctx, msgs)

	require.Equal(t, 3, b.count(t, `SELECT count(*) FROM tasks`))
	require.Equal(t, 3, b.count(t, `SELECT count(*) FROM task_details`))
	require.Zero(t, b.count(t, `SELECT count(*) FROM tasks WHERE visit_id = 'v-poison'`))
	require.Equal(t, 1, b.count(t, `SELECT count(*) FROM rejected_events WHERE event_id = 'e-v-poison'`), "dead-lettered alone")
	require.Equal(t, 1, b.count(t, `SELECT count(*) FROM rejected_events`))
}
