package task_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	typesv1 "github.com/huifang/huifang/proto/huifang/types/v1"

	"github.com/huifang/huifang/pkg/contact"
	"github.com/huifang/huifang/services/dispatch/internal/task"
)

// TestPlace: a task's first availability, retries and call-backs are
// placed with the contact calendar it came with (pkg/contact): seed 002's
// best call windows 10:00–11:30 and 15:30–17:00, in the customer's zone.
func TestPlace(t *testing.T) {
	shanghai, err := time.LoadLocation("Asia/Shanghai")
	require.NoError(t, err)
	seed002 := contact.Calendar{Windows: []contact.Window{{Start: 930, End: 1020}, {Start: 600, End: 690}}}
	at := func(day, h, m int) time.Time { return time.Date(2025, 3, day, h, m, 0, 0, shanghai) }
	customer := task.Customer{Preferences: task.Preferences{TimeZone: "Asia/Shanghai"}}
	tests := []struct {
		name     string
		t        time.Time
		calendar contact.Calendar
		want     time.Time
	}{
		{"no windows: any time", at(10, 3, 0), contact.Calendar{}, at(10, 3, 0)},
		{"inside the morning window", at(10, 10, 15), seed002, at(10, 10, 15)},
		{"before the morning window", at(10, 8, 0), seed002, at(10, 10, 0)},
		{"between the windows", at(10, 12, 0), seed002, at(10, 15, 30)},
		{"the end is outside", at(10, 17, 0), seed002, at(11, 10, 0)},
		{"after the last window: next day", at(10, 21, 0), seed002, at(11, 10, 0)},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			x := task.Task{Channel: typesv1.Channel_CHANNEL_PHONE, Customer: customer, Calendar: tc.calendar}
			got := x.Place(tc.t)
			require.True(t, got.Equal(tc.want), "got %s, want %s", got, tc.want)
		})
	}
	// SMS and email keep to quiet hours only; the customer's own windows
	// win over the calendar's.
	sms := task.Task{Channel: typesv1.Channel_CHANNEL_SMS, Customer: customer, Calendar: seed002}
	require.True(t, sms.Place(at(10, 12, 0)).Equal(at(10, 12, 0)))
	own := task.Task{Channel: typesv1.Channel_CHANNEL_ONSITE, Calendar: seed002,
		Customer: task.Customer{Preferences: task.Preferences{TimeZone: "Asia/Shanghai", Windows: []contact.Window{{Start: 14 * 60, End: 15 * 60}}}}}
	require.True(t, own.Place(at(10, 10, 15)).Equal(at(10, 14, 0)))
}

func TestParseRole(t *testing.T) {
	for name, want := range map[string]string{"Manager": task.RoleDeputy, " supervisor ": task.RoleLeader, "assistant": task.RoleAgent,
		"director": task.RoleDirector, "department_owner": task.RoleDepartmentOwner} {
		got, ok := task.ParseRole(name)
		require.True(t, ok, name)
		require.Equal(t, want, got, name)
	}
	_, ok := task.ParseRole("boss")
	require.False(t, ok)
	require.NoError(t, task.MayReassign(task.RoleDirector))
	require.NoError(t, task.MayReassign(task.RoleLeader))
	require.ErrorIs(t, task.MayReassign(task.RoleAgent), task.ErrNotLeader)
	require.ErrorIs(t, task.MayReassign(task.RoleDepartmentOwner), task.ErrNotLeader)
}

// TestDecide: the retry policy on a fake clock: no answer → again after
// 2 h inside the contact window, at most 3 attempts, then 无效回访.
func TestDecide(t *testing.T) {
	shanghai, err := time.LoadLocation("Asia/Shanghai")
	require.NoError(t, err)
	now := time.Date(2025, 3, 10, 10, 30, 0, 0, shanghai)
	policy := task.RetryPolicy{typesv1.Channel_CHANNEL_PHONE: {
		typesv1.Disposition_DISPOSITION_NO_ANSWER: {After: 2 * time.Hour, Max: 3},
		typesv1.Disposition_DISPOSITION_BUSY:      {After: 30 * time.Minute, Max: 3},
	}}
	// The tenant's calendar (VisitDue.contact_calendar): seed 002's windows.
	calendar := contact.Calendar{Windows: []contact.Window{{Start: 600, End: 690}, {Start: 930, End: 1020}}}
	phone := task.Task{Channel: typesv1.Channel_CHANNEL_PHONE, Calendar: calendar,
		Customer: task.Customer{Preferences: task.Preferences{TimeZone: "Asia/Shanghai"}}}
	onsite := phone
	onsite.Channel = typesv1.Channel_CHANNEL_ONSITE
	tests := []struct {
		name     string
		t        task.Task
		d        typesv1.Disposition
		attempt  int
		callBack time.Time
		want     task.Outcome
		badField string
	}{
		{name: "answered", t: phone, d: typesv1.Disposition_DISPOSITION_ANSWERED, attempt: 1, want: task.Outcome{Status: task.StatusDone}},
		{name: "no answer: 12:30 is outside, so 15:30", t: phone, d: typesv1.Disposition_DISPOSITION_NO_ANSWER, attempt: 1,
			want: task.Outcome{Status: task.StatusOpen, NextAttemptAt: time.Date(2025, 3, 10, 15, 30, 0, 0, shanghai)}},
		{name: "busy: 11:00 is inside", t: phone, d: typesv1.Disposition_DISPOSITION_BUSY, attempt: 2,
			want: task.Outcome{Status: task.StatusOpen, NextAttemptAt: time.Date(2025, 3, 10, 11, 0, 0, 0, shanghai)}},
		{name: "the third no answer: unreachable", t: phone, d: typesv1.Disposition_DISPOSITION_NO_ANSWER, attempt: 3,
			want: task.Outcome{Status: task.StatusUnreachable, Unreachable: true, Reason: "no_answer after 3 attempts"}},
		{name: "on-site uses the phone's rules", t: onsite, d: typesv1.Disposition_DISPOSITION_NO_ANSWER, attempt: 3,
			want: task.Outcome{Status: task.StatusUnreachable, Unreachable: true, Reason: "no_answer after 3 attempts"}},
		{name: "wrong number: unreachable at once", t: phone, d: typesv1.Disposition_DISPOSITION_WRONG_NUMBER, attempt: 1,
			want: task.Outcome{Status: task.StatusUnreachable, Unreachable: true, Reason: "wrong number"}},
		{name: "asked to stop: opt-out", t: phone, d: typesv1.Disposition_DISPOSITION_ASKED_TO_STOP, attempt: 1,
			want: task.Outcome{Status: task.StatusOptedOut, OptOut: true}},
		{name: "refused", t: phone, d: typesv1.Disposition_DISPOSITION_REFUSED, attempt: 1, want: task.Outcome{Status: task.StatusRefused}},
		{name: "call back later at the customer's time", t: phone, d: typesv1.Disposition_DISPOSITION_CALL_BACK_LATER, attempt: 1,
			callBack: now.Add(26 * time.Hour), want: task.Outcome{Status: task.StatusOpen, NextAttemptAt: now.Add(26 * time.Hour)}},
		{name: "call back later needs a time", t: phone, d: typesv1.Disposition_DISPOSITION_CALL_BACK_LATER, attempt: 1, badField: "call_back_at"},
		{name: "call back in the past", t: phone, d: typesv1.Disposition_DISPOSITION_CALL_BACK_LATER, attempt: 1, callBack: now, badField: "call_back_at"},
		{name: "an automatic disposition", t: phone, d: typesv1.Disposition_DISPOSITION_SENT, attempt: 1, badField: "disposition"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := task.Decide(tc.t, tc.d, tc.attempt, now, tc.callBack, policy)
			if tc.badField != "" {
				require.Equal(t, []string{tc.badField}, fields(t, err))
				return
			}
			require.NoError(t, err)
			require.True(t, got.NextAttemptAt.Equal(tc.want.NextAttemptAt), "next %s, want %s", got.NextAttemptAt, tc.want.NextAttemptAt)
			got.NextAttemptAt = tc.want.NextAttemptAt
			require.Equal(t, tc.want, got)
		})
	}
}

func TestParseRetryRules(t *testing.T) {
	got, err := task.ParseRetryRules("no_answer=2h/3, busy=30m/2")
	require.NoError(t, err)
	require.Equal(t, map[typesv1.Disposition]task.RetryRule{
		typesv1.Disposition_DISPOSITION_NO_ANSWER: {After: 2 * time.Hour, Max: 3},
		typesv1.Disposition_DISPOSITION_BUSY:      {After: 30 * time.Minute, Max: 2},
	}, got)
	for _, bad := range []string{"no_answer=2h", "nope=2h/3", "busy=-1h/3", "busy=1h/0"} {
		_, err := task.ParseRetryRules(bad)
		require.Error(t, err, bad)
	}
}

// TestDecideKeepsTheCalendar: retries keep to the whole calendar the visit
// came with (pkg/contact): windows that wrap past midnight, quiet hours and
// holidays; a call-back keeps the customer's own time unless it falls in
// quiet hours.
func TestDecideKeepsTheCalendar(t *testing.T) {
	shanghai, err := time.LoadLocation("Asia/Shanghai")
	require.NoError(t, err)
	at := func(day, h, m int) time.Time { return time.Date(2025, 3, day, h, m, 0, 0, shanghai) }
	policy := task.RetryPolicy{typesv1.Channel_CHANNEL_PHONE: {typesv1.Disposition_DISPOSITION_NO_ANSWER: {After: 2 * time.Hour, Max: 3}}}
	call := func(c contact.Calendar) task.Task {
		return task.Task{Channel: typesv1.Channel_CHANNEL_PHONE, Calendar: c, Customer: task.Customer{Preferences: task.Preferences{TimeZone: "Asia/Shanghai"}}}
	}
	tests := []struct {
		name     string
		t        task.Task
		now      time.Time
		d        typesv1.Disposition
		callBack time.Time
		want     time.Time
	}{
		{"a night shift's window 22:00–02:00: 01:00 is inside", call(contact.Calendar{Windows: []contact.Window{{Start: 22 * 60, End: 2 * 60}}}),
			at(10, 23, 0), typesv1.Disposition_DISPOSITION_NO_ANSWER, time.Time{}, at(11, 1, 0)},
		{"quiet hours 21:00–08:00 move a retry to the morning", call(contact.Calendar{Quiet: &contact.Window{Start: 21 * 60, End: 8 * 60}}),
			at(10, 20, 0), typesv1.Disposition_DISPOSITION_NO_ANSWER, time.Time{}, at(11, 8, 0)},
		{"a holiday is skipped", call(contact.Calendar{TimeZone: "Asia/Shanghai", Holidays: []string{"2025-03-11"}, AvoidHolidays: true}),
			at(10, 23, 0), typesv1.Disposition_DISPOSITION_NO_ANSWER, time.Time{}, at(12, 0, 0)},
		{"a call-back outside the windows keeps the customer's time", call(contact.Calendar{Windows: []contact.Window{{Start: 600, End: 690}}}),
			at(10, 9, 0), typesv1.Disposition_DISPOSITION_CALL_BACK_LATER, at(10, 13, 0), at(10, 13, 0)},
		{"a call-back in quiet hours waits for their end", call(contact.Calendar{Quiet: &contact.Window{Start: 21 * 60, End: 8 * 60}}),
			at(10, 9, 0), typesv1.Disposition_DISPOSITION_CALL_BACK_LATER, at(10, 22, 0), at(11, 8, 0)},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := task.Decide(tc.t, tc.d, 1, tc.now, tc.callBack, policy)
			require.NoError(t, err)
			require.True(t, got.NextAttemptAt.Equal(tc.want), "next %s, want %s", got.NextAttemptAt.In(shanghai), tc.want)
		})
	}
}

// TestRecord: the holder's attempt counts, ends the lease and sets the next
// moment; another agent's is refused.
func TestRecord(t *testing.T) {
	now := time.Date(2025, 3, 10, 9, 0, 0, 0, time.UTC)
	policy := task.RetryPolicy{typesv1.Channel_CHANNEL_PHONE: {typesv1.Disposition_DISPOSITION_NO_ANSWER: {After: 2 * time.Hour, Max: 3}}}
	x := task.Task{Channel: typesv1.Channel_CHANNEL_PHONE, Status: task.StatusClaimed, AgentID: "a-1", LeaseExpiresAt: now.Add(time.Minute)}
	_, _, err := x.Record(task.Holder{AgentID: "a-2"}, typesv1.Disposition_DISPOSITION_NO_ANSWER, now, time.Time{}, policy)
	require.ErrorIs(t, err, task.ErrNotHolder)
	n, out, err := x.Record(task.Holder{AgentID: "a-1"}, typesv1.Disposition_DISPOSITION_NO_ANSWER, now, time.Time{}, policy)
	require.NoError(t, err)
	require.Equal(t, 1, n)
	require.Equal(t, task.StatusOpen, out.Status)
	require.Equal(t, task.Task{Channel: typesv1.Channel_CHANNEL_PHONE, Status: task.StatusOpen, Attempts: 1,
		LastDisposition: typesv1.Disposition_DISPOSITION_NO_ANSWER, AvailableAt: now.Add(2 * time.Hour)}, x)
	_, _, err = x.Record(task.Holder{AgentID: "a-1"}, typesv1.Disposition_DISPOSITION_ANSWERED, now, time.Time{}, policy)
	require.ErrorIs(t, err, task.ErrNotHolder, "released to the queue: nobody holds it")
	x.Status = task.StatusDone
	_, _, err = x.Record(task.Holder{AgentID: "a-1"}, typesv1.Disposition_DISPOSITION_ANSWERED, now, time.Time{}, policy)
	require.ErrorIs(t, err, task.ErrClosed)
}
