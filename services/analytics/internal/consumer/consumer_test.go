package consumer_test

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
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
	"github.com/huifang/huifang/pkg/outbox"
	"github.com/huifang/huifang/pkg/servicetest"
	"github.com/huifang/huifang/pkg/stream"
	"github.com/huifang/huifang/services/analytics/internal/app"
	"github.com/huifang/huifang/services/analytics/internal/consumer"
	"github.com/huifang/huifang/services/analytics/internal/figures"
	"github.com/huifang/huifang/services/analytics/internal/rollup"
	"github.com/huifang/huifang/services/analytics/internal/satisfaction"
	"github.com/huifang/huifang/services/analytics/internal/scenario"
	"github.com/huifang/huifang/services/analytics/migrations"
)

type bundle struct {
	pool     *pgxpool.Pool
	js       jetstream.JetStream
	log      *slog.Logger
	app      *app.App
	consumer *inbox.Consumer
	gate     *consumer.Gate
}

// setup builds storage as app.Start does (schema "analytics" with the outbox,
// inbox and analytics migrations), a real NATS server with the streams, and
// the use cases, the consumer and its gate wired to both, as main does.
func setup(t *testing.T) bundle {
	t.Helper()
	log := servicetest.Logger()
	pool := servicetest.Pool(t, "analytics", migrations.FS)
	js := servicetest.JetStream(t)
	a := &app.App{DB: pool}
	b := bundle{pool: pool, js: js, log: log, app: a}
	b.consumer, b.gate = b.wire()
	a.Rebuilder = b.gate
	return b
}

// wire returns one replica's consumer and gate, filled in as rt.Consume does.
func (b bundle) wire() (*inbox.Consumer, *consumer.Gate) {
	c := consumer.New(b.app)
	c.Service, c.Pool, c.JS, c.Log = "analytics", b.pool, b.js, b.log
	return c, consumer.NewGate(b.app, b.pool, b.js, b.log)
}

// run runs the consumer behind its gate, as the runtime does, until the test ends.
func (b bundle) run(t *testing.T) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- b.gate.Run(ctx, b.consumer.Run) }()
	t.Cleanup(func() {
		cancel()
		require.NoError(t, <-done)
	})
}

func (b bundle) publishRaw(t *testing.T, subject, msgID string, data []byte) *jetstream.PubAck {
	t.Helper()
	msg := nats.NewMsg(subject)
	msg.Data = data
	msg.Header.Set(jetstream.MsgIDHeader, msgID)
	msg.Header.Set(stream.HeaderContentType, stream.ContentTypeProtobuf)
	ack, err := b.js.PublishMsg(context.Background(), msg)
	require.NoError(t, err)
	return ack
}

func (b bundle) publish(t *testing.T, evs ...scenario.Event) {
	t.Helper()
	for _, e := range evs {
		data, err := proto.Marshal(e.Msg)
		require.NoError(t, err)
		b.publishRaw(t, e.Subject, e.ID, data)
	}
}

// waitHandled waits until the consumer has handled (inbox rows, or the
// ids the services and visits keep of the events that keep no inbox row)
// or dead-lettered (rejected rows) n distinct events.
func (b bundle) waitHandled(t *testing.T, n int) {
	t.Helper()
	require.Eventually(t, func() bool { return b.handled(t) >= n }, 60*time.Second, 20*time.Millisecond)
}

// handled counts the distinct events the consumer handled or dead-lettered.
func (b bundle) handled(t *testing.T) int {
	t.Helper()
	var got int
	err := b.pool.QueryRow(context.Background(), `SELECT count(*) FROM (
  SELECT event_id FROM inbox WHERE consumer = $1 UNION SELECT event_id FROM rejected_events
  UNION SELECT event_id FROM services WHERE event_id IS NOT NULL
  UNION SELECT state->'seen'->>'planned' FROM visits WHERE state->'seen' ? 'planned'
  UNION SELECT state->'seen'->>'due' FROM visits WHERE state->'seen' ? 'due') x`, consumer.Durable).Scan(&got)
	if err != nil {
		return -1
	}
	return got
}

// snapshot is every non-zero counter, in order.
func (b bundle) snapshot(t *testing.T) []string {
	t.Helper()
	rows, err := b.pool.Query(context.Background(), `SELECT concat_ws('|', tenant_id, metric, day, org_unit, policy_id, service_type, product_category, channel, agent_id, aspect, category, n, total)
FROM daily WHERE n <> 0 OR total <> 0 ORDER BY 1`)
	require.NoError(t, err)
	var out []string
	for rows.Next() {
		var s string
		require.NoError(t, rows.Scan(&s))
		out = append(out, s)
	}
	require.NoError(t, rows.Err())
	return out
}

func ratio(num, den int64) [2]int64 { return [2]int64{num, den} }

func nd(r figures.Ratio) [2]int64 { return [2]int64{r.Num, r.Den} }

// checkScenario compares the figures of March with the ones computed by hand
// in scenario.Events (and docs/figures.md).
func (b bundle) checkScenario(t *testing.T) {
	t.Helper()
	ctx := context.Background()
	s := app.Scope{Tenant: "default", From: scenario.From, To: scenario.To}
	rs, err := b.app.Figures(ctx, s, figures.Coverage, figures.VisitCompletion, figures.ResponseRate, figures.UnreachableRate, figures.ContactSuccess, figures.Timeliness, figures.Timeliness48h, figures.ResolutionRate, figures.Improvement)
	require.NoError(t, err)
	require.Equal(t, [][2]int64{ratio(3, 4), ratio(4, 5), ratio(3, 5), ratio(1, 5), ratio(1, 2), ratio(3, 5), ratio(2, 3), ratio(1, 2), ratio(0, 2)},
		[][2]int64{nd(rs[0]), nd(rs[1]), nd(rs[2]), nd(rs[3]), nd(rs[4]), nd(rs[5]), nd(rs[6]), nd(rs[7]), nd(rs[8])},
		"coverage (per service), visit completion, response, unreachable, contact, timeliness, 48 h, resolution, improvement (no plan in the scenario: 0 of 2)")
	sat, err := b.app.Satisfaction(ctx, s, satisfaction.Overall)
	require.NoError(t, err)
	require.Len(t, sat.Aspects, 2)
	// Seed 003 lines 69-71: (satisfied + fairly satisfied) / 回收票数, the 3
	// questionnaires returned (v1, v2, v5 rated; v6 rated nothing), whether or
	// not they rated the item; the second figure counts those that rated it.
	require.Equal(t, figures.AspectVotes{Aspect: "overall", Votes: satisfaction.Votes{Satisfied: 1, FairlySatisfied: 1, Unsatisfied: 1, Returned: 3}}, withoutRate(sat.Aspects[0]))
	require.Equal(t, ratio(2, 3), nd(sat.Aspects[0].Rate))
	require.Equal(t, ratio(2, 3), nd(sat.Aspects[0].RatedRate))
	require.Equal(t, ratio(1, 3), nd(sat.Aspects[1].Rate), "staff_attitude: v2 did not rate it and counts against it")
	require.Equal(t, ratio(1, 2), nd(sat.Aspects[1].RatedRate), "staff_attitude among those who rated it")
	require.Equal(t, "satisfaction_rated.staff_attitude", sat.Aspects[1].RatedRate.Figure)
	require.Equal(t, figures.NPS{Promoters: 1, Detractors: 1}, sat.NPS)
	cov, err := b.app.Coverage(ctx, app.Scope{Tenant: "default"})
	require.NoError(t, err)
	require.EqualValues(t, 1, cov.WonBack, "cu1 came back after 7 months (seed 000: churned after 6)")
	require.EqualValues(t, 4, cov.Services)
	require.False(t, cov.HasCustomerCoverage, "all time is not one calendar month or year")
	// Seed 003, per served customer: cu1 (s1 followed up, s4 not), cu2, cu3.
	year := app.Scope{Tenant: "default", From: time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC), To: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	for _, c := range []struct {
		s    app.Scope
		want [2]int64
	}{
		{s, ratio(3, 3)},
		{app.Scope{Tenant: "default", From: scenario.From, To: scenario.To, Filter: rollup.Dims{OrgUnit: "north"}}, ratio(2, 2)},
		{app.Scope{Tenant: "default", From: scenario.From, To: scenario.To, Filter: rollup.Dims{OrgUnit: "south"}}, ratio(1, 2)},
		{year, ratio(3, 3)},
	} {
		r, ok, err := b.app.CustomerCoverage(ctx, c.s)
		require.NoError(t, err)
		require.True(t, ok)
		require.Equal(t, c.want, nd(r), "%s %v", c.s.Filter.OrgUnit, c.s.From)
	}
}

// customers is every customer member and bucket counter, in order.
func (b bundle) customers(t *testing.T) []string {
	t.Helper()
	rows, err := b.pool.Query(context.Background(), `SELECT concat_ws('|', 'member', tenant_id, span, period, all_units, org_unit, customer_id, services, covered) FROM customer_members
UNION ALL SELECT concat_ws('|', 'bucket', tenant_id, span, period, all_units, org_unit, eligible, covered) FROM customer_coverage ORDER BY 1`)
	require.NoError(t, err)
	var out []string
	for rows.Next() {
		var s string
		require.NoError(t, rows.Scan(&s))
		out = append(out, s)
	}
	require.NoError(t, rows.Err())
	return out
}

func withoutRate(a figures.AspectVotes) figures.AspectVotes {
	a.Rate, a.RatedRate = figures.Ratio{}, figures.Ratio{}
	return a
}

func TestScenarioFiguresAndRebuild(t *testing.T) {
	b := setup(t)
	b.run(t)
	evs := scenario.Events()
	b.publish(t, evs...)
	b.waitHandled(t, len(evs))
	require.Eventually(t, func() bool { return b.count(t, `SELECT count(*) FROM rebuild_requests`) == 0 }, 20*time.Second, 20*time.Millisecond,
		"the migrations' rebuild is done")
	b.checkScenario(t)
	// The monthly and tenant-total counters hold the same sums as the daily ones.
	for _, table := range []string{"monthly", "daily_tenant", "monthly_tenant"} {
		var differ int
		require.NoError(t, b.pool.QueryRow(context.Background(), `SELECT count(*) FROM (
  SELECT metric, aspect, category, date_trunc('month', day), sum(n), sum(total) FROM daily GROUP BY 1, 2, 3, 4
  EXCEPT SELECT metric, aspect, category, date_trunc('month', day), sum(n), sum(total) FROM `+table+` GROUP BY 1, 2, 3, 4) x`).Scan(&differ))
		require.Zero(t, differ, table)
	}
	before := b.snapshot(t)
	require.NotEmpty(t, before)
	customersBefore := b.customers(t)
	require.NotEmpty(t, customersBefore)
	reportCSV := func() []byte {
		r, err := b.app.Report(context.Background(), app.ReportOf{Tenant: "default", From: scenario.From, To: scenario.To, Previous: 3})
		require.NoError(t, err)
		out, err := r.CSV()
		require.NoError(t, err)
		return out
	}
	reportBefore := reportCSV()
	// A reporting role reads the rollups: the rebuilt tables keep the grant.
	_, err := b.pool.Exec(context.Background(), `GRANT SELECT ON daily, complaints TO PUBLIC`)
	require.NoError(t, err)
	shape := b.shape(t)

	// A rebuild replays the stream into new tables and swaps them in: the same counters.
	seq, err := b.app.Rebuild(context.Background())
	require.NoError(t, err)
	require.EqualValues(t, len(evs), seq)
	b.waitHandled(t, len(evs))
	require.Eventually(t, func() bool { return strings.Join(b.snapshot(t), "\n") == strings.Join(before, "\n") }, 60*time.Second, 50*time.Millisecond)
	b.checkScenario(t)
	require.Equal(t, customersBefore, b.customers(t), "the replay rebuilds the same customer buckets")
	require.Equal(t, string(reportBefore), string(reportCSV()), "the March report after the rebuild is the same, byte for byte")
	require.Contains(t, string(reportBefore), "customer_coverage")
	require.Equal(t, shape, b.shape(t), "the rebuilt tables have the same columns, constraints, indexes and grants")
}

// shape describes every table of the schema: columns, constraints, indexes, grants.
func (b bundle) shape(t *testing.T) []string {
	t.Helper()
	rows, err := b.pool.Query(context.Background(), `
SELECT concat('column ', table_name, '.', column_name, ' ', data_type, ' ', is_nullable, ' ', column_default)
  FROM information_schema.columns WHERE table_schema = 'analytics'
UNION ALL SELECT concat('constraint ', conrelid::regclass, ' ', conname, ' ', pg_get_constraintdef(oid))
  FROM pg_constraint WHERE connamespace = 'analytics'::regnamespace
UNION ALL SELECT concat('index ', indexname, ' ', regexp_replace(indexdef, '^.*? USING ', '')) FROM pg_indexes WHERE schemaname = 'analytics'
UNION ALL SELECT concat('grant ', c.relname, ' ', c.relacl) FROM pg_class c WHERE c.relnamespace = 'analytics'::regnamespace AND c.relkind = 'r'
UNION ALL SELECT concat('schema ', nspname) FROM pg_namespace WHERE nspname LIKE 'analytics%'
ORDER BY 1`)
	require.NoError(t, err)
	var out []string
	for rows.Next() {
		var s string
		require.NoError(t, rows.Scan(&s))
		out = append(out, s)
	}
	require.NoError(t, rows.Err())
	require.NotEmpty(t, out)
	return out
}

// Every event delivered a second time (a lost ack, a relay that published
// again after JetStream's duplicate window) is acknowledged without effect:
// the inbox row was written in the same transaction as the counters.
func TestRedeliveredEventsCountOnce(t *testing.T) {
	b := setup(t)
	ctx := context.Background()
	evs := scenario.Events()
	b.publish(t, evs...)

	process := func() {
		cons, err := b.js.CreateConsumer(ctx, stream.EventsStream, jetstream.ConsumerConfig{AckPolicy: jetstream.AckExplicitPolicy, FilterSubjects: consumer.Subjects})
		require.NoError(t, err)
		batch, err := cons.Fetch(len(evs), jetstream.FetchMaxWait(5*time.Second))
		require.NoError(t, err)
		n := 0
		for msg := range batch.Messages() {
			b.consumer.Process(ctx, msg)
			n++
		}
		require.Equal(t, len(evs), n)
	}
	process()
	once, customers := b.snapshot(t), b.customers(t)
	b.checkScenario(t)
	process()
	require.Equal(t, once, b.snapshot(t))
	require.Equal(t, customers, b.customers(t))
	b.checkScenario(t)
}

// A republished event with the same Nats-Msg-Id is dropped by JetStream
// within its duplicate window.
func TestDuplicatePublishCountsOnce(t *testing.T) {
	b := setup(t)
	b.run(t)
	evs := scenario.Events()
	data, err := proto.Marshal(evs[len(evs)-1].Msg)
	require.NoError(t, err)
	require.False(t, b.publishRaw(t, stream.SubjectReviewSubmitted, "q-1", data).Duplicate)
	require.True(t, b.publishRaw(t, stream.SubjectReviewSubmitted, "q-1", data).Duplicate)
	b.waitHandled(t, 1)
	var n int64
	require.NoError(t, b.pool.QueryRow(context.Background(), `SELECT sum(n) FROM daily WHERE metric = 'review'`).Scan(&n))
	require.EqualValues(t, 1, n)
}

// Events about one visit may come in any order (different producers): the
// counters end the same.
func TestVisitEventsInAnyOrder(t *testing.T) {
	b := setup(t)
	b.run(t)
	var visit []scenario.Event
	for _, e := range scenario.Events() {
		if strings.HasPrefix(e.Subject, "huifang.events.visit.") && strings.HasSuffix(e.ID, "1") {
			visit = append(visit, e)
		}
	}
	require.Len(t, visit, 5, "v1: planned, due, assigned, attempted, logged")
	// Logged first, then the rest backwards.
	for i := len(visit) - 1; i >= 0; i-- {
		b.publish(t, visit[i])
	}
	b.waitHandled(t, len(visit))
	got := b.snapshot(t)
	want := []string{
		"default|record.logged|2025-03-01|north|p-repair|repair||CHANNEL_PHONE|a1|||1|0",
		"default|record.returned|2025-03-01|north|p-repair|repair||CHANNEL_PHONE|a1|||1|0",
		"default|service.covered|2025-03-01|north|p-repair|repair||CHANNEL_PHONE|a1|||1|0",
		"default|service.eligible|2025-03-01|north|p-repair|repair||CHANNEL_PHONE|a1|||1|0",
		"default|visit.attempted|2025-03-01|north|p-repair|repair||CHANNEL_PHONE|a1|||1|0",
		"default|visit.contacted|2025-03-01|north|p-repair|repair||CHANNEL_PHONE|a1|||1|0",
		"default|visit.done|2025-03-01|north|p-repair|repair||CHANNEL_PHONE|a1|||1|0",
		"default|visit.due|2025-03-01|north|p-repair|repair||CHANNEL_PHONE|a1|||1|0",
		"default|visit.in_time|2025-03-01|north|p-repair|repair||CHANNEL_PHONE|a1|||1|0",
		"default|visit.on_time|2025-03-01|north|p-repair|repair||CHANNEL_PHONE|a1|||1|0",
		"default|visit.returned|2025-03-01|north|p-repair|repair||CHANNEL_PHONE|a1|||1|0",
		"default|visit.with_base|2025-03-01|north|p-repair|repair||CHANNEL_PHONE|a1|||1|0",
		"default|visit.with_deadline|2025-03-01|north|p-repair|repair||CHANNEL_PHONE|a1|||1|0",
		"default|visit.within_48h|2025-03-01|north|p-repair|repair||CHANNEL_PHONE|a1|||1|0",
		"default|vote.satisfied|2025-03-01|north|p-repair|repair||CHANNEL_PHONE|a1|overall||1|0",
		"default|vote.satisfied|2025-03-01|north|p-repair|repair||CHANNEL_PHONE|a1|staff_attitude||1|0",
	}
	require.Equal(t, want, got, "no service event was published, so no product category")
}

func TestMalformedEventIsDeadLettered(t *testing.T) {
	b := setup(t)
	ctx := context.Background()
	b.run(t)
	good, err := proto.Marshal(&eventsv1.VisitLogged{VisitId: "v-1", LoggedAt: timestamppb.New(scenario.From),
		Answers: []*typesv1.Answer{{Aspect: "overall", Rating: typesv1.Rating_RATING_FAIRLY_SATISFIED}}})
	require.NoError(t, err)
	noVisit, err := proto.Marshal(&eventsv1.VisitLogged{LoggedAt: timestamppb.New(scenario.From),
		Answers: []*typesv1.Answer{{Aspect: "overall", Rating: typesv1.Rating_RATING_SATISFIED}}})
	require.NoError(t, err)
	badScore, err := proto.Marshal(&eventsv1.ReviewSubmitted{ReviewId: "q", At: timestamppb.New(scenario.From), Score: 101})
	require.NoError(t, err)
	b.publishRaw(t, stream.SubjectVisitLogged, "bad-payload", []byte{0xff, 0xff, 0xff})
	b.publishRaw(t, stream.SubjectVisitLogged, "bad-visit", noVisit)
	b.publishRaw(t, stream.SubjectReviewSubmitted, "bad-score", badScore)
	b.publishRaw(t, stream.SubjectVisitLogged, "good", good)
	b.waitHandled(t, 4)

	// The consumer went on: the good event after the bad ones counted, and only it.
	require.Equal(t, []string{
		"default|record.logged|2025-03-01|||||||||1|0",
		"default|record.returned|2025-03-01|||||||||1|0",
		"default|service.covered|2025-03-01|||||||||1|0",
		"default|service.eligible|2025-03-01|||||||||1|0",
		"default|visit.done|2025-03-01|||||||||1|0",
		"default|visit.due|2025-03-01|||||||||1|0",
		"default|visit.in_time|2025-03-01|||||||||1|0",
		"default|visit.returned|2025-03-01|||||||||1|0",
		"default|vote.fairly_satisfied|2025-03-01|||||||overall||1|0",
	}, b.snapshot(t))

	rows, err := b.pool.Query(ctx, `SELECT event_id, field, source FROM rejected_events ORDER BY event_id`)
	require.NoError(t, err)
	var got []string
	for rows.Next() {
		var id, field, source string
		require.NoError(t, rows.Scan(&id, &field, &source))
		got = append(got, fmt.Sprintf("%s %s %s", id, field, source))
	}
	require.NoError(t, rows.Err())
	require.Equal(t, []string{
		"bad-payload payload " + stream.SubjectVisitLogged,
		"bad-score score " + stream.SubjectReviewSubmitted,
		"bad-visit visit_id " + stream.SubjectVisitLogged,
	}, got)

	// The relay puts them on the dead-letter subject with the reason.
	relay := outbox.NewRelay(b.pool, b.js, b.log, "analytics")
	n, err := relay.RunOnce(ctx)
	require.NoError(t, err)
	require.Equal(t, 3, n)
	dlq, err := b.js.Stream(ctx, stream.DLQStream)
	require.NoError(t, err)
	last, err := dlq.GetLastMsgForSubject(ctx, stream.DeadLetterSubject("analytics"))
	require.NoError(t, err)
	require.Equal(t, "score", last.Header.Get(stream.HeaderField))
	require.Equal(t, stream.SubjectReviewSubmitted, last.Header.Get(stream.HeaderOrigSubject))
	require.Contains(t, last.Header.Get(stream.HeaderReason), "score: must be from 0 to 100")
}
