package consumer_test

import (
	"cmp"
	"context"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
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
// every VisitDue is published. In "spread", half the events are of a
// customer seen before in the run, far apart (rarely two in one batch); in
// "repeats", each customer has three services in a row, so that a batch
// holds most customers three times. It reports events/s, the SQL
// statements per event the scheduler's database ran meanwhile
// (pg_stat_statements, which scripts/postgres.sh preloads; not reported
// without it; the benchmark's polling left out) and the CPU per event of
// the test process (consumers, loops, the embedded NATS server) and of the
// Postgres server (a local one: its processes' /proc/<pid>/stat), the WAL
// and the Postgres time of those statements per event (wal-B, ms-stmt), the
// rows the statements that insert, update or delete changed
// (rows-written: pg_stat_statements' rows, which are those a RETURNING
// returns where there is one), and logs the statements run most, and those that wrote and took most. With
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
	for _, c := range []struct {
		name string
		// repeat: each customer's services come that many in a row; 0:
		// customer i % (n/2+1).
		repeat int
	}{{"spread", 0}, {"repeats", 3}} {
		b.Run(c.name, func(b *testing.B) {
			for range b.N {
				benchPlanning(b, n, c.repeat)
			}
		})
	}
}

func benchPlanning(b *testing.B, n, repeat int) {
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
		c, first := i%(n/2+1), i < n/2+1
		if repeat > 0 {
			c, first = i/repeat, i%repeat == 0
		}
		cu := fmt.Sprintf("cu-%d", c)
		ev := &eventsv1.ServiceCompleted{EventId: fmt.Sprintf("ev-%d", i), TenantId: "default", ServiceId: fmt.Sprintf("s-%d", i),
			ServiceType: "repair", OrgUnit: "shanghai", CompletedAt: timestamppb.New(start.Add(time.Duration(i) * time.Millisecond)),
			Customer: &typesv1.Customer{Id: cu, Tier: "gold", HasPhone: true,
				Preferences: &typesv1.ContactPreferences{TimeZone: zones[c%len(zones)]}}}
		pub.Proto(stream.SubjectServiceCompleted, ev.EventId, ev)
		if updates && first {
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
	cpu := startCPU(b, pool)
	wal := startWAL(b, pool)
	b.StartTimer()
	run := servicetest.Measure(b, pool, servicetest.Until{
		Query: `SELECT count(*) >= $2 FROM outbox WHERE subject = $1 AND published_at IS NOT NULL`,
		Args:  []any{stream.SubjectVisitDue, n},
	}, runs...)
	b.StopTimer()
	self, server := cpu.stop(b)
	var visits int
	require.NoError(b, pool.QueryRow(ctx, `SELECT count(*) FROM planned_visits WHERE status = 'due'`).Scan(&visits))
	require.Equal(b, n, visits, "every service's visit fired once")
	run.Report(b, n)
	wal.report(b, n)
	b.ReportMetric(float64(self.Microseconds())/1000/float64(n), "ms-cpu-go/event")
	b.ReportMetric(float64(server.Microseconds())/1000/float64(n), "ms-cpu-pg/event")
}

// walMeter measures the WAL the statements of pool's database wrote
// (pg_stat_statements: their wal_bytes, the full-page images included) and
// the time Postgres took to run them, from startWAL to report, the rows
// the statements that insert, update or delete changed (or returned), and
// the statements that wrote most and that took most.
type walMeter struct {
	pool   *pgxpool.Pool
	before map[int64]walStat
}

type walStat struct {
	query              string
	calls, rows, bytes int64
	ms                 float64
	// writes: the statement inserts, updates or deletes rows.
	writes bool
}

func startWAL(tb testing.TB, pool *pgxpool.Pool) *walMeter {
	tb.Helper()
	servicetest.CountStatements(tb, pool) // creates pg_stat_statements where it can
	return &walMeter{pool: pool, before: walStats(tb, pool)}
}

// walStats reads pg_stat_statements of pool's database by queryid; none
// when it is not loaded.
func walStats(tb testing.TB, pool *pgxpool.Pool) map[int64]walStat {
	tb.Helper()
	out := map[int64]walStat{}
	rows, err := pool.Query(context.Background(), `SELECT queryid, left(regexp_replace(query, '\s+', ' ', 'g'), 90), calls, rows,
  wal_bytes::bigint, total_exec_time, query ~* '(insert\s+into|delete\s+from|update\s+[a-z_."]+(\s+(as\s+)?[a-z_]+)?\s+set)' `+
		servicetest.PollComment+` FROM public.pg_stat_statements
WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database()) AND query NOT LIKE '%bench:poll%'`)
	if err != nil {
		tb.Logf("WAL not measured (pg_stat_statements): %v", err)
		return out
	}
	defer rows.Close()
	for rows.Next() {
		var id int64
		var s walStat
		require.NoError(tb, rows.Scan(&id, &s.query, &s.calls, &s.rows, &s.bytes, &s.ms, &s.writes))
		out[id] = s
	}
	require.NoError(tb, rows.Err())
	return out
}

// report reports the WAL bytes and the statements' Postgres time per
// event, and logs the five statements that wrote most and the five that
// took most: calls, rows, WAL bytes and milliseconds per event.
func (m *walMeter) report(b *testing.B, events int) {
	b.Helper()
	var total, written int64
	var ms float64
	var top []walStat
	for id, s := range walStats(b, m.pool) {
		was := m.before[id]
		s.calls, s.rows, s.bytes, s.ms = s.calls-was.calls, s.rows-was.rows, s.bytes-was.bytes, s.ms-was.ms
		total, ms = total+s.bytes, ms+s.ms
		if s.writes {
			written += s.rows
		}
		if s.calls > 0 {
			top = append(top, s)
		}
	}
	b.ReportMetric(float64(total)/float64(events), "wal-B/event")
	b.ReportMetric(float64(written)/float64(events), "rows-written/event")
	b.ReportMetric(ms/float64(events), "ms-stmt/event")
	n := float64(events)
	log := func(s walStat) {
		b.Logf("WAL %6.0f B/event  %6.4f ms/event  calls %5.2f/event  rows %5.2f/event  %s", float64(s.bytes)/n, s.ms/n,
			float64(s.calls)/n, float64(s.rows)/n, s.query)
	}
	slices.SortFunc(top, func(x, y walStat) int { return cmp.Compare(y.bytes, x.bytes) })
	for _, s := range top[:min(5, len(top))] {
		log(s)
	}
	b.Logf("by time:")
	slices.SortFunc(top, func(x, y walStat) int { return cmp.Compare(y.ms, x.ms) })
	for _, s := range top[:min(5, len(top))] {
		log(s)
	}
}

// cpuMeter measures the CPU time of the test process and of the local
// Postgres server that pool's connections run on, from startCPU to stop.
type cpuMeter struct {
	postmaster   int
	self, server time.Duration
}

func startCPU(tb testing.TB, pool *pgxpool.Pool) *cpuMeter {
	tb.Helper()
	var backend int
	require.NoError(tb, pool.QueryRow(context.Background(), `SELECT pg_backend_pid()`).Scan(&backend))
	st, err := readStat(backend)
	require.NoError(tb, err, "the benchmark reads the CPU of a local Postgres")
	m := &cpuMeter{postmaster: int(st.ppid)}
	m.self, m.server = selfCPU(tb), m.serverCPU(tb)
	return m
}

func (m *cpuMeter) stop(tb testing.TB) (self, server time.Duration) {
	tb.Helper()
	return selfCPU(tb) - m.self, m.serverCPU(tb) - m.server
}

func selfCPU(tb testing.TB) time.Duration {
	var ru syscall.Rusage
	require.NoError(tb, syscall.Getrusage(syscall.RUSAGE_SELF, &ru))
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// serverCPU is the postmaster's CPU, its children's that ended, and its
// running children's.
func (m *cpuMeter) serverCPU(tb testing.TB) time.Duration {
	tb.Helper()
	pm, err := readStat(m.postmaster)
	require.NoError(tb, err)
	ticks := pm.utime + pm.stime + pm.cutime + pm.cstime
	dirs, err := os.ReadDir("/proc")
	require.NoError(tb, err)
	for _, d := range dirs {
		pid, err := strconv.Atoi(d.Name())
		if err != nil {
			continue
		}
		if st, err := readStat(pid); err == nil && int(st.ppid) == m.postmaster {
			ticks += st.utime + st.stime
		}
	}
	return time.Duration(ticks) * time.Second / 100 // USER_HZ
}

type procStat struct{ ppid, utime, stime, cutime, cstime int64 }

// readStat reads /proc/<pid>/stat: "pid (comm) state ppid ... utime stime
// cutime cstime ..." (fields 4, 14 to 17).
func readStat(pid int) (procStat, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return procStat{}, err
	}
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:]) // from the state on: field 3
	if len(f) < 15 {
		return procStat{}, fmt.Errorf("/proc/%d/stat: %q", pid, s)
	}
	var v [5]int64
	for i, at := range []int{1, 11, 12, 13, 14} {
		if v[i], err = strconv.ParseInt(f[at], 10, 64); err != nil {
			return procStat{}, err
		}
	}
	return procStat{ppid: v[0], utime: v[1], stime: v[2], cutime: v[3], cstime: v[4]}, nil
}
