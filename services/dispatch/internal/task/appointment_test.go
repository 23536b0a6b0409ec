package task_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	typesv1 "github.com/huifang/huifang/proto/huifang/types/v1"

	"github.com/huifang/huifang/pkg/contact"
	"github.com/huifang/huifang/pkg/invalid"
	"github.com/huifang/huifang/services/dispatch/internal/task"
)

func violations(t *testing.T, err error) []string {
	t.Helper()
	if err == nil {
		return nil
	}
	e, ok := invalid.As(err)
	require.True(t, ok, "%v", err)
	var fields []string
	for _, v := range e.Violations {
		fields = append(fields, v.Field)
	}
	return fields
}

func TestCheckWindow(t *testing.T) {
	now := time.Date(2025, 3, 10, 9, 0, 0, 0, time.UTC)
	for name, c := range map[string]struct {
		w    task.Window
		want []string
	}{
		"fine":             {task.Window{StartsAt: now.Add(time.Hour), EndsAt: now.Add(2 * time.Hour)}, nil},
		"none":             {task.Window{}, []string{"starts_at", "ends_at"}},
		"end before start": {task.Window{StartsAt: now.Add(2 * time.Hour), EndsAt: now.Add(time.Hour)}, []string{"ends_at"}},
		"empty":            {task.Window{StartsAt: now.Add(time.Hour), EndsAt: now.Add(time.Hour)}, []string{"ends_at"}},
		"past":             {task.Window{StartsAt: now.Add(-time.Hour), EndsAt: now.Add(time.Hour)}, []string{"starts_at"}},
		"too long":         {task.Window{StartsAt: now.Add(time.Hour), EndsAt: now.Add(14 * time.Hour)}, []string{"ends_at"}},
		"too far":          {task.Window{StartsAt: now.AddDate(2, 0, 0), EndsAt: now.AddDate(2, 0, 0).Add(time.Hour)}, []string{"starts_at"}},
	} {
		t.Run(name, func(t *testing.T) {
			var bad invalid.List
			task.CheckWindow(&bad, c.w, now)
			require.Equal(t, c.want, violations(t, bad.Err()))
		})
	}
}

// TestReminderTime: seed 000, "agree the time in advance and send a
// reminder": a day ahead, inside the customer's contact window in the
// customer's zone; earlier in the window when the day-before moment falls
// outside it; at once when there is no time left in a window; never
// without a phone, after an SMS opt-out, or with less than MinGap left.
func TestReminderTime(t *testing.T) {
	sh, err := time.LoadLocation("Asia/Shanghai")
	require.NoError(t, err)
	now := time.Date(2025, 3, 10, 9, 0, 0, 0, sh)
	x := task.Task{Channel: typesv1.Channel_CHANNEL_ONSITE, Customer: task.Customer{HasPhone: true,
		Preferences: task.Preferences{TimeZone: "Asia/Shanghai", Windows: []contact.Window{{Start: 9 * 60, End: 18 * 60}}}}}
	p := task.ReminderPolicy{}
	at := func(x task.Task, start time.Time) (time.Time, bool) { return p.At(x, start, now) }

	got, ok := at(x, time.Date(2025, 3, 12, 10, 0, 0, 0, sh))
	require.True(t, ok)
	require.Equal(t, time.Date(2025, 3, 11, 10, 0, 0, 0, sh), got.In(sh), "the day before, same hour")

	got, ok = at(x, time.Date(2025, 3, 12, 8, 0, 0, 0, sh))
	require.True(t, ok)
	require.Equal(t, time.Date(2025, 3, 11, 9, 0, 0, 0, sh), got.In(sh), "08:00 the day before is outside the window: 09:00")

	got, ok = at(x, time.Date(2025, 3, 11, 8, 0, 0, 0, sh))
	require.True(t, ok)
	require.Equal(t, now, got.In(sh), "the day-before moment is past: now, inside the window")

	got, ok = at(x, time.Date(2025, 3, 10, 20, 0, 0, 0, sh))
	require.True(t, ok)
	require.Equal(t, now, got.In(sh))

	_, ok = at(x, now.Add(30*time.Minute))
	require.False(t, ok, "less than MinGap left")

	noPhone := x
	noPhone.Customer.HasPhone = false
	_, ok = at(noPhone, time.Date(2025, 3, 12, 10, 0, 0, 0, sh))
	require.False(t, ok)
	optedOut := x
	optedOut.Customer.Preferences.OptedOut = []typesv1.Channel{typesv1.Channel_CHANNEL_SMS}
	_, ok = at(optedOut, time.Date(2025, 3, 12, 10, 0, 0, 0, sh))
	require.False(t, ok)

	p.Lead = 3 * 24 * time.Hour
	got, ok = at(x, time.Date(2025, 3, 14, 10, 0, 0, 0, sh))
	require.True(t, ok)
	require.Equal(t, time.Date(2025, 3, 11, 10, 0, 0, 0, sh), got.In(sh), "a configured lead")
}

func TestAppointmentLife(t *testing.T) {
	now := time.Date(2025, 3, 10, 9, 0, 0, 0, time.UTC)
	a := task.Appointment{ID: "ap-1", Status: task.AppointmentBooked, Version: 1}
	a.Schedule(now.Add(time.Hour), true)
	require.Equal(t, task.ReminderScheduled, a.ReminderStatus)
	require.Equal(t, "huifang-reminder-ap-1-1", a.ReminderKey())
	require.NoError(t, a.Move(task.Window{StartsAt: now.Add(48 * time.Hour), EndsAt: now.Add(49 * time.Hour)}, now))
	require.Equal(t, "huifang-reminder-ap-1-2", a.ReminderKey(), "a move is reminded anew")
	require.NoError(t, a.Cancel("customer_request", now))
	require.Equal(t, task.ReminderCancelled, a.ReminderStatus)
	require.ErrorIs(t, a.Cancel("other", now), task.ErrAppointmentCancelled)
	require.ErrorIs(t, a.Move(task.Window{}, now), task.ErrAppointmentCancelled)

	sent := task.Appointment{Status: task.AppointmentBooked, ReminderStatus: task.ReminderSent}
	require.NoError(t, sent.Cancel("visit_done", now))
	require.Equal(t, task.ReminderSent, sent.ReminderStatus, "a reminder that went out stays sent")

	require.True(t, task.Window{StartsAt: now, EndsAt: now.Add(time.Hour)}.Overlaps(task.Window{StartsAt: now.Add(59 * time.Minute), EndsAt: now.Add(2 * time.Hour)}))
	require.False(t, task.Window{StartsAt: now, EndsAt: now.Add(time.Hour)}.Overlaps(task.Window{StartsAt: now.Add(time.Hour), EndsAt: now.Add(2 * time.Hour)}))
	require.Equal(t, "3… (6 characters)", task.MaskNote("3号楼2单元"))
	require.Equal(t, "", task.MaskNote(""))
}
