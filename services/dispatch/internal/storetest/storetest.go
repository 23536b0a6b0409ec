// Package storetest gives dispatch's tests a fresh database migrated into the
// dispatch schema and a clock the test moves; servicetest.JetStream gives
// them the NATS side.
package storetest

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/huifang/huifang/pkg/app"
	"github.com/huifang/huifang/pkg/pgtest"
	"github.com/huifang/huifang/pkg/postgres"
	"github.com/huifang/huifang/pkg/servicetest"
	"github.com/huifang/huifang/services/dispatch/migrations"
)

// Schema is dispatch's schema, as app.Start names it.
const Schema = "dispatch"

// Pool opens a new database with the migration sets app.Start applies.
func Pool(t testing.TB) *pgxpool.Pool {
	t.Helper()
	return servicetest.Pool(t, Schema, migrations.FS)
}

// Proxied opens a new database migrated as Pool does and returns two pools
// on it: direct, and through, which reaches it through a proxy the test
// cuts (proxy.Down: every connection dropped, new ones refused, as in an
// outage) and restores (proxy.Up).
func Proxied(t testing.TB) (direct, through *pgxpool.Pool, proxy *pgtest.Proxy) {
	t.Helper()
	url := pgtest.NewDatabase(t)
	proxy, proxied := pgtest.NewProxy(t, url)
	open := func(url string) *pgxpool.Pool {
		pool, err := postgres.Open(context.Background(), servicetest.Logger(), url, Schema, app.Migrations(Schema, migrations.FS)...)
		if err != nil {
			t.Fatalf("storetest: open %s: %v", Schema, err)
		}
		t.Cleanup(pool.Close)
		return pool
	}
	return open(url), open(proxied), proxy
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

// Set moves the clock to t.
func (c *Clock) Set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = t
}
