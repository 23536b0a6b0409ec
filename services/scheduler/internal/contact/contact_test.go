package contact

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	calendar "github.com/huifang/huifang/pkg/contact"
	"github.com/huifang/huifang/services/scheduler/internal/policy"
)

var shanghai, _ = time.LoadLocation("Asia/Shanghai")

func cst(d, h, m int) time.Time { return time.Date(2026, 3, d, h, m, 0, 0, shanghai) }

// Seed 002: best call windows 10:00–11:30 and 15:30–17:00, in the customer's time zone.
func TestPlaceInTheSeed002Windows(t *testing.T) {
	r := Preset002()
	r.TimeZone = "Asia/Shanghai"
	tests := []struct {
		name string
		at   time.Time
		ch   int32
		want time.Time
	}{
		{"inside the morning window", cst(2, 10, 15), policy.ChannelPhone, cst(2, 10, 15)},
		{"before the morning window", cst(2, 8, 0), policy.ChannelPhone, cst(2, 10, 0)},
		{"between the windows", cst(2, 12, 0), policy.ChannelPhone, cst(2, 15, 30)},
		{"the end of a window is outside", cst(2, 11, 30), policy.ChannelPhone, cst(2, 15, 30)},
		{"after the afternoon window", cst(2, 17, 5), policy.ChannelPhone, cst(3, 10, 0)},
		{"on-site visits too", cst(2, 12, 0), policy.ChannelOnsite, cst(2, 15, 30)},
		{"SMS is not held to call windows", cst(2, 12, 0), policy.ChannelSMS, cst(2, 12, 0)},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, ds := r.Place(tc.at, tc.ch, Prefs{}, false)
			require.True(t, tc.want.Equal(got), "got %s", got.In(shanghai))
			if !tc.want.Equal(tc.at) {
				require.Equal(t, policy.KindWindow, ds[0].Kind)
				require.Contains(t, ds[0].Detail, "10:00–11:30, 15:30–17:00")
			}
		})
	}
	// the customer's own zone and windows win over the tenant's.
	got, _ := r.Place(time.Date(2026, 3, 2, 12, 0, 0, 0, time.UTC), policy.ChannelPhone, Prefs{TimeZone: "Europe/Berlin", Windows: []calendar.Window{{Start: 14 * 60, End: 15 * 60}}}, false)
	require.Equal(t, time.Date(2026, 3, 2, 13, 0, 0, 0, time.UTC), got, "14:00 in Berlin")
}

func TestQuietHoursAndHolidays(t *testing.T) {
	r := Rules{Calendar: calendar.Calendar{TimeZone: "Asia/Shanghai", Quiet: &calendar.Window{Start: 21 * 60, End: 8 * 60}, Holidays: []string{"2026-03-03"}, AvoidHolidays: true}}
	got, ds := r.Place(cst(2, 22, 0), policy.ChannelSMS, Prefs{}, false)
	require.True(t, cst(3, 8, 0).Equal(got), "quiet hours wrap over midnight: %s", got.In(shanghai))
	require.Equal(t, policy.KindQuiet, ds[0].Kind)
	got, ds = r.Place(cst(2, 22, 0), policy.ChannelPhone, Prefs{}, false)
	require.True(t, cst(4, 8, 0).Equal(got), "a call moves off the holiday too: %s", got.In(shanghai))
	require.Equal(t, policy.KindHoliday, ds[1].Kind)
	got, _ = r.Place(cst(3, 9, 0), policy.ChannelPhone, Prefs{}, true)
	require.True(t, cst(3, 9, 0).Equal(got), "a holiday step stays on the holiday")
	h, ok := r.NextHoliday(cst(1, 0, 0))
	require.True(t, ok)
	require.True(t, cst(3, 0, 0).Equal(h))
	_, ok = r.NextHoliday(cst(3, 0, 0))
	require.False(t, ok)
}

// Contact policy across programs: frequency caps, opt-outs, customers who dislike calls (seed 002).
func TestCheck(t *testing.T) {
	now := time.Date(2026, 3, 10, 10, 0, 0, 0, time.UTC)
	day := 24 * time.Hour
	caps := Rules{Caps: []Cap{{Channel: policy.ChannelPhone, Max: 1, Per: policy.Duration(3 * day)}, {Max: 4, Per: policy.Duration(30 * day)}}}
	tests := []struct {
		name    string
		rules   Rules
		prefs   Prefs
		history []Contact
		pending Pending
		action  Action
		at      time.Time
		kind    string
	}{
		{"no rules: fire", Rules{}, Prefs{}, nil, Pending{Channel: policy.ChannelPhone}, Fire, now, ""},
		{"opted out: suppressed", Rules{}, Prefs{OptedOut: []int32{policy.ChannelPhone}}, nil, Pending{Channel: policy.ChannelPhone}, Suppress, time.Time{}, policy.KindOptOut},
		{"opted out of another channel: fire", Rules{}, Prefs{OptedOut: []int32{policy.ChannelSMS}}, nil, Pending{Channel: policy.ChannelPhone}, Fire, now, ""},
		{"1 call in 3 days: moved", caps, Prefs{}, []Contact{{policy.ChannelPhone, now.Add(-day)}}, Pending{Channel: policy.ChannelPhone, Deadline: now.Add(5 * day)}, Move, now.Add(2 * day), policy.KindCap},
		{"cap past the deadline: suppressed", caps, Prefs{}, []Contact{{policy.ChannelPhone, now.Add(-day)}}, Pending{Channel: policy.ChannelPhone, Deadline: now.Add(day)}, Suppress, time.Time{}, policy.KindCap},
		{"an SMS is not a call", caps, Prefs{}, []Contact{{policy.ChannelPhone, now.Add(-day)}}, Pending{Channel: policy.ChannelSMS}, Fire, now, ""},
		{"4 contacts a month: moved", caps, Prefs{}, []Contact{{2, now.Add(-25 * day)}, {2, now.Add(-20 * day)}, {2, now.Add(-10 * day)}, {2, now.Add(-5 * day)}}, Pending{Channel: policy.ChannelSMS}, Move, now.Add(5 * day), policy.KindCap},
		{"dislikes calls: a week between calls", Rules{}, Prefs{DislikesCalls: true}, []Contact{{policy.ChannelPhone, now.Add(-2 * day)}}, Pending{Channel: policy.ChannelPhone}, Move, now.Add(5 * day), policy.KindDislikes},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			out := tc.rules.Check(now, tc.pending, tc.prefs, tc.history)
			require.Equal(t, tc.action, out.Action, out.Reason)
			if tc.action == Move {
				require.Equal(t, tc.at, out.At)
			}
			if tc.kind != "" {
				require.Equal(t, tc.kind, out.Decisions[0].Kind)
				require.NotEmpty(t, out.Reason)
			}
		})
	}
}

func TestValidate(t *testing.T) {
	require.NoError(t, Preset002().Validate())
	err := Rules{Calendar: calendar.Calendar{Windows: []calendar.Window{{Start: 900, End: 600}}, TimeZone: "Mars/Olympus", Holidays: []string{"03-01"}}, Caps: []Cap{{Max: 0, Per: policy.Duration(time.Minute)}}}.Validate()
	require.Error(t, err)
	for _, f := range []string{"contact_policy.windows[0]", "contact_policy.time_zone", "contact_policy.holidays[0]", "contact_policy.caps[0].max", "contact_policy.caps[0].per"} {
		require.Contains(t, err.Error(), f)
	}
}

// Seed 002: the project calendar: the next milestone of the asked kinds, for
// the service's project (milestones without a project apply to every one).
func TestNextMilestone(t *testing.T) {
	r := Rules{Calendar: calendar.Calendar{TimeZone: "Asia/Shanghai"}, Milestones: []Milestone{
		{Date: "2026-03-15", Kind: "launch", Project: "bay"},
		{Date: "2026-03-10", Kind: "launch", Project: "hill"},
		{Date: "2026-03-20", Kind: "construction"},
		{Date: "2026-04-18", Kind: "offers"},
	}}
	vip := []string{"launch", "offers", "show_flat_opening"}
	got, what, ok := r.NextMilestone(cst(1, 0, 0), "bay", vip)
	require.True(t, ok)
	require.True(t, cst(15, 0, 0).Equal(got), "midnight in the tenant's zone; hill's launch is not bay's")
	require.Equal(t, "launch 2026-03-15", what)
	got, _, ok = r.NextMilestone(got, "bay", vip)
	require.True(t, ok)
	require.Equal(t, "2026-04-18", got.In(shanghai).Format(time.DateOnly), "construction is not a VIP milestone")
	_, _, ok = r.NextMilestone(got, "bay", vip)
	require.False(t, ok)
	require.Error(t, Rules{Milestones: []Milestone{{Date: "2026-13-01", Kind: "launch"}}}.Validate())
	require.Error(t, Rules{Milestones: []Milestone{{Date: "2026-03-01"}}}.Validate())
}

// A time the customer chose (ReschedulePlannedVisit) fires as it is: no
// window, quiet hours or cap moves it; an opt-out still suppresses it.
func TestCheckCustomerChosen(t *testing.T) {
	r := Preset002()
	r.Quiet = &calendar.Window{Start: 21 * 60, End: 8 * 60}
	r.Caps = []Cap{{Channel: policy.ChannelPhone, Max: 1, Per: policy.Duration(72 * time.Hour)}}
	now := time.Date(2026, 3, 2, 22, 0, 0, 0, time.UTC)
	history := []Contact{{Channel: policy.ChannelPhone, At: now.Add(-time.Hour)}}
	v := Pending{Channel: policy.ChannelPhone, Deadline: now.Add(time.Hour)}
	require.NotEqual(t, Fire, r.Check(now, v, Prefs{}, history).Action, "without the customer's choice it would not fire")
	v.CustomerChosen = true
	require.Equal(t, Fire, r.Check(now, v, Prefs{}, history).Action)
	require.Equal(t, Suppress, r.Check(now, v, Prefs{OptedOut: []int32{policy.ChannelPhone}}, history).Action)
}

// The contact policy JSON stored before the calendar moved to pkg/contact
// (Rules embeds contact.Calendar now) decodes into the same rules, and is
// written back with the same keys.
func TestStoredRulesJSONStillDecodes(t *testing.T) {
	stored := `{"windows":[{"start_minute":600,"end_minute":690},{"start_minute":930,"end_minute":1020}],
	  "quiet_hours":{"start_minute":1260,"end_minute":480},"time_zone":"Asia/Shanghai","holidays":["2026-10-01","2026-10-02"],
	  "avoid_holidays":true,"caps":[{"channel":"CHANNEL_PHONE","max":1,"per":"3d"},{"max":4,"per":"30d"}],
	  "dislikes_calls_gap":"1w","milestones":[{"date":"2026-03-15","kind":"launch","name":"sales launch","project":"bay"}]}`
	var r Rules
	require.NoError(t, json.Unmarshal([]byte(stored), &r))
	want := Rules{
		Calendar: calendar.Calendar{
			Windows: []calendar.Window{{Start: 600, End: 690}, {Start: 930, End: 1020}}, Quiet: &calendar.Window{Start: 1260, End: 480},
			TimeZone: "Asia/Shanghai", Holidays: []string{"2026-10-01", "2026-10-02"}, AvoidHolidays: true,
		},
		Caps:             []Cap{{Channel: policy.ChannelPhone, Max: 1, Per: policy.Duration(72 * time.Hour)}, {Max: 4, Per: policy.Duration(30 * 24 * time.Hour)}},
		DislikesCallsGap: policy.Duration(7 * 24 * time.Hour),
		Milestones:       []Milestone{{Date: "2026-03-15", Kind: "launch", Name: "sales launch", Project: "bay"}},
	}
	require.Equal(t, want, r)
	back, err := json.Marshal(r)
	require.NoError(t, err)
	require.JSONEq(t, stored, string(back), "written back as it was stored")
	// The preferences stored per customer keep their form too.
	var p Prefs
	require.NoError(t, json.Unmarshal([]byte(`{"opted_out":[2],"windows":[{"start_minute":840,"end_minute":900}],"time_zone":"Europe/Berlin","dislikes_calls":true}`), &p))
	require.Equal(t, Prefs{OptedOut: []int32{2}, Windows: []calendar.Window{{Start: 840, End: 900}}, TimeZone: "Europe/Berlin", DislikesCalls: true}, p)
}

// The calendar a VisitDue carries: the tenant's windows, quiet hours, zone
// and holiday rule, with the holidays from the due day on, that day counted
// in the tenant's zone; nothing when the calendar allows any time.
func TestCalendarFrom(t *testing.T) {
	r := Preset002()
	r.TimeZone, r.AvoidHolidays = "Asia/Shanghai", true
	r.Holidays = []string{"2026-10-01", "2026-10-02", "2026-12-25", "2026-09-30"}
	r.Caps = []Cap{{Max: 1, Per: policy.Duration(time.Hour)}}
	cal, ok := r.CalendarFrom(time.Date(2026, 9, 30, 17, 0, 0, 0, time.UTC)) // 1 October, 01:00 in Shanghai
	require.True(t, ok)
	require.Equal(t, []string{"2026-10-01", "2026-10-02", "2026-12-25"}, cal.Holidays)
	require.Equal(t, r.Windows, cal.Windows)
	require.Equal(t, "Asia/Shanghai", cal.TimeZone)
	require.True(t, cal.AvoidHolidays)
	require.Equal(t, []string{"2026-10-01", "2026-10-02", "2026-12-25", "2026-09-30"}, r.Holidays, "the rules keep every holiday")

	_, ok = Rules{Caps: r.Caps}.CalendarFrom(time.Now())
	require.False(t, ok, "caps alone are no calendar")
	cal, ok = Rules{Calendar: calendar.Calendar{Holidays: []string{"2020-01-01"}}}.CalendarFrom(time.Now())
	require.False(t, ok, "only past holidays: nothing to send")
	require.Empty(t, cal.Holidays)
}

// The customer archive's newest word wins; a service's snapshot never
// overwrites it; no opt-out is ever lost.
func TestCustomerUpdate(t *testing.T) {
	at := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
	var c Customer
	require.True(t, c.Update(0, Prefs{TimeZone: "Asia/Shanghai", OptedOut: []int32{policy.ChannelSMS}}, "key", at), "a snapshot for a new customer")
	require.True(t, c.Update(0, Prefs{TimeZone: "Asia/Tokyo"}, "", at), "a newer snapshot replaces a snapshot")
	require.Equal(t, "Asia/Tokyo", c.Prefs.TimeZone)
	require.True(t, c.Update(2, Prefs{DislikesCalls: true}, "vip", at))
	require.False(t, c.Update(0, Prefs{}, "", at), "a snapshot never replaces a CustomerUpdated")
	require.False(t, c.Update(1, Prefs{}, "", at), "nor does an older version")
	require.True(t, c.Update(3, Prefs{}, "", at))
	c.OptOut(policy.ChannelPhone, at)
	c.OptOut(policy.ChannelPhone, at)
	require.Equal(t, []int32{policy.ChannelSMS, policy.ChannelPhone}, c.Effective().OptedOut, "every opt-out kept, once")
	require.Equal(t, int64(3), c.Version)
}

// A due visit's verdict applied: a move sets the time (the deadline stays
// the policy's: moved past it, the visit is late, issue 16) and says why; a suppression says why; an opt-out is told.
func TestOutcomeApply(t *testing.T) {
	now := time.Date(2026, 3, 10, 10, 0, 0, 0, time.UTC)
	v := policy.Visit{DueAt: now, Deadline: now.Add(time.Hour), Reason: "planned"}
	Outcome{Action: Move, At: now.Add(2 * time.Hour), Reason: "moved", Decisions: []policy.Decision{{Kind: policy.KindCap}}}.Apply(&v)
	require.Equal(t, now.Add(2*time.Hour), v.DueAt)
	require.Equal(t, now.Add(time.Hour), v.Deadline, "issue 16: a late visit keeps its deadline")
	require.True(t, v.Late())
	require.Equal(t, "moved; late: after its deadline 2026-03-10T11:00:00Z", v.Reason)
	require.Len(t, v.Decisions, 1)
	Outcome{Action: Fire, At: now}.Apply(&v)
	require.Equal(t, "moved; late: after its deadline 2026-03-10T11:00:00Z", v.Reason, "firing changes nothing")
	out := Rules{}.Check(now, Pending{Channel: policy.ChannelPhone}, Prefs{OptedOut: []int32{policy.ChannelPhone}}, nil)
	require.True(t, out.OptedOut())
	require.False(t, Outcome{Action: Suppress, Decisions: []policy.Decision{{Kind: policy.KindCap}}}.OptedOut())
}

func TestApplyPreset(t *testing.T) {
	var r Rules
	require.NoError(t, r.ApplyPreset("002"))
	require.Equal(t, Preset002().Windows, r.Windows)
	own := Rules{Calendar: calendar.Calendar{Windows: []calendar.Window{{Start: 540, End: 600}}}}
	require.NoError(t, own.ApplyPreset("002"))
	require.Equal(t, []calendar.Window{{Start: 540, End: 600}}, own.Windows, "the tenant's own windows win")
	require.NoError(t, own.ApplyPreset(""))
	err := own.ApplyPreset("003")
	require.ErrorContains(t, err, "preset")
}

// Issue 16 (caps visible when planned): the forecast counts the contacts
// made and the planned visits before each one; seed 002: a customer who
// dislikes calls gets at most one call a week, so the second call of the
// week is foreseen moved, and an SMS is not capped.
func TestForecast(t *testing.T) {
	now := time.Date(2026, 3, 10, 10, 0, 0, 0, time.UTC)
	day := 24 * time.Hour
	visits := []Planned{
		{DueAt: now.Add(2 * day), Pending: Pending{Channel: policy.ChannelPhone, Deadline: now.Add(20 * day)}},
		{DueAt: now.Add(day), Pending: Pending{Channel: policy.ChannelPhone, Deadline: now.Add(2 * day)}},
		{DueAt: now.Add(day), Pending: Pending{Channel: policy.ChannelSMS, Deadline: now.Add(2 * day)}},
	}
	require.Nil(t, Rules{}.Forecast(visits, Prefs{}, nil), "no caps: nothing to foresee")
	got := Rules{}.Forecast(visits, Prefs{DislikesCalls: true}, nil)
	require.Len(t, got, 1, "the call due first fires, the SMS is not capped")
	require.Equal(t, Move, got[0].Action)
	require.Equal(t, now.Add(8*day), got[0].At, "a week after the call due first")
	got = Rules{}.Forecast(visits, Prefs{DislikesCalls: true}, []Contact{{Channel: policy.ChannelPhone, At: now.Add(-day)}})
	require.Equal(t, Suppress, got[1].Action, "a call yesterday: the call due tomorrow cannot be made by its deadline")
	require.Equal(t, Move, got[0].Action)
}
