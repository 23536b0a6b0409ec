package consumer_test

import (
	"context"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/types/known/timestamppb"

	eventsv1 "github.com/huifang/huifang/proto/huifang/events/v1"
	typesv1 "github.com/huifang/huifang/proto/huifang/types/v1"

	"github.com/huifang/huifang/pkg/inbox"
	"github.com/huifang/huifang/pkg/servicetest"
	"github.com/huifang/huifang/pkg/stream"
	"github.com/huifang/huifang/services/scheduler/internal/app"
	"github.com/huifang/huifang/services/scheduler/internal/consumer"
	"github.com/huifang/huifang/services/scheduler/internal/policy"
	"github.com/huifang/huifang/services/scheduler/migrations"
)

// keyedBundle is a database and NATS server with the planning consumer,
// not running: the tests hand it the messages.
type keyedBundle struct {
	bundle
	planning *inbox.Consumer
}

// setupKeyed stores the policies of keyedEvents: an installation's visit
// that a repair stops, a repair's instant call and its sampled SMS.
func setupKeyed(t *testing.T) keyedBundle {
	t.Helper()
	pool := servicetest.Pool(t, "scheduler", migrations.FS)
	js := servicetest.JetStream(t)
	ctx := context.Background()
	a := &app.App{DB: pool, Now: time.Now, DueNow: func() {}}
	require.NoError(t, a.EnsureBuiltins(ctx))
	storePolicies(t, ctx, pool,
		policy.Policy{ID: "p-instant", Trigger: policy.Trigger{ServiceTypes: []string{"repair"}},
			Steps: []policy.Step{{Channel: policy.ChannelPhone, SampleRate: 1}}},
		policy.Policy{ID: "p-sampled", Trigger: policy.Trigger{ServiceTypes: []string{"repair"}},
			Steps: []policy.Step{{Channel: policy.ChannelSMS, SampleRate: 0.5, Offset: policy.Duration(48 * time.Hour)}}},
		policy.Policy{ID: "p-install", Trigger: policy.Trigger{ServiceTypes: []string{"installation"}}, Stop: policy.Stop{ServiceTypes: []string{"repair"}},
			Steps: []policy.Step{{Channel: policy.ChannelSMS, SampleRate: 1, Offset: policy.Duration(72 * time.Hour)}}})
	planning := consumer.New(a)[0]
	require.Equal(t, consumer.DurableServiceCompleted, planning.Durable)
	require.True(t, planning.Idempotent)
	planning.Service, planning.Pool, planning.JS, planning.Log, planning.Batch = "scheduler", pool, js, servicetest.Logger(), 100
	return keyedBundle{bundle: bundle{ctx: ctx, pool: pool, js: js}, planning: planning}
}

// keyedEvents are customer kx's installation (k-1), its repair (k-2: the
// installation's visit stopped, an instant call, a sampled SMS, a new
// snapshot), the same repair sent again under another event id (k-3: a
// correction), and a later installation (k-4, another snapshot); and a
// repair of no customer (k-5); the first completed at done.
func keyedEvents(done time.Time) []*eventsv1.ServiceCompleted {
	ev := func(id, service, typ, customer, zone string, minute int) *eventsv1.ServiceCompleted {
		e := &eventsv1.ServiceCompleted{EventId: id, TenantId: "default", ServiceId: service, ServiceType: typ, OrgUnit: "shanghai",
			CompletedAt: timestamppb.New(done.Add(time.Duration(minute) * time.Minute))}
		if customer != "" {
			e.Customer = &typesv1.Customer{Id: customer, HasPhone: true, Preferences: &typesv1.ContactPreferences{TimeZone: zone}}
		}
		return e
	}
	return []*eventsv1.ServiceCompleted{
		ev("k-1", "ks-1", "installation", "kx", "Asia/Shanghai", 0),
		ev("k-2", "ks-2", "repair", "kx", "Asia/Chongqing", 1),
		ev("k-3", "ks-2", "repair", "kx", "Asia/Chongqing", 1),
		ev("k-4", "ks-4", "installation", "kx", "Asia/Urumqi", 2),
		ev("k-5", "ks-5", "repair", "", "", 3),
	}
}

// fetchAll publishes evs and takes their messages, in order, through a
// consumer of the test's own.
func (b keyedBundle) fetchAll(t *testing.T, evs []*eventsv1.ServiceCompleted) []jetstream.Msg {
	t.Helper()
	for _, ev := range evs {
		publish(t, b.bundle, ev.EventId, ev)
	}
	return servicetest.Fetch(t, b.js, stream.EventsStream, []string{stream.SubjectServiceCompleted}, len(evs))
}

// figures are what planning made, without the ids and times a run draws:
// the visits, the customers, the services and the ids they keep, the
// sampling quotas, the opt-outs, the events published by subject and the
// inbox.
func (b keyedBundle) figures(t *testing.T) string {
	t.Helper()
	var s string
	require.NoError(t, b.pool.QueryRow(b.ctx, `SELECT concat_ws(E'\n',
  (SELECT string_agg(concat_ws(' ', service_id, policy_id, status, reason), E'\n' ORDER BY service_id, policy_id) FROM planned_visits),
  (SELECT string_agg(concat_ws(' ', customer_id, version, prefs, opted_out, tier, updated_at), E'\n' ORDER BY customer_id) FROM customers),
  (SELECT string_agg(concat_ws(' ', service_id, event_id, spec), E'\n' ORDER BY service_id) FROM services),
  (SELECT string_agg(concat_ws(' ', policy_id, step, eligible, sampled), E'\n' ORDER BY policy_id, step) FROM sample_quotas),
  (SELECT string_agg(concat_ws(' ', customer_id, channel, source), E'\n' ORDER BY customer_id, channel) FROM opt_outs),
  (SELECT string_agg(subject || ' ' || n, E'\n' ORDER BY subject) FROM (SELECT subject, count(*) AS n FROM outbox GROUP BY subject) o),
  (SELECT string_agg(concat_ws(' ', consumer, event_id), E'\n' ORDER BY consumer, event_id) FROM inbox))`).Scan(&s))
	return s
}

// state is every row planning writes, with the transaction that last
// wrote it (xmin): a delivery that changes it rewrote or added a row.
func (b keyedBundle) state(t *testing.T) string {
	t.Helper()
	var s string
	require.NoError(t, b.pool.QueryRow(b.ctx, `SELECT concat_ws(E'\n',
  (SELECT string_agg(v::text || ' ' || v.xmin, E'\n' ORDER BY v.id) FROM planned_visits v),
  (SELECT string_agg(c::text || ' ' || c.xmin, E'\n' ORDER BY c.customer_id) FROM customers c),
  (SELECT string_agg(s::text || ' ' || s.xmin, E'\n' ORDER BY s.service_id) FROM services s),
  (SELECT string_agg(q::text || ' ' || q.xmin, E'\n' ORDER BY q.policy_id, q.step) FROM sample_quotas q),
  (SELECT string_agg(o::text || ' ' || o.xmin, E'\n' ORDER BY o.customer_id, o.channel) FROM opt_outs o),
  (SELECT string_agg(concat_ws(' ', id, subject), E'\n' ORDER BY id) FROM outbox),
  (SELECT string_agg(concat_ws(' ', consumer, event_id), E'\n' ORDER BY consumer, event_id) FROM inbox))`).Scan(&s))
	return s
}

// oneByOne is what keyedEvents(done) make delivered once each, alone, in
// order.
func oneByOne(t *testing.T, done time.Time) string {
	t.Helper()
	ref := setupKeyed(t)
	for _, m := range ref.fetchAll(t, keyedEvents(done)) {
		ref.planning.Process(ref.ctx, m)
	}
	want := ref.figures(t)
	require.Contains(t, want, "ks-1 p-install cancelled", "the repair stopped the installation's visit")
	require.Contains(t, want, "ks-4 p-install planned", "the later installation's visit waits")
	require.Contains(t, want, `"time_zone": "Asia/Urumqi"`, "the later snapshot kept")
	require.Contains(t, want, "huifang.events.visit.due 2", "an instant call for each repair")
	require.Contains(t, want, "ks-1 k-1 ", "the service keeps the id of the event that recorded it")
	require.Contains(t, want, "ks-5 k-5 ")
	return want
}

// A completed service keeps no inbox row of the planning consumer, yet each
// ServiceCompleted applies once: held twice in one batch, delivered again
// in a later batch (the consumer crashed between the commit and the
// acknowledgements) and again alone, and the repair delivered again after
// the later events of its service (k-3) and customer (k-4), which it would
// set back (the snapshot) and stop (the installation's visit). Nothing is
// rewritten nor published again; only the second event of a service (k-3)
// is claimed in the inbox.
func TestPlanningEventsApplyOnce(t *testing.T) {
	done := time.Now().Add(-time.Hour).UTC().Truncate(time.Second)
	want := oneByOne(t, done)
	b := setupKeyed(t)
	msgs := b.fetchAll(t, keyedEvents(done))
	b.planning.ProcessBatch(b.ctx, append(slices.Clone(msgs), msgs[0], msgs[1], msgs[2]))
	require.Equal(t, want, b.figures(t), "held twice in one batch")
	require.Equal(t, 5, appliedEvents(t, b.pool), "every event applied once")
	first := b.state(t)

	b.planning.ProcessBatch(b.ctx, msgs)
	require.Equal(t, first, b.state(t), "delivered again in a later batch")
	for _, m := range msgs {
		b.planning.Process(b.ctx, m)
	}
	require.Equal(t, first, b.state(t), "delivered again alone")
	b.planning.ProcessBatch(b.ctx, []jetstream.Msg{msgs[3], msgs[2], msgs[1]})
	require.Equal(t, first, b.state(t), "the repair again in a batch after the later events of its service and customer")
	b.planning.Process(b.ctx, msgs[1])
	require.Equal(t, first, b.state(t), "the repair again alone after them")

	require.Equal(t, []string{"k-3"}, b.inbox(t), "only the service's second event is claimed in the inbox")

	// The correction first: it records the service, the repair's first
	// event is claimed in the inbox; neither applies again.
	e := setupKeyed(t)
	msgs = e.fetchAll(t, keyedEvents(done))
	for _, i := range []int{0, 2, 1, 3, 4} {
		e.planning.Process(e.ctx, msgs[i])
	}
	require.Equal(t, []string{"k-2"}, e.inbox(t))
	first = e.state(t)
	require.Contains(t, first, "k-3")
	e.planning.ProcessBatch(e.ctx, msgs)
	for _, m := range msgs {
		e.planning.Process(e.ctx, m)
	}
	require.Equal(t, first, e.state(t), "delivered again after the correction came first")
}

// inbox lists the events the planning consumer claimed in its inbox.
func (b keyedBundle) inbox(t *testing.T) []string {
	t.Helper()
	rows, err := b.pool.Query(b.ctx, `SELECT event_id FROM inbox WHERE consumer = $1 ORDER BY 1`, consumer.DurableServiceCompleted)
	require.NoError(t, err)
	ids, err := pgx.CollectRows(rows, pgx.RowTo[string])
	require.NoError(t, err)
	return ids
}

// The events applied in two transactions at once apply once: two batches
// of all of them, and each event alone in two transactions (the second
// waits for the first's record of the service, or its inbox claim).
func TestPlanningEventsAppliedTwiceAtOnce(t *testing.T) {
	done := time.Now().Add(-time.Hour).UTC().Truncate(time.Second)
	want := oneByOne(t, done)

	c := setupKeyed(t)
	msgs := c.fetchAll(t, keyedEvents(done))
	var wg sync.WaitGroup
	for range 2 {
		wg.Go(func() { c.planning.ProcessBatch(c.ctx, slices.Clone(msgs)) })
	}
	wg.Wait()
	require.Equal(t, want, c.figures(t), "two batches at once")

	d := setupKeyed(t)
	for _, m := range d.fetchAll(t, keyedEvents(done)) {
		var wg sync.WaitGroup
		for range 2 {
			wg.Go(func() { d.planning.Process(d.ctx, m) })
		}
		wg.Wait()
	}
	require.Equal(t, want, d.figures(t), "each alone, twice at once")
}

// Services recorded before their events' ids were kept (their events
// applied with an inbox row, as every event was) take nothing twice
// either: their events delivered again are claimed in the inbox, which
// holds them.
func TestPlanningEventsOfServicesRecordedBefore(t *testing.T) {
	done := time.Now().Add(-time.Hour)
	b := setupKeyed(t)
	msgs := b.fetchAll(t, keyedEvents(done))
	for _, m := range msgs {
		b.planning.Process(b.ctx, m)
	}
	// What the previous version left: no ids in the services, an inbox row per event.
	_, err := b.pool.Exec(b.ctx, `UPDATE services SET event_id = NULL`)
	require.NoError(t, err)
	_, err = b.pool.Exec(b.ctx, `INSERT INTO inbox (consumer, event_id) SELECT $1, unnest($2::text[]) ON CONFLICT DO NOTHING`,
		consumer.DurableServiceCompleted, []string{"k-1", "k-2", "k-3", "k-4", "k-5"})
	require.NoError(t, err)
	before := b.state(t)

	b.planning.ProcessBatch(b.ctx, msgs)
	for _, m := range msgs {
		b.planning.Process(b.ctx, m)
	}
	require.Equal(t, before, b.state(t))
}

// A service a batch read as not recorded that a concurrent transaction
// records meanwhile, by the same event (here that event handled alone
// while the batch applies the message before it), fails the batch: its
// messages are then handled one by one, and that event is not applied
// again (its visits, service, sampling quotas and events stay as the
// concurrent transaction left them).
func TestPlanningEventRecordedMeanwhile(t *testing.T) {
	b := setupKeyed(t)
	msgs := b.fetchAll(t, keyedEvents(time.Now().Add(-time.Hour)))
	installation, repair := msgs[0], msgs[4] // k-1 (customer kx), k-5 (no customer)
	handle := b.planning.Handle
	var meanwhile string
	ofRepair := func() string {
		var s string
		require.NoError(t, b.pool.QueryRow(b.ctx, `SELECT concat_ws(E'\n',
  (SELECT string_agg(v::text || ' ' || v.xmin, E'\n' ORDER BY v.id) FROM planned_visits v WHERE v.service_id = 'ks-5'),
  (SELECT string_agg(s::text || ' ' || s.xmin, E'\n') FROM services s WHERE s.service_id = 'ks-5'),
  (SELECT string_agg(q::text || ' ' || q.xmin, E'\n' ORDER BY q.policy_id, q.step) FROM sample_quotas q WHERE q.policy_id <> 'p-install'),
  (SELECT string_agg(o.id, E'\n' ORDER BY o.id) FROM outbox o WHERE position('ks-5'::bytea IN o.payload) > 0))`).Scan(&s))
		return s
	}
	b.planning.Handle = func(ctx context.Context, tx pgx.Tx, msg jetstream.Msg) error {
		err := handle(ctx, tx, msg)
		if inbox.Batch(ctx) != nil && inbox.EventIDFrom(ctx) == "k-1" && meanwhile == "" {
			b.planning.Process(b.ctx, repair) // its own transaction, committed before the batch goes on
			meanwhile = ofRepair()
		}
		return err
	}
	b.planning.ProcessBatch(b.ctx, []jetstream.Msg{installation, repair})
	require.Contains(t, meanwhile, ",ks-5,\"\",{},p-instant,", "the repair planned meanwhile")
	require.Equal(t, meanwhile, ofRepair())
	require.Equal(t, 2, appliedEvents(t, b.pool, "k-1", "k-5"))
	require.Empty(t, b.inbox(t))
}
