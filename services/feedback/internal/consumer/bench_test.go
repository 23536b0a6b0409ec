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

	"github.com/huifang/huifang/pkg/inbox"
	"github.com/huifang/huifang/pkg/servicetest"
	"github.com/huifang/huifang/pkg/stream"
	"github.com/huifang/huifang/services/feedback/internal/app"
	"github.com/huifang/huifang/services/feedback/internal/consumer"
	"github.com/huifang/huifang/services/feedback/migrations"
)

// BenchmarkVisitDueThroughNATS measures feedback's VisitDue consumer
// alone: b.N VisitDue (one in twenty a republish of an earlier visit under
// a new event id) are published to an embedded NATS first, then the real
// consumer (batches of 100, as the runtime's default) runs until every
// event is in the inbox. It reports events/s and, when the server has
// pg_stat_statements loaded (scripts/postgres.sh preloads it), the SQL
// statements per event the consumer ran (the benchmark's polling left out):
//
//	go test -run '^$' -bench 'ThroughNATS' -benchtime 5000x ./internal/consumer/
func BenchmarkVisitDueThroughNATS(b *testing.B) {
	now := time.Now()
	benchConsumer(b, consumer.VisitDue, stream.SubjectVisitDue, func(i int) proto.Message {
		v := i
		if i%20 == 19 {
			v = i - 10 // the scheduler emitting an earlier visit again
		}
		return &eventsv1.VisitDue{
			EventId: fmt.Sprintf("ev-%d", i), TenantId: "default", VisitId: fmt.Sprintf("v-%d", v), Channel: typesv1.Channel_CHANNEL_PHONE,
			DueAt: timestamppb.New(now), Deadline: timestamppb.New(now.Add(72 * time.Hour)),
			Customer: &typesv1.Customer{Id: fmt.Sprintf("c-%d", v%97)}, ServiceType: "repair", OrgUnit: "north",
			ServiceId: fmt.Sprintf("s-%d", v), ServiceCompletedAt: timestamppb.New(now.Add(-time.Hour)),
		}
	})
}

// BenchmarkVisitAssignedThroughNATS is BenchmarkVisitDueThroughNATS for
// the VisitAssigned consumer: one in five events reassigns an earlier
// visit (newer), one in twenty repeats an older claim heard late.
//
//	go test -run '^$' -bench 'ThroughNATS' -benchtime 5000x ./internal/consumer/
func BenchmarkVisitAssignedThroughNATS(b *testing.B) {
	at := time.Now().UTC().Truncate(time.Microsecond)
	benchConsumer(b, consumer.VisitAssigned, stream.SubjectVisitAssigned, func(i int) proto.Message {
		v, when := i, at
		switch {
		case i%5 == 4:
			v, when = i-3, at.Add(time.Hour) // a reassignment
		case i%20 == 18:
			v, when = i-7, at.Add(-time.Hour) // an older claim heard late
		}
		return &eventsv1.VisitAssigned{EventId: fmt.Sprintf("ev-%d", i), TenantId: "default", VisitId: fmt.Sprintf("v-%d", v),
			AgentId: fmt.Sprintf("a-%d", i%7), AssignedAt: timestamppb.New(when)}
	})
}

// benchConsumer publishes b.N events (event(i)) on subject, then runs the
// consumer made by of until the inbox holds them all.
func benchConsumer(b *testing.B, of func(*app.App) *inbox.Consumer, subject string, event func(i int) proto.Message) {
	ctx := context.Background()
	pool := servicetest.Pool(b, "feedback", migrations.FS)
	js := servicetest.JetStream(b)
	c := of(&app.App{DB: pool})
	c.Service, c.Pool, c.JS, c.Log = "feedback", pool, js, servicetest.Logger()
	c.Batch, c.BatchWait = 100, 5*time.Millisecond

	_, err := pool.Exec(ctx, `CREATE EXTENSION IF NOT EXISTS pg_stat_statements SCHEMA public`)
	counted := err == nil
	if !counted {
		b.Logf("statements not counted (pg_stat_statements is not loaded): %v", err)
	}
	for i := range b.N {
		data, err := proto.Marshal(event(i))
		require.NoError(b, err)
		_, err = js.PublishMsgAsync(&nats.Msg{Subject: subject, Data: data, Header: nats.Header{jetstream.MsgIDHeader: {fmt.Sprintf("ev-%d", i)}}})
		require.NoError(b, err)
		if i%1000 == 999 || i == b.N-1 {
			select {
			case <-js.PublishAsyncComplete():
			case <-time.After(time.Minute):
				b.Fatal("publish did not complete")
			}
		}
	}
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
		err := pool.QueryRow(ctx, `SELECT count(*) /* bench:poll */ FROM inbox WHERE consumer = $1`, c.Durable).Scan(&n)
		return err == nil && n >= b.N
	}, 10*time.Minute, 5*time.Millisecond, "every one of the %d events", b.N)
	elapsed := time.Since(start)
	b.StopTimer()
	cancel()
	require.NoError(b, <-done)
	after := statements()
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
