package consumer_test

import (
	"context"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/proto"

	eventsv1 "github.com/huifang/huifang/proto/huifang/events/v1"

	"github.com/huifang/huifang/pkg/stream"
	"github.com/huifang/huifang/services/dispatch/internal/consumer"
)

// TestVisitCancelledWithdrawsTask: the scheduler's VisitCancelled closes
// the visit's task; a visit cancelled before it fell due gets none; a
// redelivery changes nothing.
func TestVisitCancelledWithdrawsTask(t *testing.T) {
	b := setup(t)
	cancelled := filled(b.pool, b.js, consumer.VisitCancelled(b.app))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- cancelled.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		require.NoError(t, <-done)
	})

	b.publish(t, "due-1", visitDue(t, "v-1"))
	b.run(t)
	require.Eventually(t, func() bool { return b.count(t, `SELECT count(*) FROM tasks WHERE visit_id = 'v-1'`) == 1 },
		10*time.Second, 20*time.Millisecond)

	publish := func(id, visit string) {
		data, err := proto.Marshal(&eventsv1.VisitCancelled{EventId: id, TenantId: "default", VisitId: visit, Reason: "customer opted out of CHANNEL_PHONE"})
		require.NoError(t, err)
		_, err = b.js.PublishMsg(context.Background(), &nats.Msg{Subject: stream.SubjectVisitCancelled, Data: data,
			Header: nats.Header{jetstream.MsgIDHeader: {id}}})
		require.NoError(t, err)
	}
	publish("cancel-1", "v-1")
	publish("cancel-2", "v-2")
	require.Eventually(t, func() bool {
		return b.count(t, `SELECT count(*) FROM inbox WHERE consumer = $1`, consumer.DurableCancelled) == 2
	}, 60*time.Second, 20*time.Millisecond)
	require.Equal(t, 1, b.count(t, `SELECT count(*) FROM tasks WHERE visit_id = 'v-1' AND status = 'cancelled'`))

	b.publish(t, "due-2", visitDue(t, "v-2"))
	b.publish(t, "due-3", visitDue(t, "v-3"))
	require.Eventually(t, func() bool { return b.count(t, `SELECT count(*) FROM tasks WHERE visit_id = 'v-3'`) == 1 },
		10*time.Second, 20*time.Millisecond)
	require.Zero(t, b.count(t, `SELECT count(*) FROM tasks WHERE visit_id = 'v-2'`), "cancelled before due: no task")
}
