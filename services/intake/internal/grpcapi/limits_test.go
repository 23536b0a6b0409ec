package grpcapi_test

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	eventsv1 "github.com/huifang/huifang/proto/huifang/events/v1"
	intakev1 "github.com/huifang/huifang/proto/huifang/intake/v1"

	"github.com/huifang/huifang/pkg/grpcserver"
	"github.com/huifang/huifang/pkg/servicetest"
	"github.com/huifang/huifang/services/intake/internal/grpcapi"
)

// client serves srv on a real gRPC server (the runtime's: its interceptors
// turn *invalid.Error into InvalidArgument with field violations) and
// returns a client of it.
func client(t *testing.T, srv *grpcapi.Server) intakev1.IntakeServiceClient {
	t.Helper()
	gs := grpcserver.New(servicetest.Logger(), "127.0.0.1:0", "127.0.0.1:0")
	intakev1.RegisterIntakeServiceServer(gs.GRPC, srv)
	return intakev1.NewIntakeServiceClient(servicetest.Serve(t, gs))
}

// padded is a valid event whose protobuf encoding has exactly n bytes.
func padded(t *testing.T, n int, id string) *eventsv1.ServiceCompleted {
	t.Helper()
	ev := event(t, fmt.Sprintf(`{"source_system":"erp","source_event_id":%q,"service_type":"repair","completed_at":"2026-11-28T10:00:00Z","customer":{"external_id":"c-%s","phone":"+8613800000001"}}`, id, id))
	ev.Attributes = map[string]string{"pad": ""}
	for size := proto.Size(ev); size != n; size = proto.Size(ev) {
		require.Less(t, size, n)
		ev.Attributes["pad"] += strings.Repeat("x", max(1, (n-size)/2))
	}
	return ev
}

func violations(t *testing.T, err error) []*errdetails.BadRequest_FieldViolation {
	t.Helper()
	st, ok := status.FromError(err)
	require.True(t, ok, err)
	require.Equal(t, codes.InvalidArgument, st.Code(), err)
	require.Len(t, st.Details(), 1)
	return st.Details()[0].(*errdetails.BadRequest).GetFieldViolations()
}

// IngestService and IngestServices refuse an event over MAX_EVENT_BYTES (its
// protobuf encoding) with InvalidArgument naming payload and the limit, and
// store nothing for it; one just under is stored.
func TestIngestRefusesOversizedEvent(t *testing.T) {
	_, srv := setup(t)
	c := client(t, srv)
	ctx := context.Background()
	limit := srv.App.EventLimit()
	rule := fmt.Sprintf("must be at most %d bytes", limit)

	_, err := c.IngestService(ctx, &intakev1.IngestServiceRequest{Event: padded(t, limit+1, "big")})
	v := violations(t, err)
	require.Len(t, v, 1)
	require.Equal(t, "payload", v[0].GetField())
	require.Equal(t, rule, v[0].GetDescription())
	for _, table := range []string{"services", "customers", "outbox", "rejected_events"} {
		require.Zero(t, count(t, srv, `SELECT count(*) FROM `+table), table)
	}

	ok, err := c.IngestService(ctx, &intakev1.IngestServiceRequest{Event: padded(t, limit-1024, "fits")})
	require.NoError(t, err)
	require.NotEmpty(t, ok.GetServiceId())

	// Exactly the limit passes the door, but the ServiceCompleted intake would
	// publish (its ids, the customer as archived) would not fit: refused,
	// kept with the refused inputs, nothing else stored.
	_, err = c.IngestService(ctx, &intakev1.IngestServiceRequest{Event: padded(t, limit, "edge")})
	v = violations(t, err)
	require.Equal(t, "payload", v[0].GetField())
	require.True(t, strings.HasPrefix(v[0].GetDescription(), rule+": the ServiceCompleted intake would publish"), v[0].GetDescription())
	require.Equal(t, 1, count(t, srv, `SELECT count(*) FROM services`))
	require.Equal(t, 1, count(t, srv, `SELECT count(*) FROM customers`))
	require.Equal(t, 1, count(t, srv, `SELECT count(*) FROM rejected_events`))

	// A batch: the event over the limit refuses only itself.
	resp, err := c.IngestServices(ctx, &intakev1.IngestServicesRequest{Events: []*eventsv1.ServiceCompleted{
		padded(t, limit+1, "big-in-batch"), padded(t, 1000, "small-in-batch"),
	}})
	require.NoError(t, err)
	require.EqualValues(t, 1, resp.GetAccepted())
	require.EqualValues(t, 1, resp.GetRejected())
	first := resp.GetResults()[0]
	require.Len(t, first.GetViolations(), 1)
	require.Equal(t, "payload", first.GetViolations()[0].GetField())
	require.Equal(t, rule, first.GetViolations()[0].GetRule())
	require.Empty(t, first.GetRejectedEventId(), "not kept: the caller holds it")
	require.NotEmpty(t, resp.GetResults()[1].GetServiceId())
	require.Equal(t, 2, count(t, srv, `SELECT count(*) FROM services`))
	require.Equal(t, 1, count(t, srv, `SELECT count(*) FROM rejected_events`))
}
