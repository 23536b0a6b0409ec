package consumer_test

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/types/known/timestamppb"

	eventsv1 "github.com/huifang/huifang/proto/huifang/events/v1"
	typesv1 "github.com/huifang/huifang/proto/huifang/types/v1"

	"github.com/huifang/huifang/pkg/loop"
	"github.com/huifang/huifang/pkg/outbox"
	"github.com/huifang/huifang/pkg/pgtest"
	"github.com/huifang/huifang/pkg/servicetest"
	"github.com/huifang/huifang/pkg/stream"
	"github.com/huifang/huifang/services/scheduler/internal/app"
	"github.com/huifang/huifang/services/scheduler/internal/consumer"
	"github.com/huifang/huifang/services/scheduler/internal/policy"
	"github.com/huifang/huifang/services/scheduler/internal/store"
	"github.com/huifang/huifang/services/scheduler/migrations"
)

// BenchmarkPlanningInstant feeds HUIFANG_BENCH_EVENTS (default 2,000)
// ServiceCompleted events, already on an embedded NATS, through the
// scheduler's real consumers, firing loop and relay on a real Postgres, with
// make run's instant policy (scripts/internal/stack.InstantPolicy: repair,
// one step at 0 s by phone, every service sampled), and times them until
// every VisitDue is published. Half the events are of a customer seen
// before in the run. It reports events/s and the SQL statements per event
// the scheduler's database ran meanwhile (pg_stat_statements, which
// scripts/postgres.sh preloads; the figure is 0 without it). With
// HUIFANG_BENCH_UPDATES set, each new customer's CustomerUpdated (version
// 1) is published beside its first service, as intake does: the
// CustomerUpdated consumer then writes the same new customers as planning.
//
//	HUIFANG_PG_PORT=9445 scripts/postgres.sh start
//	cd services/scheduler && DATABASE_URL=postgres://postgres@127.0.0.1:9445/postgres?sslmode=disable \
//	  go test -run '^$' -bench BenchmarkPlanningInstant -benchtime 1x ./internal/consumer/
func BenchmarkPlanningInstant(b *testing.B) {
	n := 2000
	if s := os.Getenv("HUIFANG_BENCH_EVENTS"); s != "" {
		var err error
		n, err = strconv.Atoi(s)
		require.NoError(b, err, "HUIFANG_BENCH_EVENTS")
	}
	for range b.N {
		rate, perEvent := benchPlanning(b, n)
		b.ReportMetric(rate, "events/s")
		b.ReportMetric(perEvent, "statements/event")
	}
}

func benchPlanning(b *testing.B, n int) (rate, perEvent float64) {
	b.StopTimer()
	log := servicetest.Logger()
	pool := servicetest.Pool(b, "scheduler", migrations.FS)
	js := servicetest.JetStream(b)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	a := &app.App{DB: pool, Now: time.Now}
	require.NoError(b, a.EnsureBuiltins(ctx))
	require.NoError(b, store.InsertPolicy(ctx, pool, policy.Policy{ID: "p-instant", Tenant: "default", Name: "instant", Version: 1,
		Active: true, CreatedAt: time.Now(), Trigger: policy.Trigger{ServiceTypes: []string{"repair"}},
		Steps: []policy.Step{{Channel: policy.ChannelPhone, SampleRate: 1}}}))
	updates := os.Getenv("HUIFANG_BENCH_UPDATES") != ""
	zones := []string{"Asia/Shanghai", "Asia/Chongqing", ""}
	start := time.Now().Add(-time.Minute)
	for i := range n {
		c := i % (n/2 + 1)
		cu := fmt.Sprintf("cu-%d", c)
		ev := &eventsv1.ServiceCompleted{EventId: fmt.Sprintf("ev-%d", i), TenantId: "default", ServiceId: fmt.Sprintf("s-%d", i),
			ServiceType: "repair", OrgUnit: "shanghai", CompletedAt: timestamppb.New(start.Add(time.Duration(i) * time.Millisecond)),
			Customer: &typesv1.Customer{Id: cu, Tier: "gold", HasPhone: true,
				Preferences: &typesv1.ContactPreferences{TimeZone: zones[c%len(zones)]}}}
		publishOn(b, bundle{ctx: ctx, pool: pool, js: js}, stream.SubjectServiceCompleted, ev.EventId, ev)
		if updates && c == i {
			// Intake's CustomerUpdated of a new customer, as it publishes one
			// beside the customer's first service.
			up := &eventsv1.CustomerUpdated{EventId: "up-" + cu, TenantId: "default", Version: 1, UpdatedAt: ev.CompletedAt,
				Customer: ev.Customer}
			publishOn(b, bundle{ctx: ctx, pool: pool, js: js}, stream.SubjectCustomerUpdated, up.EventId, up)
		}
	}

	admin, err := pgx.Connect(ctx, pgtest.AdminURL())
	require.NoError(b, err)
	defer admin.Close(context.Background())
	var db string
	require.NoError(b, pool.QueryRow(ctx, `SELECT current_database()`).Scan(&db))
	statements := func() float64 {
		var calls float64
		err := admin.QueryRow(ctx, `SELECT coalesce(sum(s.calls), 0)::float8 FROM pg_stat_statements s JOIN pg_database d ON d.oid = s.dbid
WHERE d.datname = $1`, db).Scan(&calls)
		if err != nil {
			b.Logf("no statement count (pg_stat_statements): %v", err)
			return 0
		}
		return calls
	}
	_, _ = admin.Exec(ctx, `CREATE EXTENSION IF NOT EXISTS pg_stat_statements`)

	relay := outbox.NewRelay(pool, js, log, "scheduler")
	relay.Interval = 50 * time.Millisecond
	a.Relay = relay
	dueNow := loop.NewSignal()
	a.DueNow = dueNow.Notify
	fire := &loop.Loop{Name: "fire-due-visits", Every: 250 * time.Millisecond, Wake: dueNow, Batch: 100, Log: log,
		Round: func(ctx context.Context) (int, error) { return a.FireDue(ctx, 100) },
		Done:  func(int) { relay.Notify() }}
	runs := []func(context.Context) error{fire.Run, relay.Run}
	for _, c := range consumer.New(a) {
		c.Service, c.Pool, c.JS, c.Log, c.Relay, c.Batch = "scheduler", pool, js, log, relay, 100
		if c.Durable == consumer.DurableServiceCompleted {
			c.Workers = 4
		}
		runs = append(runs, c.Run)
	}
	before := statements()
	b.StartTimer()
	began := time.Now()
	done := make(chan struct{}, len(runs))
	for _, run := range runs {
		go func() { _ = run(ctx); done <- struct{}{} }()
	}
	var polls atomic.Int64
	require.Eventually(b, func() bool {
		polls.Add(1)
		var published int
		err := pool.QueryRow(ctx, `SELECT count(*) FROM outbox WHERE subject = $1 AND published_at IS NOT NULL`,
			stream.SubjectVisitDue).Scan(&published)
		return err == nil && published >= n
	}, 10*time.Minute, 20*time.Millisecond, "every one of the %d VisitDue published", n)
	took := time.Since(began)
	b.StopTimer()
	after := statements()
	if os.Getenv("HUIFANG_BENCH_TOP") != "" {
		rows, err := admin.Query(ctx, `SELECT s.calls, left(regexp_replace(s.query, '\s+', ' ', 'g'), 110) FROM pg_stat_statements s
JOIN pg_database d ON d.oid = s.dbid WHERE d.datname = $1 ORDER BY s.calls DESC LIMIT 25`, db)
		require.NoError(b, err)
		for rows.Next() {
			var calls int64
			var q string
			require.NoError(b, rows.Scan(&calls, &q))
			fmt.Fprintf(os.Stderr, "%8d %s\n", calls, q)
		}
		require.NoError(b, rows.Err())
	}
	cancel()
	for range runs {
		<-done
	}
	var visits int
	require.NoError(b, pool.QueryRow(context.Background(), `SELECT count(*) FROM planned_visits WHERE status = 'due'`).Scan(&visits))
	require.Equal(b, n, visits, "every service's visit fired once")
	// The polls above and the count itself ran there too.
	return float64(n) / took.Seconds(), (after - before - float64(polls.Load()) - 1) / float64(n)
}
