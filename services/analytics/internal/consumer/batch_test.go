package consumer_test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/types/known/timestamppb"

	eventsv1 "github.com/huifang/huifang/proto/huifang/events/v1"
	typesv1 "github.com/huifang/huifang/proto/huifang/types/v1"

	"github.com/huifang/huifang/pkg/stream"
	"github.com/huifang/huifang/services/analytics/internal/scenario"
)

// batchEvents are the scenario's events, 300 of completed repairs as make
// bench sends them, churn calls (seed 000: due, logged, logged again, due
// again, logged before due), and two poison messages among them: a record
// whose answers break a rule (refused at once) and a record of an open
// churn call the database refuses after the event moved its visit (a NUL
// in its record id: it fails every time, so it is dead-lettered after its
// tries).
func batchEvents() []scenario.Event {
	evs := scenario.Events()
	for i, ev := range benchEvents(300, time.Date(2026, 3, 5, 10, 0, 0, 0, time.UTC)) {
		evs = append(evs, scenario.Event{ID: fmt.Sprintf("b%d", i), Subject: ev.subject, Msg: ev.msg})
		if i == 40 {
			nps := int32(11)
			evs = append(evs, scenario.Event{ID: "poison-nps", Subject: stream.SubjectVisitLogged, Msg: &eventsv1.VisitLogged{TenantId: "default",
				VisitId: "v3", RecordId: "rv3", LoggedAt: timestamppb.New(time.Date(2026, 3, 6, 10, 0, 0, 0, time.UTC)), Nps: &nps}})
		}
		if i == 100 {
			evs = append(evs, churnCalls()...)
		}
		if i == 120 {
			evs = append(evs, scenario.Event{ID: "poison-nul", Subject: stream.SubjectVisitLogged, Msg: &eventsv1.VisitLogged{TenantId: "default",
				VisitId: "vc4", RecordId: "r\x00vc4", LoggedAt: timestamppb.New(time.Date(2026, 3, 6, 10, 0, 0, 0, time.UTC))}})
		}
	}
	return evs
}

// churnCalls are churn calls of seed 000: vc0 due, logged and logged again
// (the first record stays), vc1 due, logged and due again (it keeps its
// record), vc2 logged before it is due, vc3 and vc4 due and open.
func churnCalls() []scenario.Event {
	day := time.Date(2026, 3, 5, 10, 0, 0, 0, time.UTC)
	due := func(v string) scenario.Event {
		return scenario.Event{ID: "due-" + v, Subject: stream.SubjectVisitDue, Msg: &eventsv1.VisitDue{TenantId: "default", VisitId: v,
			ServiceId: "s-" + v, Group: "churn_recovery", Customer: &typesv1.Customer{Id: "cu-" + v, NameMasked: "王*"}, DueAt: timestamppb.New(day),
			OrgUnit: "north", ServiceCompletedAt: timestamppb.New(day.AddDate(0, -7, 0))}}
	}
	logged := func(v, reason string) scenario.Event {
		return scenario.Event{ID: "logged-" + v + "-" + reason, Subject: stream.SubjectVisitLogged, Msg: &eventsv1.VisitLogged{TenantId: "default",
			VisitId: v, RecordId: "r-" + v + "-" + reason, AgentId: "a1", LoggedAt: timestamppb.New(day.Add(time.Hour)),
			Answers: []*typesv1.Answer{{Aspect: "churn_reason", Choice: reason}, {Aspect: "churn_remedy", Choice: "call"}}}}
	}
	again := due("vc1")
	again.ID = "due-vc1-again"
	return []scenario.Event{due("vc0"), logged("vc0", "price"), logged("vc0", "moved"), due("vc1"), logged("vc1", "price"), again,
		logged("vc2", "price"), due("vc2"), due("vc3"), due("vc4")}
}

// ledgerState is every row the consumer writes: counters, customer
// buckets, ledgers, the churn and round tables, the inbox and refusals.
func (b bundle) ledgerState(t *testing.T) []string {
	t.Helper()
	// Refusals by event and reason (their rows' ids are made anew each run).
	out := slices.DeleteFunc(b.state(t), func(s string) bool { return strings.HasPrefix(s, "rejected|") })
	for _, q := range []string{
		`SELECT concat_ws('|', 'monthly', tenant_id, metric, day, org_unit, policy_id, service_type, product_category, channel, agent_id, aspect, category, n, total) FROM monthly ORDER BY 1`,
		`SELECT concat_ws('|', 'daily_tenant', tenant_id, metric, day, aspect, category, n, total) FROM daily_tenant ORDER BY 1`,
		`SELECT concat_ws('|', 'monthly_tenant', tenant_id, metric, day, aspect, category, n, total) FROM monthly_tenant ORDER BY 1`,
		`SELECT concat_ws('|', 'complaint', tenant_id, complaint_id, state::text, open, deadline) FROM complaints ORDER BY 1`,
		`SELECT concat_ws('|', 'coverage', tenant_id, service_id, state::text) FROM service_coverage ORDER BY 1`,
		`SELECT concat_ws('|', 'service', tenant_id, service_id, product_category, vehicle_model, plate_masked, advisor) FROM services ORDER BY 1`,
		`SELECT concat_ws('|', 'customer', tenant_id, customer_id, last_service_at) FROM customers ORDER BY 1`,
		`SELECT concat_ws('|', 'churn', tenant_id, visit_id, service_id, customer_id, name_masked, org_unit, due_at, last_visit_at, agent_id, record_id, logged_at, reason, remedy) FROM churn_cases ORDER BY 1`,
		`SELECT concat_ws('|', 'round', tenant_id, visit_id, policy_id, org_unit, due_at, service_id, customer_id, name_masked, agent_id, attempted, unreachable, cancelled, logged_at, record_id, product_matches, quantity_matches, complaint_id) FROM round_visits ORDER BY 1`,
		`SELECT concat_ws('|', 'refused', event_id, reason) FROM rejected_events ORDER BY 1`,
	} {
		out = append(out, b.rows(t, q)...)
	}
	return out
}

// consumeInBatches publishes evs to a fresh database and stream, runs the
// consumer behind its gate with batches of batch messages until every
// event is handled or refused, and returns what it wrote.
func consumeInBatches(t *testing.T, batch int, evs []scenario.Event) (bundle, []string) {
	t.Helper()
	b := setup(t)
	_, err := b.pool.Exec(context.Background(), `DELETE FROM rebuild_requests`) // no rebuild beside
	require.NoError(t, err)
	b.consumer.Batch, b.consumer.BatchWait, b.consumer.Backoff = batch, 50*time.Millisecond, 10*time.Millisecond
	b.publish(t, evs...)
	b.run(t)
	b.waitHandled(t, len(evs))
	return b, b.ledgerState(t)
}

// A batch's effects are the effects of its events one by one: the same
// counters, customer buckets, ledgers, churn and round tables, inbox and
// refusals, whether the consumer applies the events one per transaction
// or set-wise in batches of 100 (ledger entries read and written once per
// batch). A poison message in a batch is dead-lettered alone
// while the rest of its batch commits, and what it moved in the batch's
// state before it failed is not kept.
func TestBatchEqualsOneByOne(t *testing.T) {
	evs := batchEvents()
	_, alone := consumeInBatches(t, 1, evs)
	b, batched := consumeInBatches(t, 100, evs)
	require.Equal(t, alone, batched)

	require.Equal(t, len(evs)-2, b.handled(t)-b.count(t, `SELECT count(*) FROM rejected_events`), "every event but the poison ones applied")
	require.Equal(t, 1, b.count(t, `SELECT count(*) FROM rejected_events WHERE event_id = 'poison-nps' AND reason LIKE '%nps%'`))
	require.Equal(t, 1, b.count(t, `SELECT count(*) FROM rejected_events WHERE event_id = 'poison-nul' AND reason LIKE '%gave up after%'`))
	require.Equal(t, 2, b.count(t, `SELECT count(*) FROM rejected_events`))
	require.Equal(t, 0, b.count(t, `SELECT count(*) FROM visits WHERE visit_id = 'vc4' AND state ? 'logged_at'`), "the failed record moved nothing")
	require.Equal(t, 1, b.count(t, `SELECT count(*) FROM visits WHERE visit_id = 'v21' AND state ? 'logged_at'`), "the records beside it did")
	require.Equal(t, []string{"vc0|price", "vc1|price", "vc2|", "vc3|", "vc4|"},
		b.rows(t, `SELECT visit_id || '|' || reason FROM churn_cases ORDER BY visit_id`), "each churn case's first record, once it was open")

}

// A rebuild (which replays the stream event by event) makes what the
// consumer's batches made.
func TestRebuildEqualsBatches(t *testing.T) {
	var evs []scenario.Event
	for _, ev := range batchEvents() {
		if ev.ID != "poison-nul" { // a replay gives up on a batch the database refuses
			evs = append(evs, ev)
		}
	}
	b, batched := consumeInBatches(t, 100, evs)
	_, err := b.app.Rebuild(context.Background())
	require.NoError(t, err)
	require.Equal(t, batched, b.ledgerState(t))
}
