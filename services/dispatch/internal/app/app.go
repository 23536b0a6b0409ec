// Package app holds dispatch's use cases: turning due visits into tasks,
// withdrawing cancelled ones and refreshing customers (the consumers'
// commands, each with a form that joins the caller's transaction); the
// agents' claim (with long-poll), heartbeat, attempts and their retry
// policy, release and reassignment; org units and agents; sending the
// automatic messages and recording their receipts; the SLA clock; and the
// queries of the API. A command owns its transaction, asks the domain
// (package task, message) to decide, saves through the store and writes its
// events to the outbox: app is the only package of dispatch that does.
package app

import (
	"context"
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/huifang/huifang/pkg/postgres"
	"github.com/huifang/huifang/services/dispatch/internal/contacts"
	"github.com/huifang/huifang/services/dispatch/internal/message"
	"github.com/huifang/huifang/services/dispatch/internal/sender"
	"github.com/huifang/huifang/services/dispatch/internal/store"
	"github.com/huifang/huifang/services/dispatch/internal/task"
)

// Notifier is told when events were committed (the outbox relay).
type Notifier interface{ Notify() }

// App runs the use cases.
type App struct {
	// DB is where commands begin their transactions: the pool, or a
	// caller's transaction (then they run in savepoints and commit with it).
	DB    postgres.DB
	Relay Notifier
	// Now is the clock of every decision (leases, retries, deadlines).
	Now func() time.Time
	Log *slog.Logger
	// Lease is how long a claim holds a task (HeartbeatTask extends it).
	Lease   time.Duration
	Routing store.Routing
	Retry   task.RetryPolicy
	Rules   task.Rules
	// Poll is how often a long-poll claim looks again without a wake-up.
	Poll time.Duration
	// Waker, when set, wakes long-polling claims when work may have appeared.
	Waker *Waker
	// SLAWarn is how long before its deadline a task is "near"
	// (ListDeadlineTasks' default margin, the SLA clock's warning).
	SLAWarn time.Duration
	// SLABatch bounds one round of the SLA clock.
	SLABatch int
	Send     Sending
	// DatabaseUp, when set, says whether Postgres is up (the runtime's
	// dependency watcher): while it is not, a failure to record a send's
	// outcome is one of the moment and is retried.
	DatabaseUp func() bool
	// Reminder times the reminder SMS of an appointment (appointments.go).
	Reminder task.ReminderPolicy
	// Questionnaires, when set, gives the questionnaire of a visit's policy
	// for GetTaskContext (feedback's); unset: "unavailable".
	Questionnaires Questionnaires

	// finishFailed, when set (tests), is told each failure of the moment of
	// a send's FinishSend (the how-manieth in a row, the error) before it is
	// tried again.
	finishFailed func(n int, err error)
}

// Sending is how the automatic channels send.
type Sending struct {
	Sender sender.Sender
	// Contacts gives the address of each message at the moment it is sent
	// (intake's RevealContact); dispatch keeps none.
	Contacts contacts.Book
	// Postpone is how long a message waits after its contact could not be
	// had for the moment (intake away): the try does not count.
	// DefaultPostpone when zero.
	Postpone time.Duration
	// Lease is how long a send may take before another round takes the
	// message over (with the same idempotency key).
	Lease time.Duration
	// Retry: backoff and the most tries.
	Retry message.Retry
	// Batch bounds one round.
	Batch int
	// FinishBackoff and FinishMaxBackoff pace the retries of recording a
	// send's outcome while the database is away: the first pause, doubled
	// per failure up to the cap (DefaultFinishBackoff, DefaultFinishMaxBackoff
	// when zero).
	FinishBackoff    time.Duration
	FinishMaxBackoff time.Duration
}

// inTx runs fn in a transaction of its own (a savepoint when DB is a
// transaction) and, once it committed, wakes the relay.
func (a *App) inTx(ctx context.Context, fn func(tx pgx.Tx) error) error {
	if err := pgx.BeginFunc(ctx, a.DB, fn); err != nil {
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

// wake wakes long-polling claims: work may have appeared.
func (a *App) wake() {
	if a.Waker != nil {
		a.Waker.Notify()
	}
}

func (a *App) log() *slog.Logger {
	if a.Log == nil {
		return slog.New(slog.DiscardHandler)
	}
	return a.Log
}
