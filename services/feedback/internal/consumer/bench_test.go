package consumer_test

import (
	"fmt"
	"testing"
	"time"

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
// event is acknowledged. It reports events/s and, when the server has
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
// consumer made by of until its durable acknowledged them all.
func benchConsumer(b *testing.B, of func(*app.App) *inbox.Consumer, subject string, event func(i int) proto.Message) {
	pool := servicetest.Pool(b, "feedback", migrations.FS)
	js := servicetest.JetStream(b)
	c := of(&app.App{DB: pool})
	c.Service, c.Pool, c.JS, c.Log = "feedback", pool, js, servicetest.Logger()
	c.Batch, c.BatchWait = 100, 5*time.Millisecond

	pub := servicetest.NewPublisher(b, js)
	for i := range b.N {
		pub.Proto(subject, fmt.Sprintf("ev-%d", i), event(i))
	}
	pub.Flush()
	b.ResetTimer()
	until := servicetest.Until{Query: `SELECT true`, Also: servicetest.Acknowledged(b, js, c.Stream, c.Durable)}
	run := servicetest.Measure(b, pool, until, c.Run)
	b.StopTimer()
	run.Report(b, b.N)
}
