// Package storetest gives dispatch's tests a fresh database migrated into the
// dispatch schema and a clock the test moves; servicetest.JetStream gives
// them the NATS side.
package storetest

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/huifang/huifang/pkg/app"
	"github.com/huifang/huifang/pkg/pgtest"
	"github.com/huifang/huifang/pkg/postgres"
	"github.com/huifang/huifang/pkg/servicetest"
	typesv1 "github.com/huifang/huifang/proto/huifang/types/v1"
	"github.com/huifang/huifang/services/dispatch/internal/contacts"
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

// Contacts is an in-memory contact book for tests of sending: intake's
// RevealContact stands behind the same interface in the service. Unknown
// customers are contacts.ErrGone; Down makes every reveal fail for the
// moment (contacts.ErrUnavailable), as while intake is away.
type Contacts struct {
	mu     sync.Mutex
	byID   map[string]contacts.Contact
	emails map[string]string
	down   bool
	asked  []contacts.Request
}

// NewContacts returns a book that knows customer c-1 (王芳,
// +8613800138000, wf@example.com).
func NewContacts() *Contacts {
	c := &Contacts{byID: map[string]contacts.Contact{}, emails: map[string]string{}}
	c.Add("c-1", "王芳", "+8613800138000", "wf@example.com")
	return c
}

// Add puts a customer in the book.
func (c *Contacts) Add(id, name, phone, email string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.byID[id], c.emails[id] = contacts.Contact{Name: name, Address: phone}, email
}

// Down makes reveals fail for the moment (true) or answer again.
func (c *Contacts) Down(down bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.down = down
}

// Asked returns the requests seen so far.
func (c *Contacts) Asked() []contacts.Request {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.asked)
}

// Reveal implements contacts.Book.
func (c *Contacts) Reveal(_ context.Context, r contacts.Request) (contacts.Contact, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.asked = append(c.asked, r)
	if c.down {
		return contacts.Contact{}, fmt.Errorf("%w: intake is away", contacts.ErrUnavailable)
	}
	got, ok := c.byID[r.CustomerID]
	if !ok {
		return contacts.Contact{}, fmt.Errorf("%w: %s", contacts.ErrGone, r.CustomerID)
	}
	if r.Channel == typesv1.Channel_CHANNEL_EMAIL {
		got.Address = c.emails[r.CustomerID]
	}
	if got.Address == "" {
		return contacts.Contact{}, fmt.Errorf("%w: no address", contacts.ErrGone)
	}
	return got, nil
}
