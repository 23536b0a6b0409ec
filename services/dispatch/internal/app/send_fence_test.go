package app_test

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/huifang/huifang/pkg/stream"
	"github.com/huifang/huifang/services/dispatch/internal/app"
	"github.com/huifang/huifang/services/dispatch/internal/message"
	"github.com/huifang/huifang/services/dispatch/internal/sender"
	"github.com/huifang/huifang/services/dispatch/internal/task"
)

// logBuffer collects a sender's log lines; safe for concurrent use.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

// warnings counts the WARN lines that contain text.
func (l *logBuffer) warnings(text string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for line := range strings.Lines(l.buf.String()) {
		if strings.Contains(line, "level=WARN") && strings.Contains(line, text) {
			n++
		}
	}
	return n
}

// pausing is a sender paused (as by SIGSTOP) right after the provider
// answered, until resume is closed.
type pausing struct {
	sender.Sender
	answered chan struct{}
	resume   chan struct{}
}

func (p *pausing) Send(ctx context.Context, m sender.Message) (sender.Result, error) {
	res, err := p.Sender.Send(ctx, m)
	close(p.answered)
	<-p.resume
	return res, err
}

// senders returns two dispatch replicas sending through the same fake
// Telnyx on one database and clock, each with its own log.
func (b sendBundle) senders(first sender.Sender) (s1, s2 *app.App, log1, log2 *logBuffer) {
	log1, log2 = &logBuffer{}, &logBuffer{}
	s1, s2 = &app.App{}, &app.App{}
	*s1, *s2 = *b.a, *b.a
	s1.Log, s2.Log = slog.New(slog.NewTextHandler(log1, nil)), slog.New(slog.NewTextHandler(log2, nil))
	s1.Send.Sender = first
	s2.Send.Sender = b.a.Send.Sender
	return s1, s2, log1, log2
}

func (f *fakeTelnyx) failOnce() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.failNext = 1
}

func (f *fakeTelnyx) seen() (requests int, keys, delivered []string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.requests, append([]string(nil), f.keys...), append([]string(nil), f.delivered...)
}

// TestStaleSenderFinishIsRefused: a sender that is paused past SEND_LEASE
// after the provider answered, while a second sender claims the message and
// sends it, finds on resuming that its FinishSend changes nothing (the
// task, its message, the outbox as the second sender left them) and logs
// one warning; the second sender's outcome stands, whatever either provider
// call answered. Each holder called the provider once, with the same
// idempotency key, so the provider sent the SMS once.
func TestStaleSenderFinishIsRefused(t *testing.T) {
	for _, tc := range []struct {
		name                    string
		firstFails, secondFails bool
	}{
		{"both accepted", false, false},
		{"first failed, second accepted", true, false},
		{"first accepted, second failed", false, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := setupSend(t)
			b.seed002(t)
			ctx := context.Background()
			x := b.addSMS(t, "v-1")
			paused := &pausing{Sender: b.a.Send.Sender.(sender.ByChannel).SMS, answered: make(chan struct{}), resume: make(chan struct{})}
			s1, s2, log1, log2 := b.senders(paused)

			if tc.firstFails {
				b.fake.failOnce()
			}
			type round struct {
				n   int
				err error
			}
			first := make(chan round, 1)
			go func() {
				n, err := s1.SendDue(ctx)
				first <- round{n, err}
			}()
			select {
			case <-paused.answered:
			case <-time.After(10 * time.Second):
				t.Fatal("the first sender did not call the provider")
			}
			claimed := b.task(t, x.ID)
			require.Equal(t, task.StatusSending, claimed.Status)

			b.clock.Advance(2 * time.Minute) // SEND_LEASE: the first sender's lease runs out
			if tc.secondFails {
				b.fake.failOnce()
			}
			n, err := s2.SendDue(ctx)
			require.NoError(t, err)
			require.Equal(t, 1, n, "the second sender claimed the message")
			after := stateOf(t, b.pool, x.ID)
			second := b.task(t, x.ID)
			require.Greater(t, second.LeaseToken, claimed.LeaseToken)

			b.clock.Advance(time.Second)
			close(paused.resume) // the first sender resumes and finishes
			select {
			case r := <-first:
				require.NoError(t, r.err)
				require.Equal(t, 1, r.n)
			case <-time.After(10 * time.Second):
				t.Fatal("the first sender did not finish")
			}

			require.Equal(t, after, stateOf(t, b.pool, x.ID), "the stale finish changed nothing")
			require.Equal(t, 1, log1.warnings("finish refused"), "one warning from the stale sender")
			require.Zero(t, log2.warnings("finish refused"))

			var status, key, providerID string
			var tries int
			require.NoError(t, b.pool.QueryRow(ctx, `SELECT status, idempotency_key, provider_message_id, tries FROM messages WHERE task_id = $1`, x.ID).
				Scan(&status, &key, &providerID, &tries))
			require.Equal(t, 2, tries, "one try per claim")
			got := b.task(t, x.ID)
			attempted := b.count(t, `SELECT count(*) FROM outbox WHERE subject = $1`, stream.SubjectVisitAttempted)
			require.Equal(t, 1, attempted, "only the second sender's outcome was told")
			if tc.secondFails {
				require.Equal(t, task.StatusOpen, got.Status, "the second sender's retry stands")
				require.True(t, got.AvailableAt.After(b.clock.Now()))
				require.Equal(t, message.StatusSending, status)
				require.Empty(t, providerID)
			} else {
				require.Equal(t, task.StatusSent, got.Status, "the second sender's acceptance stands")
				require.Equal(t, message.StatusSent, status)
				require.Equal(t, "tx-"+key, providerID)
			}

			requests, keys, delivered := b.fake.seen()
			require.Equal(t, 2, requests, "one provider call per holder")
			require.Equal(t, []string{message.KeyOf(x.ID), message.KeyOf(x.ID)}, keys, "both holders sent the same idempotency key")
			require.Len(t, delivered, 1, "the provider sent the SMS once")
		})
	}
}

// TestStaleSenderCallsNoProvider: a sender paused between its claim and the
// provider call checks its lease right before the call: once the message
// was claimed again, or its lease ran out, it calls nothing, changes
// nothing and logs one warning; the message is sent once, by its next
// holder.
func TestStaleSenderCallsNoProvider(t *testing.T) {
	for _, tc := range []struct {
		name         string
		reclaimFirst bool
	}{
		{"claimed again", true},
		{"lease ran out, not claimed yet", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := setupSend(t)
			b.seed002(t)
			ctx := context.Background()
			x := b.addSMS(t, "v-1")
			s1, s2, log1, _ := b.senders(b.a.Send.Sender)

			job, ok, err := s1.ClaimSend(ctx)
			require.NoError(t, err)
			require.True(t, ok)
			b.clock.Advance(2 * time.Minute) // paused past SEND_LEASE
			if tc.reclaimFirst {
				n, err := s2.SendDue(ctx)
				require.NoError(t, err)
				require.Equal(t, 1, n)
			}
			before := stateOf(t, b.pool, x.ID)
			require.NoError(t, s1.Deliver(ctx, job))
			require.Equal(t, before, stateOf(t, b.pool, x.ID), "the stale sender changed nothing")
			require.Equal(t, 1, log1.warnings("lease lost before the send"))
			if !tc.reclaimFirst {
				requests, _, _ := b.fake.seen()
				require.Zero(t, requests, "the stale sender called no provider")
				n, err := s2.SendDue(ctx)
				require.NoError(t, err)
				require.Equal(t, 1, n, "the next holder takes the message over")
			}

			requests, keys, delivered := b.fake.seen()
			require.Equal(t, 1, requests, "only the current holder called the provider")
			require.Equal(t, []string{job.Message.IdempotencyKey}, keys)
			require.Len(t, delivered, 1)
			require.Equal(t, task.StatusSent, b.task(t, x.ID).Status)
			require.Zero(t, log1.warnings("finish refused"))
		})
	}
}

// TestClaimSendThenDeliver: the normal path, claim and deliver in two
// steps, within the lease: sent once, with the claim's token.
func TestClaimSendThenDeliver(t *testing.T) {
	b := setupSend(t)
	b.seed002(t)
	ctx := context.Background()
	x := b.addSMS(t, "v-1")
	job, ok, err := b.a.ClaimSend(ctx)
	require.NoError(t, err)
	require.True(t, ok)
	require.Equal(t, int64(1), job.Task.LeaseToken)
	b.clock.Advance(time.Minute)
	require.NoError(t, b.a.Deliver(ctx, job))
	got := b.task(t, x.ID)
	require.Equal(t, task.StatusSent, got.Status)
	require.Equal(t, job.Task.LeaseToken, got.LeaseToken)
	requests, _, delivered := b.fake.seen()
	require.Equal(t, 1, requests)
	require.Len(t, delivered, 1)
}
