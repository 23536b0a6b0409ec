// Package outgoing sends the automatic follow-ups (SMS, email) of tasks:
// a loop claims due automatic tasks, renders their template with the
// customer's variables, sends them through a sender.Sender with one
// idempotency key per message, retries with exponential backoff, and
// records delivery receipts.
package outgoing

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"google.golang.org/protobuf/types/known/timestamppb"

	eventsv1 "github.com/huifang/huifang/proto/huifang/events/v1"
	typesv1 "github.com/huifang/huifang/proto/huifang/types/v1"

	"github.com/huifang/huifang/pkg/outbox"
	"github.com/huifang/huifang/pkg/stream"
	"github.com/huifang/huifang/services/dispatch/internal/message"
	"github.com/huifang/huifang/services/dispatch/internal/sender"
	"github.com/huifang/huifang/services/dispatch/internal/store"
	"github.com/huifang/huifang/services/dispatch/internal/task"
)

// Notifier is told when events were committed (the outbox relay).
type Notifier interface{ Notify() }

// Loop sends automatic tasks.
type Loop struct {
	Pool   *pgxpool.Pool
	Sender sender.Sender
	Relay  Notifier
	Log    *slog.Logger
	Now    func() time.Time
	// Lease is how long a send may take before another sender takes the
	// message over (with the same idempotency key).
	Lease time.Duration
	// Backoff is the delay after the first failed try; it doubles per try.
	Backoff time.Duration
	// MaxTries ends a message as failed (and the visit unreachable).
	MaxTries int
	// Every is how often the loop looks for work.
	Every time.Duration
	// Batch bounds one round.
	Batch int
}

// Job is one claimed send.
type Job struct {
	Task    task.Task
	Message store.Message
}

// Run sends until ctx ends.
func (l *Loop) Run(ctx context.Context) error {
	ticker := time.NewTicker(l.Every)
	defer ticker.Stop()
	for {
		if _, err := l.RunOnce(ctx); err != nil && ctx.Err() == nil {
			l.Log.ErrorContext(ctx, "outgoing: round failed", "err", err)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-ticker.C:
		}
	}
}

// RunOnce sends up to Batch due messages and returns how many it tried.
func (l *Loop) RunOnce(ctx context.Context) (int, error) {
	n := 0
	for n < max(l.Batch, 1) {
		job, ok, err := l.Claim(ctx)
		if err != nil {
			return n, err
		}
		if !ok {
			return n, nil
		}
		n++
		res, sendErr := l.Sender.Send(ctx, sender.Message{IdempotencyKey: job.Message.IdempotencyKey, Channel: job.Message.Channel,
			To: job.Message.To, Subject: job.Message.Subject, Body: job.Message.Body})
		if err := l.Finish(ctx, job, res, sendErr); err != nil {
			return n, err
		}
	}
	return n, nil
}

// Claim takes the next due automatic task, creates its message the first
// time (rendered, with its idempotency key) and counts a try, leased for
// Lease, in one transaction. A task it cannot render or address ends
// failed or unreachable here. False when nothing is due.
func (l *Loop) Claim(ctx context.Context) (Job, bool, error) {
	var job Job
	var found bool
	now := l.Now()
	err := pgx.BeginFunc(ctx, l.Pool, func(tx pgx.Tx) error {
		for {
			t, ok, err := store.ClaimOutgoing(ctx, tx, now)
			if err != nil || !ok {
				return err
			}
			m, exists, err := store.MessageOfTask(ctx, tx, t.ID)
			if err != nil {
				return err
			}
			if !exists {
				m, err = l.compose(ctx, tx, t, now)
				var refused *refusal
				if errors.As(err, &refused) {
					if err := l.end(ctx, tx, t, refused.status, refused.reason, now, refused.unreachable); err != nil {
						return err
					}
					continue
				}
				if err != nil {
					return err
				}
				if err := store.CreateMessage(ctx, tx, m); err != nil {
					return err
				}
			}
			m.Tries++
			m.Status, m.Provider, m.UpdatedAt = store.MessageSending, sender.NameOf(l.Sender, t.Channel), now
			if err := store.SaveMessage(ctx, tx, m); err != nil {
				return err
			}
			t.Status, t.LeaseExpiresAt, t.Attempts = task.StatusSending, now.Add(l.Lease), m.Tries
			if err := store.SaveTask(ctx, tx, t, now); err != nil {
				return err
			}
			job, found = Job{Task: t, Message: m}, true
			return nil
		}
	})
	if err != nil {
		return Job{}, false, fmt.Errorf("outgoing: claim: %w", err)
	}
	l.Relay.Notify()
	return job, found, nil
}

type refusal struct {
	status, reason string
	unreachable    bool
}

func (r *refusal) Error() string { return r.reason }

// compose renders the message of t.
func (l *Loop) compose(ctx context.Context, tx pgx.Tx, t task.Task, now time.Time) (store.Message, error) {
	to := t.Customer.GetPhone()
	if t.Channel == typesv1.Channel_CHANNEL_EMAIL {
		to = t.Customer.GetEmail()
	}
	if strings.TrimSpace(to) == "" {
		return store.Message{}, &refusal{status: task.StatusUnreachable, reason: "no address for " + t.Channel.String(), unreachable: true}
	}
	tpl, err := store.TemplateFor(ctx, tx, t.Tenant, t.PolicyID, t.Channel)
	if err != nil {
		return store.Message{}, err
	}
	own, err := store.CustomerVariables(ctx, tx, t.Tenant, t.CustomerID())
	if err != nil {
		return store.Message{}, err
	}
	subject, body, err := message.Render(tpl, message.Vars(t.Customer, t.VisitID, t.OrgUnit, t.ServiceType, own))
	if err != nil {
		return store.Message{}, &refusal{status: task.StatusFailed, reason: err.Error()}
	}
	return store.Message{
		ID: outbox.NewEventID(), Tenant: t.Tenant, TaskID: t.ID, VisitID: t.VisitID, Channel: t.Channel, To: to,
		Subject: subject, Body: body, IdempotencyKey: "huifang-" + t.ID, Status: store.MessageSending,
		CreatedAt: now, UpdatedAt: now,
	}, nil
}

// Finish records the outcome of a send: sent; or, after a failure worth
// retrying, back to open after Backoff·2^(tries-1); or failed (and the
// visit unreachable) after a permanent failure or MaxTries.
func (l *Loop) Finish(ctx context.Context, job Job, res sender.Result, sendErr error) error {
	now := l.Now()
	err := pgx.BeginFunc(ctx, l.Pool, func(tx pgx.Tx) error {
		t, err := store.LockTask(ctx, tx, job.Task.Tenant, job.Task.ID)
		if err != nil {
			return err
		}
		m, _, err := store.MessageOfTask(ctx, tx, t.ID)
		if err != nil {
			return err
		}
		if m.Status != store.MessageSending || m.Tries != job.Message.Tries {
			return nil // another sender took it over after our lease ran out
		}
		m.UpdatedAt = now
		if sendErr == nil {
			m.Status, m.ProviderMessageID, m.Error = store.MessageSent, res.ProviderMessageID, ""
			if err := store.SaveMessage(ctx, tx, m); err != nil {
				return err
			}
			if t.Status == task.StatusSending {
				t.Status, t.LeaseExpiresAt = task.StatusSent, time.Time{}
				if err := store.SaveTask(ctx, tx, t, now); err != nil {
					return err
				}
			}
			return attempted(ctx, tx, t, typesv1.Disposition_DISPOSITION_SENT, m.Tries, now, time.Time{})
		}
		m.Error = sendErr.Error()
		if sender.IsPermanent(sendErr) || m.Tries >= l.MaxTries {
			m.Status = store.MessageFailed
			if err := store.SaveMessage(ctx, tx, m); err != nil {
				return err
			}
			if t.Status != task.StatusSending {
				return nil
			}
			return l.end(ctx, tx, t, task.StatusUnreachable, fmt.Sprintf("%s not sent after %d tries: %s", t.Channel, m.Tries, m.Error), now, true)
		}
		if err := store.SaveMessage(ctx, tx, m); err != nil {
			return err
		}
		if t.Status != task.StatusSending {
			return nil
		}
		next := now.Add(l.Backoff << (m.Tries - 1))
		t.Status, t.LeaseExpiresAt, t.AvailableAt = task.StatusOpen, time.Time{}, next
		if err := store.SaveTask(ctx, tx, t, now); err != nil {
			return err
		}
		return attempted(ctx, tx, t, typesv1.Disposition_DISPOSITION_FAILED, m.Tries, now, next)
	})
	if err != nil {
		return fmt.Errorf("outgoing: finish task %s: %w", job.Task.ID, err)
	}
	l.Relay.Notify()
	return nil
}

// end closes t with status, writing VisitAttempted (failed) and, when
// unreachable, VisitUnreachable.
func (l *Loop) end(ctx context.Context, tx pgx.Tx, t task.Task, status, reason string, now time.Time, unreachable bool) error {
	l.Log.WarnContext(ctx, "outgoing: task ended", "task", t.ID, "visit", t.VisitID, "status", status, "reason", reason)
	t.Status, t.LeaseExpiresAt = status, time.Time{}
	if t.Attempts == 0 {
		t.Attempts = 1
	}
	if err := store.SaveTask(ctx, tx, t, now); err != nil {
		return err
	}
	if err := attempted(ctx, tx, t, typesv1.Disposition_DISPOSITION_FAILED, t.Attempts, now, time.Time{}); err != nil {
		return err
	}
	if !unreachable {
		return nil
	}
	ev := &eventsv1.VisitUnreachable{EventId: outbox.NewEventID(), TenantId: t.Tenant, VisitId: t.VisitID, CustomerId: t.CustomerID(),
		Attempts: int32(t.Attempts), Reason: reason, At: timestamppb.New(now), OrgUnit: t.OrgUnit}
	_, err := outbox.Add(ctx, tx, outbox.Message{ID: ev.EventId, Subject: stream.SubjectVisitUnreachable, Payload: ev})
	return err
}

func attempted(ctx context.Context, tx pgx.Tx, t task.Task, d typesv1.Disposition, n int, now, next time.Time) error {
	ev := &eventsv1.VisitAttempted{EventId: outbox.NewEventID(), TenantId: t.Tenant, VisitId: t.VisitID, TaskId: t.ID,
		Channel: t.Channel, Disposition: d, Attempt: int32(n), AttemptedAt: timestamppb.New(now),
		CustomerId: t.CustomerID(), OrgUnit: t.OrgUnit}
	if !t.Deadline.IsZero() {
		ev.Deadline = timestamppb.New(t.Deadline)
	}
	if !next.IsZero() {
		ev.NextAttemptAt = timestamppb.New(next)
	}
	_, err := outbox.Add(ctx, tx, outbox.Message{ID: ev.EventId, Subject: stream.SubjectVisitAttempted, Payload: ev})
	return err
}

// RecordReceipt records a provider's delivery report: the message and its
// task become delivered or failed, once; VisitAttempted tells it. A
// repeated report changes nothing.
func RecordReceipt(ctx context.Context, pool *pgxpool.Pool, relay Notifier, now time.Time, provider string, r sender.Receipt) (store.Message, error) {
	var out store.Message
	err := pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		m, err := store.MessageByProvider(ctx, tx, provider, r.ProviderMessageID)
		if err != nil {
			return err
		}
		out = m
		if m.Status == store.MessageDelivered || m.Status == store.MessageFailed {
			return nil
		}
		t, err := store.LockTask(ctx, tx, m.Tenant, m.TaskID)
		if err != nil {
			return err
		}
		m.Status, m.UpdatedAt, m.Error = store.MessageDelivered, now, ""
		d := typesv1.Disposition_DISPOSITION_DELIVERED
		if !r.Delivered {
			m.Status, m.Error, d = store.MessageFailed, r.Error, typesv1.Disposition_DISPOSITION_FAILED
		}
		if err := store.SaveMessage(ctx, tx, m); err != nil {
			return err
		}
		out = m
		if t.Status == task.StatusSent {
			t.Status = task.StatusDelivered
			if !r.Delivered {
				t.Status = task.StatusFailed
			}
			if err := store.SaveTask(ctx, tx, t, now); err != nil {
				return err
			}
		}
		return attempted(ctx, tx, t, d, m.Tries, now, time.Time{})
	})
	if err != nil {
		return store.Message{}, err
	}
	relay.Notify()
	return out, nil
}
