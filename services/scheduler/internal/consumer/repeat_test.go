package consumer_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	eventsv1 "github.com/huifang/huifang/proto/huifang/events/v1"
	typesv1 "github.com/huifang/huifang/proto/huifang/types/v1"

	"github.com/huifang/huifang/pkg/servicetest"
	"github.com/huifang/huifang/pkg/stream"
	"github.com/huifang/huifang/services/scheduler/internal/app"
	"github.com/huifang/huifang/services/scheduler/internal/consumer"
	"github.com/huifang/huifang/services/scheduler/internal/contact"
	"github.com/huifang/huifang/services/scheduler/internal/policy"
	"github.com/huifang/huifang/services/scheduler/internal/store"
	"github.com/huifang/huifang/services/scheduler/migrations"
)

// A customer with several services in one batch gets, set-wise, what one
// message per batch gives it: the same visits in the same states and the
// same events in the same order (an installation's pending visit stopped
// by the later repair, an instant call fired, the next ones suppressed by
// the phone cap the first one's contact fills, a once-per-customer policy
// planned once, the same service again planning nothing), and every
// VisitDue comes after its visit's VisitPlanned. The batch inserts its
// visits in one statement in their final states: no visit is inserted alone
// nor updated after.
func TestRepeatedCustomersBatchActsAsOneByOne(t *testing.T) {
	log := servicetest.Logger()
	pool := servicetest.Pool(t, "scheduler", migrations.FS)
	js := servicetest.JetStream(t)
	ctx := context.Background()
	a := &app.App{DB: pool, Now: time.Now, DueNow: func() {}}
	require.NoError(t, a.EnsureBuiltins(ctx))
	for _, p := range []policy.Policy{
		{ID: "p-instant", Trigger: policy.Trigger{ServiceTypes: []string{"repair"}},
			Steps: []policy.Step{{Channel: policy.ChannelPhone, SampleRate: 1}}},
		{ID: "p-once", Trigger: policy.Trigger{ServiceTypes: []string{"repair"}, OncePerCustomer: true},
			Steps: []policy.Step{{Channel: policy.ChannelSMS, SampleRate: 1, Offset: policy.Duration(24 * time.Hour)}}},
		{ID: "p-install", Trigger: policy.Trigger{ServiceTypes: []string{"installation"}}, Stop: policy.Stop{ServiceTypes: []string{"repair"}},
			Steps: []policy.Step{{Channel: policy.ChannelSMS, SampleRate: 1, Offset: policy.Duration(72 * time.Hour)}}},
	} {
		p.Tenant, p.Name, p.Version, p.Active, p.CreatedAt = "default", p.ID, 1, true, time.Now()
		require.NoError(t, store.InsertPolicy(ctx, pool, p))
	}
	_, err := a.SetContactPolicy(ctx, "default", contact.Rules{Caps: []contact.Cap{{Channel: policy.ChannelPhone, Max: 1, Per: policy.Duration(72 * time.Hour)}}}, "")
	require.NoError(t, err)
	_, err = pool.Exec(ctx, `CREATE TABLE visit_writes (op text NOT NULL);
CREATE FUNCTION note_visit_write() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN INSERT INTO visit_writes VALUES (TG_OP || ' ' || TG_LEVEL); RETURN NULL; END $$;
CREATE TRIGGER note_visit_insert AFTER INSERT ON planned_visits FOR EACH STATEMENT EXECUTE FUNCTION note_visit_write();
CREATE TRIGGER note_visit_update AFTER UPDATE ON planned_visits FOR EACH ROW EXECUTE FUNCTION note_visit_write()`)
	require.NoError(t, err)

	planning := consumer.New(a)[0]
	planning.Service, planning.Pool, planning.JS, planning.Log = "scheduler", pool, js, log
	b := bundle{ctx: ctx, pool: pool, js: js}
	done := time.Now().Add(-time.Hour)
	// run's events: customer run-x has an installation, then three repairs
	// (one of them sent twice); run-y one repair.
	events := func(run string) []*eventsv1.ServiceCompleted {
		ev := func(n int, service, typ, customer string) *eventsv1.ServiceCompleted {
			return &eventsv1.ServiceCompleted{EventId: fmt.Sprintf("%s-ev-%d", run, n), TenantId: "default", ServiceId: run + "-" + service,
				ServiceType: typ, OrgUnit: "shanghai", CompletedAt: timestamppb.New(done.Add(time.Duration(n) * time.Minute)),
				Customer: &typesv1.Customer{Id: run + "-" + customer, HasPhone: true, Preferences: &typesv1.ContactPreferences{TimeZone: "Asia/Shanghai"}}}
		}
		return []*eventsv1.ServiceCompleted{
			ev(1, "s-1", "installation", "x"), ev(2, "s-2", "repair", "x"), ev(3, "s-3", "repair", "y"),
			ev(4, "s-4", "repair", "x"), ev(5, "s-4", "repair", "x"), ev(6, "s-5", "repair", "x"),
		}
	}
	fetch := func(durable string, evs []*eventsv1.ServiceCompleted) []jetstream.Msg {
		for _, ev := range evs {
			publish(t, b, ev.EventId, ev)
		}
		cons, err := js.CreateOrUpdateConsumer(ctx, stream.EventsStream, jetstream.ConsumerConfig{Durable: durable,
			FilterSubject: stream.SubjectServiceCompleted, AckPolicy: jetstream.AckExplicitPolicy})
		require.NoError(t, err)
		var msgs []jetstream.Msg
		for len(msgs) < len(evs) {
			fetched, err := cons.Fetch(100, jetstream.FetchMaxWait(time.Second))
			require.NoError(t, err)
			for m := range fetched.Messages() {
				var ev eventsv1.ServiceCompleted
				require.NoError(t, proto.Unmarshal(m.Data(), &ev))
				if strings.HasPrefix(ev.EventId, durable+"-") {
					msgs = append(msgs, m)
				}
			}
		}
		return msgs
	}
	writes := func() map[string]int {
		rows, err := pool.Query(ctx, `SELECT op, count(*) FROM visit_writes GROUP BY op`)
		require.NoError(t, err)
		out := map[string]int{}
		for rows.Next() {
			var op string
			var n int
			require.NoError(t, rows.Scan(&op, &n))
			out[op] = n
		}
		require.NoError(t, rows.Err())
		_, err = pool.Exec(ctx, `DELETE FROM visit_writes`)
		require.NoError(t, err)
		return out
	}

	// One message per batch: each alone.
	for _, m := range fetch("one", events("one")) {
		planning.ProcessBatch(ctx, []jetstream.Msg{m})
	}
	alone := writes()
	require.Greater(t, alone["INSERT STATEMENT"], 1, "alone, a visit is inserted per message")
	require.Positive(t, alone["UPDATE ROW"], "alone, the installation's visit is stored, then cancelled")
	// All in one batch.
	planning.ProcessBatch(ctx, fetch("all", events("all")))
	require.Equal(t, map[string]int{"INSERT STATEMENT": 1}, writes(), "the batch's visits in one insert, in their final states")

	one, all := history(t, b, "one"), history(t, b, "all")
	require.NotEmpty(t, one.visits)
	require.Equal(t, one.visits, all.visits, "the same visits in the same states")
	require.Equal(t, one.events, all.events, "the same events in the same order, customer by customer")
	require.Equal(t, []string{
		"VisitPlanned s-1/p-install", "VisitCancelled s-1/p-install", "VisitPlanned s-2/p-instant", "VisitDue s-2/p-instant",
		"VisitPlanned s-2/p-once", "VisitPlanned s-4/p-instant", "VisitCancelled s-4/p-instant", "VisitPlanned s-5/p-instant",
		"VisitCancelled s-5/p-instant",
	}, all.events["x"])
	require.Equal(t, []string{"s-1/p-install cancelled", "s-2/p-instant due", "s-2/p-once planned", "s-4/p-instant suppressed",
		"s-5/p-instant suppressed"}, all.visits["x"], "the later calls suppressed by the cap the first one filled")
	for _, h := range []runHistory{one, all} {
		for id, seqs := range h.seqs {
			if due, ok := seqs[stream.SubjectVisitDue]; ok {
				require.Less(t, seqs[stream.SubjectVisitPlanned], due, "visit %s: VisitPlanned before VisitDue", id)
			}
		}
	}
	var handled int
	require.NoError(t, pool.QueryRow(ctx, `SELECT count(*) FROM inbox WHERE consumer = $1`, consumer.DurableServiceCompleted).Scan(&handled))
	require.Equal(t, 12, handled)
}

// runHistory is what a run left, its prefix taken off: each customer's
// visits ("service/policy status", by service and policy) and events in the
// order of the outbox ("subject service/policy"), and each visit's events'
// outbox sequence numbers by subject.
type runHistory struct {
	visits map[string][]string
	events map[string][]string
	seqs   map[string]map[string]int64
}

func history(t *testing.T, b bundle, run string) runHistory {
	t.Helper()
	h := runHistory{visits: map[string][]string{}, events: map[string][]string{}, seqs: map[string]map[string]int64{}}
	type key struct{ customer, name string }
	byID := map[string]key{}
	rows, err := b.pool.Query(b.ctx, `SELECT id, customer_id, service_id, policy_id, status FROM planned_visits
WHERE customer_id LIKE $1 || '-%' ORDER BY service_id, policy_id, step, occurrence`, run)
	require.NoError(t, err)
	for rows.Next() {
		var id, customer, service, pol, status string
		require.NoError(t, rows.Scan(&id, &customer, &service, &pol, &status))
		k := key{strings.TrimPrefix(customer, run+"-"), strings.TrimPrefix(service, run+"-") + "/" + pol}
		byID[id] = k
		h.visits[k.customer] = append(h.visits[k.customer], k.name+" "+status)
	}
	require.NoError(t, rows.Err())
	rows, err = b.pool.Query(b.ctx, `SELECT seq, subject, payload FROM outbox WHERE subject = ANY($1) ORDER BY seq`,
		[]string{stream.SubjectVisitPlanned, stream.SubjectVisitDue, stream.SubjectVisitCancelled})
	require.NoError(t, err)
	for rows.Next() {
		var seq int64
		var subject string
		var payload []byte
		require.NoError(t, rows.Scan(&seq, &subject, &payload))
		var ev interface{ GetVisitId() string }
		switch subject {
		case stream.SubjectVisitPlanned:
			ev = &eventsv1.VisitPlanned{}
		case stream.SubjectVisitDue:
			ev = &eventsv1.VisitDue{}
		default:
			ev = &eventsv1.VisitCancelled{}
		}
		require.NoError(t, proto.Unmarshal(payload, ev.(proto.Message)))
		k, ok := byID[ev.GetVisitId()]
		if !ok {
			continue // another run's
		}
		name := string((ev.(proto.Message)).ProtoReflect().Descriptor().Name())
		h.events[k.customer] = append(h.events[k.customer], name+" "+k.name)
		if h.seqs[ev.GetVisitId()] == nil {
			h.seqs[ev.GetVisitId()] = map[string]int64{}
		}
		if _, seen := h.seqs[ev.GetVisitId()][subject]; !seen {
			h.seqs[ev.GetVisitId()][subject] = seq
		}
	}
	require.NoError(t, rows.Err())
	return h
}
