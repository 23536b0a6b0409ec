package consumer_test

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	eventsv1 "github.com/huifang/huifang/proto/huifang/events/v1"
	typesv1 "github.com/huifang/huifang/proto/huifang/types/v1"

	"github.com/huifang/huifang/pkg/enum"
	"github.com/huifang/huifang/pkg/servicetest"
	"github.com/huifang/huifang/pkg/stream"
	"github.com/huifang/huifang/services/scheduler/internal/app"
	"github.com/huifang/huifang/services/scheduler/internal/consumer"
	"github.com/huifang/huifang/services/scheduler/internal/contact"
	"github.com/huifang/huifang/services/scheduler/internal/policy"
	"github.com/huifang/huifang/services/scheduler/internal/store"
	"github.com/huifang/huifang/services/scheduler/migrations"
)

// One batch of completed services applies as the services one after the
// other would: a new customer's two services make one customer, the later
// snapshot kept, and a once-per-customer policy plans once for them; a
// customer whose newer version the scheduler keeps is not set back by a
// snapshot; an opt-out a snapshot carries is kept and recorded with its
// source; a customer's pending visit that stops when the customer comes
// in is cancelled; the same service sent twice under two event ids plans
// once, and counts once in a sampling quota; a malformed event is dead-lettered alone; every service is recorded.
func TestPlanningBatchActsAsOneByOne(t *testing.T) {
	log := servicetest.Logger()
	pool := servicetest.Pool(t, "scheduler", migrations.FS)
	js := servicetest.JetStream(t)
	ctx := context.Background()
	a := &app.App{DB: pool, Now: time.Now}
	require.NoError(t, a.EnsureBuiltins(ctx))
	require.NoError(t, store.InsertPolicy(ctx, pool, policy.Policy{ID: "p-once", Tenant: "default", Name: "once", Version: 1,
		Active: true, CreatedAt: time.Now(), Trigger: policy.Trigger{ServiceTypes: []string{"repair"}, OncePerCustomer: true},
		Steps: []policy.Step{{Channel: policy.ChannelPhone, SampleRate: 1, Offset: policy.Duration(24 * time.Hour)}}}))
	require.NoError(t, store.InsertPolicy(ctx, pool, policy.Policy{ID: "p-install", Tenant: "default", Name: "install", Version: 1,
		Active: true, CreatedAt: time.Now(), Trigger: policy.Trigger{ServiceTypes: []string{"installation"}},
		Stop:  policy.Stop{ServiceTypes: []string{"repair"}},
		Steps: []policy.Step{{Channel: policy.ChannelSMS, SampleRate: 1, Offset: policy.Duration(72 * time.Hour)}}}))

	// The known customer: version 2 from CustomerUpdated, with an
	// installation's visit pending.
	known := &typesv1.Customer{Id: "cu-known", Tier: "gold", Preferences: &typesv1.ContactPreferences{TimeZone: "Asia/Urumqi"}}
	c, err := app.CustomerFrom(known)
	require.NoError(t, err)
	require.NoError(t, a.UpdateCustomer(ctx, app.CustomerUpdate{Tenant: "default", Customer: c, Version: 2, At: time.Now()}))
	done := time.Now().Add(-time.Hour)
	_, err = a.PlanService(ctx, app.Completed{Service: policy.Service{Tenant: "default", ID: "s-0", Type: "installation",
		CompletedAt: done.Add(-time.Hour), CustomerID: "cu-known"}, Customer: c})
	require.NoError(t, err)

	// A customer known by a snapshot only (version 0), opted out of phone calls.
	zero, err := app.CustomerFrom(&typesv1.Customer{Id: "cu-zero", Preferences: &typesv1.ContactPreferences{
		OptedOut: []typesv1.Channel{typesv1.Channel_CHANNEL_PHONE}}})
	require.NoError(t, err)
	_, err = a.PlanService(ctx, app.Completed{Service: policy.Service{Tenant: "default", ID: "s-z0", Type: "installation",
		CompletedAt: done.Add(-time.Hour), CustomerID: "cu-zero"}, Customer: zero})
	require.NoError(t, err)

	// A service planned before, with a sampled step, sent again in the
	// batch under another event id: it plans nothing more, and counts once.
	require.NoError(t, store.InsertPolicy(ctx, pool, policy.Policy{ID: "p-sampled", Tenant: "default", Name: "sampled", Version: 1,
		Active: true, CreatedAt: time.Now(), Trigger: policy.Trigger{ServiceTypes: []string{"inspection"}},
		Steps: []policy.Step{{Channel: policy.ChannelSMS, SampleRate: 0.5, Offset: policy.Duration(48 * time.Hour)},
			{Channel: policy.ChannelPhone, SampleRate: 1, Offset: policy.Duration(72 * time.Hour)}}}))
	again := &eventsv1.ServiceCompleted{EventId: "ev-7", TenantId: "default", ServiceId: "s-again", ServiceType: "inspection",
		CompletedAt: timestamppb.New(done), Customer: &typesv1.Customer{Id: "cu-again"}}
	againIn, err := app.CustomerFrom(again.Customer)
	require.NoError(t, err)
	_, err = a.PlanService(ctx, app.Completed{Service: policy.Service{Tenant: "default", ID: "s-again", Type: "inspection",
		CompletedAt: done, CustomerID: "cu-again"}, Customer: againIn})
	require.NoError(t, err)

	var planning = consumer.New(a)[0]
	require.Equal(t, consumer.DurableServiceCompleted, planning.Durable)
	planning.Service, planning.Pool, planning.JS, planning.Log = "scheduler", pool, js, log
	b := bundle{ctx: ctx, pool: pool, js: js}
	event := func(id, service, customer, zone string, at time.Time) *eventsv1.ServiceCompleted {
		return &eventsv1.ServiceCompleted{EventId: id, TenantId: "default", ServiceId: service, ServiceType: "repair",
			CompletedAt: timestamppb.New(at), Customer: &typesv1.Customer{Id: customer, Tier: "silver",
				Preferences: &typesv1.ContactPreferences{TimeZone: zone}}}
	}
	optingOut := event("ev-3", "s-2", "cu-new", "Asia/Chongqing", done.Add(time.Minute))
	optingOut.Customer.Preferences.OptedOut = []typesv1.Channel{typesv1.Channel_CHANNEL_SMS}
	evs := []*eventsv1.ServiceCompleted{
		event("ev-1", "s-1", "cu-new", "Asia/Shanghai", done),
		event("ev-2", "s-1", "cu-new", "Asia/Shanghai", done), // s-1 again, under another event id
		optingOut, // the later snapshot, opting out of SMS
		event("ev-4", "s-3", "cu-known", "Asia/Shanghai", done.Add(2*time.Minute)),
		func() *eventsv1.ServiceCompleted {
			ev := event("ev-6", "s-z1", "cu-zero", "Asia/Shanghai", done)
			ev.Customer.Preferences.OptedOut = []typesv1.Channel{typesv1.Channel_CHANNEL_EMAIL}
			return ev
		}(),
		again,
		{EventId: "ev-5", TenantId: "default", ServiceId: "s-5"}, // no completed_at
	}
	for _, ev := range evs {
		publish(t, b, ev.EventId, ev)
	}
	cons, err := js.CreateOrUpdateConsumer(ctx, stream.EventsStream, jetstream.ConsumerConfig{Durable: "t-batch",
		FilterSubject: stream.SubjectServiceCompleted, AckPolicy: jetstream.AckExplicitPolicy})
	require.NoError(t, err)
	fetched, err := cons.Fetch(len(evs), jetstream.FetchMaxWait(5*time.Second))
	require.NoError(t, err)
	var msgs []jetstream.Msg
	for m := range fetched.Messages() {
		msgs = append(msgs, m)
	}
	require.Len(t, msgs, len(evs))
	planning.ProcessBatch(ctx, msgs)

	customer := func(id string) contact.Customer {
		k := store.CustomerKey{Tenant: "default", Customer: id}
		cs, err := store.Customers(ctx, pool, []store.CustomerKey{k})
		require.NoError(t, err)
		require.Contains(t, cs, k)
		return cs[k]
	}
	fresh := customer("cu-new")
	require.Equal(t, int64(0), fresh.Version)
	require.Equal(t, "Asia/Chongqing", fresh.Prefs.TimeZone, "the later snapshot is kept")
	require.Equal(t, "silver", fresh.Tier)
	require.Equal(t, []int32{int32(typesv1.Channel_CHANNEL_SMS)}, fresh.OptedOut)
	var source string
	require.NoError(t, pool.QueryRow(ctx, `SELECT source FROM opt_outs WHERE customer_id = 'cu-new' AND channel = 'CHANNEL_SMS'`).Scan(&source))
	require.Equal(t, "intake: ServiceCompleted s-2", source, "the opt-out is recorded with the service that carried it")
	z := customer("cu-zero")
	require.Equal(t, "Asia/Shanghai", z.Prefs.TimeZone, "a snapshot replaces an older snapshot")
	require.Equal(t, []int32{int32(typesv1.Channel_CHANNEL_PHONE), int32(typesv1.Channel_CHANNEL_EMAIL)}, z.OptedOut, "no opt-out is lost")
	kept := customer("cu-known")
	require.Equal(t, int64(2), kept.Version)
	require.Equal(t, "Asia/Urumqi", kept.Prefs.TimeZone, "a snapshot does not set back a newer version")
	require.Equal(t, "gold", kept.Tier)

	count := func(sql string, args ...any) int {
		var n int
		require.NoError(t, pool.QueryRow(ctx, sql, args...).Scan(&n))
		return n
	}
	require.Equal(t, 1, count(`SELECT count(*) FROM planned_visits WHERE customer_id = 'cu-new' AND policy_id = 'p-once'`),
		"once per customer, though its two services came in one batch")
	require.Equal(t, "s-1", func() string {
		var s string
		require.NoError(t, pool.QueryRow(ctx, `SELECT service_id FROM planned_visits WHERE customer_id = 'cu-new'`).Scan(&s))
		return s
	}())
	require.Equal(t, 1, count(`SELECT count(*) FROM planned_visits WHERE customer_id = 'cu-known' AND policy_id = 'p-once' AND status = 'planned'`))
	require.Equal(t, "cancelled", func() string {
		var s string
		require.NoError(t, pool.QueryRow(ctx, `SELECT status FROM planned_visits WHERE service_id = 's-0'`).Scan(&s))
		return s
	}(), "the installation's visit stops when the customer comes in for a repair")
	require.Equal(t, 7, count(`SELECT count(*) FROM outbox WHERE subject = $1`, stream.SubjectVisitPlanned),
		"s-0's, s-z0's and s-again's two visits, then one for each customer of the batch but cu-again")
	require.Equal(t, 2, count(`SELECT count(*) FROM planned_visits WHERE service_id = 's-again'`))
	require.Equal(t, 1, count(`SELECT eligible FROM sample_quotas WHERE policy_id = 'p-sampled'`), "s-again counts once in its quota")
	require.Equal(t, "cancelled", func() string {
		var s string
		require.NoError(t, pool.QueryRow(ctx, `SELECT status FROM planned_visits WHERE service_id = 's-z0'`).Scan(&s))
		return s
	}(), "a customer's repair in the batch stops its installation's visit")
	var specs [][]byte
	rows, err := pool.Query(ctx, `SELECT spec FROM services WHERE service_id IN ('s-1', 's-2', 's-3') ORDER BY service_id`)
	require.NoError(t, err)
	for rows.Next() {
		var b []byte
		require.NoError(t, rows.Scan(&b))
		specs = append(specs, b)
	}
	require.NoError(t, rows.Err())
	require.Len(t, specs, 3, "every service recorded")
	var s1 policy.Service
	require.NoError(t, json.Unmarshal(specs[0], &s1))
	require.Equal(t, "cu-new", s1.CustomerID)
	require.Equal(t, 6, appliedEvents(t, pool), "six events applied")
	require.Equal(t, 1, count(`SELECT count(*) FROM rejected_events`), "the malformed one refused alone")
}

// A batch of CustomerUpdated applies as the updates one after the other
// would: the newest version wins whatever the order, an older one that
// comes after it changes nothing, no opt-out is lost and each is recorded
// with the update that carried it; a customer the batch erases is erased
// after its earlier updates (DOMAIN: an erased customer is contacted on no
// channel).
func TestCustomerUpdatedBatchActsAsOneByOne(t *testing.T) {
	log := servicetest.Logger()
	pool := servicetest.Pool(t, "scheduler", migrations.FS)
	js := servicetest.JetStream(t)
	ctx := context.Background()
	a := &app.App{DB: pool, Now: time.Now}
	var updated = consumer.New(a)[1]
	require.Equal(t, consumer.DurableCustomerUpdated, updated.Durable)
	updated.Service, updated.Pool, updated.JS, updated.Log = "scheduler", pool, js, log
	b := bundle{ctx: ctx, pool: pool, js: js}
	update := func(id, customer string, version int64, zone string, out ...typesv1.Channel) *eventsv1.CustomerUpdated {
		return &eventsv1.CustomerUpdated{EventId: id, TenantId: "default", Version: version, UpdatedAt: timestamppb.Now(),
			Customer: &typesv1.Customer{Id: customer, Tier: zone, Preferences: &typesv1.ContactPreferences{TimeZone: zone, OptedOut: out}}}
	}
	erase := update("ev-6", "cu-gone", 2, "")
	erase.Erased = true
	evs := []*eventsv1.CustomerUpdated{
		update("ev-1", "cu-1", 1, "Asia/Shanghai", typesv1.Channel_CHANNEL_SMS),
		update("ev-2", "cu-2", 1, "Asia/Shanghai"),
		update("ev-3", "cu-1", 3, "Asia/Urumqi"),
		update("ev-4", "cu-1", 2, "Asia/Chongqing", typesv1.Channel_CHANNEL_EMAIL), // older than version 3: changes nothing
		update("ev-5", "cu-gone", 1, "Asia/Shanghai", typesv1.Channel_CHANNEL_SMS),
		erase,
	}
	for _, ev := range evs {
		publishOn(t, b, stream.SubjectCustomerUpdated, ev.EventId, ev)
	}
	cons, err := js.CreateOrUpdateConsumer(ctx, stream.EventsStream, jetstream.ConsumerConfig{Durable: "t-updates",
		FilterSubject: stream.SubjectCustomerUpdated, AckPolicy: jetstream.AckExplicitPolicy})
	require.NoError(t, err)
	fetched, err := cons.Fetch(len(evs), jetstream.FetchMaxWait(5*time.Second))
	require.NoError(t, err)
	var msgs []jetstream.Msg
	for m := range fetched.Messages() {
		msgs = append(msgs, m)
	}
	require.Len(t, msgs, len(evs))
	updated.ProcessBatch(ctx, msgs)

	keys := []store.CustomerKey{{Tenant: "default", Customer: "cu-1"}, {Tenant: "default", Customer: "cu-2"}, {Tenant: "default", Customer: "cu-gone"}}
	cs, err := store.Customers(ctx, pool, keys)
	require.NoError(t, err)
	one := cs[keys[0]]
	require.Equal(t, int64(3), one.Version)
	require.Equal(t, "Asia/Urumqi", one.Prefs.TimeZone)
	require.Equal(t, []int32{int32(typesv1.Channel_CHANNEL_SMS)}, one.OptedOut, "version 1's opt-out kept, version 2's never applied")
	require.Equal(t, int64(1), cs[keys[1]].Version)
	require.Equal(t, "Asia/Shanghai", cs[keys[1]].Prefs.TimeZone)
	gone := cs[keys[2]]
	require.Equal(t, int64(2), gone.Version)
	require.Len(t, gone.Effective().OptedOut, len(enumChannels()), "an erased customer is contacted on no channel")
	sources := map[string]string{}
	rows, err := pool.Query(ctx, `SELECT customer_id || '/' || channel, source FROM opt_outs`)
	require.NoError(t, err)
	for rows.Next() {
		var k, s string
		require.NoError(t, rows.Scan(&k, &s))
		sources[k] = s
	}
	require.NoError(t, rows.Err())
	require.Equal(t, "intake: CustomerUpdated, archive version 1", sources["cu-1/CHANNEL_SMS"])
	require.NotContains(t, sources, "cu-1/CHANNEL_EMAIL")
	require.Equal(t, "intake: CustomerUpdated, archive version 1", sources["cu-gone/CHANNEL_SMS"], "the update before the erasure first")
	require.Equal(t, "intake: erased, archive version 2", sources["cu-gone/CHANNEL_PHONE"])
	var handled int
	require.NoError(t, pool.QueryRow(ctx, `SELECT count(*) FROM inbox WHERE consumer = $1`, consumer.DurableCustomerUpdated).Scan(&handled))
	require.Equal(t, 1, handled, "only the erasure keeps an inbox entry")
}

// CustomerUpdated keeps no inbox entries but for erasures (Idempotent,
// inbox.Claim): the same updates delivered again, in two batches at once,
// alone, and an older version after a newer one, change no row (not even
// its version: xmin), record no opt-out, publish nothing and write no
// inbox entry.
func TestCustomerUpdatedAgainChangesNothing(t *testing.T) {
	log := servicetest.Logger()
	pool := servicetest.Pool(t, "scheduler", migrations.FS)
	js := servicetest.JetStream(t)
	ctx := context.Background()
	a := &app.App{DB: pool, Now: time.Now}
	updated := consumer.New(a)[1]
	require.Equal(t, consumer.DurableCustomerUpdated, updated.Durable)
	require.True(t, updated.Idempotent)
	updated.Service, updated.Pool, updated.JS, updated.Log, updated.Batch = "scheduler", pool, js, log, 20
	b := bundle{ctx: ctx, pool: pool, js: js}
	at := timestamppb.New(time.Date(2026, 3, 1, 9, 0, 0, 0, time.UTC))
	update := func(id, customer string, version int64, zone string, out ...typesv1.Channel) *eventsv1.CustomerUpdated {
		return &eventsv1.CustomerUpdated{EventId: id, TenantId: "default", Version: version, UpdatedAt: at,
			Customer: &typesv1.Customer{Id: customer, Tier: zone, Preferences: &typesv1.ContactPreferences{TimeZone: zone, OptedOut: out}}}
	}
	erase := update("ev-4", "cu-gone", 2, "")
	erase.Erased = true
	evs := []*eventsv1.CustomerUpdated{
		update("ev-1", "cu-1", 1, "Asia/Shanghai", typesv1.Channel_CHANNEL_SMS),
		update("ev-2", "cu-1", 2, "Asia/Urumqi"),
		update("ev-3", "cu-gone", 1, "Asia/Shanghai", typesv1.Channel_CHANNEL_SMS),
		erase,
	}
	for _, ev := range evs {
		publishOn(t, b, stream.SubjectCustomerUpdated, ev.EventId, ev)
	}
	cons, err := js.CreateOrUpdateConsumer(ctx, stream.EventsStream, jetstream.ConsumerConfig{Durable: "t-updates-again",
		FilterSubject: stream.SubjectCustomerUpdated, AckPolicy: jetstream.AckExplicitPolicy})
	require.NoError(t, err)
	fetched, err := cons.Fetch(len(evs), jetstream.FetchMaxWait(5*time.Second))
	require.NoError(t, err)
	var msgs []jetstream.Msg
	for m := range fetched.Messages() {
		msgs = append(msgs, m)
	}
	require.Len(t, msgs, len(evs))
	updated.ProcessBatch(ctx, msgs)

	state := func() string {
		var s string
		require.NoError(t, pool.QueryRow(ctx, `SELECT concat_ws(E'\n',
  (SELECT string_agg(concat_ws(' ', customer_id, version, prefs, opted_out, tier, updated_at, xmin), E'\n' ORDER BY customer_id) FROM customers),
  (SELECT string_agg(concat_ws(' ', customer_id, channel, source, opted_out_at, xmin), E'\n' ORDER BY customer_id, channel) FROM opt_outs),
  (SELECT string_agg(concat_ws(' ', id, subject), E'\n' ORDER BY id) FROM outbox),
  (SELECT string_agg(concat_ws(' ', consumer, event_id), E'\n' ORDER BY consumer, event_id) FROM inbox))`).Scan(&s))
		return s
	}
	first := state()
	require.Contains(t, first, "cu-1 2 ")
	require.Equal(t, 1, strings.Count(first, consumer.DurableCustomerUpdated), "only the erasure keeps an inbox entry")

	var wg sync.WaitGroup
	for range 2 {
		wg.Go(func() { updated.ProcessBatch(ctx, msgs) })
	}
	wg.Wait()
	for _, m := range msgs {
		updated.Process(ctx, m) // the older version 1 of cu-1 after version 2
	}
	require.Equal(t, first, state())
}

// enumChannels are the channels an erased customer opts out of.
func enumChannels() []typesv1.Channel { return enum.Values[typesv1.Channel]() }

// A customer with several services in one batch gets, set-wise, what one
// message per batch gives it: the same visits in the same states and the
// same events in the same order (an installation's pending visit stopped
// by the later repair, an instant call fired, the next ones suppressed by
// the phone cap the first one's contact fills, a once-per-customer policy
// planned once, the same service again planning nothing), and every
// VisitDue comes after its visit's VisitPlanned. The batch inserts its
// visits in one statement in their final states: no visit is inserted alone
// nor updated after.
func TestRepeatedCustomersBatchActsAsOneByOne(t *testing.T) {
	log := servicetest.Logger()
	pool := servicetest.Pool(t, "scheduler", migrations.FS)
	js := servicetest.JetStream(t)
	ctx := context.Background()
	a := &app.App{DB: pool, Now: time.Now, DueNow: func() {}}
	require.NoError(t, a.EnsureBuiltins(ctx))
	storePolicies(t, ctx, pool,
		policy.Policy{ID: "p-instant", Trigger: policy.Trigger{ServiceTypes: []string{"repair"}},
			Steps: []policy.Step{{Channel: policy.ChannelPhone, SampleRate: 1}}},
		policy.Policy{ID: "p-once", Trigger: policy.Trigger{ServiceTypes: []string{"repair"}, OncePerCustomer: true},
			Steps: []policy.Step{{Channel: policy.ChannelSMS, SampleRate: 1, Offset: policy.Duration(24 * time.Hour)}}},
		policy.Policy{ID: "p-install", Trigger: policy.Trigger{ServiceTypes: []string{"installation"}}, Stop: policy.Stop{ServiceTypes: []string{"repair"}},
			Steps: []policy.Step{{Channel: policy.ChannelSMS, SampleRate: 1, Offset: policy.Duration(72 * time.Hour)}}})
	_, err := a.SetContactPolicy(ctx, "default", contact.Rules{Caps: []contact.Cap{{Channel: policy.ChannelPhone, Max: 1, Per: policy.Duration(72 * time.Hour)}}}, "")
	require.NoError(t, err)
	_, err = pool.Exec(ctx, `CREATE TABLE visit_writes (op text NOT NULL);
CREATE FUNCTION note_visit_write() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN INSERT INTO visit_writes VALUES (TG_OP || ' ' || TG_LEVEL); RETURN NULL; END $$;
CREATE TRIGGER note_visit_insert AFTER INSERT ON planned_visits FOR EACH STATEMENT EXECUTE FUNCTION note_visit_write();
CREATE TRIGGER note_visit_update AFTER UPDATE ON planned_visits FOR EACH ROW EXECUTE FUNCTION note_visit_write()`)
	require.NoError(t, err)

	planning := consumer.New(a)[0]
	planning.Service, planning.Pool, planning.JS, planning.Log = "scheduler", pool, js, log
	b := bundle{ctx: ctx, pool: pool, js: js}
	done := time.Now().Add(-time.Hour)
	// run's events: customer run-x has an installation, then three repairs
	// (one of them sent twice); run-y one repair.
	events := func(run string) []*eventsv1.ServiceCompleted {
		ev := func(n int, service, typ, customer string) *eventsv1.ServiceCompleted {
			return &eventsv1.ServiceCompleted{EventId: fmt.Sprintf("%s-ev-%d", run, n), TenantId: "default", ServiceId: run + "-" + service,
				ServiceType: typ, OrgUnit: "shanghai", CompletedAt: timestamppb.New(done.Add(time.Duration(n) * time.Minute)),
				Customer: &typesv1.Customer{Id: run + "-" + customer, HasPhone: true, Preferences: &typesv1.ContactPreferences{TimeZone: "Asia/Shanghai"}}}
		}
		return []*eventsv1.ServiceCompleted{
			ev(1, "s-1", "installation", "x"), ev(2, "s-2", "repair", "x"), ev(3, "s-3", "repair", "y"),
			ev(4, "s-4", "repair", "x"), ev(5, "s-4", "repair", "x"), ev(6, "s-5", "repair", "x"),
		}
	}
	fetch := func(durable string, evs []*eventsv1.ServiceCompleted) []jetstream.Msg {
		for _, ev := range evs {
			publish(t, b, ev.EventId, ev)
		}
		cons, err := js.CreateOrUpdateConsumer(ctx, stream.EventsStream, jetstream.ConsumerConfig{Durable: durable,
			FilterSubject: stream.SubjectServiceCompleted, AckPolicy: jetstream.AckExplicitPolicy})
		require.NoError(t, err)
		var msgs []jetstream.Msg
		for len(msgs) < len(evs) {
			fetched, err := cons.Fetch(100, jetstream.FetchMaxWait(time.Second))
			require.NoError(t, err)
			for m := range fetched.Messages() {
				var ev eventsv1.ServiceCompleted
				require.NoError(t, proto.Unmarshal(m.Data(), &ev))
				if strings.HasPrefix(ev.EventId, durable+"-") {
					msgs = append(msgs, m)
				}
			}
		}
		return msgs
	}
	writes := func() map[string]int {
		rows, err := pool.Query(ctx, `SELECT op, count(*) FROM visit_writes GROUP BY op`)
		require.NoError(t, err)
		out := map[string]int{}
		for rows.Next() {
			var op string
			var n int
			require.NoError(t, rows.Scan(&op, &n))
			out[op] = n
		}
		require.NoError(t, rows.Err())
		_, err = pool.Exec(ctx, `DELETE FROM visit_writes`)
		require.NoError(t, err)
		return out
	}

	// One message per batch: each alone.
	for _, m := range fetch("one", events("one")) {
		planning.ProcessBatch(ctx, []jetstream.Msg{m})
	}
	alone := writes()
	require.Greater(t, alone["INSERT STATEMENT"], 1, "alone, a visit is inserted per message")
	require.Positive(t, alone["UPDATE ROW"], "alone, the installation's visit is stored, then cancelled")
	// All in one batch.
	planning.ProcessBatch(ctx, fetch("all", events("all")))
	require.Equal(t, map[string]int{"INSERT STATEMENT": 1}, writes(), "the batch's visits in one insert, in their final states")

	one, all := history(t, b, "one"), history(t, b, "all")
	require.NotEmpty(t, one.visits)
	require.Equal(t, one.visits, all.visits, "the same visits in the same states")
	require.Equal(t, one.events, all.events, "the same events in the same order, customer by customer")
	require.Equal(t, []string{
		"VisitPlanned s-1/p-install", "VisitCancelled s-1/p-install", "VisitPlanned s-2/p-instant", "VisitDue s-2/p-instant",
		"VisitPlanned s-2/p-once", "VisitPlanned s-4/p-instant", "VisitCancelled s-4/p-instant", "VisitPlanned s-5/p-instant",
		"VisitCancelled s-5/p-instant",
	}, all.events["x"])
	require.Equal(t, []string{"s-1/p-install cancelled", "s-2/p-instant due", "s-2/p-once planned", "s-4/p-instant suppressed",
		"s-5/p-instant suppressed"}, all.visits["x"], "the later calls suppressed by the cap the first one filled")
	for _, h := range []runHistory{one, all} {
		for id, seqs := range h.seqs {
			if due, ok := seqs[stream.SubjectVisitDue]; ok {
				require.Less(t, seqs[stream.SubjectVisitPlanned], due, "visit %s: VisitPlanned before VisitDue", id)
			}
		}
	}
	require.Equal(t, 12, appliedEvents(t, pool))
}

// runHistory is what a run left, its prefix taken off: each customer's
// visits ("service/policy status", by service and policy) and events in the
// order of the outbox ("subject service/policy"), and each visit's events'
// outbox sequence numbers by subject.
type runHistory struct {
	visits map[string][]string
	events map[string][]string
	seqs   map[string]map[string]int64
}

func history(t *testing.T, b bundle, run string) runHistory {
	t.Helper()
	h := runHistory{visits: map[string][]string{}, events: map[string][]string{}, seqs: map[string]map[string]int64{}}
	type key struct{ customer, name string }
	byID := map[string]key{}
	rows, err := b.pool.Query(b.ctx, `SELECT id, customer_id, service_id, policy_id, status FROM planned_visits
WHERE customer_id LIKE $1 || '-%' ORDER BY service_id, policy_id, step, occurrence`, run)
	require.NoError(t, err)
	for rows.Next() {
		var id, customer, service, pol, status string
		require.NoError(t, rows.Scan(&id, &customer, &service, &pol, &status))
		k := key{strings.TrimPrefix(customer, run+"-"), strings.TrimPrefix(service, run+"-") + "/" + pol}
		byID[id] = k
		h.visits[k.customer] = append(h.visits[k.customer], k.name+" "+status)
	}
	require.NoError(t, rows.Err())
	rows, err = b.pool.Query(b.ctx, `SELECT seq, subject, payload FROM outbox WHERE subject = ANY($1) ORDER BY seq`,
		[]string{stream.SubjectVisitPlanned, stream.SubjectVisitDue, stream.SubjectVisitCancelled})
	require.NoError(t, err)
	for rows.Next() {
		var seq int64
		var subject string
		var payload []byte
		require.NoError(t, rows.Scan(&seq, &subject, &payload))
		var ev interface{ GetVisitId() string }
		switch subject {
		case stream.SubjectVisitPlanned:
			ev = &eventsv1.VisitPlanned{}
		case stream.SubjectVisitDue:
			ev = &eventsv1.VisitDue{}
		default:
			ev = &eventsv1.VisitCancelled{}
		}
		require.NoError(t, proto.Unmarshal(payload, ev.(proto.Message)))
		k, ok := byID[ev.GetVisitId()]
		if !ok {
			continue // another run's
		}
		name := string((ev.(proto.Message)).ProtoReflect().Descriptor().Name())
		h.events[k.customer] = append(h.events[k.customer], name+" "+k.name)
		if h.seqs[ev.GetVisitId()] == nil {
			h.seqs[ev.GetVisitId()] = map[string]int64{}
		}
		if _, seen := h.seqs[ev.GetVisitId()][subject]; !seen {
			h.seqs[ev.GetVisitId()][subject] = seq
		}
	}
	require.NoError(t, rows.Err())
	return h
}

// storePolicies stores ps as version 1 of active policies of the tenant
// "default", each named by its id.
func storePolicies(t *testing.T, ctx context.Context, pool *pgxpool.Pool, ps ...policy.Policy) {
	t.Helper()
	for _, p := range ps {
		p.Tenant, p.Name, p.Version, p.Active, p.CreatedAt = "default", p.ID, 1, true, time.Now()
		require.NoError(t, store.InsertPolicy(ctx, pool, p))
	}
}
