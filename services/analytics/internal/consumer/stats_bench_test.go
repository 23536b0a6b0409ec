package consumer_test

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/types/known/timestamppb"

	eventsv1 "github.com/huifang/huifang/proto/huifang/events/v1"
	typesv1 "github.com/huifang/huifang/proto/huifang/types/v1"

	"github.com/huifang/huifang/pkg/servicetest"
	"github.com/huifang/huifang/pkg/stream"
)

// BenchmarkRepairsThroughNATS measures the analytics consumer on what make
// bench sends it: per completed repair (one of 200 customers, as
// huifang-loadgen's default, a fifth of them bringing half of the
// services) its ServiceCompleted, VisitPlanned and VisitDue, nothing else.
// Besides events/s and statements/event it reports the rows and the WAL
// the database wrote per repair (pg_stat_statements) and logs them by
// statement:
//
//	go test -run '^$' -bench RepairsThroughNATS -benchtime 3000x ./internal/consumer/
func BenchmarkRepairsThroughNATS(b *testing.B) {
	s := benchSetup(b)
	evs := repairEvents(b.N, time.Date(2026, 3, 5, 10, 0, 0, 0, time.UTC))
	publishEvents(b, s, evs)
	before := walSnapshot(b, s.pool)
	measureConsumer(b, s, len(evs))
	reportWrites(b, s.pool, before, b.N)
}

// repairEvents returns the events of n completed repairs (see
// BenchmarkRepairsThroughNATS), in the order the services send them.
func repairEvents(n int, day time.Time) []benchEvent {
	var out []benchEvent
	for r := range n {
		// A fifth of the customers bring half of the services.
		cu := fmt.Sprintf("c%d", r%160+40)
		if r%2 == 0 {
			cu = fmt.Sprintf("c%d", r%40)
		}
		s, v := fmt.Sprintf("s%d", r), fmt.Sprintf("v%d", r)
		at := day.Add(time.Duration(r) * time.Second)
		out = append(out,
			benchEvent{stream.SubjectServiceCompleted, &eventsv1.ServiceCompleted{TenantId: "default", ServiceId: s, Customer: cust(cu),
				CompletedAt: timestamppb.New(at), OrgUnit: "north", ServiceType: "repair", StaffId: fmt.Sprintf("staff-%d", r%12),
				Product: &typesv1.Product{Category: "engine"}}},
			benchEvent{stream.SubjectVisitPlanned, &eventsv1.VisitPlanned{TenantId: "default", VisitId: v, ServiceId: s, CustomerId: cu,
				PolicyId: "repair-instant", DueAt: timestamppb.New(at), Deadline: timestamppb.New(at.Add(72 * time.Hour)), OrgUnit: "north",
				ServiceType: "repair", Channel: typesv1.Channel_CHANNEL_PHONE}},
			benchEvent{stream.SubjectVisitDue, &eventsv1.VisitDue{TenantId: "default", VisitId: v, ServiceId: s, Customer: cust(cu),
				PolicyId: "repair-instant", DueAt: timestamppb.New(at), Deadline: timestamppb.New(at.Add(72 * time.Hour)), OrgUnit: "north",
				ServiceType: "repair", ServiceCompletedAt: timestamppb.New(at), Channel: typesv1.Channel_CHANNEL_PHONE, ProductCategory: "engine"}})
	}
	return out
}

// stmtWrites is one statement's calls, rows and WAL bytes so far.
type stmtWrites struct {
	query            string
	calls, rows, wal int64
}

// walSnapshot reads every statement's calls, rows and WAL bytes in pool's
// database so far (pg_stat_statements, which scripts/postgres.sh
// preloads), by query id; nil when they are not counted.
func walSnapshot(tb testing.TB, pool *pgxpool.Pool) map[int64]stmtWrites {
	tb.Helper()
	if !servicetest.CountStatements(tb, pool).Counted() {
		return nil
	}
	rows, err := pool.Query(context.Background(), `SELECT queryid, left(regexp_replace(query, '\s+', ' ', 'g'), 90), calls, rows, wal_bytes::bigint `+servicetest.PollComment+`
FROM public.pg_stat_statements
WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database()) AND query NOT LIKE '%bench:poll%'`)
	require.NoError(tb, err)
	out := map[int64]stmtWrites{}
	var id int64
	var w stmtWrites
	_, err = pgx.ForEachRow(rows, []any{&id, &w.query, &w.calls, &w.rows, &w.wal}, func() error {
		out[id] = w
		return nil
	})
	require.NoError(tb, err)
	return out
}

// reportWrites reports the rows and WAL bytes the statements wrote since
// before, per unit (a repair), and logs the statements that wrote most.
func reportWrites(b *testing.B, pool *pgxpool.Pool, before map[int64]stmtWrites, units int) {
	b.Helper()
	if before == nil {
		return
	}
	after := walSnapshot(b, pool)
	var diffs []stmtWrites
	var rows, wal int64
	for id, w := range after {
		o := before[id]
		d := stmtWrites{query: w.query, calls: w.calls - o.calls, rows: w.rows - o.rows, wal: w.wal - o.wal}
		if d.calls == 0 {
			continue
		}
		diffs = append(diffs, d)
		wal += d.wal
		if d.wal > 0 {
			rows += d.rows
		}
	}
	slices.SortFunc(diffs, func(x, y stmtWrites) int { return cmp.Compare(y.wal, x.wal) })
	n := float64(units)
	logTables(b, pool, units)
	b.ReportMetric(float64(rows)/n, "rows/repair")
	b.ReportMetric(float64(wal)/n, "WAL-B/repair")
	for _, d := range diffs[:min(len(diffs), 12)] {
		b.Logf("%6.2f calls %6.2f rows %7.0f WAL B per repair  %s", float64(d.calls)/n, float64(d.rows)/n, float64(d.wal)/n, d.query)
	}
}

// logTables logs the rows each table of the schema had inserted, updated
// (HOT among them) and deleted, per unit. The connections are closed
// first: a backend reports its table statistics when it exits.
func logTables(b *testing.B, pool *pgxpool.Pool, units int) {
	b.Helper()
	ctx := context.Background()
	pool.Reset()
	deadline := time.Now().Add(time.Minute)
	for {
		var others int
		require.NoError(b, pool.QueryRow(ctx, `SELECT count(*) `+servicetest.PollComment+` FROM pg_stat_activity
WHERE datname = current_database() AND pid <> pg_backend_pid()`).Scan(&others))
		if others == 0 || time.Now().After(deadline) {
			break
		}
	}
	rows, err := pool.Query(ctx, `SELECT relname, n_tup_ins, n_tup_upd, n_tup_hot_upd, n_tup_del `+servicetest.PollComment+`
FROM pg_stat_user_tables WHERE schemaname = current_schema() AND n_tup_ins + n_tup_upd + n_tup_del > 0
ORDER BY n_tup_ins + n_tup_upd + n_tup_del DESC`)
	require.NoError(b, err)
	var name string
	var ins, upd, hot, del int64
	n := float64(units)
	_, err = pgx.ForEachRow(rows, []any{&name, &ins, &upd, &hot, &del}, func() error {
		b.Logf("%-20s per repair: %5.2f inserted %5.2f updated (%5.2f HOT) %5.2f deleted", name, float64(ins)/n, float64(upd)/n, float64(hot)/n, float64(del)/n)
		return nil
	})
	require.NoError(b, err)
}
