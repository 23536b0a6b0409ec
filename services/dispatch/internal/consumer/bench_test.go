package consumer_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
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
	"github.com/huifang/huifang/services/dispatch/internal/storetest"
)

// BenchmarkVisitDueThroughNATS measures dispatch's VisitDue consumer alone:
// b.N VisitDue (phone, SMS and email; one in four customers with a newer
// snapshot from CustomerUpdated; one in a hundred visits cancelled before
// they fell due; one in twenty a republish of an earlier visit under a new
// event id) are published to an embedded NATS first, then the real
// consumer (batches of 100, as the runtime's default) runs until every
// task exists. It reports events/s and, when the server has
// pg_stat_statements loaded (scripts/postgres.sh preloads it), the SQL
// statements per event the consumer ran (the benchmark's own polling
// left out):
//
//	go test -run '^$' -bench VisitDueThroughNATS -benchtime 5000x ./internal/consumer/
func BenchmarkVisitDueThroughNATS(b *testing.B) {
	ctx := context.Background()
	pool := storetest.Pool(b)
	js := servicetest.JetStream(b)
	a := &app.App{DB: pool, Now: time.Now, Log: servicetest.Logger(), Waker: &app.Waker{}}
	c := filled(pool, js, consumer.VisitDue(a))
	c.Batch, c.BatchWait = 100, 5*time.Millisecond

	_, err := pool.Exec(ctx, `CREATE EXTENSION IF NOT EXISTS pg_stat_statements SCHEMA public`)
	counted := err == nil
	if !counted {
		b.Logf("statements not counted (pg_stat_statements is not loaded): %v", err)
	}

	// Customers 0..n/8 come back; one in four has a kept newer version.
	customers := b.N/8 + 1
	for k := 0; k < customers; k += 4 {
		_, err := pool.Exec(ctx, `INSERT INTO customer_versions (tenant_id, customer_id, version, customer, updated_at)
VALUES ('default', $1, 2, $2, now())`, fmt.Sprintf("c-%d", k), fmt.Sprintf(`{"id":"c-%d","nameMasked":"新名","tier":"gold","ownerIds":["a-1","a-2"]}`, k))
		require.NoError(b, err)
	}
	visits, cancelled := 0, 0
	channels := []typesv1.Channel{typesv1.Channel_CHANNEL_PHONE, typesv1.Channel_CHANNEL_PHONE, typesv1.Channel_CHANNEL_SMS, typesv1.Channel_CHANNEL_EMAIL}
	now := time.Now()
	payloads := make([]*nats.Msg, b.N)
	for i := range b.N {
		v := i
		if i%20 == 19 {
			v = i - 10 // the scheduler emitting an earlier visit again
		} else {
			visits++
			if i%100 == 7 {
				cancelled++
				_, err := pool.Exec(ctx, `INSERT INTO cancelled_visits (tenant_id, visit_id, reason, cancelled_at) VALUES ('default', $1, 'bench', now())`,
					fmt.Sprintf("v-%d", v))
				require.NoError(b, err)
			}
		}
		data, err := proto.Marshal(&eventsv1.VisitDue{
			EventId: fmt.Sprintf("ev-%d", i), TenantId: "default", VisitId: fmt.Sprintf("v-%d", v), Channel: channels[v%len(channels)],
			Severity: typesv1.Severity(v % 3), DueAt: timestamppb.New(now), Deadline: timestamppb.New(now.Add(72 * time.Hour)),
			Customer: &typesv1.Customer{Id: fmt.Sprintf("c-%d", v%customers), NameMasked: "王芳", PhoneMasked: "138****0000", HasPhone: true,
				EmailMasked: "w***@example.com", HasEmail: true},
			ServiceType: "repair", OrgUnit: "north", ServiceId: fmt.Sprintf("s-%d", v), ServiceCompletedAt: timestamppb.New(now.Add(-time.Hour)),
		})
		require.NoError(b, err)
		payloads[i] = &nats.Msg{Subject: stream.SubjectVisitDue, Data: data, Header: nats.Header{jetstream.MsgIDHeader: {fmt.Sprintf("ev-%d", i)}}}
	}
	for i, m := range payloads {
		_, err := js.PublishMsgAsync(m)
		require.NoError(b, err)
		if i%1000 == 999 || i == len(payloads)-1 {
			select {
			case <-js.PublishAsyncComplete():
			case <-time.After(time.Minute):
				b.Fatal("publish did not complete")
			}
		}
	}
	want := visits - cancelled

	statements := func() int64 {
		if !counted {
			return 0
		}
		var n int64
		require.NoError(b, pool.QueryRow(ctx, `SELECT coalesce(sum(calls), 0)::bigint FROM public.pg_stat_statements
WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database()) AND query NOT LIKE '%bench:poll%'`).Scan(&n))
		return n
	}
	before := statements()
	runCtx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	b.ResetTimer()
	start := time.Now()
	go func() { done <- c.Run(runCtx) }()
	require.Eventually(b, func() bool {
		var n int
		err := pool.QueryRow(ctx, `SELECT count(*) /* bench:poll */ FROM tasks`).Scan(&n)
		return err == nil && n >= want
	}, 10*time.Minute, 5*time.Millisecond, "every one of the %d tasks", want)
	elapsed := time.Since(start)
	b.StopTimer()
	cancel()
	require.NoError(b, <-done)
	after := statements()

	var tasks, details int
	require.NoError(b, pool.QueryRow(ctx, `SELECT count(*) /* bench:poll */ FROM tasks`).Scan(&tasks))
	require.NoError(b, pool.QueryRow(ctx, `SELECT count(*) /* bench:poll */ FROM task_details`).Scan(&details))
	require.Equal(b, want, tasks, "one task per visit, none for a cancelled one")
	require.Equal(b, want, details)
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "events/s")
	if counted {
		b.ReportMetric(float64(after-before)/float64(b.N), "statements/event")
		if b.N > 1 {
			logStatements(b, pool)
		}
	}
}

// logStatements logs the statements the database ran most, with their calls.
func logStatements(b *testing.B, pool *pgxpool.Pool) {
	rows, err := pool.Query(context.Background(), `SELECT calls, left(regexp_replace(query, '\s+', ' ', 'g'), 110) /* bench:poll */ FROM public.pg_stat_statements
WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database()) AND query NOT LIKE '%bench:poll%' ORDER BY calls DESC LIMIT 12`)
	require.NoError(b, err)
	defer rows.Close()
	for rows.Next() {
		var calls int64
		var q string
		require.NoError(b, rows.Scan(&calls, &q))
		b.Logf("%7d  %s", calls, q)
	}
	require.NoError(b, rows.Err())
}
