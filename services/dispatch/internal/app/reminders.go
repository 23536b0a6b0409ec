package app

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	typesv1 "github.com/huifang/huifang/proto/huifang/types/v1"

	"github.com/huifang/huifang/pkg/outbox"
	"github.com/huifang/huifang/services/dispatch/internal/contacts"
	"github.com/huifang/huifang/services/dispatch/internal/message"
	"github.com/huifang/huifang/services/dispatch/internal/sender"
	"github.com/huifang/huifang/services/dispatch/internal/store"
	"github.com/huifang/huifang/services/dispatch/internal/task"
)

// reminderJob is one claimed reminder: the appointment as the claim left
// it, its task and the reminder's message (its Tries fence the claim).
type reminderJob struct {
	Appointment task.Appointment
	Task        task.Task
	Message     message.Message
}

// SendReminders sends up to limit due reminders of appointments (part of
// the sender loop's round, SendDue), one at a time, and returns how many
// it claimed.
func (a *App) SendReminders(ctx context.Context, limit int) (int, error) {
	n := 0
	for n < limit {
		job, ok, err := a.claimReminder(ctx)
		if err != nil || !ok {
			return n, err
		}
		n++
		if err := a.deliverReminder(ctx, job); err != nil {
			return n, err
		}
	}
	return n, nil
}

// claimReminder takes the next due reminder, creates its message the first
// time for this version of the appointment (rendered with the reminder
// template, its idempotency key the appointment's and version's) and
// counts a try, leased for Send.Lease, in one transaction. A reminder that
// cannot be sent (no phone any more, a template it cannot fill) ends
// failed. False when none is due.
func (a *App) claimReminder(ctx context.Context) (reminderJob, bool, error) {
	var job reminderJob
	var found, claimed bool
	now := a.Now()
	// The relay is woken only when a reminder was claimed: an idle round
	// wakes nothing.
	err := pgx.BeginFunc(ctx, a.DB, func(tx pgx.Tx) error {
		for {
			ap, ok, err := store.ClaimReminder(ctx, tx, now)
			if err != nil || !ok {
				return err
			}
			claimed = true
			t, err := store.Task(ctx, tx, ap.Tenant, ap.TaskID)
			if err != nil {
				return err
			}
			if why := t.ReminderBlocked(); why != "" {
				a.log().InfoContext(ctx, "reminder: cancelled", "appointment", ap.ID, "task", ap.TaskID, "reason", why)
				before := ap
				ap.ReminderStatus, ap.RemindAt, ap.ReminderLeaseUntil, ap.UpdatedAt = task.ReminderCancelled, time.Time{}, time.Time{}, now
				if err := supersedeReminder(ctx, tx, before, ap); err != nil {
					return err
				}
				if err := store.SaveAppointment(ctx, tx, ap); err != nil {
					return err
				}
				continue
			}
			var m message.Message
			if ap.ReminderMessageID != "" {
				if m, err = store.MessageByID(ctx, tx, ap.ReminderMessageID); err != nil && !errors.Is(err, store.ErrMessageNotFound) {
					return err
				}
			}
			if m.ID == "" || m.IdempotencyKey != ap.ReminderKey() {
				var reason string
				if m, reason, err = a.composeReminder(ctx, tx, ap, t, now); err != nil {
					return err
				}
				if reason != "" {
					a.log().WarnContext(ctx, "reminder: not sent", "appointment", ap.ID, "task", ap.TaskID, "reason", reason)
					ap.ReminderStatus, ap.ReminderLeaseUntil, ap.UpdatedAt = task.ReminderFailed, time.Time{}, now
					if err := store.SaveAppointment(ctx, tx, ap); err != nil {
						return err
					}
					continue
				}
				if err := store.CreateMessage(ctx, tx, m); err != nil {
					return err
				}
				ap.ReminderMessageID = m.ID
			}
			m.Try(sender.NameOf(a.Send.Sender, m.Channel), now)
			if err := store.SaveMessage(ctx, tx, m); err != nil {
				return err
			}
			ap.ReminderStatus, ap.ReminderTries, ap.ReminderLeaseUntil = task.ReminderSending, m.Tries, now.Add(a.Send.Lease)
			if err := store.SaveAppointment(ctx, tx, ap); err != nil {
				return err
			}
			job, found = reminderJob{Appointment: ap, Task: t, Message: m}, true
			return nil
		}
	})
	if err != nil {
		return reminderJob{}, false, fmt.Errorf("reminder: claim: %w", err)
	}
	if claimed {
		a.notify()
	}
	return job, found, nil
}

// composeReminder renders the reminder of ap: the tenant's reminder
// template for the service type, else its default one, else the built-in
// one, with the customer's variables and {appointment_time} in the
// customer's zone; the name stays {name} (filled from intake when sent).
// reason says why none can be sent.
func (a *App) composeReminder(ctx context.Context, tx pgx.Tx, ap task.Appointment, t task.Task, now time.Time) (message.Message, string, error) {
	ch := typesv1.Channel_CHANNEL_SMS
	if !t.Customer.Reachable(ch) {
		return message.Message{}, t.NoAddressReason(), nil
	}
	stored, err := store.KindTemplates(ctx, tx, ap.Tenant, message.KindReminder, t.ServiceType)
	if err != nil {
		return message.Message{}, "", err
	}
	own, err := store.CustomerVariables(ctx, tx, ap.Tenant, ap.CustomerID)
	if err != nil {
		return message.Message{}, "", err
	}
	tpl, _ := message.PickKind(stored, ap.Tenant, message.KindReminder, t.ServiceType)
	loc, err := time.LoadLocation(ap.TimeZone)
	if err != nil {
		loc = time.UTC
	}
	vars := message.Vars(message.Builtins{Name: message.NamePlaceholder, CustomerID: ap.CustomerID, VisitID: ap.VisitID,
		OrgUnit: ap.OrgUnit, ServiceType: t.ServiceType}, own)
	vars["appointment_time"] = message.AppointmentTime(ap.StartsAt, ap.EndsAt, loc)
	subject, body, err := message.Render(tpl, vars)
	if err != nil {
		return message.Message{}, err.Error(), nil
	}
	return message.Message{ID: outbox.NewEventID(), Tenant: ap.Tenant, TaskID: ap.TaskID, VisitID: ap.VisitID, Channel: ch,
		To: t.Customer.MaskedAddress(ch), Subject: subject, Body: body, IdempotencyKey: ap.ReminderKey(), Status: message.StatusSending,
		CreatedAt: now, UpdatedAt: now, AppointmentID: ap.ID}, "", nil
}

// deliverReminder asks intake for the number and the name at the moment of
// sending, sends the reminder and records the outcome. While intake cannot
// answer the reminder waits Send.Postpone, its try not counted.
func (a *App) deliverReminder(ctx context.Context, job reminderJob) error {
	m := job.Message
	c, err := a.Send.Contacts.Reveal(ctx, contacts.Request{Tenant: job.Appointment.Tenant, CustomerID: job.Appointment.CustomerID,
		Channel: m.Channel, Purpose: "appointment reminder SMS", OnBehalfOf: "message:" + m.ID})
	if errors.Is(err, contacts.ErrGone) {
		return a.finishReminder(ctx, job, sender.Result{}, &sender.PermanentError{Err: err})
	}
	if err != nil {
		return a.postponeReminder(ctx, job, err)
	}
	res, sendErr := a.Send.Sender.Send(ctx, sender.Message{IdempotencyKey: m.IdempotencyKey, Channel: m.Channel, To: c.Address,
		Subject: message.Greet(m.Subject, c.Name), Body: message.Greet(m.Body, c.Name),
		Shown: sender.Shown{To: m.To, Subject: m.Subject, Body: m.Body}})
	return a.finishReminder(ctx, job, res, sendErr)
}

// lockReminder locks a claimed reminder's appointment, then its message
// (the order of every writer), within tx; errStale when the claim is no
// longer the message's (its lease ran out and another claimed it).
func lockReminder(ctx context.Context, tx pgx.Tx, job reminderJob) (task.Appointment, message.Message, error) {
	ap, err := store.LockAppointment(ctx, tx, job.Appointment.Tenant, job.Appointment.ID)
	if err != nil {
		return task.Appointment{}, message.Message{}, err
	}
	m, err := store.MessageByID(ctx, tx, job.Message.ID)
	if err != nil {
		return task.Appointment{}, message.Message{}, err
	}
	if !m.Current(job.Message.Tries) {
		return task.Appointment{}, message.Message{}, errStale
	}
	return ap, m, nil
}

// finishReminder records the outcome of a reminder's send: the message
// sent (MessageSent, sent), retried after the backoff, or failed for good
// (MessageSent, failed). A sender whose claim is no longer the message's
// (its lease ran out and another claimed it) changes nothing. The
// appointment's reminder status follows unless the appointment was moved or
// cancelled meanwhile (then its new reminder, or none, stands).
func (a *App) finishReminder(ctx context.Context, job reminderJob, res sender.Result, sendErr error) error {
	now := a.Now()
	err := a.inTx(ctx, func(tx pgx.Tx) error {
		ap, m, err := lockReminder(ctx, tx, job)
		if err != nil {
			return err
		}
		current := ap.ReminderMessageID == m.ID && ap.ReminderStatus == task.ReminderSending && ap.ReminderTries == m.Tries
		if sendErr == nil {
			m.Sent(res.ProviderMessageID, now)
			if current {
				ap.ReminderStatus = task.ReminderSent
			}
		} else {
			after, retry := m.Failed(sendErr.Error(), sender.IsPermanent(sendErr), now, a.Send.Retry)
			switch {
			case !retry && current:
				ap.ReminderStatus = task.ReminderFailed
			case retry && current:
				ap.ReminderStatus, ap.RemindAt = task.ReminderScheduled, now.Add(after)
			}
		}
		if err := store.SaveMessage(ctx, tx, m); err != nil {
			return err
		}
		if current {
			ap.ReminderLeaseUntil, ap.UpdatedAt = time.Time{}, now
			if err := store.SaveAppointment(ctx, tx, ap); err != nil {
				return err
			}
		}
		if m.Status == message.StatusSending {
			return nil
		}
		return messageSent(ctx, tx, m, ap.CustomerID, ap.OrgUnit, m.Status, now)
	})
	if errors.Is(err, errStale) {
		a.log().WarnContext(ctx, "reminder: finish refused: the reminder was claimed again after this sender's lease ran out",
			"appointment", job.Appointment.ID, "try", job.Message.Tries)
		return nil
	}
	if err != nil {
		return fmt.Errorf("reminder: finish appointment %s: %w", job.Appointment.ID, err)
	}
	return nil
}

// postponeReminder puts a claimed reminder back, its try not counted, when
// the customer's number could not be had for the moment.
func (a *App) postponeReminder(ctx context.Context, job reminderJob, why error) error {
	now := a.Now()
	wait := a.Send.Postpone
	if wait <= 0 {
		wait = DefaultPostpone
	}
	err := a.inTx(ctx, func(tx pgx.Tx) error {
		ap, m, err := lockReminder(ctx, tx, job)
		if err != nil {
			return err
		}
		m.Untry("contact not available: "+why.Error(), now)
		if err := store.SaveMessage(ctx, tx, m); err != nil {
			return err
		}
		if ap.ReminderMessageID != m.ID || ap.ReminderStatus != task.ReminderSending {
			return nil
		}
		ap.ReminderStatus, ap.RemindAt, ap.ReminderTries, ap.ReminderLeaseUntil, ap.UpdatedAt = task.ReminderScheduled, now.Add(wait), m.Tries, time.Time{}, now
		return store.SaveAppointment(ctx, tx, ap)
	})
	if errors.Is(err, errStale) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("reminder: postpone appointment %s: %w", job.Appointment.ID, err)
	}
	a.log().WarnContext(ctx, "reminder: the customer's number could not be had; the reminder waits, its try not counted",
		"appointment", job.Appointment.ID, "retry_in", wait, "err", why)
	return nil
}

// reminderReceipt records a provider's delivery report of a reminder within
// tx: the message delivered or failed, and MessageSent tells it.
func (a *App) reminderReceipt(ctx context.Context, tx pgx.Tx, m message.Message, r sender.Receipt, now time.Time) (message.Message, error) {
	if !m.Receipt(r.Delivered, r.Error, now) {
		return m, nil
	}
	if err := store.SaveMessage(ctx, tx, m); err != nil {
		return message.Message{}, err
	}
	ap, err := store.LockAppointment(ctx, tx, m.Tenant, m.AppointmentID)
	if err != nil {
		return message.Message{}, err
	}
	return m, messageSent(ctx, tx, m, ap.CustomerID, ap.OrgUnit, m.Status, now)
}
