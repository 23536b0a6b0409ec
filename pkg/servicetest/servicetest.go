// Package servicetest sets up what a service's tests need: the service's
// schema in a fresh database, a real NATS server with Huifang's streams, and
// a logger that keeps quiet.
package servicetest

import (
	"context"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/huifang/huifang/pkg/access"
	"github.com/huifang/huifang/pkg/app"
	"github.com/huifang/huifang/pkg/auth"
	"github.com/huifang/huifang/pkg/grpcserver"
	"github.com/huifang/huifang/pkg/issuer"
	"github.com/huifang/huifang/pkg/natstest"
	"github.com/huifang/huifang/pkg/pgtest"
	"github.com/huifang/huifang/pkg/postgres"
	"github.com/huifang/huifang/pkg/stream"
)

// Guard returns the guard of the named service (its permission table from
// pkg/access) checking the tokens of a local issuer on loopback, and that
// issuer; both live until the test ends.
func Guard(t testing.TB, service string) (*auth.Guard, *issuer.Issuer) {
	t.Helper()
	is, err := issuer.Listen("127.0.0.1:0", "huifang")
	if err != nil {
		t.Fatalf("servicetest: issuer: %v", err)
	}
	t.Cleanup(func() { _ = is.Close() })
	v, err := auth.NewVerifier(context.Background(), is.Config())
	if err != nil {
		t.Fatalf("servicetest: verifier: %v", err)
	}
	g := auth.NewGuard(Logger(), v)
	g.SetTable(access.For(service))
	return g, is
}

// AuthEnv starts a local issuer for a service started as main starts it:
// AUTH_ISSUER and AUTH_JWKS_URL name it until the test ends, and
// AUTH_CLIENT_SECRET is dispatch's secret at it.
func AuthEnv(t *testing.T) *issuer.Issuer {
	t.Helper()
	is, err := issuer.Listen("127.0.0.1:0", "huifang")
	if err != nil {
		t.Fatalf("servicetest: issuer: %v", err)
	}
	t.Cleanup(func() { _ = is.Close() })
	t.Setenv("AUTH_ISSUER", is.URL())
	t.Setenv("AUTH_JWKS_URL", is.JWKSURL())
	// Dispatch calls intake on its own account (client credentials).
	is.AddClient("dispatch", "dispatch-test-secret", issuer.ServiceAccount("dispatch"))
	t.Setenv("AUTH_CLIENT_SECRET", "dispatch-test-secret")
	return is
}

// Logger discards everything.
func Logger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// Pool opens a fresh database with the service's schema migrated as app.Start
// does it (outbox, inbox, audit log, then the service's own files) and
// closes it when the test ends.
func Pool(t testing.TB, schema string, migrations fs.FS) *pgxpool.Pool {
	t.Helper()
	pool, err := postgres.Open(context.Background(), Logger(), pgtest.NewDatabase(t), schema, app.Migrations(schema, migrations)...)
	if err != nil {
		t.Fatalf("servicetest: open %s: %v", schema, err)
	}
	t.Cleanup(pool.Close)
	return pool
}

// JetStream starts an in-process NATS server, provisions the streams and
// returns a JetStream context on a connection closed when the test ends.
func JetStream(t testing.TB) jetstream.JetStream {
	t.Helper()
	srv := natstest.Start(t)
	nc, err := nats.Connect(srv.ClientURL())
	if err != nil {
		t.Fatalf("servicetest: connect: %v", err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatalf("servicetest: jetstream: %v", err)
	}
	if err := stream.Ensure(context.Background(), js, stream.Config{}); err != nil {
		t.Fatalf("servicetest: streams: %v", err)
	}
	return js
}

// Serve serves srv's gRPC server on a loopback port until the test ends and
// returns a plaintext client connection to it.
func Serve(t testing.TB, srv *grpcserver.Server) *grpc.ClientConn {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("servicetest: listen: %v", err)
	}
	go func() { _ = srv.GRPC.Serve(lis) }()
	t.Cleanup(srv.GRPC.Stop)
	conn, err := grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatalf("servicetest: client: %v", err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	return conn
}

// Fetch takes n messages of streamName's subjects, in order, through an
// ephemeral consumer of the test's own (acknowledged by nobody within the
// test: the test hands them to the consumer it checks, as a redelivery
// would), and fails the test unless n came within 10 s.
func Fetch(t testing.TB, js jetstream.JetStream, streamName string, subjects []string, n int) []jetstream.Msg {
	t.Helper()
	cfg := jetstream.ConsumerConfig{AckPolicy: jetstream.AckExplicitPolicy, AckWait: time.Hour}
	if len(subjects) == 1 {
		cfg.FilterSubject = subjects[0]
	} else {
		cfg.FilterSubjects = subjects
	}
	cons, err := js.CreateConsumer(context.Background(), streamName, cfg)
	if err != nil {
		t.Fatalf("servicetest: consumer of %s: %v", streamName, err)
	}
	batch, err := cons.Fetch(n, jetstream.FetchMaxWait(10*time.Second))
	if err != nil {
		t.Fatalf("servicetest: fetch %d of %s: %v", n, streamName, err)
	}
	var msgs []jetstream.Msg
	for m := range batch.Messages() {
		msgs = append(msgs, m)
	}
	if len(msgs) != n {
		t.Fatalf("servicetest: fetched %d messages of %s, want %d", len(msgs), streamName, n)
	}
	return msgs
}
