// Package app holds feedback's use cases: the commands that learn visits,
// log records, run the complaint loop, escalate overdue complaints, keep
// questionnaires and reviews, and the queries that read them. A command
// owns its transaction (X) or joins the caller's (XTx), calls the domain
// packages for every decision, saves through the store and writes its
// events to the outbox: app is the only package of the service that
// writes events (events.go).
package app

import (
	"context"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/huifang/huifang/pkg/outbox"
	"github.com/huifang/huifang/pkg/postgres"
	"github.com/huifang/huifang/services/feedback/internal/complaint"
)

// DefaultEscalationBatch is how many overdue complaints one round of
// EscalateOverdue claims when App.EscalationBatch is 0.
const DefaultEscalationBatch = 100

// Notifier is woken when a command committed events (the outbox relay).
type Notifier interface{ Notify() }

// App runs the use cases.
type App struct {
	// DB is the pool, or a transaction whose commit the commands share
	// (pgx.BeginFunc on it makes a savepoint).
	DB postgres.DB
	// Relay, when set, is woken after a command committed events.
	Relay Notifier
	// Now is the clock; tests move it.
	Now func() time.Time
	// Rules route complaints by category (department, severity, deadline).
	Rules complaint.Rules
	// EscalationBatch is how many overdue complaints one EscalateOverdue
	// round claims; DefaultEscalationBatch when 0.
	EscalationBatch int
}

func (a *App) now() time.Time {
	if a.Now == nil {
		return time.Now()
	}
	return a.Now()
}

func (a *App) notify() {
	if a.Relay != nil {
		a.Relay.Notify()
	}
}

// newID returns the id of a new record, complaint, amendment, letter,
// review or event: a UUIDv7, ordered by time.
func newID() string { return outbox.NewEventID() }

// inTx runs fn, the Tx form of a command, in a transaction of its own (a
// savepoint when a.DB is a transaction) and wakes the relay once it committed.
func inTx[R any](ctx context.Context, a *App, fn func(tx pgx.Tx) (R, error)) (R, error) {
	var r R
	err := pgx.BeginFunc(ctx, a.DB, func(tx pgx.Tx) error {
		var err error
		r, err = fn(tx)
		return err
	})
	if err != nil {
		var zero R
		return zero, err
	}
	a.notify()
	return r, nil
}
