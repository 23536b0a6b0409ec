package consumer_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	eventsv1 "github.com/huifang/huifang/proto/huifang/events/v1"
	typesv1 "github.com/huifang/huifang/proto/huifang/types/v1"

	"github.com/huifang/huifang/pkg/servicetest"
	"github.com/huifang/huifang/pkg/stream"
	"github.com/huifang/huifang/services/analytics/internal/app"
	"github.com/huifang/huifang/services/analytics/internal/rollup"
	"github.com/huifang/huifang/services/analytics/internal/store"
	"github.com/huifang/huifang/services/analytics/migrations"
)

// BenchmarkVisitEvents measures the consumer's work per visit event (one
// transaction each, without the inbox row): a due and a logged event of a
// new service of one of 1000 customers; and the customer-bucket part alone.
//
//	go test -run '^$' -bench . -benchtime 2000x ./internal/consumer/
func BenchmarkVisitEvents(b *testing.B) {
	pool := servicetest.Pool(b, "analytics", migrations.FS)
	ctx := context.Background()
	a := &app.App{DB: pool}
	day := time.Date(2025, 3, 5, 10, 0, 0, 0, time.UTC)
	b.Run("due+logged", func(b *testing.B) {
		for i := range b.N {
			v, s := fmt.Sprintf("bv%d", i), fmt.Sprintf("bs%d", i)
			for _, ev := range []proto.Message{
				&eventsv1.VisitDue{VisitId: v, ServiceId: s, Customer: cust(fmt.Sprintf("c%d", i%1000)), DueAt: timestamppb.New(day.AddDate(0, 0, i%60)), OrgUnit: "north"},
				&eventsv1.VisitLogged{VisitId: v, RecordId: "r" + v, LoggedAt: timestamppb.New(day.AddDate(0, 0, i%60))},
			} {
				if err := a.ApplyEvent(ctx, ev); err != nil {
					b.Fatal(err)
				}
			}
		}
		b.ReportMetric(float64(b.Elapsed().Microseconds())/float64(2*b.N), "µs/event")
	})
	b.Run("members", func(b *testing.B) {
		for i := range b.N {
			sc := rollup.ServiceCoverage{Tenant: "default", ServiceID: fmt.Sprintf("ms%d", i)}
			sc = sc.With("v", rollup.ServiceVisit{Day: day.AddDate(0, 0, i%60), Customer: fmt.Sprintf("m%d", i%1000), Dims: rollup.Dims{OrgUnit: "north"}}, true)
			if err := pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
				return store.ApplyMembers(ctx, tx, rollup.MemberDiff(nil, sc.Members()))
			}); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkEventsThroughNATS measures the analytics consumer alone, as the
// runtime runs it (behind its gate: the lease fences every transaction;
// batches of 100, the runtime's default): b.N events of completed repairs
// as make bench sends them (per repair a ServiceCompleted of one of 97
// customers, its VisitPlanned and VisitDue, and one repair in two an
// assignment, a call and a record of its visit; one repair in ten a
// complaint escalated) are published to an embedded NATS first, then the
// consumer runs until every event is acknowledged. It reports events/s
// and, when the server has pg_stat_statements loaded (scripts/postgres.sh
// preloads it), the SQL statements per event the database ran (the
// benchmark's polling left out):
//
//	go test -run '^$' -bench EventsThroughNATS -benchtime 5000x ./internal/consumer/
func BenchmarkEventsThroughNATS(b *testing.B) {
	s := benchSetup(b)
	publishEvents(b, s, benchEvents(b.N, time.Date(2026, 3, 5, 10, 0, 0, 0, time.UTC)))
	measureConsumer(b, s, b.N)
}

// benchSetup is setup for a benchmark of the consumer as the runtime runs
// it: behind its gate (the lease fences every transaction), in batches of
// 100 (the runtime's default), and without the rebuild a fresh database's
// migrations ask for (not what is measured).
func benchSetup(b *testing.B) bundle {
	b.Helper()
	pool := servicetest.Pool(b, "analytics", migrations.FS)
	s := bundle{pool: pool, js: servicetest.JetStream(b), log: servicetest.Logger(), app: &app.App{DB: pool}}
	s.consumer, s.gate = s.wire()
	s.consumer.Batch, s.consumer.BatchWait = 100, 5*time.Millisecond
	_, err := pool.Exec(context.Background(), `DELETE FROM rebuild_requests`)
	require.NoError(b, err)
	return s
}

// publishEvents publishes evs to s's NATS, with the event ids ev-0, ev-1, …
func publishEvents(b *testing.B, s bundle, evs []benchEvent) {
	b.Helper()
	pub := servicetest.NewPublisher(b, s.js)
	for i, ev := range evs {
		pub.Proto(ev.subject, fmt.Sprintf("ev-%d", i), ev.msg)
	}
	pub.Flush()
}

// measureConsumer runs s's consumer behind its gate, timed, until its
// durable has acknowledged every event published, and reports the figures
// of servicetest.Measure per event of the events.
func measureConsumer(b *testing.B, s bundle, events int) {
	b.Helper()
	b.ResetTimer()
	// Done when the durable acknowledged every event: the events of the
	// keyed subjects keep no inbox row.
	done := servicetest.Until{Query: `SELECT true`, Also: servicetest.Acknowledged(b, s.js, stream.EventsStream, s.consumer.Durable)}
	run := servicetest.Measure(b, s.pool, done, func(ctx context.Context) error { return s.gate.Run(ctx, s.consumer.Run) })
	b.StopTimer()
	run.Report(b, events)
}

// benchEvent is one event of a benchmark and its subject.
type benchEvent struct {
	subject string
	msg     proto.Message
}

// benchEvents returns n events of completed repairs (see
// BenchmarkEventsThroughNATS), in the order the services would send them.
func benchEvents(n int, day time.Time) []benchEvent {
	var out []benchEvent
	for r := 0; len(out) < n; r++ {
		s, v, cu := fmt.Sprintf("s%d", r), fmt.Sprintf("v%d", r), fmt.Sprintf("c%d", r%97)
		at := day.Add(time.Duration(r) * time.Minute)
		out = append(out,
			benchEvent{stream.SubjectServiceCompleted, &eventsv1.ServiceCompleted{TenantId: "default", ServiceId: s, Customer: cust(cu),
				CompletedAt: timestamppb.New(at), OrgUnit: "north", ServiceType: "repair", Product: &typesv1.Product{Category: "engine"}}},
			benchEvent{stream.SubjectVisitPlanned, &eventsv1.VisitPlanned{TenantId: "default", VisitId: v, ServiceId: s, CustomerId: cu,
				DueAt: timestamppb.New(at.Add(time.Hour)), Deadline: timestamppb.New(at.Add(72 * time.Hour)), OrgUnit: "north", ServiceType: "repair",
				Channel: typesv1.Channel_CHANNEL_PHONE}},
			benchEvent{stream.SubjectVisitDue, &eventsv1.VisitDue{TenantId: "default", VisitId: v, ServiceId: s, Customer: cust(cu),
				DueAt: timestamppb.New(at.Add(time.Hour)), Deadline: timestamppb.New(at.Add(72 * time.Hour)), OrgUnit: "north", ServiceType: "repair",
				ServiceCompletedAt: timestamppb.New(at), Channel: typesv1.Channel_CHANNEL_PHONE}})
		if r%2 == 1 {
			agent := fmt.Sprintf("a%d", r%7)
			out = append(out,
				benchEvent{stream.SubjectVisitAssigned, &eventsv1.VisitAssigned{TenantId: "default", VisitId: v, AgentId: agent, AssignedAt: timestamppb.New(at.Add(2 * time.Hour))}},
				benchEvent{stream.SubjectVisitAttempted, &eventsv1.VisitAttempted{TenantId: "default", VisitId: v, AgentId: agent,
					Disposition: typesv1.Disposition_DISPOSITION_ANSWERED, AttemptedAt: timestamppb.New(at.Add(2 * time.Hour))}},
				benchEvent{stream.SubjectVisitLogged, &eventsv1.VisitLogged{TenantId: "default", VisitId: v, RecordId: "r" + v, AgentId: agent,
					LoggedAt: timestamppb.New(at.Add(2 * time.Hour)), OrgUnit: "north", ServiceType: "repair",
					Answers: []*typesv1.Answer{{Aspect: "overall", Rating: typesv1.Rating_RATING_SATISFIED}}}})
		}
		if r%10 == 9 {
			out = append(out, benchEvent{stream.SubjectComplaintEscalated, &eventsv1.ComplaintEscalated{TenantId: "default",
				ComplaintId: "k" + v, VisitId: v, Category: "service", EscalatedAt: timestamppb.New(at.Add(3 * time.Hour)), OrgUnit: "north"}})
		}
	}
	return out[:n]
}
