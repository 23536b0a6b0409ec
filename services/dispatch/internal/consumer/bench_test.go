package consumer_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
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
// task exists and its durable acknowledged every event. It reports
// events/s, the WAL bytes per event (the whole cluster's), the rows
// inserted per event (every table's) and, when the server has
// pg_stat_statements loaded (scripts/postgres.sh preloads it), the SQL
// statements per event the consumer ran (the benchmark's own polling left
// out):
//
//	go test -run '^$' -bench VisitDueThroughNATS -benchtime 5000x ./internal/consumer/
func BenchmarkVisitDueThroughNATS(b *testing.B) {
	ctx := context.Background()
	pool := storetest.Pool(b)
	js := servicetest.JetStream(b)
	a := &app.App{DB: pool, Now: time.Now, Log: servicetest.Logger(), Waker: &app.Waker{}}
	c := filled(pool, js, consumer.VisitDue(a))
	c.Batch, c.BatchWait = 100, 5*time.Millisecond

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
	pub := servicetest.NewPublisher(b, js)
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
		pub.Proto(stream.SubjectVisitDue, fmt.Sprintf("ev-%d", i), &eventsv1.VisitDue{
			EventId: fmt.Sprintf("ev-%d", i), TenantId: "default", VisitId: fmt.Sprintf("v-%d", v), Channel: channels[v%len(channels)],
			Severity: typesv1.Severity(v % 3), DueAt: timestamppb.New(now), Deadline: timestamppb.New(now.Add(72 * time.Hour)),
			Customer: &typesv1.Customer{Id: fmt.Sprintf("c-%d", v%customers), NameMasked: "王芳", PhoneMasked: "138****0000", HasPhone: true,
				EmailMasked: "w***@example.com", HasEmail: true},
			ServiceType: "repair", OrgUnit: "north", ServiceId: fmt.Sprintf("s-%d", v), ServiceCompletedAt: timestamppb.New(now.Add(-time.Hour)),
		})
	}
	pub.Flush()
	want := visits - cancelled
	before := flushedWrites(b, pool)
	b.ResetTimer()
	run := servicetest.Measure(b, pool, servicetest.Until{Query: `SELECT count(*) >= $1 FROM tasks`, Args: []any{want},
		Also: servicetest.Acknowledged(b, js, c.Stream, c.Durable)}, c.Run)
	b.StopTimer()
	after := flushedWrites(b, pool)

	var tasks, details int
	require.NoError(b, pool.QueryRow(ctx, `SELECT count(*) /* bench:poll */ FROM tasks`).Scan(&tasks))
	require.NoError(b, pool.QueryRow(ctx, `SELECT count(*) /* bench:poll */ FROM task_details`).Scan(&details))
	require.Equal(b, want, tasks, "one task per visit, none for a cancelled one")
	require.Equal(b, want, details)
	run.Report(b, b.N)
	b.ReportMetric(float64(after.wal-before.wal)/float64(b.N), "WAL-B/event")
	b.ReportMetric(float64(after.inserted-before.inserted)/float64(b.N), "rows-inserted/event")
}
