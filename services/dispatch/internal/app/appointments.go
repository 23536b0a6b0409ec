package app

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	eventsv1 "github.com/huifang/huifang/proto/huifang/events/v1"

	"github.com/huifang/huifang/pkg/audit"
	"github.com/huifang/huifang/pkg/auth"
	"github.com/huifang/huifang/pkg/invalid"
	"github.com/huifang/huifang/pkg/outbox"
	"github.com/huifang/huifang/services/dispatch/internal/message"
	"github.com/huifang/huifang/services/dispatch/internal/store"
	"github.com/huifang/huifang/services/dispatch/internal/task"
)

// Booking is an agent's BookAppointment.
type Booking struct {
	Tenant, TaskID string
	// AgentID is the caller, who must hold the task under Token.
	AgentID string
	Token   int64
	Window  task.Window
	Note    string
}

// BookAppointment agrees an on-site visit's time with the customer in
// advance (seed 000: agree the time in advance and send a reminder): the
// task must be an on-site one the caller holds; the window in the future,
// the end after the start; the agent may have no other booked appointment
// overlapping it (task.ErrOverlap), the task no other booked one
// (task.ErrAlreadyBooked: move it). The reminder SMS is scheduled
// (task.ReminderPolicy.At) and AppointmentChanged (booked) written.
func (a *App) BookAppointment(ctx context.Context, in Booking) (task.Appointment, error) {
	now := a.Now()
	var bad invalid.List
	task.CheckWindow(&bad, in.Window, now)
	note := task.CheckAddressNote(&bad, in.Note)
	if err := bad.Err(); err != nil {
		return task.Appointment{}, err
	}
	var out task.Appointment
	err := a.inTx(ctx, func(tx pgx.Tx) error {
		t, err := store.LockTaskShared(ctx, tx, in.Tenant, in.TaskID)
		if err != nil {
			return err
		}
		if err := t.CheckBookable(); err != nil {
			return err
		}
		if err := t.HeldBy(task.Holder{AgentID: in.AgentID, Token: in.Token}); err != nil {
			return err
		}
		if err := store.LockAgentDay(ctx, tx, in.Tenant, in.AgentID); err != nil {
			return err
		}
		if _, booked, err := store.BookedAppointment(ctx, tx, in.Tenant, t.ID); err != nil || booked {
			if booked {
				return task.ErrAlreadyBooked
			}
			return err
		}
		if err := a.checkOverlap(ctx, tx, in.Tenant, in.AgentID, in.Window, ""); err != nil {
			return err
		}
		group, err := a.appointmentGroup(ctx, tx, t, in.AgentID)
		if err != nil {
			return err
		}
		out = task.Appointment{ID: outbox.NewEventID(), Tenant: t.Tenant, TaskID: t.ID, VisitID: t.VisitID, CustomerID: t.CustomerID(),
			AgentID: in.AgentID, Group: group, OrgUnit: t.OrgUnit, StartsAt: in.Window.StartsAt, EndsAt: in.Window.EndsAt,
			TimeZone: t.TimeZone().String(), AddressNote: note, Status: task.AppointmentBooked, Version: 1, CreatedAt: now, UpdatedAt: now}
		out.Schedule(a.Reminder.At(t, out.StartsAt, now))
		if err := store.CreateAppointment(ctx, tx, out); err != nil {
			if errors.Is(err, store.ErrConflict) {
				return task.ErrAlreadyBooked
			}
			return err
		}
		if err := a.auditTx(ctx, tx, out.Tenant, "appointment.book", audit.Target{Kind: "appointment", ID: out.ID},
			audit.Detail{"task": out.TaskID, "agent": out.AgentID}, now); err != nil {
			return err
		}
		return appointmentChanged(ctx, tx, out, in.AgentID, eventsv1.AppointmentChange_APPOINTMENT_CHANGE_BOOKED, "", now)
	})
	if err != nil {
		return task.Appointment{}, err
	}
	return a.shown(ctx, out), nil
}

// Move is a MoveAppointment.
type Move struct {
	Tenant, AppointmentID string
	Window                task.Window
	Reason                string
	// Note replaces the address note when set.
	Note *string
}

// MoveAppointment moves a booked appointment (its agent, a leader of its
// group, a director): a new window, checked as when booking, and its
// reminder scheduled again for the new time (a reminder already sent for
// the old time is followed by one for the new). AppointmentChanged (moved).
func (a *App) MoveAppointment(ctx context.Context, in Move) (task.Appointment, error) {
	now := a.Now()
	var bad invalid.List
	task.CheckWindow(&bad, in.Window, now)
	reason := task.CheckReason(&bad, in.Reason, task.MoveReasons)
	var note string
	if in.Note != nil {
		note = task.CheckAddressNote(&bad, *in.Note)
	}
	if err := bad.Err(); err != nil {
		return task.Appointment{}, err
	}
	return a.changeAppointment(ctx, in.Tenant, in.AppointmentID, func(tx pgx.Tx, ap *task.Appointment, t task.Task) (eventsv1.AppointmentChange, string, error) {
		if err := store.LockAgentDay(ctx, tx, ap.Tenant, ap.AgentID); err != nil {
			return 0, "", err
		}
		if err := a.checkOverlap(ctx, tx, ap.Tenant, ap.AgentID, in.Window, ap.ID); err != nil {
			return 0, "", err
		}
		if err := ap.Move(in.Window, now); err != nil {
			return 0, "", err
		}
		if in.Note != nil {
			ap.AddressNote = note
		}
		ap.Schedule(a.Reminder.At(t, ap.StartsAt, now))
		return eventsv1.AppointmentChange_APPOINTMENT_CHANGE_MOVED, reason, nil
	})
}

// CancelAppointment cancels a booked appointment and its reminder (unless
// it went out); AppointmentChanged (cancelled) with the reason.
func (a *App) CancelAppointment(ctx context.Context, tenant, id, reason string) (task.Appointment, error) {
	var bad invalid.List
	reason = task.CheckReason(&bad, reason, task.CancelReasons)
	if err := bad.Err(); err != nil {
		return task.Appointment{}, err
	}
	now := a.Now()
	return a.changeAppointment(ctx, tenant, id, func(_ pgx.Tx, ap *task.Appointment, _ task.Task) (eventsv1.AppointmentChange, string, error) {
		return eventsv1.AppointmentChange_APPOINTMENT_CHANGE_CANCELLED, reason, ap.Cancel(reason, now)
	})
}

// changeAppointment locks an appointment, checks the caller's scope, lets
// fn change it, saves it and writes AppointmentChanged by the caller.
func (a *App) changeAppointment(ctx context.Context, tenant, id string,
	fn func(tx pgx.Tx, ap *task.Appointment, t task.Task) (eventsv1.AppointmentChange, string, error)) (task.Appointment, error) {
	var out task.Appointment
	err := a.inTx(ctx, func(tx pgx.Tx) error {
		ap, err := store.LockAppointment(ctx, tx, tenant, id)
		if err != nil {
			return err
		}
		if err := a.appointmentInScope(ctx, ap); err != nil {
			return err
		}
		t, err := store.Task(ctx, tx, tenant, ap.TaskID)
		if err != nil {
			return err
		}
		before := ap
		change, reason, err := fn(tx, &ap, t)
		if err != nil {
			return err
		}
		if err := supersedeReminder(ctx, tx, before, ap); err != nil {
			return err
		}
		if err := store.SaveAppointment(ctx, tx, ap); err != nil {
			return err
		}
		by := ap.AgentID
		if p, ok := auth.From(ctx); ok {
			by = p.Actor()
		}
		action := "appointment." + strings.ToLower(strings.TrimPrefix(change.String(), "APPOINTMENT_CHANGE_"))
		if err := a.auditTx(ctx, tx, ap.Tenant, action, audit.Target{Kind: "appointment", ID: ap.ID},
			audit.Detail{"task": ap.TaskID, "reason": reason}, ap.UpdatedAt); err != nil {
			return err
		}
		out = ap
		return appointmentChanged(ctx, tx, ap, by, change, reason, ap.UpdatedAt)
	})
	if err != nil {
		return task.Appointment{}, err
	}
	return a.shown(ctx, out), nil
}

// checkOverlap refuses a window that overlaps another booked appointment of
// the agent (except the one moved): an agent cannot be at two customers at
// once.
func (a *App) checkOverlap(ctx context.Context, tx pgx.Tx, tenant, agentID string, w task.Window, except string) error {
	ids, err := store.Overlapping(ctx, tx, tenant, agentID, w, except)
	if err != nil {
		return err
	}
	if len(ids) > 0 {
		return fmt.Errorf("%w (appointment %s)", task.ErrOverlap, ids[0])
	}
	return nil
}

// appointmentGroup is the group an appointment belongs to (its leaders see
// it): the task's group, else the agent's first group.
func (a *App) appointmentGroup(ctx context.Context, tx pgx.Tx, t task.Task, agentID string) (string, error) {
	if t.Group != "" {
		return t.Group, nil
	}
	ag, err := store.Agent(ctx, tx, t.Tenant, agentID)
	if errors.Is(err, store.ErrAgentNotFound) {
		return "", nil
	}
	if err != nil || len(ag.Groups) == 0 {
		return "", err
	}
	return ag.Groups[0], nil
}

// appointmentInScope checks that the caller may change or see ap: its
// agent, a leader of its group, or a director.
func (a *App) appointmentInScope(ctx context.Context, ap task.Appointment) error {
	p, ok := auth.Restricted(ctx, auth.Director)
	if !ok || (p.AgentID != "" && ap.AgentID == p.AgentID) {
		return nil
	}
	if p.Has(auth.Leader) && p.AgentID != "" && ap.Group != "" {
		_, groups, err := a.leaderGroups(ctx, ap.Tenant, p.AgentID)
		if err != nil && !errors.Is(err, store.ErrAgentNotFound) {
			return err
		}
		if slices.Contains(groups, ap.Group) {
			return nil
		}
	}
	return auth.Deny("appointment_id", "the appointment is neither the caller's nor of a group it leads")
}

// shown is ap as the caller may see it: the address note in full for the
// agent who goes (and calls without a principal), masked for the others.
func (a *App) shown(ctx context.Context, ap task.Appointment) task.Appointment {
	if p, ok := auth.From(ctx); ok && p.Actor() != ap.AgentID {
		ap.AddressNote = task.MaskNote(ap.AddressNote)
	}
	return ap
}

// AppointmentQuery selects appointments.
type AppointmentQuery struct {
	Tenant, AgentID, Group string
	// Day, when set, bounds the start to that day in Zone.
	Day              time.Time
	IncludeCancelled bool
	After            store.AppointmentCursor
	Limit            int
}

// AppointmentCursor is the page token of ListAppointments.
type AppointmentCursor = store.AppointmentCursor

// ListAppointments lists appointments by start: an agent its own (agent_id
// is bound to the caller), a leader its own (naming itself) or those of
// the groups it oversees, a director any.
func (a *App) ListAppointments(ctx context.Context, q AppointmentQuery) ([]task.Appointment, error) {
	groups, err := a.groups(ctx, q.Tenant, q.Group, "")
	if err != nil {
		return nil, err
	}
	agentID := strings.TrimSpace(q.AgentID)
	if p, ok := auth.Restricted(ctx, auth.Director); ok && (agentID == "" || agentID != p.AgentID) {
		if !p.Has(auth.Leader) || p.AgentID == "" {
			return nil, auth.Deny("agent_id", "an agent lists its own appointments")
		}
		led, err := a.LeaderGroups(ctx, q.Tenant, p.AgentID)
		if err != nil && !errors.Is(err, store.ErrAgentNotFound) {
			return nil, err
		}
		if groups == nil {
			groups = led
		} else {
			groups = slices.DeleteFunc(groups, func(g string) bool { return !slices.Contains(led, g) })
		}
		if groups == nil {
			groups = []string{}
		}
	}
	f := store.AppointmentFilter{Tenant: q.Tenant, AgentID: agentID, Groups: groups, IncludeCancelled: q.IncludeCancelled}
	if !q.Day.IsZero() {
		f.From, f.To = q.Day, q.Day.AddDate(0, 0, 1)
	}
	list, err := store.ListAppointments(ctx, a.DB, f, q.After, q.Limit)
	if err != nil {
		return nil, err
	}
	for i := range list {
		list[i] = a.shown(ctx, list[i])
	}
	return list, nil
}

// supersedeReminder ends the message of a reminder that waited for a retry
// (scheduled again after a failed try) when a move or a cancellation
// replaced it: it failed, and will not be tried again. A reminder being
// sent at that moment keeps its message, whose outcome its sender records.
func supersedeReminder(ctx context.Context, tx pgx.Tx, before, after task.Appointment) error {
	if before.ReminderStatus != task.ReminderScheduled || before.ReminderMessageID == "" ||
		(after.ReminderStatus == task.ReminderScheduled && after.ReminderMessageID == before.ReminderMessageID) {
		return nil
	}
	m, err := store.MessageByID(ctx, tx, before.ReminderMessageID)
	if errors.Is(err, store.ErrMessageNotFound) {
		return nil
	}
	if err != nil || m.Status != message.StatusSending {
		return err
	}
	m.Status, m.Error, m.UpdatedAt = message.StatusFailed, "superseded: the appointment was moved or cancelled before the retry", after.UpdatedAt
	return store.SaveMessage(ctx, tx, m)
}

// cancelVisitAppointmentTx cancels, within tx, the booked appointment of a
// visit that was cancelled (VisitCancelled), with its reminder, and writes
// AppointmentChanged (cancelled, reason visit_cancelled, no agent).
func (a *App) cancelVisitAppointmentTx(ctx context.Context, tx pgx.Tx, tenant, visitID string, now time.Time) error {
	ap, ok, err := store.LockBookedAppointmentOfVisit(ctx, tx, tenant, visitID)
	if err != nil || !ok {
		return err
	}
	before := ap
	if err := ap.Cancel(task.ReasonVisitCancelled, now); err != nil {
		return err
	}
	if err := supersedeReminder(ctx, tx, before, ap); err != nil {
		return err
	}
	if err := store.SaveAppointment(ctx, tx, ap); err != nil {
		return err
	}
	return appointmentChanged(ctx, tx, ap, "", eventsv1.AppointmentChange_APPOINTMENT_CHANGE_CANCELLED, task.ReasonVisitCancelled, now)
}
