package grpcapi_test

import (
	"context"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"

	intakev1 "github.com/huifang/huifang/proto/huifang/intake/v1"

	"github.com/huifang/huifang/pkg/auth"
	"github.com/huifang/huifang/pkg/grpcserver"
	"github.com/huifang/huifang/pkg/issuer"
	"github.com/huifang/huifang/pkg/outbox"
	"github.com/huifang/huifang/pkg/servicetest"
	"github.com/huifang/huifang/services/intake/internal/app"
	"github.com/huifang/huifang/services/intake/internal/consumer"
	"github.com/huifang/huifang/services/intake/internal/grpcapi"
	"github.com/huifang/huifang/services/intake/internal/privacy"
	"github.com/huifang/huifang/services/intake/internal/store"
	"github.com/huifang/huifang/services/intake/internal/tier"
	"github.com/huifang/huifang/services/intake/migrations"
)

// desk is intake as a frontend meets it: the gRPC server behind the guard
// (permission table, scoping, the caller from its token), the outbox relay
// publishing to an embedded NATS, and the contact ledger's consumer
// (intake-ledger) reading it back.
type desk struct {
	pool   *pgxpool.Pool
	js     jetstream.JetStream
	is     *issuer.Issuer
	srv    *grpcapi.Server
	client intakev1.IntakeServiceClient
}

// newDesk starts it, with searches held to search per caller.
func newDesk(t *testing.T, search auth.RateLimit) desk {
	t.Helper()
	pool := servicetest.Pool(t, "intake", migrations.FS)
	js := servicetest.JetStream(t)
	cipher, err := privacy.New(privacy.DevKeys, privacy.DevHashKey)
	require.NoError(t, err)
	rules, err := tier.Parse(tier.DefaultRules)
	require.NoError(t, err)
	log := servicetest.Logger()
	relay := outbox.NewRelay(pool, js, log, "intake")
	a := &app.App{DB: pool, Store: &store.Store{Cipher: cipher}, Rules: rules, Relay: relay, Now: func() time.Time { return now }, Log: log,
		Searches: auth.NewLimiter(search, nil)}
	ledger := consumer.Ledger(a)
	ledger.Pool, ledger.JS, ledger.Log, ledger.Relay = pool, js, log, relay
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{}, 2)
	go func() { _ = ledger.Run(ctx); done <- struct{}{} }()
	go func() { _ = relay.Run(ctx); done <- struct{}{} }()
	t.Cleanup(func() {
		cancel()
		<-done
		<-done
	})
	guard, is := servicetest.Guard(t, "intake")
	gs := grpcserver.New(log, "", "", grpc.ChainUnaryInterceptor(guard.Unary))
	srv := &grpcapi.Server{App: a}
	intakev1.RegisterIntakeServiceServer(gs.GRPC, srv)
	conn := servicetest.Serve(t, gs)
	return desk{pool: pool, js: js, is: is, srv: srv, client: intakev1.NewIntakeServiceClient(conn)}
}

// as is a call context carrying a token of the given roles and org units.
func (d desk) as(t *testing.T, subject string, roles []string, units ...string) context.Context {
	t.Helper()
	raw, err := d.is.Mint(issuer.Token{Subject: subject, Claims: auth.Claims{Tenant: "default", Roles: roles, AgentID: subject, OrgUnits: units}})
	require.NoError(t, err)
	return metadata.AppendToOutgoingContext(context.Background(), "authorization", "Bearer "+raw)
}

func (d desk) count(t *testing.T, q string, args ...any) int {
	t.Helper()
	var n int
	require.NoError(t, d.pool.QueryRow(context.Background(), q, args...).Scan(&n))
	return n
}
