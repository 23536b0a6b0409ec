package consumer_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/types/known/timestamppb"

	eventsv1 "github.com/huifang/huifang/proto/huifang/events/v1"
	typesv1 "github.com/huifang/huifang/proto/huifang/types/v1"

	"github.com/huifang/huifang/pkg/inbox"
	"github.com/huifang/huifang/pkg/stream"
	"github.com/huifang/huifang/services/feedback/internal/app"
	"github.com/huifang/huifang/services/feedback/internal/consumer"
)

// sent is one message to publish: its subject, message id and payload.
type sent struct {
	subject, msgID string
	data           []byte
}

// consumeAll publishes msgs to a fresh database and stream, runs the
// consumer made by of with batches of batch messages until every message
// is handled or refused, and returns the rows it left: visits,
// assignments, inbox and rejected events, one line each.
func consumeAll(t *testing.T, of func(*app.App) *inbox.Consumer, batch int, msgs []sent) []string {
	t.Helper()
	e := setup(t)
	for _, m := range msgs {
		msg := nats.NewMsg(m.subject)
		msg.Data = m.data
		msg.Header.Set(jetstream.MsgIDHeader, m.msgID)
		_, err := e.js.PublishMsg(e.ctx, msg)
		require.NoError(t, err)
	}
	c := of(e.app)
	c.Service, c.Pool, c.JS, c.Log = "feedback", e.pool, e.js, e.log
	c.Batch, c.BatchWait = batch, 50*time.Millisecond
	runCtx, stop := context.WithCancel(t.Context())
	defer stop()
	done := make(chan error, 1)
	go func() { done <- c.Run(runCtx) }()
	e.waitAckedBy(t, c.Durable)
	stop()
	require.NoError(t, <-done)

	var rows []string
	for _, q := range []string{
		`SELECT 'visit', tenant_id, visit_id, customer_id, service_id, policy_id, channel, coalesce(due_at::text, '-'), coalesce(deadline::text, '-'),
  org_unit, service_type, coalesce(service_completed_at::text, '-'), complaint_id FROM visits ORDER BY tenant_id, visit_id`,
		`SELECT 'assignment', tenant_id, visit_id, agent_id, assigned_at::text, event_id FROM visit_assignments ORDER BY tenant_id, visit_id`,
		`SELECT 'inbox', consumer, event_id FROM inbox ORDER BY consumer, event_id`,
		`SELECT 'rejected', event_id, tenant_id, field FROM rejected_events ORDER BY event_id, field`,
	} {
		r, err := e.pool.Query(e.ctx, q)
		require.NoError(t, err)
		for r.Next() {
			vals, err := r.Values()
			require.NoError(t, err)
			parts := make([]string, len(vals))
			for i, v := range vals {
				parts[i] = fmt.Sprint(v)
			}
			rows = append(rows, strings.Join(parts, " | "))
		}
		require.NoError(t, r.Err())
	}
	return rows
}

func TestVisitDueBatchStoresWhatOneByOneStores(t *testing.T) {
	now := time.Date(2025, 3, 1, 9, 0, 0, 0, time.UTC)
	due := func(ev, visitID, customer string, ch typesv1.Channel) *eventsv1.VisitDue {
		return &eventsv1.VisitDue{EventId: ev, TenantId: "acme", VisitId: visitID, Customer: &typesv1.Customer{Id: customer}, Channel: ch,
			DueAt: timestamppb.New(now), Deadline: timestamppb.New(now.Add(72 * time.Hour)), ServiceId: "s-" + visitID, OrgUnit: "north", ServiceType: "repair"}
	}
	var msgs []sent
	add := func(msgID string, data []byte) {
		msgs = append(msgs, sent{stream.SubjectVisitDue, msgID, data})
	}
	add("d-1", marshal(t, due("d-1", "v-1", "c-1", typesv1.Channel_CHANNEL_PHONE)))
	add("d-2", marshal(t, due("d-2", "v-2", "c-2", typesv1.Channel_CHANNEL_SMS)))
	// The scheduler emits v-1 again with a new context: the later wins.
	add("d-3", marshal(t, due("d-3", "v-1", "c-9", typesv1.Channel_CHANNEL_EMAIL)))
	// A redelivery of d-2 under a new message id, the same event id.
	add("d-2-again", marshal(t, due("d-2", "v-2", "c-2", typesv1.Channel_CHANNEL_SMS)))
	// Bad events are dead-lettered alone.
	add("bad-empty", marshal(t, &eventsv1.VisitDue{EventId: "bad-empty", TenantId: "acme"}))
	add("bad-channel", marshal(t, due("bad-channel", "v-3", "c-3", typesv1.Channel(99))))
	add("d-4", marshal(t, &eventsv1.VisitDue{EventId: "d-4", VisitId: "v-4", ComplaintId: "cp-1"}))
	// A message id JetStream has seen: dropped.
	add("d-1", marshal(t, due("d-1", "v-1", "c-1", typesv1.Channel_CHANNEL_PHONE)))

	oneByOne := consumeAll(t, consumer.VisitDue, 1, msgs)
	batched := consumeAll(t, consumer.VisitDue, 100, msgs)
	require.Equal(t, oneByOne, batched)
	require.Contains(t, batched, "visit | acme | v-1 | c-9 | s-v-1 |  | CHANNEL_EMAIL | 2025-03-01 09:00:00+00 | 2025-03-04 09:00:00+00 | north | repair | - | ")
	require.Len(t, filter(batched, "visit |"), 3)
	require.Len(t, filter(batched, "rejected |"), 2)
}

func TestVisitAssignedBatchStoresWhatOneByOneStores(t *testing.T) {
	at := time.Date(2025, 3, 1, 9, 0, 0, 0, time.UTC)
	assigned := func(ev, visitID, agent string, when time.Time) []byte {
		return marshal(t, &eventsv1.VisitAssigned{EventId: ev, TenantId: "acme", VisitId: visitID, AgentId: agent, AssignedAt: timestamppb.New(when)})
	}
	var msgs []sent
	add := func(msgID string, data []byte) {
		msgs = append(msgs, sent{stream.SubjectVisitAssigned, msgID, data})
	}
	add("a-1", assigned("a-1", "v-1", "agent-1", at))
	add("a-2", assigned("a-2", "v-1", "agent-2", at.Add(time.Hour))) // reassigned
	add("a-1-late", assigned("a-1", "v-1", "agent-1", at))           // the claim again, late: changes nothing
	add("a-3", assigned("a-3", "v-2", "agent-3", at))
	add("a-4", assigned("a-4", "v-2", "agent-4", at)) // the same time: the later heard wins
	add("bad-empty", marshal(t, &eventsv1.VisitAssigned{EventId: "bad-empty", TenantId: "acme", VisitId: "v-1"}))
	add("a-5", assigned("a-5", "v-3", "agent-5", at.Add(2*time.Hour)))
	add("a-6", assigned("a-6", "v-3", "agent-6", at.Add(time.Hour))) // older, heard later
	add("a-3", assigned("a-3", "v-2", "agent-3", at))                // a message id JetStream has seen

	oneByOne := consumeAll(t, consumer.VisitAssigned, 1, msgs)
	batched := consumeAll(t, consumer.VisitAssigned, 100, msgs)
	require.Equal(t, oneByOne, batched)
	require.Equal(t, []string{
		"assignment | acme | v-1 | agent-2 | 2025-03-01 10:00:00+00 | a-2",
		"assignment | acme | v-2 | agent-4 | 2025-03-01 09:00:00+00 | a-4",
		"assignment | acme | v-3 | agent-5 | 2025-03-01 11:00:00+00 | a-5",
	}, filter(batched, "assignment |"))
	require.Len(t, filter(batched, "rejected |"), 1)
}

func filter(rows []string, prefix string) []string {
	var out []string
	for _, r := range rows {
		if strings.HasPrefix(r, prefix) {
			out = append(out, r)
		}
	}
	return out
}
