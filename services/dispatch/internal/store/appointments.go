package store

import (
	"context"
	"errors"
	"time"

	"github.com/jackc/pgx/v5"

	typesv1 "github.com/huifang/huifang/proto/huifang/types/v1"

	"github.com/huifang/huifang/pkg/postgres"
	"github.com/huifang/huifang/services/dispatch/internal/message"
	"github.com/huifang/huifang/services/dispatch/internal/task"
)

// ErrAppointmentNotFound: no such appointment in the tenant.
var ErrAppointmentNotFound = errors.New("store: appointment not found")

const appointmentColumns = `id, tenant_id, task_id, visit_id, customer_id, agent_id, group_name, org_unit, starts_at, ends_at, time_zone,
  address_note, status, cancel_reason, version, remind_at, reminder_status, reminder_tries, reminder_lease_until, reminder_message_id,
  created_at, updated_at`

func scanAppointment(r pgx.CollectableRow) (task.Appointment, error) {
	var a task.Appointment
	var remind, lease *time.Time
	err := r.Scan(&a.ID, &a.Tenant, &a.TaskID, &a.VisitID, &a.CustomerID, &a.AgentID, &a.Group, &a.OrgUnit, &a.StartsAt, &a.EndsAt,
		&a.TimeZone, &a.AddressNote, &a.Status, &a.CancelReason, &a.Version, &remind, &a.ReminderStatus, &a.ReminderTries, &lease,
		&a.ReminderMessageID, &a.CreatedAt, &a.UpdatedAt)
	if remind != nil {
		a.RemindAt = *remind
	}
	if lease != nil {
		a.ReminderLeaseUntil = *lease
	}
	return a, err
}

// CreateAppointment stores a new appointment; ErrConflict when its task
// has a booked one already.
func CreateAppointment(ctx context.Context, q postgres.Querier, a task.Appointment) error {
	_, err := q.Exec(ctx, `INSERT INTO appointments (`+appointmentColumns+`)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, $21, $22)`,
		a.ID, a.Tenant, a.TaskID, a.VisitID, a.CustomerID, a.AgentID, a.Group, a.OrgUnit, a.StartsAt, a.EndsAt, a.TimeZone,
		a.AddressNote, a.Status, a.CancelReason, a.Version, nullTime(a.RemindAt), a.ReminderStatus, a.ReminderTries,
		nullTime(a.ReminderLeaseUntil), a.ReminderMessageID, a.CreatedAt, a.UpdatedAt)
	return translate(err, "create appointment of task "+a.TaskID, nil)
}

// SaveAppointment writes back an appointment's state.
func SaveAppointment(ctx context.Context, q postgres.Querier, a task.Appointment) error {
	_, err := q.Exec(ctx, `UPDATE appointments SET agent_id = $2, starts_at = $3, ends_at = $4, address_note = $5, status = $6,
  cancel_reason = $7, version = $8, remind_at = $9, reminder_status = $10, reminder_tries = $11, reminder_lease_until = $12,
  reminder_message_id = $13, updated_at = $14 WHERE id = $1`,
		a.ID, a.AgentID, a.StartsAt, a.EndsAt, a.AddressNote, a.Status, a.CancelReason, a.Version, nullTime(a.RemindAt),
		a.ReminderStatus, a.ReminderTries, nullTime(a.ReminderLeaseUntil), a.ReminderMessageID, a.UpdatedAt)
	return translate(err, "save appointment "+a.ID, nil)
}

// LockAppointment locks an appointment of the tenant within tx, or returns
// ErrAppointmentNotFound.
func LockAppointment(ctx context.Context, tx pgx.Tx, tenant, id string) (task.Appointment, error) {
	rows, err := tx.Query(ctx, `SELECT `+appointmentColumns+` FROM appointments WHERE tenant_id = $1 AND id = $2 FOR UPDATE`, tenant, id)
	if err != nil {
		return task.Appointment{}, translate(err, "appointment "+id, nil)
	}
	a, err := pgx.CollectExactlyOneRow(rows, scanAppointment)
	return a, translate(err, "appointment "+id, ErrAppointmentNotFound)
}

// BookedAppointment returns the booked appointment of a task; false when
// it has none.
func BookedAppointment(ctx context.Context, q postgres.Querier, tenant, taskID string) (task.Appointment, bool, error) {
	rows, err := q.Query(ctx, `SELECT `+appointmentColumns+` FROM appointments WHERE tenant_id = $1 AND task_id = $2 AND status = 'booked'`,
		tenant, taskID)
	if err != nil {
		return task.Appointment{}, false, translate(err, "appointment of task "+taskID, nil)
	}
	a, err := pgx.CollectExactlyOneRow(rows, scanAppointment)
	if err = translate(err, "appointment of task "+taskID, errNone); err == errNone {
		return task.Appointment{}, false, nil
	}
	return a, err == nil, err
}

// LockBookedAppointmentOfVisit locks the booked appointment of a visit
// within tx; false when it has none.
func LockBookedAppointmentOfVisit(ctx context.Context, tx pgx.Tx, tenant, visitID string) (task.Appointment, bool, error) {
	rows, err := tx.Query(ctx, `SELECT `+appointmentColumns+` FROM appointments WHERE tenant_id = $1 AND visit_id = $2 AND status = 'booked' FOR UPDATE`,
		tenant, visitID)
	if err != nil {
		return task.Appointment{}, false, translate(err, "appointment of visit "+visitID, nil)
	}
	as, err := pgx.CollectRows(rows, scanAppointment)
	if err != nil || len(as) == 0 {
		return task.Appointment{}, false, translate(err, "appointment of visit "+visitID, nil)
	}
	return as[0], true, nil
}

// LockTaskShared reads a task and holds it against changes (FOR SHARE) to
// the end of tx: a booking sees the task it books for as it stays.
func LockTaskShared(ctx context.Context, tx pgx.Tx, tenant, id string) (task.Task, error) {
	rows, err := tx.Query(ctx, `SELECT `+taskColumns+` FROM tasks t WHERE tenant_id = $1 AND id = $2 FOR SHARE`, tenant, id)
	if err != nil {
		return task.Task{}, translate(err, "task "+id, nil)
	}
	t, err := pgx.CollectExactlyOneRow(rows, scanTask)
	return t, translate(err, "task "+id, ErrTaskNotFound)
}

// LockAgentDay serialises the bookings of one agent (an advisory lock held
// to the end of tx), so that two bookings cannot both miss each other's
// overlap.
func LockAgentDay(ctx context.Context, tx pgx.Tx, tenant, agentID string) error {
	_, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock(hashtextextended('appointments/' || $1 || '/' || $2, 0))`, tenant, agentID)
	return translate(err, "lock the appointments of agent "+agentID, nil)
}

// Overlapping returns the ids of the agent's booked appointments that
// overlap w, except the one named except.
func Overlapping(ctx context.Context, q postgres.Querier, tenant, agentID string, w task.Window, except string) ([]string, error) {
	rows, err := q.Query(ctx, `SELECT id FROM appointments WHERE tenant_id = $1 AND agent_id = $2 AND status = 'booked'
  AND starts_at < $4 AND ends_at > $3 AND id <> $5 ORDER BY starts_at`, tenant, agentID, w.StartsAt, w.EndsAt, except)
	if err != nil {
		return nil, translate(err, "overlapping appointments", nil)
	}
	ids, err := pgx.CollectRows(rows, pgx.RowTo[string])
	return ids, translate(err, "overlapping appointments", nil)
}

// AppointmentFilter selects appointments; empty fields match any.
type AppointmentFilter struct {
	Tenant  string
	AgentID string
	// Groups: only appointments of these groups (nil: any; empty: none).
	Groups []string
	// From and To bound the start (From inclusive, To exclusive); zero: open.
	From, To         time.Time
	IncludeCancelled bool
}

// AppointmentCursor is the position after an appointment in the listing's
// order (start, id).
type AppointmentCursor struct {
	StartsAt time.Time `json:"s"`
	ID       string    `json:"i"`
}

// ListAppointments lists appointments by start then id, after the cursor,
// at most limit.
func ListAppointments(ctx context.Context, q postgres.Querier, f AppointmentFilter, after AppointmentCursor, limit int) ([]task.Appointment, error) {
	if f.Groups != nil && len(f.Groups) == 0 {
		return nil, nil
	}
	rows, err := q.Query(ctx, `SELECT `+appointmentColumns+` FROM appointments
WHERE tenant_id = $1 AND ($2 = '' OR agent_id = $2) AND ($3::text[] IS NULL OR group_name = ANY ($3))
  AND ($4::timestamptz IS NULL OR starts_at >= $4) AND ($5::timestamptz IS NULL OR starts_at < $5)
  AND ($6 OR status = 'booked')
  AND ($7::timestamptz IS NULL OR (starts_at, id) > ($7, $8))
ORDER BY starts_at, id LIMIT $9`, f.Tenant, f.AgentID, f.Groups, nullTime(f.From), nullTime(f.To), f.IncludeCancelled,
		nullTime(after.StartsAt), after.ID, limit)
	if err != nil {
		return nil, translate(err, "list appointments", nil)
	}
	out, err := pgx.CollectRows(rows, scanAppointment)
	return out, translate(err, "list appointments", nil)
}

// ClaimReminder locks the reminder due first at now within tx: scheduled
// and due, or sending with a lease that ran out (a sender that died
// mid-send); others' locked rows are skipped. False when none is due.
func ClaimReminder(ctx context.Context, tx pgx.Tx, now time.Time) (task.Appointment, bool, error) {
	rows, err := tx.Query(ctx, `SELECT `+appointmentColumns+` FROM appointments
WHERE reminder_status IN ('scheduled', 'sending') AND remind_at <= $1 AND status = 'booked'
  AND (reminder_status = 'scheduled' OR reminder_lease_until <= $1)
ORDER BY remind_at, id LIMIT 1 FOR UPDATE SKIP LOCKED`, now)
	if err != nil {
		return task.Appointment{}, false, translate(err, "claim reminder", nil)
	}
	as, err := pgx.CollectRows(rows, scanAppointment)
	if err != nil || len(as) == 0 {
		return task.Appointment{}, false, translate(err, "claim reminder", nil)
	}
	return as[0], true, nil
}

// MessageByID locks a message within tx; ErrMessageNotFound when none.
func MessageByID(ctx context.Context, tx pgx.Tx, id string) (message.Message, error) {
	rows, err := tx.Query(ctx, `SELECT `+messageColumns+` FROM messages WHERE id = $1 FOR UPDATE`, id)
	if err != nil {
		return message.Message{}, translate(err, "message "+id, nil)
	}
	m, err := pgx.CollectExactlyOneRow(rows, scanMessage)
	return m, translate(err, "message "+id, ErrMessageNotFound)
}

// ForgetAppointmentNotes erases the address notes of a customer's
// appointments (the customer was erased).
func ForgetAppointmentNotes(ctx context.Context, tx pgx.Tx, tenant, customerID string) error {
	_, err := tx.Exec(ctx, `UPDATE appointments SET address_note = '' WHERE tenant_id = $1 AND customer_id = $2 AND address_note <> ''`,
		tenant, customerID)
	return translate(err, "forget the appointment notes of customer "+customerID, nil)
}

// TaskDetails are the service details a task's VisitDue carried that
// routing does not use.
type TaskDetails struct {
	ServiceID   string
	CompletedAt time.Time
	ComplaintID string
	Late        bool
}

// DetailsOfTask returns the details of a task (the zero details when it
// has none: a task made before they were kept).
func DetailsOfTask(ctx context.Context, q postgres.Querier, taskID string) (TaskDetails, error) {
	var d TaskDetails
	var completed *time.Time
	err := q.QueryRow(ctx, `SELECT service_id, service_completed_at, complaint_id, late FROM task_details WHERE task_id = $1`, taskID).
		Scan(&d.ServiceID, &completed, &d.ComplaintID, &d.Late)
	if err = translate(err, "details of task "+taskID, errNone); err == errNone {
		return TaskDetails{}, nil
	}
	if completed != nil {
		d.CompletedAt = *completed
	}
	return d, err
}

// AttemptsAfter lists the attempts of a task after attempt number after,
// in order, at most limit (0: all).
func AttemptsAfter(ctx context.Context, q postgres.Querier, taskID string, after, limit int) ([]Attempt, error) {
	rows, err := q.Query(ctx, `SELECT id, tenant_id, task_id, visit_id, agent_id, attempt, disposition, note, attempted_at, next_attempt_at
FROM attempts WHERE task_id = $1 AND attempt > $2 ORDER BY attempt LIMIT NULLIF($3, 0)`, taskID, after, limit)
	if err != nil {
		return nil, translate(err, "attempts of "+taskID, nil)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (Attempt, error) {
		var a Attempt
		var disp string
		var next *time.Time
		err := r.Scan(&a.ID, &a.Tenant, &a.TaskID, &a.VisitID, &a.AgentID, &a.Number, &disp, &a.Note, &a.At, &next)
		a.Disposition = typesv1.Disposition(typesv1.Disposition_value[disp])
		if next != nil {
			a.NextAttemptAt = *next
		}
		return a, err
	})
	return out, translate(err, "attempts of "+taskID, nil)
}

// UpsertKindTemplate stores a normalized reminder or script template.
func UpsertKindTemplate(ctx context.Context, q postgres.Querier, t message.Template, now time.Time) (message.Template, error) {
	_, err := q.Exec(ctx, `INSERT INTO kind_templates (tenant_id, kind, service_type, subject, greeting, body, footer, updated_at)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
ON CONFLICT (tenant_id, kind, service_type) DO UPDATE SET subject = EXCLUDED.subject, greeting = EXCLUDED.greeting,
  body = EXCLUDED.body, footer = EXCLUDED.footer, updated_at = EXCLUDED.updated_at`,
		t.Tenant, t.Kind, t.ServiceType, t.Subject, t.Greeting, t.Body, t.Footer, now)
	if err != nil {
		return message.Template{}, translate(err, "upsert "+t.Kind+" template "+t.ServiceType, nil)
	}
	return t, nil
}

// KindTemplates returns the tenant's stored templates of kind for the
// service type and for any ("*"); none, one or two.
func KindTemplates(ctx context.Context, q postgres.Querier, tenant, kind, serviceType string) ([]message.Template, error) {
	rows, err := q.Query(ctx, `SELECT service_type, subject, greeting, body, footer FROM kind_templates
WHERE tenant_id = $1 AND kind = $2 AND service_type IN ($3, '*') ORDER BY service_type = '*'`, tenant, kind, serviceType)
	if err != nil {
		return nil, translate(err, kind+" templates", nil)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (message.Template, error) {
		t := message.Template{Tenant: tenant, Kind: kind}
		if kind == message.KindReminder {
			t.Channel = typesv1.Channel_CHANNEL_SMS
		}
		err := r.Scan(&t.ServiceType, &t.Subject, &t.Greeting, &t.Body, &t.Footer)
		return t, err
	})
	return out, translate(err, kind+" templates", nil)
}
