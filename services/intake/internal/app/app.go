// Package app holds intake's use cases: the commands (ingest a completed
// service, one or a batch; replay a refused one; record a refused input;
// import customers; update contact preferences; set owners; register a
// service type; refresh tiers; re-hash contacts; seal legacy data) and the
// queries (customers, service types, refused inputs). A command owns its
// transaction (or joins the caller's: the XTx form), calls the domain
// (ingest, archive, tier), loads and saves through the store, and writes its
// events to the outbox: app is the only package of intake that calls
// outbox.Add or inbox.Reject.
package app

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/huifang/huifang/pkg/auth"
	"github.com/huifang/huifang/pkg/postgres"
	"github.com/huifang/huifang/services/intake/internal/store"
	"github.com/huifang/huifang/services/intake/internal/tier"
)

// Service names intake in rejected_events and on its dead-letter subject.
const Service = "intake"

// Notifier is told when events were committed (the outbox relay).
type Notifier interface{ Notify() }

// App runs intake's use cases.
type App struct {
	// DB is where commands begin their transactions: the pool, or a
	// transaction (commands then run in savepoints and share its commit).
	DB    postgres.DB
	Store *store.Store
	// Rules are the tier rules (TIER_RULES).
	Rules []tier.Rule
	// Relay, when set, is woken after each commit.
	Relay Notifier
	// Now is the clock of every decision (validation, the figures' year,
	// versions' timestamps, replays).
	Now func() time.Time
	Log *slog.Logger
	// Exports gathers a person's export from every service; nil: exports
	// are off.
	Exports *Exports
	// MaxEventBytes (MAX_EVENT_BYTES) is the most bytes an event may have,
	// coming in and going out (see EventLimit); 0: ingest.DefaultMaxEventBytes.
	MaxEventBytes int
	// Reveals hold reveals of contacts and lookups by phone to a rate per
	// caller (REVEAL_RATE, REVEAL_SERVICE_RATE).
	Reveals Reveals
	// Searches holds SearchCustomers to a rate per caller (SEARCH_RATE);
	// nil limits nothing.
	Searches *auth.Limiter
	// IgnoredFields, when set, counts the fields of stored events intake
	// did not use (NewIgnoredCounter).
	IgnoredFields *prometheus.CounterVec
}

// inTx runs fn in a transaction of its own and wakes the relay after the
// commit. A key a concurrent writer took first is ErrConflict.
func (a *App) inTx(ctx context.Context, fn func(tx pgx.Tx) error) error {
	err := pgx.BeginFunc(ctx, a.DB, fn)
	if errors.Is(err, store.ErrConflict) {
		return ErrConflict
	}
	if err != nil {
		return err
	}
	a.notify()
	return nil
}

func (a *App) notify() {
	if a.Relay != nil {
		a.Relay.Notify()
	}
}

func (a *App) log() *slog.Logger {
	if a.Log == nil {
		return slog.New(slog.DiscardHandler)
	}
	return a.Log
}
