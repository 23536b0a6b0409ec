package consumer_test

import (
	"context"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/types/known/timestamppb"

	eventsv1 "github.com/huifang/huifang/proto/huifang/events/v1"
	typesv1 "github.com/huifang/huifang/proto/huifang/types/v1"

	"github.com/huifang/huifang/pkg/servicetest"
	"github.com/huifang/huifang/pkg/stream"
	"github.com/huifang/huifang/services/scheduler/internal/app"
	"github.com/huifang/huifang/services/scheduler/internal/consumer"
	"github.com/huifang/huifang/services/scheduler/internal/policy"
	"github.com/huifang/huifang/services/scheduler/migrations"
)

// A service's snapshot of a customer the scheduler keeps already as the
// snapshot says (the same snapshot before) is not written again, in a
// batch as one by one: the row is left as it is, when it changed too. A
// snapshot that changes something (another tier) is written, as before.
func TestSameSnapshotIsNotWrittenAgain(t *testing.T) {
	log := servicetest.Logger()
	pool := servicetest.Pool(t, "scheduler", migrations.FS)
	js := servicetest.JetStream(t)
	ctx := context.Background()
	a := &app.App{DB: pool, Now: time.Now}
	require.NoError(t, a.EnsureBuiltins(ctx))
	done := time.Now().Add(-time.Hour).UTC().Truncate(time.Microsecond)
	snapshot := func(id string) *typesv1.Customer {
		return &typesv1.Customer{Id: id, Tier: "gold", HasPhone: true,
			Preferences: &typesv1.ContactPreferences{TimeZone: "Asia/Shanghai", OptedOut: []typesv1.Channel{typesv1.Channel_CHANNEL_SMS}}}
	}
	for _, id := range []string{"cu-same", "cu-alone", "cu-other"} {
		c, err := app.CustomerFrom(snapshot(id))
		require.NoError(t, err)
		_, err = a.PlanService(ctx, app.Completed{Service: policy.Service{Tenant: "default", ID: "s-first-" + id, Type: "repair",
			CompletedAt: done, CustomerID: id}, Customer: c})
		require.NoError(t, err)
	}
	type row struct {
		xmin string
		at   time.Time
	}
	stored := func(id string) row {
		var r row
		require.NoError(t, pool.QueryRow(ctx, `SELECT xmin::text, updated_at FROM customers WHERE tenant_id = 'default' AND customer_id = $1`, id).
			Scan(&r.xmin, &r.at))
		r.at = r.at.UTC()
		return r
	}
	before := map[string]row{}
	for _, id := range []string{"cu-same", "cu-alone", "cu-other"} {
		before[id] = stored(id)
		require.Equal(t, done, before[id].at)
	}

	// One by one.
	c, err := app.CustomerFrom(snapshot("cu-alone"))
	require.NoError(t, err)
	_, err = a.PlanService(ctx, app.Completed{Service: policy.Service{Tenant: "default", ID: "s-again-alone", Type: "repair",
		CompletedAt: done.Add(time.Minute), CustomerID: "cu-alone"}, Customer: c})
	require.NoError(t, err)
	require.Equal(t, before["cu-alone"], stored("cu-alone"), "one by one: the same snapshot is not written again")

	// In a batch: cu-same twice with its snapshot, cu-other with another tier.
	planning := consumer.New(a)[0]
	require.Equal(t, consumer.DurableServiceCompleted, planning.Durable)
	planning.Service, planning.Pool, planning.JS, planning.Log = "scheduler", pool, js, log
	b := bundle{ctx: ctx, pool: pool, js: js}
	other := snapshot("cu-other")
	other.Tier = "silver"
	evs := []*eventsv1.ServiceCompleted{
		{EventId: "ev-1", TenantId: "default", ServiceId: "s-1", ServiceType: "repair", CompletedAt: timestamppb.New(done.Add(time.Minute)), Customer: snapshot("cu-same")},
		{EventId: "ev-2", TenantId: "default", ServiceId: "s-2", ServiceType: "repair", CompletedAt: timestamppb.New(done.Add(2 * time.Minute)), Customer: other},
		{EventId: "ev-3", TenantId: "default", ServiceId: "s-3", ServiceType: "repair", CompletedAt: timestamppb.New(done.Add(3 * time.Minute)), Customer: snapshot("cu-same")},
	}
	for _, ev := range evs {
		publish(t, b, ev.EventId, ev)
	}
	cons, err := js.CreateOrUpdateConsumer(ctx, stream.EventsStream, jetstream.ConsumerConfig{Durable: "t-same",
		FilterSubject: stream.SubjectServiceCompleted, AckPolicy: jetstream.AckExplicitPolicy})
	require.NoError(t, err)
	fetched, err := cons.Fetch(len(evs), jetstream.FetchMaxWait(5*time.Second))
	require.NoError(t, err)
	var msgs []jetstream.Msg
	for m := range fetched.Messages() {
		msgs = append(msgs, m)
	}
	require.Len(t, msgs, len(evs))
	planning.ProcessBatch(ctx, msgs)

	require.Equal(t, 3, appliedEvents(t, pool), "the batch applied")
	require.Equal(t, before["cu-same"], stored("cu-same"), "in a batch: the same snapshot is not written again")
	got := stored("cu-other")
	require.NotEqual(t, before["cu-other"].xmin, got.xmin)
	require.Equal(t, done.Add(2*time.Minute), got.at, "another tier is a change")
	var tier string
	require.NoError(t, pool.QueryRow(ctx, `SELECT tier FROM customers WHERE customer_id = 'cu-other'`).Scan(&tier))
	require.Equal(t, "silver", tier)
}
