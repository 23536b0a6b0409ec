package app

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	typesv1 "github.com/huifang/huifang/proto/huifang/types/v1"

	"github.com/huifang/huifang/pkg/enum"
	"github.com/huifang/huifang/pkg/loop"
	"github.com/huifang/huifang/pkg/outbox"
	"github.com/huifang/huifang/pkg/postgres"
	"github.com/huifang/huifang/services/dispatch/internal/contacts"
	"github.com/huifang/huifang/services/dispatch/internal/message"
	"github.com/huifang/huifang/services/dispatch/internal/sender"
	"github.com/huifang/huifang/services/dispatch/internal/store"
	"github.com/huifang/huifang/services/dispatch/internal/task"
)

// Job is one claimed send: the task as the claim left it (its LeaseToken is
// the claim's fencing token) and its message.
type Job struct {
	Task    task.Task
	Message message.Message
}

// SendDue is one round of the automatic channels (the sender loop): it
// sends up to Send.Batch due messages, one at a time (ClaimSend, then
// Deliver), and returns how many it claimed.
func (a *App) SendDue(ctx context.Context) (int, error) {
	n := 0
	for n < max(a.Send.Batch, 1) {
		job, ok, err := a.ClaimSend(ctx)
		if err != nil {
			return n, err
		}
		if !ok {
			// The appointments' reminders, in what is left of the round.
			r, err := a.SendReminders(ctx, max(a.Send.Batch, 1)-n)
			return n + r, err
		}
		n++
		if err := a.Deliver(ctx, job); err != nil {
			return n, err
		}
	}
	return n, nil
}

// Deliver sends a claimed job through the provider and records the outcome
// (FinishSend; while the database is away it keeps the provider's answer
// and tries again, see keepFinishing). Right before the provider is called
// it checks that the claim still holds (task.Task.MaySend): a sender that
// was paused past its lease, whose message another sender may have claimed
// and sent, calls nothing, logs one warning and leaves the message to the
// next holder. The check and the call are not atomic: a sender paused
// between them still calls the provider, with the message's one
// idempotency key, so a provider that deduplicates drops the copy, and
// FinishSend refuses its outcome. The call is bounded by what is left of
// the lease.
func (a *App) Deliver(ctx context.Context, job Job) error {
	now := a.Now()
	current, err := store.Task(ctx, a.DB, job.Task.Tenant, job.Task.ID)
	if err != nil {
		return fmt.Errorf("outgoing: check the lease of task %s: %w", job.Task.ID, err)
	}
	if err := current.MaySend(job.Task.LeaseToken, now); err != nil {
		a.log().WarnContext(ctx, "outgoing: lease lost before the send, nothing sent; the message is left to its next holder",
			"task", job.Task.ID, "visit", job.Task.VisitID, "reason", err.Error(), "token", job.Task.LeaseToken, "current_token", current.LeaseToken)
		return nil
	}
	sendCtx := ctx
	if left := job.Task.LeaseExpiresAt.Sub(now); left > 0 {
		var cancel context.CancelFunc
		sendCtx, cancel = context.WithTimeout(ctx, left)
		defer cancel()
	}
	// The address, and the name the text greets, from intake at the moment
	// of use: dispatch keeps neither.
	c, err := a.Send.Contacts.Reveal(sendCtx, contacts.Request{Tenant: job.Task.Tenant, CustomerID: job.Task.CustomerID(), Channel: job.Message.Channel,
		Purpose: "automatic " + enum.Name(job.Message.Channel) + " follow-up", OnBehalfOf: "message:" + job.Message.ID})
	if errors.Is(err, contacts.ErrGone) {
		return a.keepFinishing(ctx, job, sender.Result{}, &sender.PermanentError{Err: err})
	}
	if err != nil {
		return a.postpone(ctx, job, err)
	}
	res, sendErr := a.Send.Sender.Send(sendCtx, sender.Message{IdempotencyKey: job.Message.IdempotencyKey, Channel: job.Message.Channel,
		To: c.Address, Subject: message.Greet(job.Message.Subject, c.Name), Body: message.Greet(job.Message.Body, c.Name),
		Shown: sender.Shown{To: job.Message.To, Subject: job.Message.Subject, Body: job.Message.Body}})
	return a.keepFinishing(ctx, job, res, sendErr)
}

// Defaults of the retries of a FinishSend that failed for the moment.
const (
	DefaultFinishBackoff    = 200 * time.Millisecond
	DefaultFinishMaxBackoff = 10 * time.Second
	// finishTimeout bounds one FinishSend (it may wait for the task's lock).
	finishTimeout = 30 * time.Second
)

// keepFinishing records the provider's answer (FinishSend) and, while that
// fails for the moment (Postgres away or busy: a failure of the moment by
// postgres.IsTransient, or any failure while DatabaseUp says the database
// is away), keeps the answer and tries again after a capped backoff
// (Send.FinishBackoff doubling up to Send.FinishMaxBackoff), until it is
// recorded, its fence refuses it (the task was claimed again meanwhile:
// FinishSend logs it and the new holder's outcome stands), or ctx ends (the
// service shuts down): then it logs what was not recorded; the message stays
// sending and, once SEND_LEASE ran out, its next holder sends it again
// under the same idempotency key. Each try runs even while ctx is ending
// (bounded by finishTimeout): a shutdown does not cut off the answer of a
// provider call already made. Another failure is returned as before.
func (a *App) keepFinishing(ctx context.Context, job Job, res sender.Result, sendErr error) error {
	trouble := loop.Trouble{Log: a.log(), What: "outgoing: recording the send of task " + job.Task.ID}
	base, limit := a.Send.FinishBackoff, a.Send.FinishMaxBackoff
	if base <= 0 {
		base = DefaultFinishBackoff
	}
	if limit <= 0 {
		limit = DefaultFinishMaxBackoff
	}
	limit = max(limit, base)
	for {
		fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), finishTimeout)
		err := a.FinishSend(fctx, job, res, sendErr)
		cancel()
		if err == nil {
			trouble.OK(ctx)
			return nil
		}
		if !a.transient(err) {
			return err
		}
		n := trouble.Fail(ctx, err)
		if a.finishFailed != nil {
			a.finishFailed(n, err)
		}
		pause := time.NewTimer(loop.Backoff(base, limit, n))
		select {
		case <-ctx.Done():
			pause.Stop()
			outcome, reason := "sent", ""
			if sendErr != nil {
				outcome, reason = "failed", sendErr.Error()
			}
			a.log().ErrorContext(ctx, "outgoing: shutting down before the send's outcome could be recorded (the database is away); "+
				"the message stays sending and its next holder sends it again under the same idempotency key once SEND_LEASE runs out",
				"task", job.Task.ID, "visit", job.Task.VisitID, "idempotency_key", job.Message.IdempotencyKey, "try", job.Message.Tries,
				"outcome", outcome, "provider_message_id", res.ProviderMessageID, "send_error", reason, "failures", n, "err", err)
			return ctx.Err()
		case <-pause.C:
		}
	}
}

// transient tells whether a failure to record is one of the moment: the
// database is away or busy.
func (a *App) transient(err error) bool {
	return postgres.IsTransient(err) || (a.DatabaseUp != nil && !a.DatabaseUp())
}

// ClaimSend takes the next due automatic task, creates its message the
// first time (rendered, with its idempotency key, committed before any
// send) and counts a try, leased for Send.Lease, in one transaction. A
// task it cannot address ends unreachable, one it cannot render failed,
// both with their events. False when nothing is due.
func (a *App) ClaimSend(ctx context.Context) (Job, bool, error) {
	var job Job
	var found, claimed bool
	now := a.Now()
	// The relay is woken only when a task was claimed (its events): an
	// idle round wakes nothing.
	err := pgx.BeginFunc(ctx, a.DB, func(tx pgx.Tx) error {
		for {
			t, ok, err := store.ClaimOutgoing(ctx, tx, now)
			if err != nil || !ok {
				return err
			}
			claimed = true
			m, exists, err := store.MessageOfTask(ctx, tx, t.ID)
			if err != nil {
				return err
			}
			if !exists {
				var status, reason string
				m, status, reason, err = a.compose(ctx, tx, t, now)
				if err != nil {
					return err
				}
				if status != "" {
					if err := a.endSend(ctx, tx, &t, status, reason, now); err != nil {
						return err
					}
					if err := store.SaveTask(ctx, tx, t, now); err != nil {
						return err
					}
					continue
				}
				if err := store.CreateMessage(ctx, tx, m); err != nil {
					return err
				}
			}
			m.Try(sender.NameOf(a.Send.Sender, t.Channel), now)
			if err := store.SaveMessage(ctx, tx, m); err != nil {
				return err
			}
			t.Sending(m.Tries, now, a.Send.Lease)
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
	if claimed {
		a.notify()
	}
	return job, found, nil
}

// compose renders the message of t; or says which status ends t and why
// (no address: unreachable; a template it cannot fill: failed).
func (a *App) compose(ctx context.Context, tx pgx.Tx, t task.Task, now time.Time) (m message.Message, status, reason string, err error) {
	if !t.Customer.Reachable(t.Channel) {
		return m, task.StatusUnreachable, t.NoAddressReason(), nil
	}
	to := t.Customer.MaskedAddress(t.Channel)
	stored, err := store.Templates(ctx, tx, t.Tenant, t.PolicyID, t.Channel)
	if err != nil {
		return m, "", "", err
	}
	own, err := store.CustomerVariables(ctx, tx, t.Tenant, t.CustomerID())
	if err != nil {
		return m, "", "", err
	}
	tpl := message.Pick(stored, t.Tenant, t.PolicyID, t.Channel)
	subject, body, err := message.Render(tpl, message.Vars(message.Builtins{Name: message.NamePlaceholder, CustomerID: t.CustomerID(),
		VisitID: t.VisitID, OrgUnit: t.OrgUnit, ServiceType: t.ServiceType}, own))
	if err != nil {
		return m, task.StatusFailed, err.Error(), nil
	}
	return message.Message{
		ID: outbox.NewEventID(), Tenant: t.Tenant, TaskID: t.ID, VisitID: t.VisitID, Channel: t.Channel, To: to,
		Subject: subject, Body: body, IdempotencyKey: message.KeyOf(t.ID), Status: message.StatusSending,
		CreatedAt: now, UpdatedAt: now,
	}, "", "", nil
}

// errStale rolls back the transaction of a stale sender's FinishSend;
// errRecorded that of a FinishSend tried again after it committed.
var (
	errStale    = errors.New("outgoing: the send was claimed again")
	errRecorded = errors.New("outgoing: the send's outcome is already recorded")
)

// FinishSend records the outcome of a send: sent; or, after a failure worth
// retrying, back to the sender's queue after Backoff·2^(tries-1); or failed
// (and the visit unreachable) after a permanent failure or MaxTries. It is
// fenced: a sender whose claim is no longer the task's (job.Task.LeaseToken;
// its lease ran out and another sender claimed the message) changes
// nothing, not even a timestamp, and logs one warning; the message stays
// with its new holder. Calling it again for a try it already recorded
// changes nothing (Deliver tries again when it failed for the moment, and
// a commit may go through while its answer is lost).
func (a *App) FinishSend(ctx context.Context, job Job, res sender.Result, sendErr error) error {
	now := a.Now()
	var current task.Task
	err := a.inTx(ctx, func(tx pgx.Tx) error {
		_, err := store.UpdateTask(ctx, tx, job.Task.Tenant, job.Task.ID, now, func(t *task.Task) error {
			m, _, err := store.MessageOfTask(ctx, tx, t.ID)
			if err != nil {
				return err
			}
			// The token is the fence; the message's try count says the same
			// (each claim counts one) and also holds against a claim by a
			// replica that predates the token.
			if t.Fenced(job.Task.LeaseToken) == nil && m.Recorded(job.Message.Tries) {
				// This very try is recorded: a FinishSend whose commit went
				// through but whose answer was lost, tried again.
				return errRecorded
			}
			if t.Fenced(job.Task.LeaseToken) != nil || !m.Current(job.Message.Tries) {
				current = *t
				return errStale
			}
			if sendErr == nil {
				m.Sent(res.ProviderMessageID, now)
				if err := store.SaveMessage(ctx, tx, m); err != nil {
					return err
				}
				t.Sent()
				if err := messageSent(ctx, tx, m, t.CustomerID(), t.OrgUnit, message.StatusSent, now); err != nil {
					return err
				}
				return attempted(ctx, tx, *t, "", typesv1.Disposition_DISPOSITION_SENT, m.Tries, now, time.Time{})
			}
			after, retry := m.Failed(sendErr.Error(), sender.IsPermanent(sendErr), now, a.Send.Retry)
			if err := store.SaveMessage(ctx, tx, m); err != nil {
				return err
			}
			if !retry {
				if err := messageSent(ctx, tx, m, t.CustomerID(), t.OrgUnit, message.StatusFailed, now); err != nil {
					return err
				}
				if t.Status != task.StatusSending {
					return nil
				}
				return a.endSend(ctx, tx, t, task.StatusUnreachable, t.NotSentReason(m.Tries, m.Error), now)
			}
			next := now.Add(after)
			if !t.RetrySend(next) {
				return nil
			}
			return attempted(ctx, tx, *t, "", typesv1.Disposition_DISPOSITION_FAILED, m.Tries, now, next)
		})
		return err
	})
	if errors.Is(err, errRecorded) {
		a.log().InfoContext(ctx, "outgoing: the send's outcome was already recorded (an earlier try committed but its answer was lost)",
			"task", job.Task.ID, "visit", job.Task.VisitID, "token", job.Task.LeaseToken, "try", job.Message.Tries)
		return nil
	}
	if errors.Is(err, errStale) {
		outcome := "sent"
		if sendErr != nil {
			outcome = "failed"
		}
		a.log().WarnContext(ctx, "outgoing: finish refused: the message was claimed again after this sender's lease ran out; its outcome is not recorded",
			"task", job.Task.ID, "visit", job.Task.VisitID, "token", job.Task.LeaseToken, "current_token", current.LeaseToken,
			"try", job.Message.Tries, "outcome", outcome)
		return nil
	}
	if err != nil {
		return fmt.Errorf("outgoing: finish task %s: %w", job.Task.ID, err)
	}
	return nil
}

// endSend closes the automatic task t with status (failed, unreachable)
// and writes VisitAttempted (failed) and, when unreachable,
// VisitUnreachable; the caller saves t.
func (a *App) endSend(ctx context.Context, tx pgx.Tx, t *task.Task, status, reason string, now time.Time) error {
	a.log().WarnContext(ctx, "outgoing: task ended", "task", t.ID, "visit", t.VisitID, "status", status, "reason", reason)
	t.End(status)
	if err := attempted(ctx, tx, *t, "", typesv1.Disposition_DISPOSITION_FAILED, t.Attempts, now, time.Time{}); err != nil {
		return err
	}
	if status != task.StatusUnreachable {
		return nil
	}
	return unreachable(ctx, tx, *t, t.Attempts, reason, now)
}

// DefaultPostpone is how long a message waits when its contact could not
// be had for the moment.
const DefaultPostpone = 30 * time.Second

// postpone puts a claimed message back in the queue, without counting the
// try, when its contact could not be had for the moment (intake or the
// network away, a rate): it is no failure of the message, and an outage
// must not use up its tries. Fenced like FinishSend: a sender whose claim
// is no longer the task's changes nothing.
func (a *App) postpone(ctx context.Context, job Job, why error) error {
	now := a.Now()
	wait := a.Send.Postpone
	if wait <= 0 {
		wait = DefaultPostpone
	}
	err := a.inTx(ctx, func(tx pgx.Tx) error {
		_, err := store.UpdateTask(ctx, tx, job.Task.Tenant, job.Task.ID, now, func(t *task.Task) error {
			m, _, err := store.MessageOfTask(ctx, tx, t.ID)
			if err != nil {
				return err
			}
			if t.Fenced(job.Task.LeaseToken) != nil || !m.Current(job.Message.Tries) {
				return errStale
			}
			m.Untry("contact not available: "+why.Error(), now)
			if err := store.SaveMessage(ctx, tx, m); err != nil {
				return err
			}
			t.RetrySend(now.Add(wait))
			return nil
		})
		return err
	})
	if errors.Is(err, errStale) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("outgoing: postpone task %s: %w", job.Task.ID, err)
	}
	a.log().WarnContext(ctx, "outgoing: the customer's contact could not be had; the message waits, its try not counted",
		"task", job.Task.ID, "visit", job.Task.VisitID, "retry_in", wait, "err", why)
	return nil
}
