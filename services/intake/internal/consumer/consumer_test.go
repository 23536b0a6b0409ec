package consumer_test

import (
	"context"
	"fmt"
	"math/rand/v2"
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
	"github.com/huifang/huifang/services/intake/internal/app"
	"github.com/huifang/huifang/services/intake/internal/consumer"
	"github.com/huifang/huifang/services/intake/internal/privacy"
	"github.com/huifang/huifang/services/intake/internal/store"
	"github.com/huifang/huifang/services/intake/internal/tier"
	"github.com/huifang/huifang/services/intake/migrations"
)

var now = time.Date(2026, 11, 28, 12, 0, 0, 0, time.UTC)

type bundle struct {
	ctx  context.Context
	pool *pgxpool.Pool
	js   jetstream.JetStream
	app  *app.App
}

// setup runs intake's ingress consumer (one durable, workers handlers) and
// outbox relay against a fresh database and an in-process NATS server, as
// the service does.
func setup(tb testing.TB, workers int) bundle {
	tb.Helper()
	return setupBatch(tb, workers, 0)
}

// setupBatch is setup with the consumer applying up to batch messages per
// transaction (inbox.Consumer.Batch).
func setupBatch(tb testing.TB, workers, batch int) bundle {
	tb.Helper()
	b, c, relay := newIngress(tb)
	c.Workers, c.Batch = workers, batch
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{}, 2)
	go func() { _ = c.Run(ctx); done <- struct{}{} }()
	go func() { _ = relay.Run(ctx); done <- struct{}{} }()
	tb.Cleanup(func() {
		cancel()
		<-done
		<-done
	})
	return b
}

// newIngress is intake's app with its ingress consumer and outbox relay,
// against a fresh database and an in-process NATS server, none running.
func newIngress(tb testing.TB) (bundle, *inbox.Consumer, *outbox.Relay) {
	tb.Helper()
	pool := servicetest.Pool(tb, "intake", migrations.FS)
	js := servicetest.JetStream(tb)
	cipher, err := privacy.New(privacy.DevKeys, privacy.DevHashKey)
	require.NoError(tb, err)
	rules, err := tier.Parse(tier.DefaultRules)
	require.NoError(tb, err)
	clock := func() time.Time { return now }
	log := servicetest.Logger()
	relay := outbox.NewRelay(pool, js, log, "intake")
	a := &app.App{DB: pool, Store: &store.Store{Cipher: cipher}, Rules: rules, Relay: relay, Now: clock, Log: log}
	c := consumer.Ingress(a)
	c.Pool, c.JS, c.Log, c.Relay = pool, js, log, relay
	return bundle{ctx: context.Background(), pool: pool, js: js, app: a}, c, relay
}

func (b bundle) count(tb testing.TB, q string) int {
	tb.Helper()
	var n int
	require.NoError(tb, b.pool.QueryRow(b.ctx, q).Scan(&n))
	return n
}

func (b bundle) publish(tb testing.TB, contentType string, data []byte) {
	tb.Helper()
	msg := nats.NewMsg(stream.SubjectIngressServiceCompleted)
	if contentType != "" {
		msg.Header.Set(stream.HeaderContentType, contentType)
	}
	msg.Data = data
	_, err := b.js.PublishMsgAsync(msg)
	require.NoError(tb, err)
}

// drained waits until the ingress consumer has handled and acknowledged
// every message. It waits as long as the consumer makes progress and fails
// only when nothing moved for stall: a busy machine slows a large replay
// down without making it wrong.
func (b bundle) drained(tb testing.TB, stall time.Duration) {
	tb.Helper()
	var last [3]uint64
	moved := time.Now()
	for {
		cons, err := b.js.Consumer(b.ctx, stream.IngressStream, consumer.IngressDurable)
		if err == nil {
			info, err := cons.Info(b.ctx)
			if err == nil {
				if info.NumPending == 0 && info.NumAckPending == 0 && info.Delivered.Consumer > 0 {
					return
				}
				now := [3]uint64{info.AckFloor.Consumer, info.Delivered.Consumer, info.NumPending}
				if now != last {
					last, moved = now, time.Now()
				}
			}
		}
		if time.Since(moved) > stall {
			tb.Fatalf("the ingress consumer made no progress for %s (ack floor %d, delivered %d, pending %d)", stall, last[0], last[1], last[2])
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (b bundle) rejectedID(tb testing.TB, tenant string) string {
	tb.Helper()
	var id string
	require.NoError(tb, b.pool.QueryRow(b.ctx, `SELECT id FROM rejected_events WHERE tenant_id = $1`, tenant).Scan(&id))
	return id
}

func (b bundle) flush(tb testing.TB) {
	tb.Helper()
	select {
	case <-b.js.PublishAsyncComplete():
	case <-time.After(30 * time.Second):
		tb.Fatal("publishing did not complete")
	}
}

// Bad input on the NATS ingress lands in rejected_events and on
// HUIFANG_DLQ with the field and the rule; good input around it is stored.
func TestIngressDeadLetters(t *testing.T) {
	b := setup(t, 1)
	b.publish(t, "application/json", []byte(`{"source_system":`))
	refused := `{"tenant_id":"acme","source_system":"erp","source_event_id":"e-1","service_type":"repair","completed_at":"2026-11-28T10:00:00Z","customer":{"phone":"+8613800000001"}}`
	b.publish(t, "application/json", []byte(refused))
	b.publish(t, "application/json", []byte(`{"source_system":"erp","source_event_id":"e-2","service_type":"repair","completed_at":"2026-11-28T10:00:00Z","customer":{"external_id":"c-1","phone":"+8613800000001"}}`))
	b.flush(t)
	b.drained(t, 30*time.Second)
	require.Equal(t, 2, b.count(t, `SELECT count(*) FROM rejected_events`))
	require.Equal(t, 1, b.count(t, `SELECT count(*) FROM services`))
	require.Eventually(t, func() bool { return b.count(t, `SELECT count(*) FROM outbox WHERE published_at IS NULL`) == 0 }, 30*time.Second, 20*time.Millisecond)

	cons, err := b.js.OrderedConsumer(b.ctx, stream.DLQStream, jetstream.OrderedConsumerConfig{FilterSubjects: []string{stream.DeadLetterSubject("intake")}})
	require.NoError(t, err)
	var fields []string
	for range 2 {
		msg, err := cons.Next(jetstream.FetchMaxWait(10 * time.Second))
		require.NoError(t, err)
		fields = append(fields, msg.Headers().Get(stream.HeaderField))
		require.Empty(t, msg.Data(), "the dead letter carries no payload: it may hold personal data")
		require.Contains(t, msg.Headers().Get(stream.HeaderPayloadOmitted), "sealed in intake's rejected_events row "+msg.Headers().Get(stream.HeaderRejectedID))
		require.Equal(t, stream.SubjectIngressServiceCompleted, msg.Headers().Get(stream.HeaderOrigSubject))
	}
	require.ElementsMatch(t, []string{"payload", "customer.external_id"}, fields)

	// rejected_events keeps it sealed (seeds 000, 001), under its tenant.
	var stored []byte
	require.NoError(t, b.pool.QueryRow(b.ctx, `SELECT payload FROM rejected_events WHERE tenant_id = 'acme'`).Scan(&stored))
	require.True(t, privacy.IsSealed(stored))
	require.NotContains(t, string(stored), "13800000001")
	rej, err := b.app.GetRejected(b.ctx, "acme", b.rejectedID(t, "acme"))
	require.NoError(t, err)
	require.Equal(t, refused, string(rej.Payload))
}

// The archive after a stream of 10,000 events, 20% of them duplicates (half
// resent byte for byte, half re-encoded as protobuf), in shuffled order and
// handled by eight concurrent handlers, is
// the archive of the 8,000 distinct events in order: each service once, each
// customer once with the data of its newest event.
func TestReplayShuffledStreamWithDuplicates(t *testing.T) {
	b := setup(t, 8)
	const customers, perCustomer, duplicates = 500, 16, 2000
	type sent struct {
		ev   *eventsv1.ServiceCompleted
		json []byte
	}
	var unique []sent
	base := now.AddDate(0, -1, 0)
	for k := range customers {
		for i := range perCustomer {
			ev := &eventsv1.ServiceCompleted{
				SourceSystem: "dms", SourceEventId: fmt.Sprintf("e-%d-%d", k, i), ServiceType: "maintenance",
				CompletedAt: timestamppb.New(base.Add(time.Duration(i) * time.Hour)), AmountMinor: 100,
				StaffId:  fmt.Sprintf("s-%d", i%3),
				Customer: &typesv1.Customer{ExternalId: fmt.Sprintf("c-%d", k), Name: fmt.Sprintf("name-%d-%d", k, i), Phone: fmt.Sprintf("+86138%04d%04d", k, i)},
			}
			js := fmt.Appendf(nil, `{"source_system":"dms","source_event_id":"e-%d-%d","service_type":"maintenance","completed_at":%q,"amount_minor":100,"staff_id":"s-%d","customer":{"external_id":"c-%d","name":"name-%d-%d","phone":"+86138%04d%04d"}}`,
				k, i, ev.CompletedAt.AsTime().Format(time.RFC3339), i%3, k, k, i, k, i)
			unique = append(unique, sent{ev: ev, json: js})
		}
	}
	rng := rand.New(rand.NewPCG(3, 20))
	type msg struct {
		ct   string
		data []byte
	}
	var all []msg
	for _, u := range unique {
		all = append(all, msg{"application/json", u.json})
	}
	for d := range duplicates {
		u := unique[rng.IntN(len(unique))]
		if d%2 == 0 {
			all = append(all, msg{"application/json", u.json})
		} else {
			data, err := proto.Marshal(u.ev)
			require.NoError(t, err)
			all = append(all, msg{"application/protobuf", data})
		}
	}
	rng.Shuffle(len(all), func(i, j int) { all[i], all[j] = all[j], all[i] })
	require.Len(t, all, 10000)
	start := time.Now()
	for i, m := range all {
		b.publish(t, m.ct, m.data)
		if i%1000 == 999 {
			b.flush(t)
		}
	}
	b.flush(t)

	b.drained(t, 60*time.Second)
	t.Logf("10,000 events stored in %s", time.Since(start))
	require.Equal(t, 0, b.count(t, `SELECT count(*) FROM rejected_events`))
	require.Equal(t, customers, b.count(t, `SELECT count(*) FROM customers`))
	require.Equal(t, customers*perCustomer, b.count(t, `SELECT count(*) FROM outbox WHERE subject = '`+stream.SubjectServiceCompleted+`'`))
	for _, k := range []int{0, 1, 17, 250, 499} {
		c, err := b.app.GetCustomer(b.ctx, app.CustomerQuery{Tenant: "default", ExternalID: fmt.Sprintf("c-%d", k)})
		require.NoError(t, err)
		last := perCustomer - 1
		require.Equal(t, fmt.Sprintf("name-%d-%d", k, last), c.Name, "the newest event's data, whatever the order")
		require.Equal(t, fmt.Sprintf("+86138%04d%04d", k, last), c.Phone)
		require.EqualValues(t, 100*perCustomer, c.Metrics.SpendYearMinor)
		require.ElementsMatch(t, []string{"s-0", "s-1", "s-2"}, c.Owners)
	}
	// Every customer holds its newest data: no older event overwrote a newer
	// one (names are sealed at rest: read through the store).
	stored, err := b.app.Store.Customers(b.ctx, b.app.DB, store.CustomerFilter{Tenant: "default"}, customers+1, "")
	require.NoError(t, err)
	require.Len(t, stored, customers)
	for _, c := range stored {
		require.Equal(t, fmt.Sprintf("name-%s-%d", c.ExternalID[2:], perCustomer-1), c.Name, c.ExternalID)
	}
}

// BenchmarkIngestThroughNATS measures ingest throughput: b.N distinct events
// (new and returning customers) published to the NATS ingress and stored,
// with their outbox events, in Postgres by the ingress consumer.
//
//	go test -run '^$' -bench IngestThroughNATS -benchtime 5000x ./internal/consumer/
func BenchmarkIngestThroughNATS(b *testing.B) {
	for _, run := range []struct{ workers, batch int }{{1, 1}, {4, 1}, {1, 100}, {4, 100}} {
		b.Run(fmt.Sprintf("workers=%d/batch=%d", run.workers, run.batch), func(b *testing.B) {
			bb := setupBatch(b, run.workers, run.batch)
			payloads := make([][]byte, b.N)
			for i := range b.N {
				payloads[i] = fmt.Appendf(nil, `{"source_system":"bench","source_event_id":"e-%d","service_type":"repair","completed_at":"2026-11-20T10:00:00Z","amount_minor":%d,"staff_id":"s-%d","customer":{"external_id":"c-%d","name":"客户%d","phone":"+86138%08d"}}`,
					i, 1000+i, i%7, i%(b.N/4+1), i, i)
			}
			b.ResetTimer()
			m := servicetest.Start(b, bb.pool)
			for i, p := range payloads {
				bb.publish(b, "application/json", p)
				if i%1000 == 999 {
					bb.flush(b)
				}
			}
			bb.flush(b)
			bb.drained(b, 10*time.Minute)
			r := m.Stop(b)
			b.StopTimer()
			require.Equal(b, b.N, bb.count(b, `SELECT count(*) FROM services`))
			r.Report(b, b.N)
		})
	}
}
