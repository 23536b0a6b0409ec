package app_test

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/huifang/huifang/pkg/pgtest"
	"github.com/huifang/huifang/pkg/postgres"
	"github.com/huifang/huifang/pkg/stream"
	"github.com/huifang/huifang/services/dispatch/internal/app"
	"github.com/huifang/huifang/services/dispatch/internal/message"
	"github.com/huifang/huifang/services/dispatch/internal/sender"
	"github.com/huifang/huifang/services/dispatch/internal/storetest"
	"github.com/huifang/huifang/services/dispatch/internal/task"
)

// afterSend is a sender that runs then right after the provider answered,
// before dispatch records the answer (the database goes away, the service
// is told to stop).
type afterSend struct {
	sender.Sender
	then func()
}

func (s afterSend) Send(ctx context.Context, m sender.Message) (sender.Result, error) {
	res, err := s.Sender.Send(ctx, m)
	s.then()
	return res, err
}

// outage is a dispatch replica whose database connections go through a
// proxy the test cuts right after the provider accepted a message; b is
// the rest of the test's view (the same database, directly).
type outage struct {
	b        sendBundle
	a        *app.App
	proxy    *pgtest.Proxy
	log      *logBuffer
	mu       sync.Mutex
	failures []error
}

func setupOutage(t *testing.T) *outage {
	t.Helper()
	direct, through, proxy := storetest.Proxied(t)
	b := setupSendOn(t, direct)
	b.seed002(t)
	o := &outage{b: b, proxy: proxy, log: &logBuffer{}}
	o.a = &app.App{}
	*o.a = *b.a
	o.a.DB = through
	o.a.Log = slog.New(slog.NewTextHandler(o.log, nil))
	o.a.Send.Sender = afterSend{Sender: b.a.Send.Sender, then: proxy.Down}
	o.a.Send.FinishBackoff, o.a.Send.FinishMaxBackoff = 10*time.Millisecond, 40*time.Millisecond
	return o
}

// onFailure runs fn at each failure of the moment of the replica's
// FinishSend, after keeping the error.
func (o *outage) onFailure(fn func(n int)) {
	app.OnFinishFailed(o.a, func(n int, err error) {
		o.mu.Lock()
		o.failures = append(o.failures, err)
		o.mu.Unlock()
		fn(n)
	})
}

func (o *outage) failed() []error {
	o.mu.Lock()
	defer o.mu.Unlock()
	return append([]error(nil), o.failures...)
}

// message returns the status, tries and provider id of task's message.
func (b sendBundle) message(t *testing.T, taskID string) (status string, tries int, providerID string) {
	t.Helper()
	require.NoError(t, b.pool.QueryRow(context.Background(), `SELECT status, tries, provider_message_id FROM messages WHERE task_id = $1`, taskID).
		Scan(&status, &tries, &providerID))
	return status, tries, providerID
}

// TestSendOutcomeSurvivesADatabaseOutage: Postgres goes away right after
// the provider accepted an SMS. The sender keeps the provider's answer and
// tries FinishSend again with backoff: it fails twice (the database is
// away), then Postgres is back and the send is recorded once (sent, one
// VisitAttempted), with no second provider call, then or after SEND_LEASE.
func TestSendOutcomeSurvivesADatabaseOutage(t *testing.T) {
	o := setupOutage(t)
	b := o.b
	ctx := context.Background()
	x := b.addSMS(t, "v-1")
	o.onFailure(func(n int) {
		if n == 2 {
			o.proxy.Up()
		}
	})

	n, err := o.a.SendDue(ctx)
	require.NoError(t, err, "the outage is waited out, not returned")
	require.Equal(t, 1, n)
	failures := o.failed()
	require.Len(t, failures, 2, "FinishSend failed twice while the database was away")
	for _, err := range failures {
		require.True(t, postgres.IsTransient(err), "a failure of the moment: %v", err)
	}

	require.Equal(t, task.StatusSent, b.task(t, x.ID).Status)
	status, tries, providerID := b.message(t, x.ID)
	require.Equal(t, message.StatusSent, status)
	require.Equal(t, 1, tries)
	require.Equal(t, "tx-"+message.KeyOf(x.ID), providerID, "the provider's answer was kept")
	require.Equal(t, 1, b.count(t, `SELECT count(*) FROM outbox WHERE subject = $1`, stream.SubjectVisitAttempted), "recorded once")
	require.Equal(t, 1, o.log.count("level=WARN", "recording the send of task "+x.ID+" failing"), "one line when it starts failing")
	require.Equal(t, 1, o.log.count("level=INFO", "recording the send of task "+x.ID+" recovered"), "one when it recovers")

	// Nothing is left for a later round, even after SEND_LEASE.
	b.clock.Advance(10 * time.Minute)
	n, err = b.a.SendDue(ctx)
	require.NoError(t, err)
	require.Zero(t, n)
	requests, _, delivered := b.fake.seen()
	require.Equal(t, 1, requests, "the provider was called once")
	require.Len(t, delivered, 1)
}

// TestSendOutcomeRefusedWhenClaimedAgainDuringTheOutage: while this
// replica cannot reach the database, its SEND_LEASE runs out and another
// replica claims the message and sends it (the provider drops the copy by
// its key). When the database is back this replica's FinishSend is refused
// by its fence: it stops retrying, records nothing, logs one warning; the
// other replica's outcome stands.
func TestSendOutcomeRefusedWhenClaimedAgainDuringTheOutage(t *testing.T) {
	o := setupOutage(t)
	b := o.b
	ctx := context.Background()
	x := b.addSMS(t, "v-1")
	o.onFailure(func(n int) {
		if n != 1 {
			return
		}
		b.clock.Advance(2 * time.Minute) // SEND_LEASE
		other, err := b.a.SendDue(ctx)
		require.NoError(t, err)
		require.Equal(t, 1, other, "the other replica takes the message over")
		o.proxy.Up()
	})

	n, err := o.a.SendDue(ctx)
	require.NoError(t, err)
	require.Equal(t, 1, n)
	require.Len(t, o.failed(), 1)
	require.Equal(t, 1, o.log.warnings("finish refused"), "the fence refused the stale outcome")

	require.Equal(t, task.StatusSent, b.task(t, x.ID).Status)
	status, tries, _ := b.message(t, x.ID)
	require.Equal(t, message.StatusSent, status)
	require.Equal(t, 2, tries, "the other replica's try stands")
	require.Equal(t, 1, b.count(t, `SELECT count(*) FROM outbox WHERE subject = $1`, stream.SubjectVisitAttempted), "recorded once, by the holder")
	requests, keys, delivered := b.fake.seen()
	require.Equal(t, 2, requests)
	require.Equal(t, keys[0], keys[1], "both under the message's one key")
	require.Len(t, delivered, 1, "one SMS")
}

// TestSendOutcomeLostAtShutdownIsLogged: the service is told to stop while
// the database is still away: the sender stops retrying and logs what it
// could not record (the key, the provider's id); the message stays
// sending, and after SEND_LEASE the next holder sends it again under the
// same key, which the provider drops.
func TestSendOutcomeLostAtShutdownIsLogged(t *testing.T) {
	o := setupOutage(t)
	b := o.b
	x := b.addSMS(t, "v-1")
	ctx, stop := context.WithCancel(context.Background())
	defer stop()
	o.onFailure(func(int) { stop() })

	_, err := o.a.SendDue(ctx)
	require.ErrorIs(t, err, context.Canceled)
	require.Equal(t, 1, o.log.count("level=ERROR", "shutting down before the send's outcome could be recorded", message.KeyOf(x.ID), "tx-"+message.KeyOf(x.ID)))
	status, tries, _ := b.message(t, x.ID)
	require.Equal(t, message.StatusSending, status, "nothing recorded")
	require.Equal(t, 1, tries)

	o.proxy.Up()
	b.clock.Advance(2 * time.Minute)
	n, err := b.a.SendDue(context.Background())
	require.NoError(t, err)
	require.Equal(t, 1, n)
	require.Equal(t, task.StatusSent, b.task(t, x.ID).Status)
	requests, _, delivered := b.fake.seen()
	require.Equal(t, 2, requests)
	require.Len(t, delivered, 1, "one SMS")
}

// TestSendOutcomeRecordedWhenStoppingMidSend: the service is told to stop
// while the provider call is in flight; the database is up, so the answer
// is recorded before the sender stops, not left for SEND_LEASE.
func TestSendOutcomeRecordedWhenStoppingMidSend(t *testing.T) {
	b := setupSend(t)
	b.seed002(t)
	x := b.addSMS(t, "v-1")
	ctx, stop := context.WithCancel(context.Background())
	defer stop()
	a := &app.App{}
	*a = *b.a
	a.Send.Sender = afterSend{Sender: b.a.Send.Sender, then: stop}

	n, err := a.SendDue(ctx)
	require.Equal(t, 1, n)
	_ = err // the round ends with the context; what matters is what was recorded
	require.Equal(t, task.StatusSent, b.task(t, x.ID).Status)
	status, _, _ := b.message(t, x.ID)
	require.Equal(t, message.StatusSent, status)
}

// failingBegin fails the Begin of its DB while armed, with an error that
// does not say the database is away (as a driver error the classifier
// does not know).
type failingBegin struct {
	postgres.DB
	armed atomic.Int32
}

var errOpaque = errors.New("something went wrong on the way to the database")

func (f *failingBegin) Begin(ctx context.Context) (pgx.Tx, error) {
	if f.armed.Load() > 0 {
		f.armed.Add(-1)
		return nil, errOpaque
	}
	return f.DB.Begin(ctx)
}

// TestSendOutcomeRetriedWhileTheWatcherSaysTheDatabaseIsAway: a failure
// to record that the classifier does not know is one of the moment while
// the database watcher (DatabaseUp) says Postgres is away: retried, then
// recorded once. While the watcher says it is up, the same failure is
// returned as before.
func TestSendOutcomeRetriedWhileTheWatcherSaysTheDatabaseIsAway(t *testing.T) {
	for _, tc := range []struct {
		name    string
		up      bool
		watched bool
	}{
		{"database away", false, true},
		{"database up", true, true},
		{"no watcher", true, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := setupSend(t)
			b.seed002(t)
			x := b.addSMS(t, "v-1")
			db := &failingBegin{DB: b.pool}
			a := &app.App{}
			*a = *b.a
			a.DB = db
			a.Send.FinishBackoff = time.Millisecond
			a.Send.Sender = afterSend{Sender: b.a.Send.Sender, then: func() { db.armed.Store(3) }}
			var up atomic.Bool
			up.Store(tc.up)
			if tc.watched {
				a.DatabaseUp = up.Load
			}
			var failures atomic.Int32
			app.OnFinishFailed(a, func(n int, err error) {
				require.ErrorIs(t, err, errOpaque)
				if failures.Add(1) == 3 {
					up.Store(true) // the watcher sees it back
				}
			})

			_, err := a.SendDue(context.Background())
			if tc.up {
				require.ErrorIs(t, err, errOpaque, "a failure while the database is up is returned, as before")
				require.Zero(t, failures.Load())
				status, _, _ := b.message(t, x.ID)
				require.Equal(t, message.StatusSending, status)
				return
			}
			require.NoError(t, err)
			require.EqualValues(t, 3, failures.Load())
			require.Equal(t, task.StatusSent, b.task(t, x.ID).Status)
			require.Equal(t, 1, b.count(t, `SELECT count(*) FROM outbox WHERE subject = $1`, stream.SubjectVisitAttempted))
		})
	}
}

// TestFinishSendTwiceRecordsOnce: a FinishSend whose commit went through
// but whose answer was lost is tried again: the second changes nothing
// (no second VisitAttempted, no warning that the send was claimed again).
func TestFinishSendTwiceRecordsOnce(t *testing.T) {
	b := setupSend(t)
	b.seed002(t)
	ctx := context.Background()
	x := b.addSMS(t, "v-1")
	logs := &logBuffer{}
	b.a.Log = slog.New(slog.NewTextHandler(logs, nil))
	job, ok, err := b.a.ClaimSend(ctx)
	require.NoError(t, err)
	require.True(t, ok)
	res := sender.Result{ProviderMessageID: "tx-1"}
	require.NoError(t, b.a.FinishSend(ctx, job, res, nil))
	require.NoError(t, b.a.FinishSend(ctx, job, res, nil))
	require.Equal(t, task.StatusSent, b.task(t, x.ID).Status)
	require.Equal(t, 1, b.count(t, `SELECT count(*) FROM outbox WHERE subject = $1`, stream.SubjectVisitAttempted))
	require.Zero(t, logs.warnings("finish refused"))
}

// count counts the lines that contain every one of texts.
func (l *logBuffer) count(texts ...string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for line := range strings.Lines(l.buf.String()) {
		all := true
		for _, s := range texts {
			all = all && strings.Contains(line, s)
		}
		if all {
			n++
		}
	}
	return n
}
