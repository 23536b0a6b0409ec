// Package contact holds the contact policy that applies across every
// follow-up program of a tenant: contact windows, quiet hours, the holiday
// calendar, the customer's time zone, frequency caps, opt-outs and the
// customers who dislike calls. It moves or suppresses a visit and says why.
// It does no I/O.
package contact

import (
	"fmt"
	"regexp"
	"slices"
	"sort"
	"time"

	"github.com/huifang/huifang/pkg/invalid"
	"github.com/huifang/huifang/services/scheduler/internal/policy"
)

// Window is a daily time window in minutes after midnight, [Start, End).
// Start after End wraps over midnight (quiet hours 21:00–08:00).
type Window struct {
	Start int `json:"start_minute"`
	End   int `json:"end_minute"`
}

func (w Window) holds(m int) bool {
	if w.Start <= w.End {
		return m >= w.Start && m < w.End
	}
	return m >= w.Start || m < w.End
}

func (w Window) String() string {
	return fmt.Sprintf("%02d:%02d–%02d:%02d", w.Start/60, w.Start%60, w.End/60, w.End%60)
}

// Cap is a frequency cap per customer across every policy: at most Max
// contacts on Channel (0 = any channel) in any span of Per.
type Cap struct {
	Channel policy.Channel  `json:"channel,omitempty"`
	Max     int             `json:"max"`
	Per     policy.Duration `json:"per"`
}

// Rules is a tenant's contact policy. The zero value allows any time.
type Rules struct {
	// Windows for calls and on-site visits; empty means any time of day.
	Windows []Window `json:"windows,omitempty"`
	// Quiet hours: no contact on any channel.
	Quiet *Window `json:"quiet_hours,omitempty"`
	// TimeZone for customers without their own (IANA); empty means UTC.
	TimeZone string `json:"time_zone,omitempty"`
	// Holidays (YYYY-MM-DD, the tenant's calendar). Calls and on-site visits
	// move off them when AvoidHolidays; holiday steps (seed 002 class D) use them.
	Holidays      []string `json:"holidays,omitempty"`
	AvoidHolidays bool     `json:"avoid_holidays,omitempty"`
	Caps          []Cap    `json:"caps,omitempty"`
	// DislikesCallsGap is the least time between two calls to a customer who
	// dislikes calls (seed 002); 7 days when zero.
	DislikesCallsGap policy.Duration `json:"dislikes_calls_gap,omitempty"`
	// Milestones is the tenant's project calendar (seed 002 real estate):
	// steps with on_milestones fall due on the milestones of their kinds.
	Milestones []Milestone `json:"milestones,omitempty"`
}

// Milestone is a dated event of a project: launch, offers, show-flat opening,
// a construction milestone.
type Milestone struct {
	// Date is YYYY-MM-DD in the tenant's time zone; the milestone starts at midnight.
	Date string `json:"date"`
	Kind string `json:"kind"`
	Name string `json:"name,omitempty"`
	// Project, when set, limits the milestone to services whose attribute project equals it.
	Project string `json:"project,omitempty"`
}

var milestoneKindRE = regexp.MustCompile(`^[a-z][a-z0-9_]{0,63}$`)

// Preset002 is the seed-002 contact etiquette: calls 10:00–11:30 and 15:30–17:00.
func Preset002() Rules {
	return Rules{Windows: []Window{{Start: 600, End: 690}, {Start: 930, End: 1020}}}
}

// Prefs are one customer's contact preferences.
type Prefs struct {
	OptedOut      []int32  `json:"opted_out,omitempty"`
	Windows       []Window `json:"windows,omitempty"`
	TimeZone      string   `json:"time_zone,omitempty"`
	DislikesCalls bool     `json:"dislikes_calls,omitempty"`
}

// Contact is one past contact with a customer (a visit that fell due).
type Contact struct {
	Channel int32
	At      time.Time
}

// Validate refuses rules that cannot be applied, naming each field.
func (r Rules) Validate() error {
	var l invalid.List
	checkW := func(f string, w Window) {
		if w.Start < 0 || w.Start >= 1440 || w.End < 0 || w.End > 1440 || w.Start == w.End {
			l.Add(f, "must be minutes after midnight, 0–1440, start different from end")
		}
	}
	for i, w := range r.Windows {
		checkW(fmt.Sprintf("contact_policy.windows[%d]", i), w)
		if w.Start > w.End {
			l.Add(fmt.Sprintf("contact_policy.windows[%d]", i), "must not wrap over midnight")
		}
	}
	if r.Quiet != nil {
		checkW("contact_policy.quiet_hours", *r.Quiet)
	}
	if r.TimeZone != "" {
		if _, err := time.LoadLocation(r.TimeZone); err != nil {
			l.Add("contact_policy.time_zone", "must be an IANA time zone such as Asia/Shanghai")
		}
	}
	for i, h := range r.Holidays {
		if _, err := time.Parse(time.DateOnly, h); err != nil {
			l.Add(fmt.Sprintf("contact_policy.holidays[%d]", i), "must be a date, YYYY-MM-DD")
		}
	}
	for i, m := range r.Milestones {
		f := fmt.Sprintf("contact_policy.milestones[%d]", i)
		if _, err := time.Parse(time.DateOnly, m.Date); err != nil {
			l.Add(f+".date", "must be a date, YYYY-MM-DD")
		}
		if !milestoneKindRE.MatchString(m.Kind) {
			l.Add(f+".kind", "is required: a word such as launch, offers, show_flat_opening or construction (lowercase letters, digits, '_')")
		}
	}
	for i, c := range r.Caps {
		f := fmt.Sprintf("contact_policy.caps[%d]", i)
		if c.Max < 1 {
			l.Add(f+".max", "must be at least 1")
		}
		if c.Per.D() < time.Hour {
			l.Add(f+".per", "must be at least 1h")
		}
		if c.Channel < 0 || c.Channel > policy.ChannelWeb {
			l.Add(f+".channel", "must be a channel, or unspecified for every channel")
		}
	}
	if r.DislikesCallsGap < 0 {
		l.Add("contact_policy.dislikes_calls_gap", "must not be negative")
	}
	return l.Err()
}

// Location is the customer's time zone, else the tenant's, else UTC.
func (r Rules) Location(p Prefs) *time.Location {
	for _, tz := range []string{p.TimeZone, r.TimeZone} {
		if tz == "" {
			continue
		}
		if loc, err := time.LoadLocation(tz); err == nil {
			return loc
		}
	}
	return time.UTC
}

func (r Rules) isHoliday(t time.Time) bool {
	return slices.Contains(r.Holidays, t.Format(time.DateOnly))
}

// NextHoliday returns the first holiday starting after t, at midnight in the tenant's zone.
func (r Rules) NextHoliday(t time.Time) (time.Time, bool) {
	loc := r.Location(Prefs{})
	hs := slices.Clone(r.Holidays)
	sort.Strings(hs)
	for _, h := range hs {
		d, err := time.ParseInLocation(time.DateOnly, h, loc)
		if err == nil && d.After(t) {
			return d, true
		}
	}
	return time.Time{}, false
}

// NextMilestone returns the first milestone of one of the kinds starting after
// t (midnight in the tenant's zone) for the project: milestones without a
// project apply to every project.
func (r Rules) NextMilestone(t time.Time, project string, kinds []string) (time.Time, string, bool) {
	loc := r.Location(Prefs{})
	var best time.Time
	var what string
	for _, m := range r.Milestones {
		if !slices.Contains(kinds, m.Kind) || (m.Project != "" && m.Project != project) {
			continue
		}
		d, err := time.ParseInLocation(time.DateOnly, m.Date, loc)
		if err != nil || !d.After(t) || (!best.IsZero() && !d.Before(best)) {
			continue
		}
		best, what = d, m.Kind+" "+m.Date
		if m.Name != "" {
			what += " (" + m.Name + ")"
		}
	}
	return best, what, !best.IsZero()
}

func voice(ch int32) bool { return ch == policy.ChannelPhone || ch == policy.ChannelOnsite }

func midnightAfter(t time.Time) time.Time {
	y, m, d := t.Date()
	return time.Date(y, m, d+1, 0, 0, 0, 0, t.Location())
}

func atMinute(t time.Time, m int) time.Time {
	y, mo, d := t.Date()
	return time.Date(y, mo, d, m/60, m%60, 0, 0, t.Location())
}

// Place returns the first time at or after t that the rules and the
// customer allow for the channel, and a decision for every move.
// holidayStep marks a visit meant for a holiday (it is not moved off it).
func (r Rules) Place(t time.Time, ch int32, p Prefs, holidayStep bool) (time.Time, []policy.Decision) {
	loc := r.Location(p)
	windows := r.Windows
	if len(p.Windows) > 0 {
		windows = p.Windows
	}
	windows = slices.Clone(windows)
	slices.SortFunc(windows, func(a, b Window) int { return a.Start - b.Start })
	var ds []policy.Decision
	orig := t
	for range 800 {
		l := t.In(loc)
		m := l.Hour()*60 + l.Minute()
		switch {
		case r.AvoidHolidays && voice(ch) && !holidayStep && r.isHoliday(l):
			t = midnightAfter(l)
			ds = append(ds, policy.Decision{Kind: policy.KindHoliday, Detail: l.Format(time.DateOnly) + " is a holiday of the tenant's calendar", At: t})
		case r.Quiet != nil && r.Quiet.holds(m):
			next := atMinute(l, r.Quiet.End)
			if !next.After(l) {
				next = atMinute(midnightAfter(l), r.Quiet.End)
			}
			t = next
			ds = append(ds, policy.Decision{Kind: policy.KindQuiet, Detail: "quiet hours " + r.Quiet.String() + " in " + loc.String(), At: t})
		case voice(ch) && len(windows) > 0 && !inAny(windows, m):
			t = nextWindow(l, windows)
			ds = append(ds, policy.Decision{Kind: policy.KindWindow, Detail: "outside the contact windows " + windowsString(windows) + " in " + loc.String(), At: t})
		default:
			if !t.Equal(orig) {
				return t.UTC(), ds
			}
			return orig, nil
		}
	}
	return t.UTC(), ds
}

func inAny(ws []Window, m int) bool {
	for _, w := range ws {
		if w.holds(m) {
			return true
		}
	}
	return false
}

func nextWindow(l time.Time, ws []Window) time.Time {
	m := l.Hour()*60 + l.Minute()
	for _, w := range ws {
		if w.Start > m {
			return atMinute(l, w.Start)
		}
	}
	return atMinute(midnightAfter(l), ws[0].Start)
}

func windowsString(ws []Window) string {
	s := ""
	for i, w := range ws {
		if i > 0 {
			s += ", "
		}
		s += w.String()
	}
	return s
}

// Action is what to do with a visit that fell due.
type Action int

// Actions.
const (
	Fire Action = iota
	Move
	Suppress
)

// Outcome is the contact policy's verdict on a due visit.
type Outcome struct {
	Action    Action
	At        time.Time
	Reason    string
	Decisions []policy.Decision
}

// Pending is what Check needs of a visit.
type Pending struct {
	Channel     int32
	Deadline    time.Time
	HolidayStep bool
	// CustomerChosen: the customer asked for this time (ReschedulePlannedVisit);
	// only an opt-out stops it, no window, quiet hours, holiday or cap moves it.
	CustomerChosen bool
}

// Caps are the caps that apply to the customer: the tenant's, and for a
// customer who dislikes calls one call per DislikesCallsGap.
func (r Rules) caps(p Prefs) []Cap {
	cs := slices.Clone(r.Caps)
	if p.DislikesCalls {
		gap := r.DislikesCallsGap
		if gap == 0 {
			gap = policy.Duration(7 * 24 * time.Hour)
		}
		cs = append(cs, Cap{Channel: policy.ChannelPhone, Max: 1, Per: gap})
	}
	return cs
}

// MaxPer is the longest span any cap looks back over (0 without caps).
func (r Rules) MaxPer() time.Duration {
	var m time.Duration
	for _, c := range r.caps(Prefs{DislikesCalls: true}) {
		m = max(m, c.Per.D())
	}
	return m
}

// Check decides, at now, whether a due visit fires, moves or is suppressed,
// given the customer's preferences and past contacts (any order).
func (r Rules) Check(now time.Time, v Pending, p Prefs, history []Contact) Outcome {
	if slices.Contains(p.OptedOut, v.Channel) {
		reason := "customer opted out of " + policy.ChannelName(v.Channel)
		return Outcome{Action: Suppress, Reason: reason, Decisions: []policy.Decision{{Kind: policy.KindOptOut, Detail: reason, At: now}}}
	}
	if v.CustomerChosen {
		return Outcome{Action: Fire, At: now}
	}
	at := now
	var ds []policy.Decision
	capped := false
	for _, c := range r.caps(p) {
		if c.Channel != 0 && int32(c.Channel) != v.Channel {
			continue
		}
		var in []time.Time
		for _, h := range history {
			if (c.Channel == 0 || h.Channel == int32(c.Channel)) && h.At.After(now.Add(-c.Per.D())) && !h.At.After(now) {
				in = append(in, h.At)
			}
		}
		if len(in) < c.Max {
			continue
		}
		slices.SortFunc(in, func(a, b time.Time) int { return a.Compare(b) })
		free := in[len(in)-c.Max].Add(c.Per.D())
		kind, what := policy.KindCap, fmt.Sprintf("cap %d %s per %s reached", c.Max, capChannel(int32(c.Channel)), policy.FormatDuration(c.Per.D()))
		if p.DislikesCalls && c.Channel == policy.ChannelPhone && c.Max == 1 {
			kind, what = policy.KindDislikes, "customer dislikes calls: at most 1 call per "+policy.FormatDuration(c.Per.D())
		}
		ds = append(ds, policy.Decision{Kind: kind, Detail: what, At: free})
		capped = true
		if free.After(at) {
			at = free
		}
	}
	placed, more := r.Place(at, v.Channel, p, v.HolidayStep)
	ds = append(ds, more...)
	if !placed.After(now) {
		return Outcome{Action: Fire, At: now}
	}
	if capped && !v.Deadline.IsZero() && placed.After(v.Deadline) {
		reason := fmt.Sprintf("%s; the earliest allowed time %s is past the deadline %s", ds[0].Detail, placed.UTC().Format(time.RFC3339), v.Deadline.UTC().Format(time.RFC3339))
		ds = append(ds, policy.Decision{Kind: policy.KindCap, Detail: "suppressed: " + reason, At: now})
		return Outcome{Action: Suppress, Reason: reason, Decisions: ds}
	}
	reason := "moved to " + placed.UTC().Format(time.RFC3339) + ": " + ds[0].Detail
	return Outcome{Action: Move, At: placed, Reason: reason, Decisions: ds}
}

func capChannel(c int32) string {
	if c == 0 {
		return "contacts"
	}
	return policy.ChannelName(c)
}
