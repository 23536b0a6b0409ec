package policy

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/huifang/huifang/pkg/invalid"
)

// Seed 000 (property) line 69 "投诉事情处理完毕后三天内进行回访" and seed 002 line
// 57 "优质来电客户三日内再次电话邀约": "within 3 days" ends exactly 3 × 24 h
// after the anchor, whatever the offset (not on day 4).
func TestWithinNDaysIsExact(t *testing.T) {
	closed := time.Date(2026, 3, 2, 16, 30, 0, 0, time.UTC)
	for _, offset := range []time.Duration{0, day(2), -time.Hour} {
		p := Policy{ID: "p", Name: "closed", Active: true, Steps: []Step{{Anchor: Anchor{Days: 1}, Offset: Duration(offset), Within: Duration(day(3)), Channel: ChannelPhone, SampleRate: 1}}}
		v := plan(t, p, Service{ID: "s", CompletedAt: closed}, NoHolidays{})[0]
		anchor := closed.Add(day(1))
		require.Equal(t, anchor.Add(offset), v.DueAt)
		require.Equal(t, anchor.Add(day(3)), v.Deadline, "offset %s", offset)
		require.Contains(t, v.Decisions[1].Detail, "within 3d of the anchor: deadline 2026-03-06T16:30:00Z")
	}
	// Seed 003 line 30 "应在服务结束后的48小时内完成".
	p := Policy{ID: "p", Name: "48h", Active: true, Steps: []Step{{Within: Duration(48 * time.Hour), Channel: ChannelPhone, SampleRate: 1}}}
	require.Equal(t, closed.Add(48*time.Hour), plan(t, p, Service{ID: "s", CompletedAt: closed}, NoHolidays{})[0].Deadline)
}

// Seed 000 (property) line 71 "维护和修理工程处理完毕后一个月内进行回访":
// "within 1 month" is the same day of the next calendar month, clamped to
// its last day.
func TestWithinMonthsIsCalendarMonths(t *testing.T) {
	for _, tc := range []struct{ done, want time.Time }{
		{time.Date(2026, 3, 2, 10, 0, 0, 0, time.UTC), time.Date(2026, 4, 2, 10, 0, 0, 0, time.UTC)},
		{time.Date(2026, 1, 31, 10, 0, 0, 0, time.UTC), time.Date(2026, 2, 28, 10, 0, 0, 0, time.UTC)},
		{time.Date(2028, 1, 31, 10, 0, 0, 0, time.UTC), time.Date(2028, 2, 29, 10, 0, 0, 0, time.UTC)},
		{time.Date(2026, 12, 15, 10, 0, 0, 0, time.UTC), time.Date(2027, 1, 15, 10, 0, 0, 0, time.UTC)},
	} {
		p := Policy{ID: "p", Name: "repairs", Active: true, Steps: []Step{{WithinMonths: 1, Channel: ChannelPhone, SampleRate: 1}}}
		v := plan(t, p, Service{ID: "s", CompletedAt: tc.done}, NoHolidays{})[0]
		require.Equal(t, tc.done, v.DueAt)
		require.Equal(t, tc.want, v.Deadline, "completed %s", tc.done)
	}
}

// Seed 002 line 16 "销售淡季…一个月走访一次": monthly is every calendar month,
// on the series' first day of the month, clamped to the month's last day
// (31 January, 28 February, 31 March), not every 30 days.
func TestEveryMonthsKeepsTheDayOfTheMonth(t *testing.T) {
	start := time.Date(2026, 1, 31, 8, 0, 0, 0, time.UTC)
	p := Policy{ID: "p", Name: "onsite", Active: true, Steps: []Step{{EveryMonths: 1, Window: Duration(day(7)), Channel: ChannelOnsite, SampleRate: 1}}}
	s := Service{ID: "s", CompletedAt: start}
	v := plan(t, p, s, NoHolidays{})[0]
	var got []string
	for range 4 {
		got = append(got, v.DueAt.Format(time.DateOnly))
		var ok bool
		v, ok = p.Next(v, s, NoHolidays{}, false)
		require.True(t, ok)
	}
	require.Equal(t, []string{"2026-01-31", "2026-02-28", "2026-03-31", "2026-04-30"}, got)
	require.Contains(t, v.Reason, "every 1 calendar months")
	// A customer who dislikes calls gets a phone series at half the frequency.
	p.Steps[0].Channel = ChannelPhone
	v, _ = p.Next(plan(t, p, s, NoHolidays{})[0], s, NoHolidays{}, true)
	require.Equal(t, "2026-03-31", v.DueAt.Format(time.DateOnly))
}

func TestWithinIsValidated(t *testing.T) {
	base := func(st Step) Policy {
		st.Channel, st.SampleRate = ChannelPhone, 1
		return Policy{Name: "p", Trigger: Trigger{ServiceTypes: []string{"repair"}}, Steps: []Step{st}}
	}
	for _, tc := range []struct {
		step  Step
		field string
	}{
		{Step{Within: Duration(-time.Hour)}, "policy.steps[0].within"},
		{Step{Within: Duration(day(3)), Window: Duration(day(1))}, "policy.steps[0].window"},
		{Step{Within: Duration(day(3)), WithinMonths: 1}, "policy.steps[0].within_months"},
		{Step{Within: Duration(day(3)), Offset: Duration(day(3))}, "policy.steps[0].within"},
		{Step{WithinMonths: 1, Offset: Duration(day(30))}, "policy.steps[0].within_months"},
		{Step{Within: Duration(day(3)), Every: Duration(day(7))}, "policy.steps[0].within"},
		{Step{EveryMonths: 1, Every: Duration(day(7))}, "policy.steps[0].every_months"},
		{Step{EveryMonths: -1}, "policy.steps[0].every_months"},
	} {
		bad, ok := invalid.As(Validate(base(tc.step)))
		require.True(t, ok, "%+v", tc.step)
		require.Equal(t, tc.field, bad.Violations[0].Field, "%+v", tc.step)
	}
	require.NoError(t, Validate(base(Step{Offset: Duration(day(2)), Within: Duration(day(3))})))
	require.NoError(t, Validate(base(Step{WithinMonths: 1})))
	require.NoError(t, Validate(base(Step{EveryMonths: 1, MaxOccurrences: 3})))
}
