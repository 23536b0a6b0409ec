package consumer_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/types/known/timestamppb"

	eventsv1 "github.com/huifang/huifang/proto/huifang/events/v1"
	typesv1 "github.com/huifang/huifang/proto/huifang/types/v1"

	"github.com/huifang/huifang/pkg/servicetest"
	"github.com/huifang/huifang/pkg/stream"
	"github.com/huifang/huifang/services/dispatch/internal/app"
	"github.com/huifang/huifang/services/dispatch/internal/consumer"
	"github.com/huifang/huifang/services/dispatch/internal/storetest"
	"github.com/huifang/huifang/services/dispatch/internal/task"
)

// runCustomerUpdates makes a phone and an SMS task for each of customers
// (c-0, c-1, …; every third one's phone task claimed, every fifth one's
// SMS task done), then publishes updates to an embedded NATS and runs the
// CustomerUpdated consumer (up to batch messages per transaction) until it
// has handled them all. It returns the run and what it wrote.
func runCustomerUpdates(tb testing.TB, customers, batch int, updates []*eventsv1.CustomerUpdated) (servicetest.Run, writes) {
	tb.Helper()
	ctx := context.Background()
	pool := storetest.Pool(tb)
	js := servicetest.JetStream(tb)
	a := &app.App{DB: pool, Now: storetest.NewClock(t0).Now, Log: servicetest.Logger(), Rules: task.Rules{Tiers: []string{"key"}}}
	pub := servicetest.NewPublisher(tb, js)
	for k := range customers {
		c := &typesv1.Customer{Id: fmt.Sprintf("c-%d", k), NameMasked: "王*", PhoneMasked: "138****0000", HasPhone: true, Tier: "regular"}
		for _, ch := range []typesv1.Channel{typesv1.Channel_CHANNEL_PHONE, typesv1.Channel_CHANNEL_SMS} {
			v := fmt.Sprintf("v-%d-%d", k, ch)
			pub.Proto(stream.SubjectVisitDue, "ev-"+v, &eventsv1.VisitDue{EventId: "ev-" + v, TenantId: "default", VisitId: v, Channel: ch,
				DueAt: timestamppb.New(t0), Deadline: timestamppb.New(t0.Add(72 * time.Hour)), Customer: c, ServiceType: "repair", OrgUnit: "north"})
		}
	}
	pub.Flush()
	due := filled(pool, js, consumer.VisitDue(a))
	due.Batch = 100
	servicetest.Measure(tb, pool, servicetest.Until{Query: `SELECT count(*) >= $1 FROM tasks`, Args: []any{2 * customers}}, due.Run)
	_, err := pool.Exec(ctx, `UPDATE tasks SET status = 'claimed', agent_id = 'a-1', lease_expires_at = $1
WHERE channel = 'CHANNEL_PHONE' AND customer_id ~ '^c-[0-9]*$' AND substr(customer_id, 3)::int % 3 = 0`, t0.Add(time.Hour))
	require.NoError(tb, err)
	_, err = pool.Exec(ctx, `UPDATE tasks SET status = 'done' WHERE channel = 'CHANNEL_SMS' AND substr(customer_id, 3)::int % 5 = 0`)
	require.NoError(tb, err)

	for i, u := range updates {
		pub.Proto(stream.SubjectCustomerUpdated, fmt.Sprintf("cu-%d", i), u)
	}
	pub.Flush()
	c := filled(pool, js, consumer.CustomerUpdated(a))
	c.Batch, c.BatchWait = batch, 5*time.Millisecond
	before := flushedWrites(tb, pool)
	// The consumer keeps no inbox entries: every update is handled once its
	// durable acknowledged everything the stream holds.
	r := servicetest.Measure(tb, pool, servicetest.Until{Query: `SELECT true`, Also: servicetest.Acknowledged(tb, js, c.Stream, c.Durable)}, c.Run)
	after := flushedWrites(tb, pool)
	return r, writes{updated: after.updated - before.updated, hot: after.hot - before.hot, wal: after.wal - before.wal}
}

// writes are the tasks table's updates and HOT updates (the new version in
// the same page, no index entry written), the rows inserted in every table
// of the schema and the WAL bytes of the whole cluster, counted from its
// start or over a run.
type writes struct{ updated, hot, inserted, wal int64 }

// flushedWrites closes pool's connections and waits until no other backend
// is connected to its database: a backend publishes its table counts as it
// exits (PostgreSQL 15 publishes them otherwise at most once a second, or
// after ten idle seconds). Then it reads the counts and the WAL position.
func flushedWrites(tb testing.TB, pool *pgxpool.Pool) writes {
	tb.Helper()
	ctx := context.Background()
	pool.Reset()
	require.Eventually(tb, func() bool {
		var others int
		require.NoError(tb, pool.QueryRow(ctx, `SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()`).Scan(&others))
		return others == 0
	}, time.Minute, 10*time.Millisecond, "the other connections closed")
	var w writes
	require.NoError(tb, pool.QueryRow(ctx, `SELECT n_tup_upd, n_tup_hot_upd,
  (SELECT sum(n_tup_ins)::bigint FROM pg_stat_user_tables WHERE schemaname = current_schema()), pg_current_wal_lsn() - '0/0'
FROM pg_stat_user_tables WHERE schemaname = current_schema() AND relname = 'tasks'`).Scan(&w.updated, &w.hot, &w.inserted, &w.wal))
	return w
}

// customerUpdates are n versions of each of customers, in a shuffled
// order (a late version comes after a newer one): version 2 of every
// fourth customer opts out of SMS, version 3 of every third makes it a key
// customer with owners; with erase, c-0's version n+1 erases it.
func customerUpdates(customers, n int, erase bool, r *rand.Rand) []*eventsv1.CustomerUpdated {
	var out []*eventsv1.CustomerUpdated
	for k := range customers {
		for v := 1; v <= n; v++ {
			c := &typesv1.Customer{Id: fmt.Sprintf("c-%d", k), NameMasked: fmt.Sprintf("王%d", v), PhoneMasked: "138****0000", HasPhone: true,
				Tier: "regular", Preferences: &typesv1.ContactPreferences{Language: "zh-CN"}}
			if v == 2 && k%4 == 0 {
				c.Preferences.OptedOut = []typesv1.Channel{typesv1.Channel_CHANNEL_SMS}
			}
			if v == 3 && k%3 == 0 {
				c.Tier, c.OwnerIds = "key", []string{"a-2", "a-3"}
			}
			out = append(out, &eventsv1.CustomerUpdated{EventId: fmt.Sprintf("cu-%d-%d", k, v), TenantId: "default", Customer: c, Version: int64(v),
				UpdatedAt: timestamppb.New(t0)})
		}
	}
	if erase {
		out = append(out, &eventsv1.CustomerUpdated{EventId: "cu-0-erased", TenantId: "default", Version: int64(n + 1), Erased: true,
			Customer: &typesv1.Customer{Id: "c-0"}, UpdatedAt: timestamppb.New(t0)})
	}
	r.Shuffle(len(out), func(i, j int) { out[i], out[j] = out[j], out[i] })
	return out
}

// A batch of CustomerUpdated written together (versions locked and read,
// kept, tasks locked and saved, one statement each) leaves the tasks and
// the kept versions as applying them one by one does: late versions change
// nothing, an opt-out withdraws the channel's open and claimed tasks
// before the snapshot reaches the others, and the updates of a customer
// the batch erases keep their order.
func TestCustomerUpdatedBatchMatchesOneByOne(t *testing.T) {
	const customers = 60
	updates := customerUpdates(customers, 3, true, rand.New(rand.NewPCG(15, 7)))
	one, _ := runCustomerUpdates(t, customers, 1, updates)
	batched, _ := runCustomerUpdates(t, customers, 100, updates)
	dump := func(pool *pgxpool.Pool, q string) string {
		var s string
		require.NoError(t, pool.QueryRow(context.Background(), q).Scan(&s))
		return s
	}
	// An active task shows the customer's kept snapshot, whatever its own
	// column holds (the last update that changed its routing wrote it).
	for _, q := range []string{
		`SELECT string_agg(concat_ws(' ', visit_id, status, agent_id, lease_expires_at,
    CASE WHEN status IN ('open', 'claimed', 'sending') THEN coalesce((SELECT v.customer FROM customer_versions v WHERE v.customer_id = t.customer_id), customer)
      ELSE customer END,
    tier_rank, primary_owner, backup_owner, language, available_at), E'\n' ORDER BY visit_id) FROM tasks t`,
		`SELECT string_agg(concat_ws(' ', customer_id, version, customer), E'\n' ORDER BY customer_id) FROM customer_versions`,
	} {
		require.Equal(t, dump(one.Pool, q), dump(batched.Pool, q), q)
	}
	count := func(q string) int {
		var n int
		require.NoError(t, batched.Pool.QueryRow(context.Background(), q).Scan(&n))
		return n
	}
	require.Equal(t, customers, count(`SELECT count(*) FROM customer_versions WHERE version >= 3`), "the newest version of each is kept")
	// Version 2 opts out only when it comes before version 3; a done task
	// stays done.
	withdrawn, seen3 := 0, map[string]bool{}
	for _, u := range updates {
		var k int
		_, err := fmt.Sscanf(u.Customer.Id, "c-%d", &k)
		require.NoError(t, err)
		switch {
		case u.Version == 3:
			seen3[u.Customer.Id] = true
		case u.Version == 2 && k%4 == 0 && k%5 != 0 && !seen3[u.Customer.Id]:
			withdrawn++
		}
	}
	require.Positive(t, withdrawn)
	require.Equal(t, withdrawn, count(`SELECT count(*) FROM tasks WHERE status = 'cancelled' AND channel = 'CHANNEL_SMS'`),
		"the SMS tasks of those opting out withdrawn")
	require.Equal(t, customers/3-1, count(`SELECT count(*) FROM tasks WHERE channel = 'CHANNEL_PHONE' AND primary_owner = 'a-2'`),
		"the key customers' tasks reach their owners (but the erased c-0's)")
}

// BenchmarkCustomerUpdatedThroughNATS measures dispatch's CustomerUpdated
// consumer alone: b.N updates (two versions of each of b.N/2 customers, a
// phone and an SMS task each, shuffled) published to an embedded NATS
// first, then the real consumer (batches of 100, the runtime's default)
// runs until it has handled them all. It reports events/s, the SQL
// statements per event (pg_stat_statements, the benchmark's polling left
// out), the tasks rewritten per event, the share of those rewrites that
// were HOT and the WAL bytes per event (the whole cluster's):
//
//	go test -run '^$' -bench CustomerUpdatedThroughNATS -benchtime 2000x ./internal/consumer/
func BenchmarkCustomerUpdatedThroughNATS(b *testing.B) {
	customers := max(1, b.N/2)
	updates := customerUpdates(customers, 2, false, rand.New(rand.NewPCG(15, 8)))
	b.ResetTimer()
	r, w := runCustomerUpdates(b, customers, 100, updates)
	b.StopTimer()
	r.Report(b, len(updates))
	b.ReportMetric(float64(w.updated)/float64(len(updates)), "task-updates/event")
	if w.updated > 0 {
		b.ReportMetric(100*float64(w.hot)/float64(w.updated), "%HOT")
	}
	b.ReportMetric(float64(w.wal)/float64(len(updates)), "WAL-B/event")
}
