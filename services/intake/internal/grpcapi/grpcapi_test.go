package grpcapi_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"

	eventsv1 "github.com/huifang/huifang/proto/huifang/events/v1"
	intakev1 "github.com/huifang/huifang/proto/huifang/intake/v1"

	"github.com/huifang/huifang/pkg/outbox"
	"github.com/huifang/huifang/pkg/servicetest"
	"github.com/huifang/huifang/pkg/stream"
	"github.com/huifang/huifang/services/intake/internal/app"
	"github.com/huifang/huifang/services/intake/internal/grpcapi"
	"github.com/huifang/huifang/services/intake/internal/privacy"
	"github.com/huifang/huifang/services/intake/internal/store"
	"github.com/huifang/huifang/services/intake/internal/tier"
	"github.com/huifang/huifang/services/intake/migrations"
)

var now = time.Date(2026, 11, 28, 12, 0, 0, 0, time.UTC)

func setup(t *testing.T) (context.Context, *grpcapi.Server) {
	t.Helper()
	pool := servicetest.Pool(t, "intake", migrations.FS)
	var js jetstream.JetStream // the relay is only notified here, never run
	cipher, err := privacy.New(privacy.DevKeys, privacy.DevHashKey)
	require.NoError(t, err)
	rules, err := tier.Parse(tier.DefaultRules)
	require.NoError(t, err)
	clock := func() time.Time { return now }
	a := &app.App{DB: pool, Store: &store.Store{Cipher: cipher}, Rules: rules,
		Relay: outbox.NewRelay(pool, js, servicetest.Logger(), "intake"), Now: clock, Log: servicetest.Logger()}
	return context.Background(), &grpcapi.Server{App: a}
}

func event(t *testing.T, js string) *eventsv1.ServiceCompleted {
	t.Helper()
	ev := &eventsv1.ServiceCompleted{}
	require.NoError(t, protojson.Unmarshal([]byte(js), ev))
	return ev
}

func count(t *testing.T, srv *grpcapi.Server, q string) int {
	t.Helper()
	var n int
	require.NoError(t, srv.App.DB.QueryRow(context.Background(), q).Scan(&n))
	return n
}

// The same upstream event twice is stored once and announced once.
func TestResendChangesNothing(t *testing.T) {
	ctx, srv := setup(t)
	body := `{"source_system":"erp-demo","source_event_id":"e-1","service_type":"purchase","completed_at":"2026-11-28T10:00:00Z","customer":{"external_id":"c-1","name":"王芳","phone":"+8613800138000"}}`
	first, err := srv.IngestService(ctx, &intakev1.IngestServiceRequest{Event: event(t, body)})
	require.NoError(t, err)
	require.False(t, first.Duplicate)
	second, err := srv.IngestService(ctx, &intakev1.IngestServiceRequest{Event: event(t, body)})
	require.NoError(t, err)
	require.True(t, second.Duplicate)
	require.Equal(t, first.ServiceId, second.ServiceId)
	require.Equal(t, first.CustomerId, second.CustomerId)
	require.Equal(t, 1, count(t, srv, `SELECT count(*) FROM services`))
	require.Equal(t, 1, count(t, srv, `SELECT count(*) FROM outbox WHERE subject = '`+stream.SubjectServiceCompleted+`'`))
}

// An older update arriving after a newer one does not overwrite the customer.
func TestOlderUpdateDoesNotOverwriteNewer(t *testing.T) {
	ctx, srv := setup(t)
	newer := `{"source_system":"erp","source_event_id":"e-2","service_type":"repair","completed_at":"2026-11-28T10:00:00Z","customer":{"external_id":"c-1","name":"王芳","phone":"+8613800000002"}}`
	older := `{"source_system":"erp","source_event_id":"e-1","service_type":"purchase","completed_at":"2026-11-20T10:00:00Z","customer":{"external_id":"c-1","name":"王 芳","phone":"+8613800000001"}}`
	_, err := srv.IngestService(ctx, &intakev1.IngestServiceRequest{Event: event(t, newer)})
	require.NoError(t, err)
	_, err = srv.IngestService(ctx, &intakev1.IngestServiceRequest{Event: event(t, older)})
	require.NoError(t, err)
	c, err := srv.GetCustomer(ctx, &intakev1.GetCustomerRequest{ExternalId: "c-1"})
	require.NoError(t, err)
	require.Equal(t, "*******0002", c.Customer.PhoneMasked, "masked")
	require.Equal(t, "王*", c.Customer.NameMasked)
	require.Equal(t, 2, count(t, srv, `SELECT count(*) FROM services`), "both services are kept")
	require.Equal(t, 1, count(t, srv, `SELECT count(*) FROM customers`), "one customer per (tenant, external id)")
}

// Bad input is refused naming the field, recorded with the rejected events,
// and changes nothing else.
func TestBadInputIsRefusedAndRecorded(t *testing.T) {
	ctx, srv := setup(t)
	for i := range 3 {
		_, err := srv.IngestService(ctx, &intakev1.IngestServiceRequest{Event: event(t,
			fmt.Sprintf(`{"source_system":"erp","source_event_id":"bad-%d","service_type":"teleport","completed_at":"2026-11-28T10:00:00Z","customer":{"external_id":"c-1","phone":"+8613800000002"}}`, i))})
		require.ErrorContains(t, err, "service_type")
	}
	require.Equal(t, 0, count(t, srv, `SELECT count(*) FROM services`))
	require.Equal(t, 0, count(t, srv, `SELECT count(*) FROM customers`))
	require.Equal(t, 3, count(t, srv, `SELECT count(*) FROM outbox WHERE subject = 'huifang.deadletter.intake'`))

	page1, err := srv.ListRejectedEvents(ctx, &intakev1.ListRejectedEventsRequest{PageSize: 2})
	require.NoError(t, err)
	require.Len(t, page1.RejectedEvents, 2)
	require.Equal(t, "service_type", page1.RejectedEvents[0].Field)
	require.Equal(t, "grpc", page1.RejectedEvents[0].Source)
	require.NotEmpty(t, page1.NextPageToken)
	page2, err := srv.ListRejectedEvents(ctx, &intakev1.ListRejectedEventsRequest{PageSize: 2, PageToken: page1.NextPageToken})
	require.NoError(t, err)
	require.Len(t, page2.RejectedEvents, 1)
	require.Empty(t, page2.NextPageToken)
	require.NotEqual(t, page1.RejectedEvents[1].Id, page2.RejectedEvents[0].Id)

	_, err = srv.ListRejectedEvents(ctx, &intakev1.ListRejectedEventsRequest{PageToken: "nonsense"})
	require.ErrorContains(t, err, "page_token")
}

func TestGetCustomer(t *testing.T) {
	ctx, srv := setup(t)
	_, err := srv.GetCustomer(ctx, &intakev1.GetCustomerRequest{})
	require.ErrorContains(t, err, "id")
	_, err = srv.GetCustomer(ctx, &intakev1.GetCustomerRequest{ExternalId: "nobody"})
	require.Equal(t, codes.NotFound, status.Code(err))
}
