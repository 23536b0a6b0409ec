package task

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	typesv1 "github.com/huifang/huifang/proto/huifang/types/v1"

	"github.com/huifang/huifang/pkg/invalid"
)

// Statuses of an appointment.
const (
	AppointmentBooked    = "booked"
	AppointmentCancelled = "cancelled"
)

// Statuses of an appointment's reminder SMS.
const (
	// ReminderNone: no reminder can be sent (no phone, opted out of SMS, or
	// the appointment is too close).
	ReminderNone      = "none"
	ReminderScheduled = "scheduled"
	ReminderSending   = "sending"
	ReminderSent      = "sent"
	ReminderFailed    = "failed"
	ReminderCancelled = "cancelled"
)

// Bounds of an appointment.
const (
	// MaxAppointmentLength is the longest window an agent may agree.
	MaxAppointmentLength = 12 * time.Hour
	// MaxAppointmentAhead is how far ahead an appointment may be booked.
	MaxAppointmentAhead = 366 * 24 * time.Hour
	// MaxAddressNote is the longest address note, in characters.
	MaxAddressNote = 500
)

// MoveReasons are why an appointment may be moved; CancelReasons why it may
// be cancelled. Codes, not free text: they travel in AppointmentChanged,
// which carries no personal data.
var (
	MoveReasons   = []string{"customer_request", "agent_unavailable", "weather", "other"}
	CancelReasons = []string{"customer_request", "agent_unavailable", "visit_done", "weather", "other"}
)

// Refusals of appointments.
var (
	// ErrOverlap: the agent already has a booked appointment overlapping
	// the window (an agent cannot be at two customers at once).
	ErrOverlap = errors.New("task: the agent has another appointment overlapping that window")
	// ErrAppointmentCancelled: the appointment was cancelled; book anew.
	ErrAppointmentCancelled = errors.New("task: the appointment is cancelled")
	// ErrAlreadyBooked: the task has a booked appointment; move it instead.
	ErrAlreadyBooked = errors.New("task: the task already has a booked appointment")
)

// Appointment is an on-site visit agreed with the customer in advance
// (seed 000: agree the time in advance and send a reminder), with the
// state of its reminder SMS.
type Appointment struct {
	ID         string
	Tenant     string
	TaskID     string
	VisitID    string
	CustomerID string
	// AgentID is the agent who goes (the task's holder when it was booked).
	AgentID  string
	Group    string
	OrgUnit  string
	StartsAt time.Time
	EndsAt   time.Time
	// TimeZone is the customer's zone (else the tenant's) the window was
	// agreed in; the reminder's text shows the time in it.
	TimeZone string
	// AddressNote is free text: personal data.
	AddressNote  string
	Status       string
	CancelReason string
	// Version is 1 when booked, one more per move.
	Version int
	// RemindAt is when the reminder is due; zero when none is scheduled.
	RemindAt       time.Time
	ReminderStatus string
	// ReminderTries counts the sender's claims of the reminder; it fences a
	// sender whose lease ran out.
	ReminderTries      int
	ReminderLeaseUntil time.Time
	// ReminderMessageID is the message of the reminder being (or last) sent.
	ReminderMessageID string
	CreatedAt         time.Time
	UpdatedAt         time.Time
}

// Window is a start and an end.
type Window struct {
	StartsAt, EndsAt time.Time
}

// Overlaps reports whether two windows share a moment (touching ends do not).
func (w Window) Overlaps(o Window) bool {
	return w.StartsAt.Before(o.EndsAt) && o.StartsAt.Before(w.EndsAt)
}

// CheckWindow notes in bad what is wrong with a window agreed at now:
// both ends set, the end after the start, the start in the future, at most
// MaxAppointmentLength long and MaxAppointmentAhead ahead.
func CheckWindow(bad *invalid.List, w Window, now time.Time) {
	if w.StartsAt.IsZero() {
		bad.Add("starts_at", "is required")
	}
	if w.EndsAt.IsZero() {
		bad.Add("ends_at", "is required")
	}
	if w.StartsAt.IsZero() || w.EndsAt.IsZero() {
		return
	}
	if !w.StartsAt.After(now) {
		bad.Add("starts_at", "must be in the future")
	} else if w.StartsAt.Sub(now) > MaxAppointmentAhead {
		bad.Add("starts_at", fmt.Sprintf("must be at most %d days ahead", int(MaxAppointmentAhead.Hours()/24)))
	}
	switch {
	case !w.EndsAt.After(w.StartsAt):
		bad.Add("ends_at", "must be after starts_at")
	case w.EndsAt.Sub(w.StartsAt) > MaxAppointmentLength:
		bad.Add("ends_at", fmt.Sprintf("must be at most %s after starts_at", MaxAppointmentLength))
	}
}

// CheckAddressNote notes a note longer than MaxAddressNote or not UTF-8 in bad
// and returns it trimmed.
func CheckAddressNote(bad *invalid.List, note string) string {
	note = strings.TrimSpace(note)
	if !utf8.ValidString(note) {
		bad.Add("address_note", "must be UTF-8 text")
	} else if utf8.RuneCountInString(note) > MaxAddressNote {
		bad.Add("address_note", fmt.Sprintf("must be at most %d characters", MaxAddressNote))
	}
	return note
}

// CheckReason notes in bad a reason that is not one of allowed and returns
// it trimmed.
func CheckReason(bad *invalid.List, reason string, allowed []string) string {
	reason = strings.TrimSpace(reason)
	if !slices.Contains(allowed, reason) {
		bad.Add("reason", "must be one of "+strings.Join(allowed, ", "))
	}
	return reason
}

// CheckBookable says whether an appointment may be booked for t: an on-site
// task (InvalidArgument on task_id otherwise) that is still active.
func (t Task) CheckBookable() error {
	if t.Channel != typesv1.Channel_CHANNEL_ONSITE {
		return invalid.New("task_id", "must name an on-site (CHANNEL_ONSITE) task, not a "+t.Channel.String()+" one")
	}
	if !t.Active() {
		return ErrClosed
	}
	return nil
}

// TimeZone is the zone the customer's times are read in: the customer's
// own, else the tenant's calendar's, else UTC.
func (t Task) TimeZone() *time.Location {
	return t.Calendar.Location(t.Customer.Contact())
}

// ReminderBlocked says why no reminder may go out for an appointment of t
// any more: the visit was cancelled or refused, or the customer opted out
// (of the visit's channel, or of SMS); empty when one may.
func (t Task) ReminderBlocked() string {
	switch {
	case t.Status == StatusCancelled || t.Status == StatusOptedOut || t.Status == StatusRefused:
		return "the visit's task is " + t.Status
	case slices.Contains(t.Customer.Preferences.OptedOut, typesv1.Channel_CHANNEL_SMS):
		return "the customer opted out of SMS"
	}
	return ""
}

// ReasonVisitCancelled is the reason of an appointment cancelled because
// its visit was (VisitCancelled), not by a person.
const ReasonVisitCancelled = "visit_cancelled"

// ReminderPolicy times the reminder SMS of an appointment.
type ReminderPolicy struct {
	// Lead is how long before the start the reminder is meant to go out
	// (DefaultReminderLead when zero).
	Lead time.Duration
	// MinGap is the least time between the reminder and the start: a
	// reminder that cannot go out before it is not sent
	// (DefaultReminderMinGap when zero).
	MinGap time.Duration
}

// Defaults of ReminderPolicy.
const (
	DefaultReminderLead   = 24 * time.Hour
	DefaultReminderMinGap = time.Hour
)

// At returns when the reminder of an appointment of t starting at start is
// due, booked at now; false when none can be sent: the customer has no
// phone or opted out of SMS, or no moment at least MinGap before the start
// is left. The reminder is meant Lead before the start (the day before,
// by default), placed in the customer's contact windows (the customer's
// own, else the tenant's, in the customer's time zone, off quiet hours:
// pkg/contact); when the windows leave no moment before the start, it is
// placed off quiet hours only; when even that is too late, it goes out at
// once (now) if that is still MinGap before the start.
func (p ReminderPolicy) At(t Task, start, now time.Time) (time.Time, bool) {
	if !t.Customer.Reachable(typesv1.Channel_CHANNEL_SMS) || slices.Contains(t.Customer.Preferences.OptedOut, typesv1.Channel_CHANNEL_SMS) {
		return time.Time{}, false
	}
	lead, gap := p.Lead, p.MinGap
	if lead <= 0 {
		lead = DefaultReminderLead
	}
	if gap <= 0 {
		gap = DefaultReminderMinGap
	}
	latest := start.Add(-gap)
	if !now.Before(latest) {
		return time.Time{}, false
	}
	at := start.Add(-lead)
	if at.Before(now) {
		at = now
	}
	prefs := t.Customer.Contact()
	for _, from := range []time.Time{at, now} {
		if placed, _ := t.Calendar.Place(from, true, prefs, false); placed.Before(latest) {
			return placed, true
		}
	}
	if placed, _ := t.Calendar.Place(at, false, prefs, false); placed.Before(latest) {
		return placed, true
	}
	return now, true
}

// Schedule sets the reminder of a (booked or moved) appointment: due at
// remindAt when ok, none otherwise. A new schedule starts the reminder
// afresh (a moved appointment is reminded of its new time).
func (a *Appointment) Schedule(remindAt time.Time, ok bool) {
	a.ReminderLeaseUntil, a.ReminderMessageID = time.Time{}, ""
	if !ok {
		a.RemindAt, a.ReminderStatus = time.Time{}, ReminderNone
		return
	}
	a.RemindAt, a.ReminderStatus = remindAt, ReminderScheduled
}

// Move moves a booked appointment to w at now (its reminder is scheduled
// again by the caller); ErrAppointmentCancelled when it was cancelled.
func (a *Appointment) Move(w Window, now time.Time) error {
	if a.Status != AppointmentBooked {
		return ErrAppointmentCancelled
	}
	a.StartsAt, a.EndsAt, a.UpdatedAt = w.StartsAt, w.EndsAt, now
	a.Version++
	return nil
}

// Cancel cancels a booked appointment and its reminder unless it went out.
func (a *Appointment) Cancel(reason string, now time.Time) error {
	if a.Status != AppointmentBooked {
		return ErrAppointmentCancelled
	}
	a.Status, a.CancelReason, a.UpdatedAt = AppointmentCancelled, reason, now
	if a.ReminderStatus == ReminderScheduled || a.ReminderStatus == ReminderSending {
		a.ReminderStatus, a.RemindAt, a.ReminderLeaseUntil = ReminderCancelled, time.Time{}, time.Time{}
	}
	return nil
}

// Window returns the appointment's window.
func (a Appointment) Window() Window { return Window{StartsAt: a.StartsAt, EndsAt: a.EndsAt} }

// ReminderKey is the idempotency key of the reminder of one version of
// the appointment: the same for every try of it, a new one after a move.
func (a Appointment) ReminderKey() string {
	return fmt.Sprintf("huifang-reminder-%s-%d", a.ID, a.Version)
}

// MaskNote is how an address note shows to those who do not go: its first
// character and its length.
func MaskNote(note string) string {
	if note == "" {
		return ""
	}
	r, _ := utf8.DecodeRuneInString(note)
	return fmt.Sprintf("%c… (%d characters)", r, utf8.RuneCountInString(note))
}
