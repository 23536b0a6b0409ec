// Package storetest gives dispatch's tests what app.Start gives the service:
// a fresh database migrated into the dispatch schema, a JetStream server with
// Huifang's streams, and a clock the test moves.
package storetest

import (
	"context"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/huifang/huifang/pkg/inbox"
	"github.com/huifang/huifang/pkg/natstest"
	"github.com/huifang/huifang/pkg/outbox"
	"github.com/huifang/huifang/pkg/pgtest"
	"github.com/huifang/huifang/pkg/postgres"
	"github.com/huifang/huifang/pkg/stream"
	"github.com/huifang/huifang/services/dispatch/migrations"
)

// Schema is dispatch's schema, as app.Start names it.
const Schema = "dispatch"

// Pool opens a new database with the migration sets app.Start applies.
func Pool(t testing.TB) *pgxpool.Pool {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	pool, err := postgres.Open(ctx, slog.New(slog.DiscardHandler), pgtest.NewDatabase(t), Schema,
		outbox.Migrations(), inbox.Migrations(), postgres.Migrations{Set: Schema, FS: migrations.FS})
	pgtest.Must(t, err)
	t.Cleanup(pool.Close)
	return pool
}

// JetStream starts an embedded NATS server, creates the streams and returns
// a client.
func JetStream(t testing.TB) jetstream.JetStream {
	t.Helper()
	srv := natstest.Start(t)
	nc, err := nats.Connect(srv.ClientURL())
	if err != nil {
		t.Fatalf("storetest: connect nats: %v", err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatalf("storetest: jetstream: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := stream.Ensure(ctx, js, stream.Config{}); err != nil {
		t.Fatalf("storetest: streams: %v", err)
	}
	return js
}

// Clock is a time source that moves only when told; safe for concurrent use.
type Clock struct {
	mu  sync.Mutex
	now time.Time
}

// NewClock returns a clock standing at start.
func NewClock(start time.Time) *Clock { return &Clock{now: start} }

// Now returns the clock's time.
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

// Advance moves the clock forward by d.
func (c *Clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}
