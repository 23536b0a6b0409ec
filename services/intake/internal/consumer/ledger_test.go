package consumer_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/known/timestamppb"

	eventsv1 "github.com/huifang/huifang/proto/huifang/events/v1"
	typesv1 "github.com/huifang/huifang/proto/huifang/types/v1"

	"github.com/huifang/huifang/pkg/servicetest"
	"github.com/huifang/huifang/pkg/stream"
	"github.com/huifang/huifang/services/intake/internal/app"
	"github.com/huifang/huifang/services/intake/internal/consumer"
	"github.com/huifang/huifang/services/intake/internal/store"
	"github.com/huifang/huifang/services/intake/migrations"
)

// ledgerMsg is one message of the contact ledger's subjects.
type ledgerMsg struct {
	subject, msgID string
	ev             proto.Message
}

// ledgerTraffic is what n completed services bring the contact ledger, in
// the order the services publish it: per service its completion, the
// visit's planning, fall due, claim (no customer: attached through the
// visit), attempt and record; one in four services a complaint
// (escalated, acknowledged and closed without a customer, resolved with
// one); one in ten visits cancelled (no customer); one in twenty an event
// of a visit nobody links (stays unattached), and one in twenty-five a
// resend of the claim under another message id (the same entry); with
// bad, one in fifty a claim without a time (dead-lettered).
func ledgerTraffic(n int, bad bool) []ledgerMsg {
	t0 := now.Add(-72 * time.Hour)
	ts := func(i, step int) *timestamppb.Timestamp {
		return timestamppb.New(t0.Add(time.Duration(i)*time.Second + time.Duration(step)*time.Minute))
	}
	var out []ledgerMsg
	// Every event of the ledger has an event_id and a tenant_id.
	setID := func(ev proto.Message, id string) proto.Message {
		m := ev.ProtoReflect()
		m.Set(m.Descriptor().Fields().ByName("event_id"), protoreflect.ValueOfString(id))
		m.Set(m.Descriptor().Fields().ByName("tenant_id"), protoreflect.ValueOfString("default"))
		return ev
	}
	emit := func(subject string, ev proto.Message) {
		id := fmt.Sprintf("ev-%d", len(out))
		out = append(out, ledgerMsg{subject: subject, msgID: id, ev: setID(ev, id)})
	}
	phone := typesv1.Channel_CHANNEL_PHONE
	for i := range n {
		c, v, s := fmt.Sprintf("c-%d", i%(n/3+1)), fmt.Sprintf("v-%d", i), fmt.Sprintf("s-%d", i)
		emit(stream.SubjectServiceCompleted, &eventsv1.ServiceCompleted{ServiceId: s, ServiceType: "repair", StaffId: "st-1",
			Customer: &typesv1.Customer{Id: c}, CompletedAt: ts(i, 0)})
		emit(stream.SubjectVisitPlanned, &eventsv1.VisitPlanned{VisitId: v, CustomerId: c, ServiceId: s, ServiceType: "repair", Channel: phone, DueAt: ts(i, 1)})
		emit(stream.SubjectVisitDue, &eventsv1.VisitDue{VisitId: v, Customer: &typesv1.Customer{Id: c}, ServiceId: s, Channel: phone, DueAt: ts(i, 1)})
		emit(stream.SubjectVisitAssigned, &eventsv1.VisitAssigned{VisitId: v, AgentId: fmt.Sprintf("a-%d", i%7), AssignedAt: ts(i, 2)})
		if i%25 == 24 {
			// The same claim again under another message id.
			last := out[len(out)-1]
			out = append(out, ledgerMsg{subject: last.subject, msgID: last.msgID + "-again", ev: last.ev})
		}
		if i%20 == 19 {
			emit(stream.SubjectVisitAssigned, &eventsv1.VisitAssigned{VisitId: "orphan-" + v, AgentId: "a-1", AssignedAt: ts(i, 2)})
		}
		if bad && i%50 == 49 {
			emit(stream.SubjectVisitAssigned, &eventsv1.VisitAssigned{VisitId: v, AgentId: "a-1"})
		}
		if i%10 == 9 {
			emit(stream.SubjectVisitCancelled, &eventsv1.VisitCancelled{VisitId: v, CancelledAt: ts(i, 3)})
			continue
		}
		emit(stream.SubjectVisitAttempted, &eventsv1.VisitAttempted{VisitId: v, CustomerId: c, TaskId: "t-" + v, AgentId: "a-1", Channel: phone,
			Attempt: 1, AttemptedAt: ts(i, 4)})
		emit(stream.SubjectVisitLogged, &eventsv1.VisitLogged{VisitId: v, CustomerId: c, RecordId: "r-" + v, ServiceId: s, Channel: phone, LoggedAt: ts(i, 5)})
		if i%4 == 3 {
			cp := "cp-" + v
			emit(stream.SubjectComplaintEscalated, &eventsv1.ComplaintEscalated{ComplaintId: cp, CustomerId: c, VisitId: v, ServiceId: s,
				Severity: "SEVERITY_URGENT", Level: 1, EscalatedAt: ts(i, 6)})
			emit(stream.SubjectComplaintAcknowledged, &eventsv1.ComplaintAcknowledged{ComplaintId: cp, By: "o-1", At: ts(i, 7)})
			emit(stream.SubjectComplaintResolved, &eventsv1.ComplaintResolved{ComplaintId: cp, CustomerId: c, VisitId: v, By: "o-1", ResolvedAt: ts(i, 8)})
			emit(stream.SubjectComplaintClosed, &eventsv1.ComplaintClosed{ComplaintId: cp, Outcome: "closed", By: "o-1", At: ts(i, 9)})
		}
	}
	return out
}

// runLedger publishes msgs to a fresh embedded NATS first, then runs the
// contact ledger's consumer (up to batch messages per transaction) on a
// fresh database until it has handled every one: bad of them refused
// (dead-lettered), the others acknowledged.
func runLedger(tb testing.TB, msgs []ledgerMsg, batch, bad int) servicetest.Run {
	tb.Helper()
	pool := servicetest.Pool(tb, "intake", migrations.FS)
	js := servicetest.JetStream(tb)
	log := servicetest.Logger()
	a := &app.App{DB: pool, Store: &store.Store{}, Now: func() time.Time { return now }, Log: log}
	c := consumer.Ledger(a)
	c.Pool, c.JS, c.Log, c.Batch, c.BatchWait = pool, js, log, batch, 5*time.Millisecond
	pub := servicetest.NewPublisher(tb, js)
	for _, m := range msgs {
		pub.Proto(m.subject, m.msgID, m.ev)
	}
	pub.Flush()
	// The ledger is idempotent and keeps no inbox entries: every message is
	// handled once the durable acknowledged everything the stream holds.
	return servicetest.Measure(tb, pool, servicetest.Until{
		Query: `SELECT count(*) = $1 FROM rejected_events`,
		Args:  []any{bad},
		Also:  servicetest.Acknowledged(tb, js, c.Stream, c.Durable),
	}, c.Run)
}

// dump is a table's rows as text, in key order.
func dump(tb testing.TB, pool *pgxpool.Pool, table, order string) string {
	tb.Helper()
	var s string
	require.NoError(tb, pool.QueryRow(context.Background(), `SELECT coalesce(string_agg(r::text, E'\n' ORDER BY `+order+`), '') FROM `+table+` r`).Scan(&s))
	return s
}

// The contact ledger's consumer writes a batch set-wise (the entries in one
// statement, the links in another) to the same ledger as handling its
// messages one by one, whatever order they come in: an entry that names no
// customer (a claim, a cancellation, a complaint's acknowledgement) is
// attached through its visit's or complaint's link whether the link came
// before it, after it, in its batch or in another; an orphan stays
// unattached; a resend is stored once; an event without a time is
// dead-lettered and the rest of its batch kept.
func TestLedgerBatchMatchesOneByOne(t *testing.T) {
	const services = 300
	msgs := ledgerTraffic(services, true)
	rand.New(rand.NewPCG(15, 3)).Shuffle(len(msgs), func(i, j int) { msgs[i], msgs[j] = msgs[j], msgs[i] })
	bad := 0
	for _, m := range msgs {
		if va, ok := m.ev.(*eventsv1.VisitAssigned); ok && va.AssignedAt == nil {
			bad++
		}
	}
	require.Positive(t, bad)

	one := runLedger(t, msgs, 1, bad)
	batched := runLedger(t, msgs, 100, bad)
	for _, table := range []struct{ name, order string }{{"ledger_entries", "tenant_id, id"}, {"ledger_links", "tenant_id, kind, ref"}} {
		require.Equal(t, dump(t, one.Pool, table.name, table.order), dump(t, batched.Pool, table.name, table.order), table.name)
	}

	// And the ledger is the one the traffic makes.
	rows, err := batched.Pool.Query(context.Background(), `SELECT id, visit_id, complaint_id, service_id, customer_id FROM ledger_entries`)
	require.NoError(t, err)
	type entry struct{ id, visit, complaint, service, customer string }
	entries, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (entry, error) {
		var e entry
		return e, r.Scan(&e.id, &e.visit, &e.complaint, &e.service, &e.customer)
	})
	require.NoError(t, err)
	distinct := map[string]bool{}
	for _, m := range msgs {
		if va, ok := m.ev.(*eventsv1.VisitAssigned); !ok || va.AssignedAt != nil {
			distinct[strings.TrimSuffix(m.msgID, "-again")] = true
		}
	}
	require.Len(t, entries, len(distinct), "one entry per event, resends once, refusals none")
	orphans := 0
	for _, e := range entries {
		ref := e.visit
		switch {
		case ref == "" && e.complaint != "":
			ref = strings.TrimPrefix(e.complaint, "cp-")
		case ref == "":
			ref = "v-" + strings.TrimPrefix(e.service, "s-") // a completed service
		}
		if strings.HasPrefix(ref, "orphan-") {
			orphans++
			require.Empty(t, e.customer, "%s: no one links an orphan's visit", e.id)
			continue
		}
		var i int
		_, err := fmt.Sscanf(ref, "v-%d", &i)
		require.NoError(t, err, e.id)
		require.Equal(t, fmt.Sprintf("c-%d", i%(services/3+1)), e.customer, "%s (visit %s, complaint %s)", e.id, e.visit, e.complaint)
	}
	require.Equal(t, services/20, orphans)
}

// BenchmarkLedgerThroughNATS measures the contact ledger's consumer alone:
// the events b.N completed services bring it (ledgerTraffic, shuffled a
// little: the services' events interleave) are published to an embedded
// NATS first, then the real consumer (batches of 100, the runtime's
// default) runs until it has handled them all. It reports events/s and,
// when the server has pg_stat_statements loaded (scripts/postgres.sh
// preloads it), the SQL statements per event (the benchmark's polling left
// out):
//
//	go test -run '^$' -bench LedgerThroughNATS -benchtime 1000x ./internal/consumer/
func BenchmarkLedgerThroughNATS(b *testing.B) {
	msgs := ledgerTraffic(b.N, false)
	r := rand.New(rand.NewPCG(15, 1))
	for i := range msgs {
		// Each event moves at most 30 places: services overlap.
		j := min(len(msgs)-1, i+r.IntN(30))
		msgs[i], msgs[j] = msgs[j], msgs[i]
	}
	b.ResetTimer()
	run := runLedger(b, msgs, 100, 0)
	b.StopTimer()
	run.Report(b, len(msgs))
}
