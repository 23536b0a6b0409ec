package task_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	typesv1 "github.com/huifang/huifang/proto/huifang/types/v1"

	"github.com/huifang/huifang/services/dispatch/internal/task"
)

func TestNextInWindow(t *testing.T) {
	shanghai := task.Location("Asia/Shanghai")
	// Seed 002: the best call windows are 10:00–11:30 and 15:30–17:00.
	seed002, err := task.ParseWindows("15:30-17:00, 10:00-11:30")
	require.NoError(t, err)
	at := func(day, h, m int) time.Time { return time.Date(2025, 3, day, h, m, 0, 0, shanghai) }
	tests := []struct {
		name    string
		t       time.Time
		windows []task.Window
		want    time.Time
	}{
		{"no windows: any time", at(10, 3, 0), nil, at(10, 3, 0)},
		{"inside the morning window", at(10, 10, 15), seed002, at(10, 10, 15)},
		{"before the morning window", at(10, 8, 0), seed002, at(10, 10, 0)},
		{"between the windows", at(10, 12, 0), seed002, at(10, 15, 30)},
		{"the end is outside", at(10, 17, 0), seed002, at(11, 10, 0)},
		{"after the last window: next day", at(10, 21, 0), seed002, at(11, 10, 0)},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := task.NextInWindow(tc.t, tc.windows, shanghai)
			require.True(t, got.Equal(tc.want), "got %s, want %s", got, tc.want)
		})
	}
	_, err = task.ParseWindows("17:00-10:00")
	require.Error(t, err)
	_, err = task.ParseWindows("10-11")
	require.Error(t, err)
}

func TestShiftOn(t *testing.T) {
	monday9 := time.Date(2025, 3, 10, 9, 0, 0, 0, time.UTC) // a Monday
	tests := []struct {
		name  string
		shift task.Shift
		at    time.Time
		want  bool
	}{
		{"no shift: always", task.Shift{}, monday9, true},
		{"day shift", task.Shift{Start: 8 * 60, End: 17 * 60}, monday9, true},
		{"before the day shift", task.Shift{Start: 10 * 60, End: 17 * 60}, monday9, false},
		{"night shift crosses midnight", task.Shift{Start: 22 * 60, End: 6 * 60}, monday9.Add(-4 * time.Hour), true},
		{"not a working day", task.Shift{Weekdays: []int{6, 7}}, monday9, false},
		{"in the agent's zone: 17:00 in Shanghai", task.Shift{Start: 8 * 60, End: 17 * 60, TimeZone: "Asia/Shanghai"}, monday9, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) { require.Equal(t, tc.want, tc.shift.On(tc.at)) })
	}
}

func TestRoles(t *testing.T) {
	require.True(t, task.Satisfies(task.RoleDirector, task.RoleDeputy), "a director may do a manager's call")
	require.True(t, task.Satisfies(task.RoleLeader, task.RoleLeader))
	require.False(t, task.Satisfies(task.RoleAgent, task.RoleLeader))
	require.False(t, task.Satisfies(task.RoleDirector, task.RoleDepartmentOwner), "department owners rank apart")
	require.True(t, task.Satisfies(task.RoleAgent, ""))
}

// TestDecide: the retry policy on a fake clock: no answer → again after
// 2 h inside the contact window, at most 3 attempts, then 无效回访.
func TestDecide(t *testing.T) {
	shanghai := task.Location("Asia/Shanghai")
	now := time.Date(2025, 3, 10, 10, 30, 0, 0, shanghai)
	policy := task.RetryPolicy{typesv1.Channel_CHANNEL_PHONE: {
		typesv1.Disposition_DISPOSITION_NO_ANSWER: {After: 2 * time.Hour, Max: 3},
		typesv1.Disposition_DISPOSITION_BUSY:      {After: 30 * time.Minute, Max: 3},
	}}
	windows, err := task.ParseWindows("10:00-11:30,15:30-17:00")
	require.NoError(t, err)
	rules := task.Rules{Windows: windows}
	phone := task.Task{Channel: typesv1.Channel_CHANNEL_PHONE, Customer: &typesv1.Customer{Preferences: &typesv1.ContactPreferences{TimeZone: "Asia/Shanghai"}}}
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
			got, err := task.Decide(tc.t, tc.d, tc.attempt, now, tc.callBack, policy, rules)
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
