package consumer_test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/proto"

	eventsv1 "github.com/huifang/huifang/proto/huifang/events/v1"

	"github.com/huifang/huifang/pkg/stream"
	"github.com/huifang/huifang/pkg/tenant"
	"github.com/huifang/huifang/services/intake/internal/app"
	"github.com/huifang/huifang/services/intake/internal/ingest"
)

// ingestMix is a stream that exercises what a set-wise batch decides in
// memory: returning customers whose spend crosses the key-customer rule,
// five customers naming one referrer (seed 000: referrals count toward the
// key tier), two purchases of distinct cars and one of the same car again,
// a service of a type the tenant registered, a customer of the archive
// switching referrers and back,
// one complaint sent through two channels (seed 000: recorded once), a
// resend, and an event that breaks a rule.
func ingestMix() [][]byte {
	var out [][]byte
	ev := func(id, typ, body string) {
		out = append(out, fmt.Appendf(nil, `{"source_system":"mix","source_event_id":%q,"service_type":%q,"completed_at":"2026-11-20T10:00:00Z",%s}`, id, typ, body))
	}
	for i := range 30 {
		ev(fmt.Sprintf("s-%d", i), "repair", fmt.Sprintf(`"amount_minor":200000,"staff_id":"st-%d","customer":{"external_id":"c-%d","name":"客户%d","phone":"+8613800000%03d"}`, i%3, i%6, i, i))
	}
	for i := range 5 {
		ev(fmt.Sprintf("r-%d", i), "repair", fmt.Sprintf(`"amount_minor":100,"customer":{"external_id":"ref-%d","phone":"+8613900000%03d","referred_by":"c-1"}`, i, i))
	}
	for i, vin := range []string{"LSVAU2180N2183294", "LSVAU2180N2183295", "LSVAU2180N2183294"} {
		ev(fmt.Sprintf("v-%d", i), "purchase", fmt.Sprintf(`"amount_minor":100,"vehicle":{"vin":%q},"customer":{"external_id":"car-1","phone":"+8613700000001"}`, vin))
	}
	ev("k-1", "complaint_closed", `"complaint":{"reference":"CMP-1"},"customer":{"external_id":"c-2","phone":"+8613800000999"}`)
	out = append(out, []byte(strings.Replace(string(out[len(out)-1]), `"mix"`, `"callcenter"`, 1)))
	out = append(out, out[3])                                                                                // a resend
	ev("own-1", "detailing", `"amount_minor":100,"customer":{"external_id":"c-4","phone":"+8613800000004"}`) // a tenant's own type
	ev("bad-1", "no_such_type", `"customer":{"external_id":"c-3","phone":"+8613800000003"}`)                 // dead-lettered
	ev("sw-0", "repair", `"amount_minor":100,"customer":{"external_id":"sw-1","phone":"+8613600000001","referred_by":"car-1"}`)
	ev("s-last", "repair", `"amount_minor":300000,"customer":{"external_id":"c-0","phone":"+8613800000000","referred_by":"car-1"}`) // a referrer in the batch
	return out
}

// A batch ingested set-wise leaves what the same events leave one by one:
// the same customers (tier, version, referrer, owners), services and
// refusals.
func TestBatchIngestMatchesOneByOne(t *testing.T) {
	state := func(batch int) []string {
		b := setupBatch(t, 1, batch)
		require.NoError(t, b.app.RegisterServiceType(b.ctx, app.RegisterServiceType{Tenant: tenant.Default, Type: ingest.ServiceType{Name: "detailing"}}))
		for _, p := range ingestMix() {
			b.publish(t, "application/json", p)
		}
		b.flush(t)
		b.drained(t, 2*time.Minute)
		// A customer of the archive names another referrer, then the one
		// it named before again.
		for i, ref := range []string{"c-3", "car-1"} {
			b.publish(t, "application/json", fmt.Appendf(nil, `{"source_system":"mix","source_event_id":"sw-%d","service_type":"repair","completed_at":"2026-11-21T10:00:00Z","amount_minor":100,"customer":{"external_id":"sw-1","phone":"+8613600000001","referred_by":%q}}`, i+1, ref))
		}
		b.flush(t)
		b.drained(t, 2*time.Minute)
		rows, err := b.pool.Query(b.ctx, `SELECT format('%s tier=%s v=%s ref=%s owners=%s', external_id, tier, version, referred_by, owner_ids) FROM customers ORDER BY external_id`)
		require.NoError(t, err)
		var out []string
		for rows.Next() {
			var s string
			require.NoError(t, rows.Scan(&s))
			out = append(out, s)
		}
		require.NoError(t, rows.Err())
		rows.Close()
		require.Eventually(t, func() bool {
			return b.count(t, `SELECT count(*) FROM outbox WHERE published_at IS NULL`) == 0
		}, time.Minute, 20*time.Millisecond, "every event published")
		out = append(out, published(t, b)...)
		if batch > 1 {
			require.Less(t, b.count(t, `SELECT count(DISTINCT xmin::text) FROM services`), 10, "stored in batches")
		}
		for _, q := range []string{
			`SELECT count(*) FROM services`,
			`SELECT count(*) FROM services WHERE complaint_ref <> ''`,
			`SELECT count(*) FROM rejected_events`,
			`SELECT count(*) FROM services WHERE service_type = 'detailing'`,
			`SELECT count(*) FROM services s JOIN customers c ON c.id = s.customer_id WHERE c.external_id = 'car-1'`,
		} {
			out = append(out, fmt.Sprintf("%s: %d", q, b.count(t, q)))
		}
		return out
	}
	one := state(1)
	require.Contains(t, one, "c-0 tier=key v=6 ref=car-1 owners={st-0}", "the stream reaches the rules it means to")
	require.Contains(t, one, "c-1 tier=key v=5 ref= owners={st-1}")
	require.Contains(t, one, "car-1 tier=key v=2 ref= owners={}")
	require.Equal(t, one, state(100))
}

// published summarizes the events intake published, sorted: each
// CustomerUpdated by customer, version, tier and changed fields, each
// ServiceCompleted by its source ids and its customer as it carried it.
func published(t *testing.T, b bundle) []string {
	t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, time.Minute)
	defer cancel()
	st, err := b.js.Stream(ctx, stream.EventsStream)
	require.NoError(t, err)
	info, err := st.Info(ctx)
	require.NoError(t, err)
	n := int(info.State.Msgs)
	cons, err := st.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{})
	require.NoError(t, err)
	var out []string
	for len(out) < n {
		batch, err := cons.Fetch(n-len(out), jetstream.FetchMaxWait(5*time.Second))
		require.NoError(t, err)
		for m := range batch.Messages() {
			switch m.Subject() {
			case stream.SubjectCustomerUpdated:
				ev := &eventsv1.CustomerUpdated{}
				require.NoError(t, proto.Unmarshal(m.Data(), ev))
				out = append(out, fmt.Sprintf("updated %s v=%d tier=%s %v", ev.Customer.ExternalId, ev.Version, ev.Customer.Tier, ev.ChangedFields))
			case stream.SubjectServiceCompleted:
				ev := &eventsv1.ServiceCompleted{}
				require.NoError(t, proto.Unmarshal(m.Data(), ev))
				out = append(out, fmt.Sprintf("completed %s/%s %s tier=%s", ev.SourceSystem, ev.SourceEventId, ev.Customer.ExternalId, ev.Customer.Tier))
			default:
				out = append(out, m.Subject())
			}
		}
		require.NoError(t, batch.Error())
	}
	slices.Sort(out)
	return out
}

// Each event a batch publishes carries the trace of the ingress message
// it came from, though the batch writes them together.
func TestBatchEventsKeepTheirTrace(t *testing.T) {
	b := setupBatch(t, 1, 100)
	trace := func(i int) string { return fmt.Sprintf("%032x", 0xabc000+i) }
	for i := range 5 {
		msg := nats.NewMsg(stream.SubjectIngressServiceCompleted)
		msg.Header.Set(stream.HeaderContentType, "application/json")
		msg.Header.Set("traceparent", "00-"+trace(i)+"-00f067aa0ba902b7-01")
		msg.Data = fmt.Appendf(nil, `{"source_system":"tr","source_event_id":"e-%d","service_type":"repair","completed_at":"2026-11-20T10:00:00Z","customer":{"external_id":"c-%d","phone":"+8613800000001"}}`, i, i%2)
		_, err := b.js.PublishMsgAsync(msg)
		require.NoError(t, err)
	}
	b.flush(t)
	b.drained(t, time.Minute)
	require.Less(t, b.count(t, `SELECT count(DISTINCT xmin::text) FROM services`), 5, "stored in batches")
	ctx, cancel := context.WithTimeout(b.ctx, time.Minute)
	defer cancel()
	cons, err := b.js.OrderedConsumer(ctx, stream.EventsStream, jetstream.OrderedConsumerConfig{FilterSubjects: []string{stream.SubjectServiceCompleted}})
	require.NoError(t, err)
	seen := map[string]string{}
	for len(seen) < 5 {
		m, err := cons.Next(jetstream.FetchMaxWait(10 * time.Second))
		require.NoError(t, err)
		ev := &eventsv1.ServiceCompleted{}
		require.NoError(t, proto.Unmarshal(m.Data(), ev))
		seen[ev.SourceEventId] = m.Headers().Get("traceparent")
	}
	for i := range 5 {
		require.Contains(t, seen[fmt.Sprintf("e-%d", i)], trace(i))
	}
}

// A returning customer who brings nothing new (the same name, phone and
// staff, as huifang-loadgen's returning customers often do) is neither
// saved nor announced again: one CustomerUpdated when created, one when a
// new member of staff serves them (owners), none for the others, one by
// one and in a batch.
func TestReturningCustomerUnchangedIsNotRewritten(t *testing.T) {
	for _, batch := range []int{1, 100} {
		t.Run(fmt.Sprintf("batch=%d", batch), func(t *testing.T) {
			b := setupBatch(t, 1, batch)
			for i, staff := range []string{"st-1", "st-1", "st-1", "st-2", "st-2"} {
				b.publish(t, "application/json", fmt.Appendf(nil, `{"source_system":"same","source_event_id":"e-%d","service_type":"repair","completed_at":"2026-11-20T10:00:00Z","amount_minor":100,"staff_id":%q,"customer":{"external_id":"c-1","name":"王芳","phone":"+8613800000001"}}`, i, staff))
			}
			b.flush(t)
			b.drained(t, 2*time.Minute)
			require.Equal(t, 5, b.count(t, `SELECT count(*) FROM services`))
			require.Equal(t, 2, b.count(t, `SELECT version FROM customers WHERE external_id = 'c-1'`), "created, then a new owner")
			require.Equal(t, 2, b.count(t, fmt.Sprintf(`SELECT count(*) FROM outbox WHERE subject = '%s'`, stream.SubjectCustomerUpdated)))
			require.Equal(t, 5, b.count(t, fmt.Sprintf(`SELECT count(*) FROM outbox WHERE subject = '%s'`, stream.SubjectServiceCompleted)))
		})
	}
}
