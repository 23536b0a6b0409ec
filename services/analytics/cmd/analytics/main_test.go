package main

import (
	"context"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	analyticsv1 "github.com/huifang/huifang/proto/huifang/analytics/v1"
	eventsv1 "github.com/huifang/huifang/proto/huifang/events/v1"
	typesv1 "github.com/huifang/huifang/proto/huifang/types/v1"

	"github.com/huifang/huifang/pkg/natstest"
	"github.com/huifang/huifang/pkg/pgtest"
	"github.com/huifang/huifang/pkg/servicetest"
	"github.com/huifang/huifang/pkg/stream"
)

func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer l.Close()
	return l.Addr().String()
}

func metrics(addr string) string {
	c := &http.Client{Timeout: time.Second}
	resp, err := c.Get("http://" + addr + "/metrics")
	if err != nil {
		return ""
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

// The service as main wires it, on a real Runtime: the consumer is
// registered through rt.Consume behind its gate, so its durable's backlog is
// exported (huifang_consumer_pending{consumer="analytics-events"}, which the
// deploy's lag alerts read); it consumes (the replica leads), the API
// answers from what it consumed, and Rebuild reaches the gate.
func TestRunWiresTheConsumerThroughTheRuntime(t *testing.T) {
	ns := natstest.Start(t)
	grpcAddr, httpAddr := freeAddr(t), freeAddr(t)
	t.Setenv("ANALYTICS_DATABASE_URL", pgtest.NewDatabase(t))
	t.Setenv("ANALYTICS_NATS_URL", ns.ClientURL())
	t.Setenv("ANALYTICS_GRPC_ADDR", grpcAddr)
	t.Setenv("ANALYTICS_HTTP_ADDR", httpAddr)
	t.Setenv("ANALYTICS_START_TIMEOUT", "30s")
	t.Setenv("ANALYTICS_CHECK_INTERVAL", "1h")
	is := servicetest.AuthEnv(t)

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- run(ctx, servicetest.Logger()) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			require.NoError(t, err)
		case <-time.After(30 * time.Second):
			t.Error("run did not stop")
		}
	})

	require.Eventually(t, func() bool {
		return strings.Contains(metrics(httpAddr), `huifang_consumer_pending{consumer="analytics-events",stream="HUIFANG_EVENTS"}`)
	}, 30*time.Second, 50*time.Millisecond, "the durable's backlog is exported by the runtime")
	require.Equal(t, 1, strings.Count(metrics(httpAddr), `huifang_consumer_pending{consumer="analytics-events"`), "exported once")
	require.Contains(t, metrics(httpAddr), "\nhuifang_analytics_rebuild_refused 0\n", "a refused rebuild would show here")

	// An event published on the stream is consumed and counted.
	nc, err := nats.Connect(ns.ClientURL())
	require.NoError(t, err)
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	require.NoError(t, err)
	data, err := proto.Marshal(&eventsv1.VisitLogged{EventId: "l1", VisitId: "v1", RecordId: "r1", LoggedAt: timestamppb.New(time.Date(2025, 3, 1, 9, 0, 0, 0, time.UTC)),
		Answers: []*typesv1.Answer{{Aspect: "overall", Rating: typesv1.Rating_RATING_SATISFIED}}})
	require.NoError(t, err)
	msg := nats.NewMsg(stream.SubjectVisitLogged)
	msg.Data = data
	msg.Header.Set(jetstream.MsgIDHeader, "l1")
	msg.Header.Set(stream.HeaderContentType, stream.ContentTypeProtobuf)
	_, err = js.PublishMsg(ctx, msg)
	require.NoError(t, err)

	conn, err := grpc.NewClient(grpcAddr, grpc.WithTransportCredentials(insecure.NewCredentials()), is.StaffCalls())
	require.NoError(t, err)
	t.Cleanup(func() { _ = conn.Close() })
	client := analyticsv1.NewAnalyticsServiceClient(conn)
	require.Eventually(t, func() bool {
		sat, err := client.GetSatisfaction(ctx, &analyticsv1.GetSatisfactionRequest{})
		return err == nil && sat.GetReturned() == 1
	}, 30*time.Second, 50*time.Millisecond, "the event was consumed")
	reb, err := client.Rebuild(ctx, &analyticsv1.RebuildRequest{})
	require.NoError(t, err, "the only replica leads, so it rebuilds")
	require.EqualValues(t, 1, reb.GetStreamLastSequence())
	require.Eventually(t, func() bool {
		sat, err := client.GetSatisfaction(ctx, &analyticsv1.GetSatisfactionRequest{})
		return err == nil && sat.GetReturned() == 1
	}, 30*time.Second, 50*time.Millisecond, "replayed after the rebuild")
}

// The lease is renewed every third of it: a lease under a second is refused.
func TestLeaderLeaseUnderASecondIsRefused(t *testing.T) {
	t.Setenv("ANALYTICS_LEADER_LEASE", "300ms")
	err := run(context.Background(), servicetest.Logger())
	require.ErrorContains(t, err, "LEADER_LEASE must be at least 1s")
}
