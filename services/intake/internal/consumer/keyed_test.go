package consumer_test

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"

	"github.com/huifang/huifang/pkg/inbox"
	"github.com/huifang/huifang/pkg/servicetest"
	"github.com/huifang/huifang/pkg/stream"
	"github.com/huifang/huifang/services/intake/internal/consumer"
)

// keyedIngress is intake's ingress consumer on a fresh database and an
// in-process NATS server, not running: the test hands it the messages.
type keyedIngress struct {
	bundle
	c *inbox.Consumer
}

func setupKeyed(t *testing.T) keyedIngress {
	t.Helper()
	b, c, _ := newIngress(t)
	c.Batch = 100
	return keyedIngress{bundle: b, c: c}
}

// ingressEvent is an ingress payload: source id id, for customer cust
// (named name), with the JSON fields extra.
func ingressEvent(id, cust, name, extra string) []byte {
	return fmt.Appendf(nil, `{"source_system":"dms","source_event_id":%q,"completed_at":"2026-11-27T10:00:00Z","customer":{"external_id":%q,"name":%q,"phone":"+8613800000001"}%s}`,
		id, cust, name, extra)
}

// keyedTraffic are the ingress messages of TestIngressKeyedApplyOnce: five
// events, one refused and one that is not JSON, then three messages that
// carry the source ids of events before them with another payload.
func keyedTraffic() [][]byte {
	return [][]byte{
		ingressEvent("k-1", "c-1", "甲", `,"service_type":"repair","amount_minor":100,"staff_id":"s-1"`),
		ingressEvent("k-2", "c-1", "甲", `,"service_type":"complaint_closed","amount_minor":100,"complaint":{"reference":"R-1"}`),
		// The complaint of k-2 through another channel: a duplicate that stores no service.
		ingressEvent("k-3", "c-1", "乙", `,"service_type":"complaint_closed","complaint":{"reference":"R-1"}`),
		ingressEvent("k-4", "c-2", "丙", `,"service_type":"maintenance","amount_minor":100`),
		// Refused: no service type.
		ingressEvent("k-5", "c-3", "丁", ``),
		[]byte(`{"source_system":`),
		ingressEvent("k-6", "c-1", "戊", `,"service_type":"installation","amount_minor":900`),
		// The source ids of k-1, k-3 and k-4 again, with another payload:
		// a valid one, one that stores a service where k-3 stored none, and
		// one that is refused.
		ingressEvent("k-1", "c-1", "己", `,"service_type":"repair","amount_minor":5000,"staff_id":"s-9"`),
		ingressEvent("k-3", "c-1", "庚", `,"service_type":"repair"`),
		ingressEvent("k-4", "c-2", "辛", `,"service_type":"teleportation"`),
	}
}

// publishAll publishes the payloads and takes them back, in order,
// through a consumer of the test's own (the test hands them to the
// ingress consumer).
func (k keyedIngress) publishAll(t *testing.T, payloads [][]byte) []jetstream.Msg {
	t.Helper()
	for _, p := range payloads {
		k.publish(t, "application/json", p)
	}
	k.flush(t)
	return servicetest.Fetch(t, k.js, stream.IngressStream, []string{stream.SubjectIngressServiceCompleted}, len(payloads))
}

// appliedAlone is a keyed ingress that applied the events of traffic (its
// first seven messages) one by one, and the messages of traffic.
func appliedAlone(t *testing.T, traffic [][]byte) (keyedIngress, []jetstream.Msg) {
	t.Helper()
	k := setupKeyed(t)
	msgs := k.publishAll(t, traffic)
	for _, m := range msgs[:7] {
		k.c.Process(context.Background(), m)
	}
	return k, msgs
}

func (k keyedIngress) rows(t *testing.T, q string) []string {
	t.Helper()
	rows, err := k.pool.Query(k.ctx, q)
	require.NoError(t, err)
	out, err := pgx.CollectRows(rows, pgx.RowTo[string])
	require.NoError(t, err)
	return out
}

// stateOf is what the events made: the services, the customers (their
// figures and version), the outbox's events by subject, the refused inputs.
func (k keyedIngress) stateOf(t *testing.T) []string {
	t.Helper()
	out := k.rows(t, `SELECT concat_ws('|', 'service', s.source_event_id, c.external_id, s.service_type, s.amount_minor, s.staff_id, s.complaint_ref)
FROM services s JOIN customers c ON c.id = s.customer_id ORDER BY 1`)
	out = append(out, k.rows(t, `SELECT concat_ws('|', 'customer', external_id, version, tier, owner_ids::text) FROM customers ORDER BY 1`)...)
	out = append(out, k.rows(t, `SELECT concat_ws('|', 'outbox', subject, count(*)) FROM outbox GROUP BY subject ORDER BY 1`)...)
	return append(out, k.rows(t, `SELECT concat_ws('|', 'rejected', event_id, field) FROM rejected_events ORDER BY 1`)...)
}

// The ingress events that name their source keep no inbox row, yet each
// is applied once: held twice in one batch, delivered again in a later
// batch (an ack lost after the commit: the consumer crashed between the
// two), again alone, and in two transactions at once; a message with the
// source ids of one applied before and another payload changes nothing,
// as its inbox row made it, even one that would be refused. Only the
// duplicate of a complaint (which stores no service of its own) claims an
// inbox entry; a refused message is dead-lettered once per stored message.
func TestIngressKeyedApplyOnce(t *testing.T) {
	traffic := keyedTraffic()
	ctx := context.Background()

	ref, msgs := appliedAlone(t, traffic)
	want := ref.stateOf(t)
	require.Contains(t, want, "service|k-1|c-1|repair|100|s-1|")
	require.Contains(t, want, "service|k-2|c-1|complaint_closed|100||R-1")
	require.Contains(t, want, "rejected|ingress:default/dms/k-5|service_type")
	require.Len(t, ref.rows(t, `SELECT id FROM services`), 4, "k-1, k-2, k-4, k-6")
	for _, m := range msgs[7:] {
		ref.c.Process(ctx, m)
	}
	require.Equal(t, want, ref.stateOf(t), "another payload under the source ids of an applied event")
	require.Equal(t, []string{"ingress:default/dms/k-3"}, ref.rows(t, `SELECT event_id FROM inbox ORDER BY 1`),
		"the only inbox entry: the complaint's duplicate")

	b := setupKeyed(t)
	msgs = b.publishAll(t, traffic)
	b.c.ProcessBatch(ctx, append(slices.Clone(msgs[:7]), msgs[0], msgs[2], msgs[3], msgs[4]))
	require.Equal(t, want, b.stateOf(t), "held twice in one batch")
	b.c.ProcessBatch(ctx, msgs[:7])
	require.Equal(t, want, b.stateOf(t), "delivered again in a later batch")
	for _, m := range msgs[:7] {
		b.c.Process(ctx, m)
	}
	require.Equal(t, want, b.stateOf(t), "delivered again alone")
	b.c.ProcessBatch(ctx, msgs[7:])
	for _, m := range msgs[7:] {
		b.c.Process(ctx, m)
	}
	require.Equal(t, want, b.stateOf(t), "another payload under the source ids of an applied event")
	require.Equal(t, []string{"ingress:default/dms/k-3"}, b.rows(t, `SELECT event_id FROM inbox ORDER BY 1`))
	require.Equal(t, []string{"k-1|true", "k-2|true", "k-4|true", "k-6|true"}, b.rows(t, `SELECT source_event_id || '|' || via_ingress FROM services ORDER BY 1`))

	// Two transactions applying the same messages at once, from the start.
	c := setupKeyed(t)
	msgs = c.publishAll(t, traffic)
	var wg sync.WaitGroup
	for range 2 {
		wg.Go(func() { c.c.ProcessBatch(ctx, slices.Clone(msgs)) })
	}
	wg.Wait()
	require.Equal(t, want, c.stateOf(t), "applied twice at once")
	for i := range 2 {
		wg.Go(func() {
			for _, m := range msgs[i*5 : i*5+5] {
				c.c.Process(ctx, m)
			}
		})
	}
	wg.Wait()
	require.Equal(t, want, c.stateOf(t), "applied again, alone, at once")
}

// What the previous version left (an inbox row per applied event, services
// that do not say the ingress stored them) keeps an event applied once: its
// redelivery, with another payload too, finds the row.
func TestIngressKeyedAfterUpgrade(t *testing.T) {
	traffic := keyedTraffic()
	ctx := context.Background()
	k, msgs := appliedAlone(t, traffic)
	want := k.stateOf(t)
	_, err := k.pool.Exec(ctx, `UPDATE services SET via_ingress = false`)
	require.NoError(t, err)
	_, err = k.pool.Exec(ctx, `INSERT INTO inbox (consumer, event_id) SELECT $1, 'ingress:default/dms/' || unnest($2::text[])
ON CONFLICT DO NOTHING`, consumer.IngressDurable, []string{"k-1", "k-2", "k-3", "k-4", "k-6"})
	require.NoError(t, err)
	k.c.ProcessBatch(ctx, msgs)
	for _, m := range msgs {
		k.c.Process(ctx, m)
	}
	require.Equal(t, want, k.stateOf(t))
	require.NotContains(t, k.rows(t, `SELECT via_ingress::text FROM services`), "true")
}
