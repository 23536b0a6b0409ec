package app_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/proto"

	eventsv1 "github.com/huifang/huifang/proto/huifang/events/v1"
	typesv1 "github.com/huifang/huifang/proto/huifang/types/v1"

	"github.com/huifang/huifang/pkg/contact"
	"github.com/huifang/huifang/pkg/outbox"
	"github.com/huifang/huifang/pkg/servicetest"
	"github.com/huifang/huifang/pkg/stream"
	"github.com/huifang/huifang/services/dispatch/internal/app"
	"github.com/huifang/huifang/services/dispatch/internal/message"
	"github.com/huifang/huifang/services/dispatch/internal/sender"
	"github.com/huifang/huifang/services/dispatch/internal/store"
	"github.com/huifang/huifang/services/dispatch/internal/storetest"
	"github.com/huifang/huifang/services/dispatch/internal/task"
)

// shanghai is the customers' zone in these tests: t0 (09:00 UTC) is 17:00 there.
var shanghai = func() *time.Location {
	loc, err := time.LoadLocation("Asia/Shanghai")
	if err != nil {
		panic(err)
	}
	return loc
}()

// setupReminders is an app that sends SMS through the local sender (its
// record is local_sent_messages) and reminds a day ahead.
func setupReminders(t *testing.T) sendBundle {
	t.Helper()
	pool := storetest.Pool(t)
	clock := storetest.NewClock(t0)
	local := &sender.Local{Pool: pool, Log: servicetest.Logger(), Now: clock.Now}
	a := &app.App{DB: pool, Relay: nop{}, Log: servicetest.Logger(), Now: clock.Now, Lease: 15 * time.Minute,
		Send: app.Sending{Sender: sender.ByChannel{SMS: local, Email: local}, Contacts: storetest.NewContacts(), Lease: 2 * time.Minute,
			Retry: message.Retry{Backoff: time.Minute, MaxTries: 3}, Batch: 10},
		Reminder: task.ReminderPolicy{Lead: 24 * time.Hour, MinGap: time.Hour}}
	return sendBundle{pool: pool, clock: clock, a: a}
}

// onsite adds an on-site task of customer c-1 (who has a phone, in
// Shanghai, reachable 09:00-18:00) claimed by agent a-1; it returns the
// task as claimed.
func (b sendBundle) onsite(t *testing.T, visit string) task.Task {
	t.Helper()
	ctx := context.Background()
	_, err := b.a.UpsertAgent(ctx, task.Agent{Tenant: "default", ID: "a-1", Name: "李娜", Groups: []string{"g-1"}})
	require.NoError(t, err)
	x := task.Task{ID: outbox.NewEventID(), Tenant: "default", VisitID: visit, Channel: typesv1.Channel_CHANNEL_ONSITE, Group: "g-1",
		ServiceType: "repair", PolicyID: "p-1",
		Customer: task.Customer{ID: "c-1", NameMasked: "王*", PhoneMasked: "*******8000", HasPhone: true,
			Preferences: task.Preferences{TimeZone: "Asia/Shanghai", Windows: []contact.Window{{Start: 9 * 60, End: 18 * 60}}}},
		DueAt: b.clock.Now(), Deadline: b.clock.Now().Add(7 * 24 * time.Hour), Status: task.StatusOpen, CreatedAt: b.clock.Now()}
	require.NoError(t, pgx.BeginFunc(ctx, b.pool, func(tx pgx.Tx) error {
		_, err := store.CreateTask(ctx, tx, x)
		return err
	}))
	got, ok, err := b.a.ClaimNext(ctx, app.ClaimCall{Tenant: "default", AgentID: "a-1"})
	require.NoError(t, err)
	require.True(t, ok)
	require.Equal(t, x.ID, got.ID)
	return got
}

func (b sendBundle) sentTexts(t *testing.T) []string {
	t.Helper()
	rows, err := b.pool.Query(context.Background(), `SELECT body FROM local_sent_messages ORDER BY sent_at, idempotency_key`)
	require.NoError(t, err)
	out, err := pgx.CollectRows(rows, pgx.RowTo[string])
	require.NoError(t, err)
	return out
}

func messageSentEvents(t *testing.T, b sendBundle) []*eventsv1.MessageSent {
	t.Helper()
	rows, err := b.pool.Query(context.Background(), `SELECT payload FROM outbox WHERE subject = $1 ORDER BY seq`, stream.SubjectMessageSent)
	require.NoError(t, err)
	raw, err := pgx.CollectRows(rows, pgx.RowTo[[]byte])
	require.NoError(t, err)
	out := make([]*eventsv1.MessageSent, len(raw))
	for i, p := range raw {
		out[i] = &eventsv1.MessageSent{}
		require.NoError(t, proto.Unmarshal(p, out[i]))
	}
	return out
}

// TestReminderBeforeTheAppointmentMovesWithIt: seed 000, "agree the time
// in advance and send a reminder": the reminder SMS goes out the day
// before, in the customer's contact window; moving the appointment moves
// it (nothing at the old time), and it is sent once, with one MessageSent;
// the delivery receipt adds one more and leaves the on-site task as it was.
func TestReminderBeforeTheAppointmentMovesWithIt(t *testing.T) {
	b := setupReminders(t)
	ctx := context.Background()
	x := b.onsite(t, "v-1")

	// Wednesday 10:00-11:00 in Shanghai.
	start := time.Date(2025, 3, 12, 10, 0, 0, 0, shanghai)
	ap, err := b.a.BookAppointment(ctx, app.Booking{Tenant: "default", TaskID: x.ID, AgentID: "a-1", Token: x.LeaseToken,
		Window: task.Window{StartsAt: start, EndsAt: start.Add(time.Hour)}, Note: "3号楼2单元，门口有保安"})
	require.NoError(t, err)
	require.Equal(t, task.ReminderScheduled, ap.ReminderStatus)
	require.True(t, ap.RemindAt.Equal(start.Add(-24*time.Hour)), "the day before at the same hour, inside 09:00-18:00: %s", ap.RemindAt)
	require.Equal(t, "Asia/Shanghai", ap.TimeZone)

	// A minute before it is due nothing goes out.
	b.clock.Set(ap.RemindAt.Add(-time.Minute))
	_, err = b.a.SendDue(ctx)
	require.NoError(t, err)
	require.Empty(t, b.sentTexts(t))

	// The customer asks for Thursday 15:00-16:00 instead.
	moved := time.Date(2025, 3, 13, 15, 0, 0, 0, shanghai)
	ap, err = b.a.MoveAppointment(ctx, app.Move{Tenant: "default", AppointmentID: ap.ID, Reason: "customer_request",
		Window: task.Window{StartsAt: moved, EndsAt: moved.Add(time.Hour)}})
	require.NoError(t, err)
	require.Equal(t, 2, ap.Version)
	require.True(t, ap.RemindAt.Equal(moved.Add(-24*time.Hour)), "%s", ap.RemindAt)

	// The old time passes without a reminder.
	b.clock.Set(start.Add(-24 * time.Hour).Add(time.Minute))
	_, err = b.a.SendDue(ctx)
	require.NoError(t, err)
	require.Empty(t, b.sentTexts(t), "nothing at the old time")

	// The new one: sent once, before the appointment, naming the new time.
	b.clock.Set(ap.RemindAt)
	n, err := b.a.SendDue(ctx)
	require.NoError(t, err)
	require.Equal(t, 1, n)
	b.clock.Advance(time.Hour)
	_, err = b.a.SendDue(ctx)
	require.NoError(t, err)
	texts := b.sentTexts(t)
	require.Len(t, texts, 1, "one reminder")
	require.Contains(t, texts[0], "3月13日 15:00-16:00")
	require.True(t, strings.HasPrefix(texts[0], "{name}您好！"), "the kept text holds no name: %s", texts[0])

	msgs, err := b.a.ListMessages(ctx, "default", x.ID, "", 10)
	require.NoError(t, err)
	require.Len(t, msgs, 1)
	require.Equal(t, ap.ID, msgs[0].AppointmentID)
	require.Equal(t, message.StatusSent, msgs[0].Status)
	require.Equal(t, "*******8000", msgs[0].To)

	evs := messageSentEvents(t, b)
	require.Len(t, evs, 1, "MessageSent once per send")
	require.Equal(t, "sent", evs[0].GetStatus())
	require.Equal(t, ap.ID, evs[0].GetAppointmentId())
	require.Equal(t, "c-1", evs[0].GetCustomerId())
	require.Equal(t, typesv1.Channel_CHANNEL_SMS, evs[0].GetChannel())

	// The delivery receipt: MessageSent delivered, the on-site task unchanged.
	_, err = b.a.RecordReceipt(ctx, "local", sender.Receipt{ProviderMessageID: "local-" + msgs[0].IdempotencyKey, Delivered: true})
	require.NoError(t, err)
	_, err = b.a.RecordReceipt(ctx, "local", sender.Receipt{ProviderMessageID: "local-" + msgs[0].IdempotencyKey, Delivered: true})
	require.NoError(t, err)
	evs = messageSentEvents(t, b)
	require.Len(t, evs, 2, "a repeated receipt adds nothing")
	require.Equal(t, "delivered", evs[1].GetStatus())
	require.Equal(t, task.StatusClaimed, b.task(t, x.ID).Status)

	changes := b.count(t, `SELECT count(*) FROM outbox WHERE subject = $1`, stream.SubjectAppointmentChanged)
	require.Equal(t, 2, changes, "booked and moved")
}

// TestCancelledAppointmentIsNotReminded: a cancelled appointment's reminder
// never goes out; the reminder of an appointment whose window leaves no
// time in the contact windows before it goes out at once.
func TestCancelledAppointmentIsNotReminded(t *testing.T) {
	b := setupReminders(t)
	ctx := context.Background()
	x := b.onsite(t, "v-1")
	start := time.Date(2025, 3, 12, 10, 0, 0, 0, shanghai)
	ap, err := b.a.BookAppointment(ctx, app.Booking{Tenant: "default", TaskID: x.ID, AgentID: "a-1", Token: x.LeaseToken,
		Window: task.Window{StartsAt: start, EndsAt: start.Add(time.Hour)}})
	require.NoError(t, err)
	ap, err = b.a.CancelAppointment(ctx, "default", ap.ID, "customer_request")
	require.NoError(t, err)
	require.Equal(t, task.AppointmentCancelled, ap.Status)
	require.Equal(t, task.ReminderCancelled, ap.ReminderStatus)
	b.clock.Set(start.Add(-time.Hour))
	_, err = b.a.SendDue(ctx)
	require.NoError(t, err)
	require.Empty(t, b.sentTexts(t))
	require.Empty(t, messageSentEvents(t, b))
	_, err = b.a.CancelAppointment(ctx, "default", ap.ID, "customer_request")
	require.ErrorIs(t, err, task.ErrAppointmentCancelled)

	// Booked at 17:00 for 19:00-20:00 the same evening: the window (until
	// 18:00) leaves no time the day before; the reminder goes out now.
	b.clock.Set(t0)
	y := b.onsite(t, "v-2")
	evening := time.Date(2025, 3, 10, 19, 0, 0, 0, shanghai)
	late, err := b.a.BookAppointment(ctx, app.Booking{Tenant: "default", TaskID: y.ID, AgentID: "a-1", Token: y.LeaseToken,
		Window: task.Window{StartsAt: evening, EndsAt: evening.Add(time.Hour)}})
	require.NoError(t, err)
	require.Equal(t, task.ReminderScheduled, late.ReminderStatus)
	require.True(t, late.RemindAt.Equal(t0), "%s", late.RemindAt)
	_, err = b.a.SendDue(ctx)
	require.NoError(t, err)
	require.Len(t, b.sentTexts(t), 1)
}

// TestVisitSMSPublishesMessageSentOnce: the SMS of a visit publishes
// MessageSent (sent) once, in the send's transaction, and once more on its
// delivery receipt; no text and no address in it.
func TestVisitSMSPublishesMessageSentOnce(t *testing.T) {
	b := setupSend(t)
	ctx := context.Background()
	b.seed002(t)
	x := b.addSMS(t, "v-1", func(x *task.Task) { x.OrgUnit = "store-1" })
	_, err := b.a.SendDue(ctx)
	require.NoError(t, err)
	_, err = b.a.SendDue(ctx)
	require.NoError(t, err)
	evs := messageSentEvents(t, b)
	require.Len(t, evs, 1)
	m, err := b.a.ListMessages(ctx, "default", x.ID, "", 1)
	require.NoError(t, err)
	require.True(t, proto.Equal(&eventsv1.MessageSent{EventId: evs[0].GetEventId(), TenantId: "default", MessageId: m[0].ID, CustomerId: "c-1",
		VisitId: "v-1", TaskId: x.ID, Channel: typesv1.Channel_CHANNEL_SMS, Status: "sent", At: evs[0].GetAt(), OrgUnit: "store-1"}, evs[0]),
		"%v", evs[0])
	_, err = b.a.RecordReceipt(ctx, "telnyx", sender.Receipt{ProviderMessageID: m[0].ProviderMessageID, Delivered: false, Error: "unreachable"})
	require.NoError(t, err)
	evs = messageSentEvents(t, b)
	require.Len(t, evs, 2)
	require.Equal(t, "failed", evs[1].GetStatus())
}

// flaky fails its first fails sends for the moment, then sends through next.
type flaky struct {
	fails int
	next  sender.Sender
	keys  []string
}

func (f *flaky) Name() string { return "flaky" }

func (f *flaky) Send(ctx context.Context, m sender.Message) (sender.Result, error) {
	f.keys = append(f.keys, m.IdempotencyKey)
	if f.fails > 0 {
		f.fails--
		return sender.Result{}, errors.New("503 from the provider")
	}
	return f.next.Send(ctx, m)
}

// TestFailedReminderRetriesUnlessMoved: a reminder whose send failed for
// the moment is tried again after the backoff; a move before that retry
// ends its message (superseded) and the new time's reminder goes out
// under a new idempotency key.
func TestFailedReminderRetriesUnlessMoved(t *testing.T) {
	b := setupReminders(t)
	ctx := context.Background()
	f := &flaky{fails: 1, next: b.a.Send.Sender}
	b.a.Send.Sender = f
	x := b.onsite(t, "v-1")
	start := time.Date(2025, 3, 12, 10, 0, 0, 0, shanghai)
	ap, err := b.a.BookAppointment(ctx, app.Booking{Tenant: "default", TaskID: x.ID, AgentID: "a-1", Token: x.LeaseToken,
		Window: task.Window{StartsAt: start, EndsAt: start.Add(time.Hour)}})
	require.NoError(t, err)
	b.clock.Set(ap.RemindAt)
	_, err = b.a.SendDue(ctx)
	require.NoError(t, err)
	require.Len(t, f.keys, 1)
	require.Empty(t, b.sentTexts(t))
	require.Empty(t, messageSentEvents(t, b), "a try that failed for the moment is no MessageSent")

	moved := start.Add(2 * time.Hour)
	ap, err = b.a.MoveAppointment(ctx, app.Move{Tenant: "default", AppointmentID: ap.ID, Reason: "agent_unavailable",
		Window: task.Window{StartsAt: moved, EndsAt: moved.Add(time.Hour)}})
	require.NoError(t, err)
	b.clock.Set(ap.RemindAt)
	_, err = b.a.SendDue(ctx)
	require.NoError(t, err)
	require.Len(t, f.keys, 2)
	require.NotEqual(t, f.keys[0], f.keys[1], "the new time's reminder is a new message")
	msgs, err := b.a.ListMessages(ctx, "default", x.ID, "", 10)
	require.NoError(t, err)
	require.Len(t, msgs, 2)
	statuses := map[string]string{}
	for _, m := range msgs {
		statuses[m.IdempotencyKey] = m.Status
	}
	require.Equal(t, map[string]string{f.keys[0]: message.StatusFailed, f.keys[1]: message.StatusSent}, statuses)
	require.Len(t, b.sentTexts(t), 1)
	require.Contains(t, b.sentTexts(t)[0], "3月12日 12:00-13:00")
	evs := messageSentEvents(t, b)
	require.Len(t, evs, 1)
	require.Equal(t, "sent", evs[0].GetStatus())
}

// TestErasedCustomerLosesAppointmentNotes: the address note is personal
// data; it goes when intake erases the customer.
func TestErasedCustomerLosesAppointmentNotes(t *testing.T) {
	b := setupReminders(t)
	ctx := context.Background()
	x := b.onsite(t, "v-1")
	start := time.Date(2025, 3, 12, 10, 0, 0, 0, shanghai)
	_, err := b.a.BookAppointment(ctx, app.Booking{Tenant: "default", TaskID: x.ID, AgentID: "a-1", Token: x.LeaseToken,
		Window: task.Window{StartsAt: start, EndsAt: start.Add(time.Hour)}, Note: "3号楼2单元"})
	require.NoError(t, err)
	require.Equal(t, 1, b.count(t, `SELECT count(*) FROM appointments WHERE address_note = '3号楼2单元'`))
	_, err = b.a.UpdateCustomer(ctx, app.CustomerUpdate{Tenant: "default", Customer: task.Customer{ID: "c-1"}, Version: 2, Erased: true})
	require.NoError(t, err)
	require.Equal(t, 0, b.count(t, `SELECT count(*) FROM appointments WHERE address_note <> ''`))
}

// TestNoReminderForACancelledVisitOrAnOptOut: a visit cancelled upstream
// cancels its appointment (AppointmentChanged, visit_cancelled) and its
// reminder; a customer who opted out of SMS after the booking gets none.
func TestNoReminderForACancelledVisitOrAnOptOut(t *testing.T) {
	b := setupReminders(t)
	ctx := context.Background()
	x := b.onsite(t, "v-1")
	start := time.Date(2025, 3, 12, 10, 0, 0, 0, shanghai)
	ap, err := b.a.BookAppointment(ctx, app.Booking{Tenant: "default", TaskID: x.ID, AgentID: "a-1", Token: x.LeaseToken,
		Window: task.Window{StartsAt: start, EndsAt: start.Add(time.Hour)}})
	require.NoError(t, err)
	require.NoError(t, b.a.CancelVisit(ctx, "default", "v-1", "service voided"))
	list, err := b.a.ListAppointments(ctx, app.AppointmentQuery{Tenant: "default", IncludeCancelled: true, Limit: 10})
	require.NoError(t, err)
	require.Len(t, list, 1)
	require.Equal(t, task.AppointmentCancelled, list[0].Status)
	require.Equal(t, task.ReasonVisitCancelled, list[0].CancelReason)
	require.Equal(t, task.ReminderCancelled, list[0].ReminderStatus)
	rows, err := b.pool.Query(ctx, `SELECT payload FROM outbox WHERE subject = $1 ORDER BY seq`, stream.SubjectAppointmentChanged)
	require.NoError(t, err)
	raw, err := pgx.CollectRows(rows, pgx.RowTo[[]byte])
	require.NoError(t, err)
	require.Len(t, raw, 2)
	last := &eventsv1.AppointmentChanged{}
	require.NoError(t, proto.Unmarshal(raw[1], last))
	require.Equal(t, eventsv1.AppointmentChange_APPOINTMENT_CHANGE_CANCELLED, last.GetChange())
	require.Equal(t, ap.ID, last.GetAppointmentId())
	require.Equal(t, task.ReasonVisitCancelled, last.GetReason())

	y := b.onsite(t, "v-2")
	bp, err := b.a.BookAppointment(ctx, app.Booking{Tenant: "default", TaskID: y.ID, AgentID: "a-1", Token: y.LeaseToken,
		Window: task.Window{StartsAt: start, EndsAt: start.Add(time.Hour)}})
	require.NoError(t, err)
	_, err = b.a.UpdateCustomer(ctx, app.CustomerUpdate{Tenant: "default", Version: 2, Customer: task.Customer{ID: "c-1", NameMasked: "王*",
		PhoneMasked: "*******8000", HasPhone: true, Preferences: task.Preferences{OptedOut: []typesv1.Channel{typesv1.Channel_CHANNEL_SMS}}}})
	require.NoError(t, err)
	b.clock.Set(bp.RemindAt)
	_, err = b.a.SendDue(ctx)
	require.NoError(t, err)
	require.Empty(t, b.sentTexts(t), "the customer opted out of SMS")
	list, err = b.a.ListAppointments(ctx, app.AppointmentQuery{Tenant: "default", Limit: 10})
	require.NoError(t, err)
	require.Len(t, list, 1)
	require.Equal(t, task.ReminderCancelled, list[0].ReminderStatus)
}

// TestReminderWaitsWhileIntakeIsAway: the number is asked of intake when
// the reminder is sent; while intake cannot answer the reminder waits
// (CONTACT_POSTPONE), its try not counted, and goes out once it can.
func TestReminderWaitsWhileIntakeIsAway(t *testing.T) {
	b := setupReminders(t)
	ctx := context.Background()
	book := b.a.Send.Contacts.(*storetest.Contacts)
	x := b.onsite(t, "v-1")
	start := time.Date(2025, 3, 12, 10, 0, 0, 0, shanghai)
	ap, err := b.a.BookAppointment(ctx, app.Booking{Tenant: "default", TaskID: x.ID, AgentID: "a-1", Token: x.LeaseToken,
		Window: task.Window{StartsAt: start, EndsAt: start.Add(time.Hour)}})
	require.NoError(t, err)
	book.Down(true)
	b.clock.Set(ap.RemindAt)
	_, err = b.a.SendDue(ctx)
	require.NoError(t, err)
	require.Empty(t, b.sentTexts(t))
	msgs, err := b.a.ListMessages(ctx, "default", x.ID, "", 10)
	require.NoError(t, err)
	require.Len(t, msgs, 1)
	require.Equal(t, 0, msgs[0].Tries, "the try is not counted")
	_, err = b.a.SendDue(ctx)
	require.NoError(t, err)
	require.Len(t, book.Asked(), 1, "it waits CONTACT_POSTPONE before asking again")

	book.Down(false)
	b.clock.Advance(app.DefaultPostpone)
	_, err = b.a.SendDue(ctx)
	require.NoError(t, err)
	require.Len(t, b.sentTexts(t), 1)
	asked := book.Asked()
	require.Equal(t, "message:"+msgs[0].ID, asked[len(asked)-1].OnBehalfOf)
	require.Equal(t, typesv1.Channel_CHANNEL_SMS, asked[len(asked)-1].Channel)
}
