package consumer_test

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/types/known/timestamppb"

	eventsv1 "github.com/huifang/huifang/proto/huifang/events/v1"
	typesv1 "github.com/huifang/huifang/proto/huifang/types/v1"

	"github.com/huifang/huifang/pkg/loop"
	"github.com/huifang/huifang/pkg/outbox"
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
// scripts/postgres.sh preloads; not reported without it; the benchmark's
// polling left out), and logs the statements run most. With
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
		benchPlanning(b, n).Report(b, n)
	}
}

func benchPlanning(b *testing.B, n int) servicetest.Run {
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
	pub := servicetest.NewPublisher(b, js)
	for i := range n {
		c := i % (n/2 + 1)
		cu := fmt.Sprintf("cu-%d", c)
		ev := &eventsv1.ServiceCompleted{EventId: fmt.Sprintf("ev-%d", i), TenantId: "default", ServiceId: fmt.Sprintf("s-%d", i),
			ServiceType: "repair", OrgUnit: "shanghai", CompletedAt: timestamppb.New(start.Add(time.Duration(i) * time.Millisecond)),
			Customer: &typesv1.Customer{Id: cu, Tier: "gold", HasPhone: true,
				Preferences: &typesv1.ContactPreferences{TimeZone: zones[c%len(zones)]}}}
		pub.Proto(stream.SubjectServiceCompleted, ev.EventId, ev)
		if updates && c == i {
			// Intake's CustomerUpdated of a new customer, as it publishes one
			// beside the customer's first service.
			up := &eventsv1.CustomerUpdated{EventId: "up-" + cu, TenantId: "default", Version: 1, UpdatedAt: ev.CompletedAt,
				Customer: ev.Customer}
			pub.Proto(stream.SubjectCustomerUpdated, up.EventId, up)
		}
	}
	pub.Flush()

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
	b.StartTimer()
	run := servicetest.Measure(b, pool, servicetest.Until{
		Query: `SELECT count(*) >= $2 FROM outbox WHERE subject = $1 AND published_at IS NOT NULL`,
		Args:  []any{stream.SubjectVisitDue, n},
	}, runs...)
	b.StopTimer()
	var visits int
	require.NoError(b, pool.QueryRow(ctx, `SELECT count(*) FROM planned_visits WHERE status = 'due'`).Scan(&visits))
	require.Equal(b, n, visits, "every service's visit fired once")
	return run
}
