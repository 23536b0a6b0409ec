package main

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/base64"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/proto"

	eventsv1 "github.com/huifang/huifang/proto/huifang/events/v1"
	typesv1 "github.com/huifang/huifang/proto/huifang/types/v1"

	pkgconfig "github.com/huifang/huifang/pkg/config"
	"github.com/huifang/huifang/pkg/natstest"
	"github.com/huifang/huifang/pkg/pgtest"
	"github.com/huifang/huifang/pkg/servicetest"
	"github.com/huifang/huifang/pkg/stream"
	"github.com/huifang/huifang/services/dispatch/internal/task"
)

func TestConfigDefaults(t *testing.T) {
	cfg := config{}
	require.NoError(t, pkgconfig.Load(pkgconfig.Map(map[string]string{}), &cfg))
	require.Equal(t, 15*time.Minute, cfg.Lease)
	set, err := cfg.parse()
	require.NoError(t, err)
	require.Equal(t, 48*time.Hour, set.rules.DefaultDeadline, "seed 003: within 48 hours")
	require.Equal(t, "deputy", set.rules.SeverityRoles[typesv1.Severity_SEVERITY_MAJOR], "seed 000: a major complaint to a manager")
	require.Equal(t, task.RetryRule{After: 2 * time.Hour, Max: 3}, set.retry[typesv1.Channel_CHANNEL_PHONE][typesv1.Disposition_DISPOSITION_NO_ANSWER])
	require.NoError(t, pkgconfig.Load(pkgconfig.Map(map[string]string{"LEASE": "5m"}), &cfg))
	require.Equal(t, 5*time.Minute, cfg.Lease)

	bad := config{}
	require.NoError(t, pkgconfig.Load(pkgconfig.Map(map[string]string{"SEVERITY_ROLES": "major=boss", "RETRY_PHONE": "no_answer=2h",
		"SMS_SENDER": "telnyx", "EMAIL_SENDER": "resend"}), &bad))
	_, err = bad.parse()
	require.ErrorContains(t, err, "SEVERITY_ROLES")
	require.ErrorContains(t, err, "RETRY_PHONE")
	require.ErrorContains(t, err, "TELNYX_API_KEY")
	require.ErrorContains(t, err, "RESEND_API_KEY and RESEND_FROM")

	require.NoError(t, pkgconfig.Load(pkgconfig.Map(map[string]string{"EMAIL_SENDER": "sendgrid"}), &bad))
	_, err = bad.parse()
	require.ErrorContains(t, err, "EMAIL_SENDER must be local or resend")
}

// TestReceiptsNeedTelnyxKey: the receipts webhook (RECEIPT_ADDR) takes only
// reports Telnyx signed, so it does not start without the account's public
// key; a key that is not base64 of 32 bytes is refused.
func TestReceiptsNeedTelnyxKey(t *testing.T) {
	cfg := config{}
	require.NoError(t, pkgconfig.Load(pkgconfig.Map(map[string]string{"RECEIPT_ADDR": ":8103"}), &cfg))
	_, err := cfg.parse()
	require.ErrorContains(t, err, "TELNYX_PUBLIC_KEY is required with RECEIPT_ADDR")

	pub, _, err := ed25519.GenerateKey(nil)
	require.NoError(t, err)
	require.NoError(t, pkgconfig.Load(pkgconfig.Map(map[string]string{"RECEIPT_ADDR": ":8103", "TELNYX_PUBLIC_KEY": base64.StdEncoding.EncodeToString(pub)}), &cfg))
	set, err := cfg.parse()
	require.NoError(t, err)
	require.Equal(t, pub, set.telnyxKey)

	require.NoError(t, pkgconfig.Load(pkgconfig.Map(map[string]string{"RECEIPT_ADDR": ":8103", "TELNYX_PUBLIC_KEY": "c2hvcnQ="}), &cfg))
	_, err = cfg.parse()
	require.ErrorContains(t, err, "TELNYX_PUBLIC_KEY: telnyx public key: 5 bytes, want 32")
}

// TestContactWindowsRetired: CONTACT_WINDOWS is no longer read (the
// tenant's contact policy, sent with each VisitDue, sets the windows); if
// it is still set, one warning says so at start, and it fails nothing.
func TestContactWindowsRetired(t *testing.T) {
	env := pkgconfig.Map(map[string]string{"CONTACT_WINDOWS": "17:00-10:00"})
	cfg := config{}
	require.NoError(t, pkgconfig.Load(env, &cfg))
	_, err := cfg.parse()
	require.NoError(t, err)

	var buf bytes.Buffer
	warnRetired(slog.New(slog.NewTextHandler(&buf, nil)), env)
	require.Equal(t, 1, strings.Count(buf.String(), "\n"), buf.String())
	require.Contains(t, buf.String(), "level=WARN")
	require.Contains(t, buf.String(), "CONTACT_WINDOWS is set but no longer read")
	require.Contains(t, buf.String(), "SchedulerService.SetContactPolicy")

	buf.Reset()
	warnRetired(slog.New(slog.NewTextHandler(&buf, nil)), pkgconfig.Map(map[string]string{}))
	require.Empty(t, buf.String())
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
	servicetest.AuthEnv(t)

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
