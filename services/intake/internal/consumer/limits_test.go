package consumer_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	eventsv1 "github.com/huifang/huifang/proto/huifang/events/v1"

	"github.com/huifang/huifang/pkg/stream"
	"github.com/huifang/huifang/services/intake/internal/app"
	"github.com/huifang/huifang/services/intake/internal/consumer"
)

// sized is a valid JSON event of exactly n bytes (padded with an attribute).
func sized(tb testing.TB, n int, tenant, id string) []byte {
	tb.Helper()
	head := fmt.Sprintf(`{"tenant_id":%q,"source_system":"erp","source_event_id":%q,"service_type":"repair","completed_at":"2026-11-28T10:00:00Z",`+
		`"customer":{"external_id":"c-%s","phone":"+8613800000001"},"attributes":{"pad":"`, tenant, id, id)
	const tail = `"}}`
	pad := n - len(head) - len(tail)
	require.GreaterOrEqual(tb, pad, 0)
	return []byte(head + strings.Repeat("x", pad) + tail)
}

// deadLetters reads n messages of huifang.deadletter.intake.
func (b bundle) deadLetters(tb testing.TB, n int) []jetstream.Msg {
	tb.Helper()
	cons, err := b.js.OrderedConsumer(b.ctx, stream.DLQStream, jetstream.OrderedConsumerConfig{FilterSubjects: []string{stream.DeadLetterSubject("intake")}})
	require.NoError(tb, err)
	var out []jetstream.Msg
	for range n {
		msg, err := cons.Next(jetstream.FetchMaxWait(10 * time.Second))
		require.NoError(tb, err)
		out = append(out, msg)
	}
	return out
}

// An ingress message larger than MAX_EVENT_BYTES, JSON or protobuf, is
// refused without being decoded: dead-lettered with the rule naming the
// limit, under the tenant it names, storing nothing else; one just under the
// limit is stored.
func TestIngressRefusesOversizedPayload(t *testing.T) {
	b := setup(t, 1)
	limit := b.app.EventLimit()
	require.Equal(t, 256<<10, limit, "the default of MAX_EVENT_BYTES")

	overJSON := sized(t, limit+1, "acme", "big-json")
	ev := &eventsv1.ServiceCompleted{}
	require.NoError(t, protojson.Unmarshal(sized(t, limit+200, "acme", "big-proto"), ev))
	overProto, err := proto.Marshal(ev)
	require.NoError(t, err)
	require.Greater(t, len(overProto), limit)
	under := sized(t, limit-1024, "acme", "fits") // room for what intake adds (ids) to the ServiceCompleted

	b.publish(t, "application/json", overJSON)
	b.publish(t, "application/protobuf", overProto)
	b.publish(t, "application/json", under)
	b.flush(t)
	b.drained(t, 30*time.Second)

	rule := fmt.Sprintf("must be at most %d bytes", limit)
	require.Equal(t, 1, b.count(t, `SELECT count(*) FROM services WHERE source_event_id = 'fits'`), "just under the limit: stored")
	require.Equal(t, 1, b.count(t, `SELECT count(*) FROM services`))
	require.Equal(t, 1, b.count(t, `SELECT count(*) FROM customers`))
	require.Equal(t, 2, b.count(t, `SELECT count(*) FROM rejected_events`))
	require.Equal(t, 2, b.count(t, `SELECT count(*) FROM rejected_events WHERE tenant_id = 'acme' AND field = 'payload' AND reason = 'invalid input: payload: `+rule+`'`))
	require.Eventually(t, func() bool { return b.count(t, `SELECT count(*) FROM outbox WHERE published_at IS NULL`) == 0 }, 30*time.Second, 20*time.Millisecond)
	for _, msg := range b.deadLetters(t, 2) {
		require.Equal(t, "payload", msg.Headers().Get(stream.HeaderField))
		require.Equal(t, "invalid input: payload: "+rule, msg.Headers().Get(stream.HeaderReason))
	}

	// Replayed as it is, it is refused again (not decoded); fixed, it is stored.
	id := ""
	require.NoError(t, b.pool.QueryRow(b.ctx, `SELECT id FROM rejected_events WHERE content_type = 'application/json'`).Scan(&id))
	_, err = b.app.ReplayRejected(b.ctx, app.ReplayRejected{Tenant: "acme", ID: id})
	require.ErrorContains(t, err, rule)
	fixed := &eventsv1.ServiceCompleted{}
	require.NoError(t, protojson.Unmarshal(sized(t, 1000, "acme", "big-json"), fixed))
	out, err := b.app.ReplayRejected(b.ctx, app.ReplayRejected{Tenant: "acme", ID: id, Fixed: fixed})
	require.NoError(t, err)
	require.NotEmpty(t, out.ServiceID)
}

// The input of the incident: a malformed JSON of 1,048,400 bytes, just under
// NATS's max payload. It is refused for its size (not parsed: the reason is
// the limit, not a syntax error), under the tenant its first field names,
// and the event behind it is stored.
func TestIngressRefusesTheIncidentPayloadUnread(t *testing.T) {
	b := setup(t, 1)
	head := `{"tenant_id":"acme","source_system":"erp","source_event_id":"big-1","service_type":"repair","notes":"`
	incident := head + strings.Repeat("很", (1048400-len(head))/3)
	incident += strings.Repeat("x", 1048400-len(incident)) // never closed: not JSON
	require.Len(t, incident, 1048400)
	b.publish(t, "application/json", []byte(incident))
	b.publish(t, "application/json", sized(t, 1000, "acme", "behind"))
	b.flush(t)
	b.drained(t, 30*time.Second)

	var field, reason, tenant string
	require.NoError(t, b.pool.QueryRow(b.ctx, `SELECT field, reason, tenant_id FROM rejected_events`).Scan(&field, &reason, &tenant))
	require.Equal(t, "payload", field)
	require.Equal(t, fmt.Sprintf("invalid input: payload: must be at most %d bytes", b.app.EventLimit()), reason)
	require.Equal(t, "acme", tenant)
	require.Equal(t, 1, b.count(t, `SELECT count(*) FROM services WHERE source_event_id = 'behind'`))
	require.Equal(t, 1, b.count(t, `SELECT count(*) FROM outbox WHERE subject = '`+stream.SubjectServiceCompleted+`'`))
}

// The ingress inbox is keyed by what names an event upstream (tenant,
// source system, the source's id), not by Nats-Msg-Id: two source systems
// or two tenants using the same Nats-Msg-Id are stored both; one event sent
// again under another Nats-Msg-Id, or re-encoded, is stored once.
func TestIngressInboxKeyedBySource(t *testing.T) {
	b := setup(t, 1)
	// JetStream drops a repeated Nats-Msg-Id within the ingress stream's
	// duplicate window (stream.IngressDuplicateWindow, the shortest it takes)
	// before intake sees it: publish below resends until JetStream takes it.
	s, err := b.js.Stream(b.ctx, stream.IngressStream)
	require.NoError(t, err)
	require.Equal(t, stream.IngressDuplicateWindow, s.CachedInfo().Config.Duplicates)

	event := func(tenant, system string) []byte {
		return fmt.Appendf(nil, `{"tenant_id":%q,"source_system":%q,"source_event_id":"1","service_type":"repair","completed_at":"2026-11-28T10:00:00Z","customer":{"external_id":"c-%s","phone":"+8613800000001"}}`,
			tenant, system, system)
	}
	// publish sends data as msgID until JetStream takes it (not a duplicate
	// within its window) and waits until intake has handled it.
	publish := func(contentType string, data []byte, msgID string) {
		t.Helper()
		var seq uint64
		require.Eventually(t, func() bool {
			msg := nats.NewMsg(stream.SubjectIngressServiceCompleted)
			msg.Header.Set(stream.HeaderContentType, contentType)
			msg.Header.Set(jetstream.MsgIDHeader, msgID)
			msg.Data = data
			ack, err := b.js.PublishMsg(b.ctx, msg)
			require.NoError(t, err)
			seq = ack.Sequence
			return !ack.Duplicate
		}, 60*time.Second, 20*time.Millisecond)
		require.Eventually(t, func() bool {
			cons, err := b.js.Consumer(b.ctx, stream.IngressStream, consumer.IngressDurable)
			if err != nil {
				return false
			}
			info, err := cons.Info(b.ctx)
			return err == nil && info.AckFloor.Stream >= seq
		}, 30*time.Second, 20*time.Millisecond)
	}

	publish("application/json", event("default", "erp-a"), "1")
	publish("application/json", event("default", "erp-b"), "1")
	publish("application/json", event("acme", "erp-a"), "1")
	require.Equal(t, 3, b.count(t, `SELECT count(*) FROM services`), "same Nats-Msg-Id, other source system or tenant: another event")

	publish("application/json", event("default", "erp-a"), "2")
	ev := &eventsv1.ServiceCompleted{}
	require.NoError(t, protojson.Unmarshal(event("default", "erp-a"), ev))
	data, err := proto.Marshal(ev)
	require.NoError(t, err)
	publish("application/protobuf", data, "3")
	require.Equal(t, 3, b.count(t, `SELECT count(*) FROM services`), "one event under other Nats-Msg-Ids: stored once")
	require.Equal(t, 3, b.count(t, `SELECT count(*) FROM outbox WHERE subject = '`+stream.SubjectServiceCompleted+`'`))
	// The key is the service's: it keeps no inbox row (TestIngressKeyedApplyOnce).
	require.Equal(t, 1, b.count(t, `SELECT count(*) FROM services WHERE tenant_id = 'default' AND source_system = 'erp-a' AND source_event_id = '1' AND via_ingress`))
	require.Zero(t, b.count(t, `SELECT count(*) FROM inbox`), "Nats-Msg-Id is not the key, nor is an inbox row kept")

	// A refused event, fixed and sent again under its source ids, is stored:
	// its dead letter does not claim the key.
	refused := strings.Replace(string(event("default", "erp-c")), `"repair"`, `"teleportation"`, 1)
	publish("application/json", []byte(refused), "4")
	require.Equal(t, 1, b.count(t, `SELECT count(*) FROM rejected_events WHERE field = 'service_type'`))
	publish("application/json", event("default", "erp-c"), "5")
	require.Equal(t, 1, b.count(t, `SELECT count(*) FROM services WHERE source_system = 'erp-c'`))
}
