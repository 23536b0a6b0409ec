package main

import (
	"context"
	"log/slog"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/proto"

	eventsv1 "github.com/huifang/huifang/proto/huifang/events/v1"

	pkgconfig "github.com/huifang/huifang/pkg/config"
	"github.com/huifang/huifang/pkg/natstest"
	"github.com/huifang/huifang/pkg/pgtest"
	"github.com/huifang/huifang/pkg/stream"
)

func TestConfigDefaults(t *testing.T) {
	cfg := config{}
	require.NoError(t, pkgconfig.Load(pkgconfig.Map(map[string]string{}), &cfg))
	require.Equal(t, 15*time.Minute, cfg.Lease)
	require.NoError(t, pkgconfig.Load(pkgconfig.Map(map[string]string{"LEASE": "5m"}), &cfg))
	require.Equal(t, 5*time.Minute, cfg.Lease)
}

// TestRunWiring starts the service as main does, feeds it a VisitDue and
// stops it.
func TestRunWiring(t *testing.T) {
	db := pgtest.NewDatabase(t)
	ns := natstest.Start(t)
	t.Setenv("DISPATCH_DATABASE_URL", db)
	t.Setenv("DISPATCH_NATS_URL", ns.ClientURL())
	t.Setenv("DISPATCH_GRPC_ADDR", "127.0.0.1:0")
	t.Setenv("DISPATCH_HTTP_ADDR", "127.0.0.1:0")

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- run(ctx, slog.New(slog.DiscardHandler)) }()

	nc, err := nats.Connect(ns.ClientURL())
	require.NoError(t, err)
	defer nc.Close()
	js, err := jetstream.New(nc)
	require.NoError(t, err)
	data, err := proto.Marshal(&eventsv1.VisitDue{VisitId: "v-1"})
	require.NoError(t, err)
	require.Eventually(t, func() bool {
		_, err := js.PublishMsg(ctx, &nats.Msg{Subject: stream.SubjectVisitDue, Data: data, Header: nats.Header{jetstream.MsgIDHeader: {"ev-1"}}})
		return err == nil // the streams exist once the service is up
	}, 30*time.Second, 50*time.Millisecond)

	conn, err := pgx.Connect(ctx, db)
	require.NoError(t, err)
	defer conn.Close(context.Background())
	require.Eventually(t, func() bool {
		var n int
		err := conn.QueryRow(ctx, `SELECT count(*) FROM dispatch.tasks WHERE visit_id = 'v-1' AND status = 'open'`).Scan(&n)
		return err == nil && n == 1
	}, 30*time.Second, 50*time.Millisecond)

	cancel()
	select {
	case err := <-done:
		require.NoError(t, err)
	case <-time.After(30 * time.Second):
		t.Fatal("run did not return after cancel")
	}
}
