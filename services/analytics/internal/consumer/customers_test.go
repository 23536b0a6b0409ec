package consumer_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	eventsv1 "github.com/huifang/huifang/proto/huifang/events/v1"
	typesv1 "github.com/huifang/huifang/proto/huifang/types/v1"

	"github.com/huifang/huifang/pkg/stream"
	"github.com/huifang/huifang/services/analytics/internal/app"
	"github.com/huifang/huifang/services/analytics/internal/consumer"
	"github.com/huifang/huifang/services/analytics/internal/rollup"
	"github.com/huifang/huifang/services/analytics/internal/scenario"
)

func cust(id string) *typesv1.Customer { return &typesv1.Customer{Id: id} }

// Seed 003's worked example per customer, through JetStream and Postgres:
// 10 customers due for a follow-up in March (two with two services), 9
// reached: 9 / 10 = 90 % meets the target; every event delivered twice
// changes nothing; a rebuild replays the same buckets.
func TestCustomerCoverageWorkedExample(t *testing.T) {
	b := setup(t)
	ctx := context.Background()
	d := timestamppb.New(time.Date(2025, 3, 5, 10, 0, 0, 0, time.UTC))
	var evs []scenario.Event
	due := func(v, s, c string) {
		evs = append(evs, scenario.Event{ID: "d-" + v, Subject: stream.SubjectVisitDue,
			Msg: &eventsv1.VisitDue{EventId: "d-" + v, VisitId: v, ServiceId: s, Customer: cust(c), DueAt: d, OrgUnit: "north"}})
	}
	logged := func(v string) {
		evs = append(evs, scenario.Event{ID: "l-" + v, Subject: stream.SubjectVisitLogged,
			Msg: &eventsv1.VisitLogged{EventId: "l-" + v, VisitId: v, RecordId: "r-" + v, LoggedAt: d}})
	}
	for i := range 10 {
		c := fmt.Sprintf("c%02d", i)
		due("v"+c, "s"+c, c)
		switch {
		case i < 8:
			logged("v" + c)
		case i == 8:
			due("v"+c+"b", "s"+c+"b", c)
			logged("v" + c + "b")
		default:
			due("v"+c+"b", "s"+c+"b", c)
		}
	}
	b.publish(t, evs...)

	process := func() {
		cons, err := b.js.CreateConsumer(ctx, stream.EventsStream, jetstream.ConsumerConfig{AckPolicy: jetstream.AckExplicitPolicy, FilterSubjects: consumer.Subjects})
		require.NoError(t, err)
		batch, err := cons.Fetch(len(evs), jetstream.FetchMaxWait(5*time.Second))
		require.NoError(t, err)
		for msg := range batch.Messages() {
			b.consumer.Process(ctx, msg)
		}
	}
	check := func() {
		t.Helper()
		for _, unit := range []string{"", "north"} {
			s := app.Scope{Tenant: "default", From: scenario.From, To: scenario.To, Filter: rollup.Dims{OrgUnit: unit}}
			r, ok, err := b.app.CustomerCoverage(ctx, s)
			require.NoError(t, err)
			require.True(t, ok)
			require.Equal(t, ratio(9, 10), nd(r), unit)
			require.True(t, r.MeetsTarget(), "9 / 10 = 90 %% meets seed 003's 90 %%")
			cov, err := b.app.Coverage(ctx, s)
			require.NoError(t, err)
			require.Equal(t, ratio(9, 12), nd(cov.Coverage), "per service: 9 of 12")
			require.Equal(t, nd(r), nd(cov.CustomerCoverage))
		}
		// Not one month or year, or a filter beyond the org unit: not given.
		for _, s := range []app.Scope{
			{Tenant: "default", From: scenario.From, To: scenario.To.AddDate(0, 0, -1)},
			{Tenant: "default", From: scenario.From, To: scenario.To.AddDate(0, 1, 0)},
			{Tenant: "default", From: scenario.From, To: scenario.To, Filter: rollup.Dims{AgentID: "a1"}},
		} {
			_, ok, err := b.app.CustomerCoverage(ctx, s)
			require.NoError(t, err)
			require.False(t, ok, "%v–%v %+v", s.From, s.To, s.Filter)
		}
	}
	process()
	check()
	once := b.customers(t)
	process()
	require.Equal(t, once, b.customers(t), "every event a second time: no change")
	check()

	// The runner's first lead replays the stream (the migrations ask for
	// it); then a rebuild replays it again.
	b.run(t)
	require.Eventually(t, func() bool {
		var n int
		err := b.pool.QueryRow(ctx, `SELECT count(*) FROM rebuild_requests`).Scan(&n)
		return err == nil && n == 0
	}, 60*time.Second, 20*time.Millisecond)
	b.waitHandled(t, len(evs))
	require.Eventually(t, func() bool { return fmt.Sprint(b.customers(t)) == fmt.Sprint(once) }, 60*time.Second, 50*time.Millisecond)
	seq, err := b.app.Rebuild(ctx)
	require.NoError(t, err)
	require.EqualValues(t, len(evs), seq)
	b.waitHandled(t, len(evs))
	require.Eventually(t, func() bool { return fmt.Sprint(b.customers(t)) == fmt.Sprint(once) }, 60*time.Second, 50*time.Millisecond)
	check()
}

// The customer buckets in Postgres do not depend on the order of the events
// (as the per-service counters): six events about two services of one
// customer, one of whose visits learns its service and customer only
// later, applied in several orders, each event in its own transaction.
func TestCustomerCoverageInAnyOrder(t *testing.T) {
	b := setup(t)
	ctx := context.Background()
	day := func(d int) *timestamppb.Timestamp {
		return timestamppb.New(time.Date(2025, 3, d, 10, 0, 0, 0, time.UTC))
	}
	evs := []proto.Message{
		&eventsv1.VisitDue{VisitId: "va", ServiceId: "s1", Customer: cust("c"), DueAt: day(1), OrgUnit: "north"},
		&eventsv1.VisitCancelled{VisitId: "va"},
		&eventsv1.VisitPlanned{VisitId: "vb", ServiceId: "s1", CustomerId: "c", DueAt: day(2), OrgUnit: "north"},
		&eventsv1.VisitPlanned{VisitId: "vc", DueAt: day(3), OrgUnit: "south"},
		&eventsv1.VisitDue{VisitId: "vc", ServiceId: "s2", Customer: cust("c"), DueAt: day(3), OrgUnit: "south"},
		&eventsv1.VisitLogged{VisitId: "vc", ServiceId: "s2", CustomerId: "c", LoggedAt: day(3)},
	}
	want := []string{
		"bucket|default|month|2025-03-01|f|north|1|0",
		"bucket|default|month|2025-03-01|f|south|1|1",
		"bucket|default|month|2025-03-01|t||1|1",
		"bucket|default|year|2025-01-01|f|north|1|0",
		"bucket|default|year|2025-01-01|f|south|1|1",
		"bucket|default|year|2025-01-01|t||1|1",
		"member|default|month|2025-03-01|f|north|c|1|0",
		"member|default|month|2025-03-01|f|south|c|1|1",
		"member|default|month|2025-03-01|t||c|2|1",
		"member|default|year|2025-01-01|f|north|c|1|0",
		"member|default|year|2025-01-01|f|south|c|1|1",
		"member|default|year|2025-01-01|t||c|2|1",
	}
	for _, order := range [][]int{{0, 1, 2, 3, 4, 5}, {5, 4, 3, 2, 1, 0}, {5, 0, 3, 1, 4, 2}, {2, 4, 0, 5, 1, 3}, {3, 5, 1, 2, 0, 4}} {
		require.NoError(t, b.app.ResetRollups(ctx, consumer.Durable))
		for _, i := range order {
			require.NoError(t, b.app.ApplyEvent(ctx, evs[i]))
		}
		require.Equal(t, want, b.customers(t), "order %v", order)
	}
}
