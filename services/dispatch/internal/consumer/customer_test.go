package consumer_test

import (
	"context"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	eventsv1 "github.com/huifang/huifang/proto/huifang/events/v1"
	typesv1 "github.com/huifang/huifang/proto/huifang/types/v1"

	"github.com/huifang/huifang/pkg/servicetest"
	"github.com/huifang/huifang/pkg/stream"
	"github.com/huifang/huifang/services/dispatch/internal/app"
	"github.com/huifang/huifang/services/dispatch/internal/consumer"
	"github.com/huifang/huifang/services/dispatch/internal/store"
	"github.com/huifang/huifang/services/dispatch/internal/task"
	"github.com/huifang/huifang/services/dispatch/internal/wire"
)

// customerTest runs the VisitDue and CustomerUpdated consumers on one
// database and JetStream, with agents a-1, a-2 and a-3.
type customerTest struct {
	bundle
	events int // CustomerUpdated events published so far
}

func newCustomerTest(t *testing.T) *customerTest {
	t.Helper()
	b := setup(t)
	b.app.Rules = task.Rules{Tiers: []string{"key"}}
	b.app.Lease = time.Hour
	b.app.Routing = store.Routing{OwnerWait: 30 * time.Minute, BackupWait: 30 * time.Minute, SkillWait: time.Hour}
	b.run(t)
	cons := filled(b.pool, b.js, consumer.CustomerUpdated(b.app))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- cons.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		require.NoError(t, <-done)
	})
	ct := &customerTest{bundle: b}
	for _, id := range []string{"a-1", "a-2", "a-3"} {
		_, err := b.app.UpsertAgent(context.Background(), task.Agent{Tenant: "default", ID: id, Name: id})
		require.NoError(t, err)
	}
	return ct
}

// customer is c-1 as intake keeps it: known to a-1 (primary) and a-2 (seed 002).
func customer() *typesv1.Customer {
	return &typesv1.Customer{Id: "c-1", NameMasked: "王芳", PhoneMasked: "13800000000", HasPhone: true, Tier: "regular", OwnerIds: []string{"a-1", "a-2"},
		Preferences: &typesv1.ContactPreferences{Language: "zh-CN"}}
}

// due publishes a VisitDue for c-1 on channel and waits for its task.
func (ct *customerTest) due(t *testing.T, visit string, channel typesv1.Channel) {
	t.Helper()
	data, err := proto.Marshal(&eventsv1.VisitDue{EventId: "ev-" + visit, TenantId: "default", VisitId: visit, Channel: channel,
		DueAt: timestamppb.New(t0), Customer: customer()})
	require.NoError(t, err)
	ct.publish(t, "ev-"+visit, data)
	require.Eventually(t, func() bool { return ct.count(t, `SELECT count(*) FROM tasks WHERE visit_id = $1`, visit) == 1 },
		10*time.Second, 20*time.Millisecond)
}

// updated publishes CustomerUpdated and waits until it was consumed.
func (ct *customerTest) updated(t *testing.T, c *typesv1.Customer, version int64) {
	t.Helper()
	ct.events++
	id := "cu-" + strconv.Itoa(ct.events)
	data, err := proto.Marshal(&eventsv1.CustomerUpdated{EventId: id, TenantId: "default", Customer: c, Version: version})
	require.NoError(t, err)
	_, err = ct.js.PublishMsg(context.Background(), &nats.Msg{Subject: stream.SubjectCustomerUpdated, Data: data,
		Header: nats.Header{jetstream.MsgIDHeader: {id}}})
	require.NoError(t, err)
	// Handled or refused: the consumer keeps no inbox entries, so once its
	// durable acknowledged everything the stream holds.
	acked := servicetest.Acknowledged(t, ct.js, stream.Of(stream.SubjectCustomerUpdated), consumer.DurableCustomer)
	require.Eventually(t, func() bool { return acked(context.Background()) }, 60*time.Second, 20*time.Millisecond)
}

// dueThree makes c-1's tasks v-1 and v-2 (phone) and v-3 (on third), and
// a-1 claims a phone task.
func (ct *customerTest) dueThree(t *testing.T, third typesv1.Channel) {
	t.Helper()
	ct.due(t, "v-1", typesv1.Channel_CHANNEL_PHONE)
	ct.due(t, "v-2", typesv1.Channel_CHANNEL_PHONE)
	ct.due(t, "v-3", third)
	require.NotEmpty(t, ct.claim(t, "a-1"), "one phone task is being worked")
}

func (ct *customerTest) claim(t *testing.T, agent string) string {
	t.Helper()
	got, found, err := ct.app.Claim(context.Background(), "default", agent, 0)
	require.NoError(t, err)
	if !found {
		return ""
	}
	return got.VisitID
}

func (ct *customerTest) task(t *testing.T, visit string) task.Task {
	t.Helper()
	var id string
	require.NoError(t, ct.pool.QueryRow(context.Background(), `SELECT id FROM tasks WHERE visit_id = $1`, visit).Scan(&id))
	x, err := ct.app.Task(context.Background(), "default", id)
	require.NoError(t, err)
	return x
}

// TestCustomerUpdatedReroutes: intake hands c-1 to a new primary owner
// (seed 002: the first of the staff who know the customer) and makes it a
// key customer; the open task follows: the new owner gets it, the old one
// no longer does, and the snapshot (tier, language, contact) is the new one.
func TestCustomerUpdatedReroutes(t *testing.T) {
	ct := newCustomerTest(t)
	ct.due(t, "v-1", typesv1.Channel_CHANNEL_PHONE)
	require.Equal(t, "a-1", ct.task(t, "v-1").PrimaryOwner)

	c := customer()
	c.OwnerIds, c.Tier, c.PhoneMasked = []string{"a-3", "a-1"}, "key", "13900000000"
	c.Preferences = &typesv1.ContactPreferences{Language: "en", TimeZone: "Asia/Shanghai",
		Windows: []*typesv1.ContactWindow{{StartMinute: 960, EndMinute: 1080}}} // 16:00-18:00 there: now (17:00) is inside
	ct.updated(t, c, 2)

	got := ct.task(t, "v-1")
	require.Equal(t, "a-3", got.PrimaryOwner)
	require.Equal(t, "a-1", got.BackupOwner)
	require.Equal(t, 0, got.TierRank, "key customers first")
	require.Equal(t, "en", got.Language)
	require.Equal(t, "13900000000", got.Customer.PhoneMasked)
	require.Equal(t, "Asia/Shanghai", got.Customer.Preferences.TimeZone, "retries use the new window and zone")
	require.True(t, got.AvailableAt.Equal(t0), "inside the new window: the owner stages do not restart")

	require.Equal(t, "", ct.claim(t, "a-1"), "the old primary owner waits behind the new one")
	require.Equal(t, "", ct.claim(t, "a-2"), "the old backup owner is no owner now")
	require.Equal(t, "v-1", ct.claim(t, "a-3"), "the new primary owner gets the task")

	// A task created later starts from the newest snapshot, not the
	// scheduler's older one.
	ct.due(t, "v-2", typesv1.Channel_CHANNEL_WEB)
	require.Equal(t, "a-3", ct.task(t, "v-2").PrimaryOwner)
	require.Equal(t, "13900000000", ct.task(t, "v-2").Customer.PhoneMasked)
}

// TestCustomerUpdatedSameSnapshotNotSaved: a CustomerUpdated whose
// snapshot the open task carries already (the VisitDue brought the same
// customer) keeps the newer version but rewrites no task row, in the
// consumer's batch and alone; nor does one that changes the snapshot but
// nothing routing reads (a third owner), which the task shows all the same.
func TestCustomerUpdatedSameSnapshotNotSaved(t *testing.T) {
	ct := newCustomerTest(t)
	ct.due(t, "v-1", typesv1.Channel_CHANNEL_PHONE)
	row := func() (xmin int64) {
		t.Helper()
		require.NoError(t, ct.pool.QueryRow(context.Background(), `SELECT xmin::text::bigint FROM tasks WHERE visit_id = 'v-1'`).Scan(&xmin))
		return xmin
	}
	was := row()

	ct.updated(t, customer(), 2)
	require.Equal(t, was, row(), "the same snapshot: the task is not rewritten")
	require.Equal(t, 1, ct.count(t, `SELECT count(*) FROM customer_versions WHERE customer_id = 'c-1' AND version = 2`))

	res, err := ct.app.UpdateCustomer(context.Background(), app.CustomerUpdate{Tenant: "default", Customer: wire.Customer(customer()), Version: 3})
	require.NoError(t, err)
	require.True(t, res.Newer)
	require.Zero(t, res.Refreshed, "alone too")
	require.Equal(t, was, row())

	c := customer()
	c.OwnerIds = append(c.OwnerIds, "a-3")
	ct.updated(t, c, 4)
	require.Equal(t, was, row(), "a third owner changes nothing routing reads: the task is not rewritten")
	require.Equal(t, []string{"a-1", "a-2", "a-3"}, ct.task(t, "v-1").Customer.OwnerIDs, "yet it shows the new snapshot")
}

// tupleCounts are pg_stat_user_tables' counts of rows inserted, updated and
// updated HOT (the new version in the same page, no index entry written)
// in the tasks table of the test's database.
type tupleCounts struct{ inserted, updated, hot int64 }

// tasksCounts waits until the tasks table's counts show inserted rows and
// updated updates, and returns them. PostgreSQL 15 counts in each backend
// and publishes the counts when a transaction ends at least a second after
// the last time, or after ten idle seconds: hence the wait. Each read is a
// transaction of its own, so it sees the counts published by then.
func (ct *customerTest) tasksCounts(t *testing.T, inserted, updated int64) tupleCounts {
	t.Helper()
	var c tupleCounts
	require.Eventually(t, func() bool {
		require.NoError(t, ct.pool.QueryRow(context.Background(), `SELECT n_tup_ins, n_tup_upd, n_tup_hot_upd FROM pg_stat_user_tables
WHERE schemaname = current_schema() AND relname = 'tasks'`).Scan(&c.inserted, &c.updated, &c.hot))
		return c.inserted == inserted && c.updated == updated
	}, 60*time.Second, 50*time.Millisecond, "inserted %d and updated %d", inserted, updated)
	return c
}

// TestCustomerUpdatedRewriteIsHOT: a CustomerUpdated that hands c-1 to new
// owners rewrites its active tasks (open, claimed, automatic) as HOT
// updates: no column an index of tasks reads changes (the customer is
// indexed by customer_id, finished tasks by finished_at, not the snapshot
// or updated_at), so n_tup_hot_upd rises by every task rewritten, and the
// tasks are still found by their customer. One that makes it a key
// customer moves the tasks up the queue (tier_rank, in tasks_queue): those
// rewrites still write every index.
func TestCustomerUpdatedRewriteIsHOT(t *testing.T) {
	ct := newCustomerTest(t)
	ct.dueThree(t, typesv1.Channel_CHANNEL_SMS)
	before := ct.tasksCounts(t, 3, 1) // the tasks, the claim

	ct.clock.Advance(time.Hour) // a new updated_at
	c := customer()
	c.OwnerIds = []string{"a-3", "a-1"}
	ct.updated(t, c, 2)
	owners := ct.tasksCounts(t, 3, before.updated+3)
	require.Equal(t, before.hot+3, owners.hot, "every rewrite HOT")
	require.Equal(t, 3, ct.count(t, `SELECT count(*) FROM tasks WHERE primary_owner = 'a-3' AND updated_at = $1`, t0.Add(time.Hour)))

	ctx := context.Background()
	k := store.CustomerKey{Tenant: "default", ID: "c-1"}
	var active map[store.CustomerKey][]task.Task
	require.NoError(t, pgx.BeginFunc(ctx, ct.pool, func(tx pgx.Tx) (err error) {
		active, err = store.LockActiveTasksOfCustomers(ctx, tx, []store.CustomerKey{k})
		return err
	}))
	require.Len(t, active[k], 3, "the customer's active tasks found by customer_id")
	for _, x := range active[k] {
		require.Equal(t, "a-3", x.PrimaryOwner, x.VisitID)
	}
	require.Equal(t, 3, ct.count(t, `SELECT count(*) FROM (`+store.CustomerRows()["tasks"]+`) x`, "default", "c-1"), "the export's")

	c.Tier = "key"
	ct.updated(t, c, 3)
	tier := ct.tasksCounts(t, 3, owners.updated+3)
	require.Equal(t, owners.hot, tier.hot, "a new tier rank: an indexed column changed")
	require.Equal(t, 0, ct.task(t, "v-2").TierRank)
}

// TestCustomerUpdatedNewWindow: the customer now wants calls only
// 10:00-11:30 Shanghai time (seed 002); at 17:00 there the open task waits
// for the next morning's window.
func TestCustomerUpdatedNewWindow(t *testing.T) {
	ct := newCustomerTest(t)
	ct.due(t, "v-1", typesv1.Channel_CHANNEL_PHONE)
	c := customer()
	c.Preferences = &typesv1.ContactPreferences{TimeZone: "Asia/Shanghai", Windows: []*typesv1.ContactWindow{{StartMinute: 600, EndMinute: 690}}}
	ct.updated(t, c, 2)
	require.True(t, ct.task(t, "v-1").AvailableAt.Equal(time.Date(2025, 3, 11, 2, 0, 0, 0, time.UTC)))
	require.Equal(t, "", ct.claim(t, "a-1"), "not outside the customer's window")
}

// TestCustomerUpdatedOlderVersionIgnored: versions only go up in intake; a
// version that arrives after a newer one (or the same one again under
// another event id) changes nothing.
func TestCustomerUpdatedOlderVersionIgnored(t *testing.T) {
	ct := newCustomerTest(t)
	ct.due(t, "v-1", typesv1.Channel_CHANNEL_PHONE)

	newest := customer()
	newest.OwnerIds = []string{"a-3", "a-1"}
	ct.updated(t, newest, 5)
	late := customer()
	late.OwnerIds, late.PhoneMasked = []string{"a-2", "a-1"}, "13700000000"
	ct.updated(t, late, 4)
	ct.updated(t, late, 5)

	got := ct.task(t, "v-1")
	require.Equal(t, "a-3", got.PrimaryOwner)
	require.Equal(t, "13800000000", got.Customer.PhoneMasked)
	var version int64
	require.NoError(t, ct.pool.QueryRow(context.Background(), `SELECT version FROM customer_versions WHERE customer_id = 'c-1'`).Scan(&version))
	require.EqualValues(t, 5, version)
	require.Equal(t, "v-1", ct.claim(t, "a-3"))
	require.Zero(t, ct.count(t, `SELECT count(*) FROM rejected_events`))
}

// TestCustomerUpdatedOptOutWithdraws: the customer opted out of phone
// calls (intake's preferences): the open and claimed phone tasks are
// cancelled as after "asked to stop", the web task stays (with the new
// snapshot), and dispatch does not announce the opt-out again.
func TestCustomerUpdatedOptOutWithdraws(t *testing.T) {
	ct := newCustomerTest(t)
	ct.dueThree(t, typesv1.Channel_CHANNEL_WEB)

	c := customer()
	c.Preferences.OptedOut = []typesv1.Channel{typesv1.Channel_CHANNEL_PHONE}
	ct.updated(t, c, 2)

	for _, v := range []string{"v-1", "v-2"} {
		got := ct.task(t, v)
		require.Equal(t, task.StatusCancelled, got.Status, v)
		require.Empty(t, got.AgentID, "%s: its agent loses it", v)
	}
	web := ct.task(t, "v-3")
	require.Equal(t, task.StatusOpen, web.Status)
	require.Equal(t, []typesv1.Channel{typesv1.Channel_CHANNEL_PHONE}, web.Customer.Preferences.OptedOut)
	require.Zero(t, ct.count(t, `SELECT count(*) FROM outbox WHERE subject = $1`, stream.SubjectContactOptedOut))
	require.Equal(t, "v-3", ct.claim(t, "a-1"))
}

// TestCustomerUpdatedMalformed: no customer id, or no version, is
// dead-lettered naming the field.
func TestCustomerUpdatedMalformed(t *testing.T) {
	ct := newCustomerTest(t)
	ct.updated(t, &typesv1.Customer{NameMasked: "无名"}, 1)
	ct.updated(t, customer(), 0)
	rows, err := ct.pool.Query(context.Background(), `SELECT field FROM rejected_events ORDER BY field`)
	require.NoError(t, err)
	var got []string
	for rows.Next() {
		var f string
		require.NoError(t, rows.Scan(&f))
		got = append(got, f)
	}
	require.NoError(t, rows.Err())
	require.Equal(t, []string{"customer.id", "version"}, got)
	require.Zero(t, ct.count(t, `SELECT count(*) FROM customer_versions`))
}

// TestContactCalendar: the VisitDue carries the tenant's contact calendar
// (seed 002: calls 10:00-11:30, Shanghai time); the task is first offered
// in it, and after a CustomerUpdated (the customer moved to Berlin) it is
// placed again with the same calendar, kept with the task, in the new zone.
func TestContactCalendar(t *testing.T) {
	ct := newCustomerTest(t)
	data, err := proto.Marshal(&eventsv1.VisitDue{EventId: "ev-v-1", TenantId: "default", VisitId: "v-1", Channel: typesv1.Channel_CHANNEL_PHONE,
		DueAt: timestamppb.New(t0), Customer: customer(),
		ContactCalendar: &typesv1.ContactCalendar{TimeZone: "Asia/Shanghai", Windows: []*typesv1.ContactWindow{{StartMinute: 600, EndMinute: 690}}}})
	require.NoError(t, err)
	ct.publish(t, "ev-v-1", data)
	require.Eventually(t, func() bool { return ct.count(t, `SELECT count(*) FROM tasks WHERE visit_id = 'v-1'`) == 1 },
		10*time.Second, 20*time.Millisecond)
	require.True(t, ct.task(t, "v-1").AvailableAt.Equal(time.Date(2025, 3, 11, 2, 0, 0, 0, time.UTC)), "17:00 in Shanghai: the next morning")
	require.Equal(t, "", ct.claim(t, "a-1"), "not before the window")

	c := customer()
	c.Preferences.TimeZone = "Europe/Berlin"
	ct.updated(t, c, 2)
	require.True(t, ct.task(t, "v-1").AvailableAt.Equal(time.Date(2025, 3, 11, 9, 0, 0, 0, time.UTC)), "10:00 in Berlin, the customer's zone now")
}

// TestCustomerUpdatedAgainChangesNothing: the consumer keeps no inbox
// entries (Idempotent): the same updates, an erasure among them, delivered
// again in two batches at once and one by one (version 1 after the newer
// ones), change no task and no kept version (not even a row's version:
// xmin), publish nothing and write no inbox entry.
func TestCustomerUpdatedAgainChangesNothing(t *testing.T) {
	b := setup(t)
	b.app.Rules = task.Rules{Tiers: []string{"key"}}
	b.run(t)
	ct := &customerTest{bundle: b}
	ct.due(t, "v-1", typesv1.Channel_CHANNEL_PHONE)
	ct.due(t, "v-2", typesv1.Channel_CHANNEL_SMS)

	older := customer()
	older.PhoneMasked = "13700000000"
	optOut := customer()
	optOut.Preferences.OptedOut = []typesv1.Channel{typesv1.Channel_CHANNEL_SMS}
	key := customer()
	key.Tier, key.Preferences.Language = "key", "en"
	evs := []*eventsv1.CustomerUpdated{
		{EventId: "cu-2", TenantId: "default", Customer: optOut, Version: 2},
		{EventId: "cu-3", TenantId: "default", Customer: key, Version: 3},
		{EventId: "cu-1", TenantId: "default", Customer: older, Version: 1},
		{EventId: "cu-4", TenantId: "default", Customer: &typesv1.Customer{Id: "c-1"}, Version: 4, Erased: true},
	}
	for _, ev := range evs {
		data, err := proto.Marshal(ev)
		require.NoError(t, err)
		_, err = b.js.PublishMsg(context.Background(), &nats.Msg{Subject: stream.SubjectCustomerUpdated, Data: data,
			Header: nats.Header{jetstream.MsgIDHeader: {ev.GetEventId()}}})
		require.NoError(t, err)
	}
	c := filled(b.pool, b.js, consumer.CustomerUpdated(b.app))
	require.True(t, c.Idempotent)
	c.Batch = 20
	cons, err := b.js.CreateOrUpdateConsumer(context.Background(), stream.EventsStream, jetstream.ConsumerConfig{Durable: "t-again",
		FilterSubject: stream.SubjectCustomerUpdated, AckPolicy: jetstream.AckExplicitPolicy})
	require.NoError(t, err)
	fetched, err := cons.Fetch(len(evs), jetstream.FetchMaxWait(30*time.Second))
	require.NoError(t, err)
	var msgs []jetstream.Msg
	for m := range fetched.Messages() {
		msgs = append(msgs, m)
	}
	require.Len(t, msgs, len(evs))
	c.ProcessBatch(context.Background(), msgs)

	state := func() string {
		var s string
		require.NoError(t, b.pool.QueryRow(context.Background(), `SELECT concat_ws(E'\n',
  (SELECT string_agg(concat_ws(' ', visit_id, status, agent_id, customer, tier_rank, language, available_at, updated_at, xmin), E'\n' ORDER BY visit_id) FROM tasks),
  (SELECT string_agg(concat_ws(' ', customer_id, version, customer, updated_at, xmin), E'\n' ORDER BY customer_id) FROM customer_versions),
  (SELECT string_agg(concat_ws(' ', id, subject), E'\n' ORDER BY id) FROM outbox),
  (SELECT string_agg(concat_ws(' ', consumer, event_id), E'\n' ORDER BY consumer, event_id) FROM inbox WHERE consumer <> $1))`,
			consumer.Durable).Scan(&s))
		return s
	}
	first := state()
	require.Equal(t, task.StatusCancelled, ct.task(t, "v-2").Status, "the SMS task withdrawn")
	var version int64
	require.NoError(t, b.pool.QueryRow(context.Background(), `SELECT version FROM customer_versions WHERE customer_id = 'c-1'`).Scan(&version))
	require.EqualValues(t, 4, version)

	var wg sync.WaitGroup
	for range 2 {
		wg.Go(func() { c.ProcessBatch(context.Background(), msgs) })
	}
	wg.Wait()
	for _, m := range msgs {
		c.Process(context.Background(), m)
	}
	require.Equal(t, first, state())
	require.Zero(t, ct.count(t, `SELECT count(*) FROM inbox WHERE consumer = $1`, consumer.DurableCustomer), "no inbox entries")
	require.Zero(t, ct.count(t, `SELECT count(*) FROM rejected_events`))
}

// TestCustomerUpdatedOwnerAppendedWritesNoTask: a CustomerUpdated that
// appends an owner and renames c-1 (neither the owners routing reads nor
// the tier, language, preferences or opt-outs change) keeps the version
// and writes no task row, through the consumer and alone; yet every reader
// shows the active tasks with the new snapshot (the task, the listing, the
// claim, the export), while a finished task keeps the one it finished
// with. A task that finishes afterwards keeps the new one; a new primary
// owner still rewrites the active tasks, and the erasure leaves no masked
// contact in any task or kept version.
func TestCustomerUpdatedOwnerAppendedWritesNoTask(t *testing.T) {
	ct := newCustomerTest(t)
	ctx := context.Background()
	for _, v := range []string{"v-1", "v-2", "v-3"} {
		ct.due(t, v, typesv1.Channel_CHANNEL_PHONE)
	}
	ct.updated(t, customer(), 2) // a version kept
	finish := func(x task.Task) {
		t.Helper()
		_, err := ct.app.RecordAttempt(ctx, app.Attempt{Tenant: "default", TaskID: x.ID, AgentID: "a-1", LeaseToken: x.LeaseToken,
			Disposition: typesv1.Disposition_DISPOSITION_ANSWERED})
		require.NoError(t, err)
	}
	claim := func() task.Task {
		t.Helper()
		x, found, err := ct.app.Claim(ctx, "default", "a-1", 0)
		require.NoError(t, err)
		require.True(t, found)
		return x
	}
	done := claim()
	finish(done)
	held := claim()
	rows := func() string {
		t.Helper()
		var s string
		require.NoError(t, ct.pool.QueryRow(ctx, `SELECT string_agg(concat_ws(' ', id, status, xmin), ',' ORDER BY id) FROM tasks`).Scan(&s))
		return s
	}
	was := rows()

	c := customer()
	c.NameMasked, c.OwnerIds = "王*", append(c.OwnerIds, "a-3")
	ct.updated(t, c, 3)
	require.Equal(t, was, rows(), "no task row written")
	res, err := ct.app.UpdateCustomer(ctx, app.CustomerUpdate{Tenant: "default", Customer: wire.Customer(c), Version: 4})
	require.NoError(t, err)
	require.True(t, res.Newer)
	require.Zero(t, res.Refreshed, "alone neither")
	require.Equal(t, was, rows())

	newer := []string{"a-1", "a-2", "a-3"}
	shows := func(x task.Task, owners []string, name string) {
		t.Helper()
		require.Equal(t, owners, x.Customer.OwnerIDs, x.VisitID)
		require.Equal(t, name, x.Customer.NameMasked, x.VisitID)
	}
	shows(ct.task(t, held.VisitID), newer, "王*")
	shows(ct.task(t, done.VisitID), []string{"a-1", "a-2"}, "王芳")
	listed, err := ct.app.ListTasks(ctx, app.TaskQuery{Tenant: "default", Limit: 10})
	require.NoError(t, err)
	require.Len(t, listed, 3)
	for _, x := range listed {
		if x.ID == done.ID {
			shows(x, []string{"a-1", "a-2"}, "王芳")
		} else {
			shows(x, newer, "王*")
		}
	}
	exported := ct.count(t, `SELECT count(*) FROM (`+store.CustomerRows()["tasks"]+`) x WHERE customer->'ownerIds' ? 'a-3'`, "default", "c-1")
	require.Equal(t, 2, exported, "the export shows the active tasks as the readers do")
	last := claim()
	shows(last, newer, "王*")

	// Finished now, held keeps the snapshot it showed.
	finish(held)
	var owners []string
	require.NoError(t, ct.pool.QueryRow(ctx, `SELECT array(SELECT jsonb_array_elements_text(customer->'ownerIds')) FROM tasks WHERE id = $1`,
		held.ID).Scan(&owners))
	require.Equal(t, newer, owners)
	shows(ct.task(t, held.VisitID), newer, "王*")

	// A new primary owner rewrites the active task.
	was = rows()
	c.OwnerIds = []string{"a-3", "a-1"}
	ct.updated(t, c, 5)
	require.NotEqual(t, was, rows())
	require.Equal(t, "a-3", ct.task(t, last.VisitID).PrimaryOwner)
	require.Equal(t, "a-1", ct.task(t, held.VisitID).PrimaryOwner, "a finished task is left alone")

	// The erasure (here with masked contacts still in its snapshot) leaves
	// none anywhere.
	_, err = ct.app.UpdateCustomer(ctx, app.CustomerUpdate{Tenant: "default", Customer: wire.Customer(c), Version: 6, Erased: true})
	require.NoError(t, err)
	personal := `customer ?| array['nameMasked', 'phoneMasked', 'emailMasked', 'name', 'phone', 'email']`
	require.Zero(t, ct.count(t, `SELECT count(*) FROM tasks WHERE `+personal))
	require.Zero(t, ct.count(t, `SELECT count(*) FROM customer_versions WHERE `+personal))
	for _, x := range []task.Task{done, held, last} {
		got := ct.task(t, x.VisitID)
		require.Empty(t, got.Customer.NameMasked+got.Customer.PhoneMasked+got.Customer.EmailMasked, x.VisitID)
	}
}

// waitForLockWaiter waits until a backend of the test's database waits for
// a lock (a row's or an advisory one).
func (ct *customerTest) waitForLockWaiter(t *testing.T) {
	t.Helper()
	require.Eventually(t, func() bool {
		return ct.count(t, `SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'`) > 0
	}, 30*time.Second, 10*time.Millisecond, "a statement waits for the lock")
}

// An agent finishes a task while a CustomerUpdated that re-routes it holds
// its row: the agent's statement waits, then reads the rewritten row with
// the versions kept as they were when it began. The task keeps the snapshot
// the update wrote (tasks.customer_version says the row's is the newer), not
// the version kept before.
func TestCustomerUpdatedFinishWaitingForTheRewrite(t *testing.T) {
	ct := newCustomerTest(t)
	ctx := context.Background()
	ct.due(t, "v-1", typesv1.Channel_CHANNEL_PHONE)
	ct.updated(t, customer(), 2)
	held, found, err := ct.app.Claim(ctx, "default", "a-1", 0)
	require.NoError(t, err)
	require.True(t, found)

	c := customer()
	c.NameMasked, c.OwnerIds = "王*", []string{"a-3", "a-1"} // a new primary owner: the tasks are rewritten
	tx, err := ct.pool.Begin(ctx)
	require.NoError(t, err)
	defer func() { _ = tx.Rollback(ctx) }()
	res, err := ct.app.UpdateCustomerTx(ctx, tx, app.CustomerUpdate{Tenant: "default", Customer: wire.Customer(c), Version: 3})
	require.NoError(t, err)
	require.Equal(t, 1, res.Refreshed)

	finished := make(chan error, 1)
	go func() {
		_, err := ct.app.RecordAttempt(ctx, app.Attempt{Tenant: "default", TaskID: held.ID, AgentID: "a-1", LeaseToken: held.LeaseToken,
			Disposition: typesv1.Disposition_DISPOSITION_ANSWERED})
		finished <- err
	}()
	ct.waitForLockWaiter(t)
	require.NoError(t, tx.Commit(ctx))
	require.NoError(t, <-finished)

	var (
		status, name string
		version      int64
	)
	require.NoError(t, ct.pool.QueryRow(ctx, `SELECT status, customer->>'nameMasked', customer_version FROM tasks WHERE id = $1`, held.ID).
		Scan(&status, &name, &version))
	require.Equal(t, task.StatusDone, status)
	require.Equal(t, "王*", name, "the finished task keeps the snapshot of the update it waited for")
	require.EqualValues(t, 3, version)
	got := ct.task(t, "v-1")
	require.Equal(t, []string{"a-3", "a-1"}, got.Customer.OwnerIDs)
	require.Equal(t, "a-3", got.PrimaryOwner)
}

// A visit falls due while the customer's first CustomerUpdated is being
// applied: the task is made from the visit's snapshot (a-1 first), which
// the update does not see. The customer's next update, although it changes
// nothing routing reads over the version kept, finds the task routed apart
// from its snapshot and reroutes it.
func TestCustomerUpdatedTaskMadeDuringTheFirstUpdate(t *testing.T) {
	ct := newCustomerTest(t)
	ctx := context.Background()
	c := customer()
	c.OwnerIds = []string{"a-3", "a-2"}
	tx, err := ct.pool.Begin(ctx)
	require.NoError(t, err)
	defer func() { _ = tx.Rollback(ctx) }()
	res, err := ct.app.UpdateCustomerTx(ctx, tx, app.CustomerUpdate{Tenant: "default", Customer: wire.Customer(c), Version: 2})
	require.NoError(t, err)
	require.True(t, res.Newer)
	made, err := ct.app.CreateTask(ctx, task.Due{Tenant: "default", VisitID: "v-1", Channel: typesv1.Channel_CHANNEL_PHONE, DueAt: t0,
		Customer: wire.Customer(customer())})
	require.NoError(t, err)
	require.True(t, made)
	require.NoError(t, tx.Commit(ctx))
	got := ct.task(t, "v-1")
	require.Equal(t, "a-1", got.PrimaryOwner, "made from the visit's snapshot, unseen by the update")
	require.Equal(t, []string{"a-3", "a-2"}, got.Customer.OwnerIDs, "it shows the kept version all the same")

	c.OwnerIds = append(c.OwnerIds, "a-1") // appended: nothing routing reads over version 2
	ct.updated(t, c, 3)
	got = ct.task(t, "v-1")
	require.Equal(t, "a-3", got.PrimaryOwner, "rerouted by the next update")
	require.Equal(t, "a-2", got.BackupOwner)
	require.Equal(t, []string{"a-3", "a-2", "a-1"}, got.Customer.OwnerIDs)
	require.EqualValues(t, 3, got.CustomerVersion)

	var xmin string
	require.NoError(t, ct.pool.QueryRow(ctx, `SELECT xmin::text FROM tasks WHERE visit_id = 'v-1'`).Scan(&xmin))
	c.OwnerIds = append(c.OwnerIds, "a-4")
	ct.updated(t, c, 4)
	var again string
	require.NoError(t, ct.pool.QueryRow(ctx, `SELECT xmin::text FROM tasks WHERE visit_id = 'v-1'`).Scan(&again))
	require.Equal(t, xmin, again, "routed as its snapshot routes it, the task is not written again")
}
