// Package contact holds a tenant's contact policy as the scheduler plans
// with it, across every follow-up program: the contact calendar (windows,
// quiet hours, holidays, time zone: pkg/contact's, the one implementation),
// frequency caps, opt-outs, the customers who dislike calls and the project
// milestones. It says whether a due visit fires, moves or is suppressed, and
// why. It does no I/O.
package contact

import (
	"fmt"
	"regexp"
	"slices"
	"sort"
	"time"

	calendar "github.com/huifang/huifang/pkg/contact"
	"github.com/huifang/huifang/pkg/invalid"
	"github.com/huifang/huifang/services/scheduler/internal/policy"
)

// Cap is a frequency cap per customer across every policy: at most Max
// contacts on Channel (0 = any channel) in any span of Per.
type Cap struct {
	Channel policy.Channel  `json:"channel,omitempty"`
	Max     int             `json:"max"`
	Per     policy.Duration `json:"per"`
}

// Rules is a tenant's contact policy. The zero value allows any time. Its
// JSON is the calendar's fields (windows, quiet_hours, time_zone, holidays,
// avoid_holidays) followed by the planning rules: the form stored in
// contact_policies.
type Rules struct {
	// Calendar: windows for calls and on-site visits, quiet hours on every
	// channel, the time zone for customers without their own, and the
	// holidays (seed 002 class D's holiday steps use them too).
	calendar.Calendar
	Caps []Cap `json:"caps,omitempty"`
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
	return Rules{Calendar: calendar.Calendar{Windows: []calendar.Window{{Start: 600, End: 690}, {Start: 930, End: 1020}}}}
}

// ApplyPreset fills in a named preset: "002" gives rules without windows
// the seed-002 windows; "" changes nothing. Another name is refused.
func (r *Rules) ApplyPreset(name string) error {
	switch name {
	case "":
	case "002":
		if len(r.Windows) == 0 {
			r.Windows = Preset002().Windows
		}
	default:
		return invalid.New("preset", "must be empty or 002")
	}
	return nil
}

// Prefs are one customer's contact preferences.
type Prefs struct {
	OptedOut      []int32           `json:"opted_out,omitempty"`
	Windows       []calendar.Window `json:"windows,omitempty"`
	TimeZone      string            `json:"time_zone,omitempty"`
	DislikesCalls bool              `json:"dislikes_calls,omitempty"`
}

// Preferences are the customer's windows and time zone, as the calendar reads them.
func (p Prefs) Preferences() calendar.Preferences {
	return calendar.Preferences{Windows: p.Windows, TimeZone: p.TimeZone}
}

// Contact is one past contact with a customer (a visit that fell due).
type Contact struct {
	Channel int32
	At      time.Time
}

// Validate refuses rules that cannot be applied, naming each field.
func (r Rules) Validate() error {
	var l invalid.List
	checkW := func(f string, w calendar.Window) {
		if !w.Valid() {
			l.Add(f, "must be minutes after midnight, 0–1440, start different from end")
		}
	}
	for i, w := range r.Windows {
		checkW(fmt.Sprintf("contact_policy.windows[%d]", i), w)
		if w.Wraps() {
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

// tenantZone is the tenant's time zone (UTC when unset or unknown).
func (r Rules) tenantZone() *time.Location { return r.Location(calendar.Preferences{}) }

// Zone is the tenant's time zone (UTC when unset or unknown): the dates of
// the policies' anchors (date attributes, holidays, milestones, quarters)
// start at midnight there, and a step's sampling quota counts per calendar
// month there (policy.Calendar).
func (r Rules) Zone() *time.Location { return r.tenantZone() }

// NextHoliday returns the first holiday starting after t, at midnight in the tenant's zone.
func (r Rules) NextHoliday(t time.Time) (time.Time, bool) {
	loc := r.tenantZone()
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
	loc := r.tenantZone()
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

// CalendarFrom is the contact calendar a visit due at t carries to dispatch
// (VisitDue.contact_calendar): the windows, quiet hours, time zone and
// holiday rule, with the holidays from t's day on (the local date in the
// tenant's zone). ok is false when the calendar allows any time (nothing to
// send).
func (r Rules) CalendarFrom(t time.Time) (cal calendar.Calendar, ok bool) {
	cal = r.Calendar
	day := t.In(r.tenantZone()).Format(time.DateOnly)
	cal.Holidays = nil
	for _, h := range r.Holidays {
		if h >= day {
			cal.Holidays = append(cal.Holidays, h)
		}
	}
	ok = len(cal.Windows) > 0 || cal.Quiet != nil || cal.TimeZone != "" || len(cal.Holidays) > 0 || cal.AvoidHolidays
	return cal, ok
}

// voice tells whether a channel is a call or an on-site visit: held to the
// windows and, with AvoidHolidays, moved off holidays.
func voice(ch int32) bool { return ch == policy.ChannelPhone || ch == policy.ChannelOnsite }

// moveKinds are the decision kinds of the calendar's moves.
var moveKinds = map[string]string{
	calendar.KindWindow:  policy.KindWindow,
	calendar.KindQuiet:   policy.KindQuiet,
	calendar.KindHoliday: policy.KindHoliday,
}

// DaySendMinute is when a visit due on a day is made (09:00 in the
// tenant's zone) when the tenant has no quiet hours: see DayStart.
const DaySendMinute = 9 * 60

// DayStart is when a visit due on a day (policy.Visit.OnDay: a holiday, a
// milestone, the start of a quarter, a date, due at midnight in the
// tenant's zone) is first offered: with quiet hours, at midnight (Place then
// moves it to their end); without, at DaySendMinute, so that nobody gets
// an SMS at 00:00 (issue 16). The decision says so.
func (r Rules) DayStart(t time.Time) (time.Time, []policy.Decision) {
	if r.Quiet != nil {
		return t, nil
	}
	day := t.In(r.tenantZone())
	at := day.Add(DaySendMinute * time.Minute).UTC()
	return at, []policy.Decision{{Kind: policy.KindQuiet, At: at, Detail: fmt.Sprintf(
		"due on %s (%s): made at %02d:%02d, not at midnight (the tenant has no quiet hours)",
		day.Format(time.DateOnly), day.Location(), DaySendMinute/60, DaySendMinute%60)}}
}

// Place returns the first time at or after t that the calendar and the
// customer allow for the channel (the calendar's Place), and a decision for
// every move. holidayStep marks a visit meant for a holiday (it is not moved
// off it).
func (r Rules) Place(t time.Time, ch int32, p Prefs, holidayStep bool) (time.Time, []policy.Decision) {
	at, moves := r.Calendar.Place(t, voice(ch), p.Preferences(), holidayStep)
	var ds []policy.Decision
	for _, m := range moves {
		kind, ok := moveKinds[m.Kind]
		if !ok {
			kind = m.Kind
		}
		ds = append(ds, policy.Decision{Kind: kind, Detail: m.Detail, At: m.At})
	}
	return at, ds
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

// OptedOut tells whether the visit was suppressed because the customer
// opted out of its channel (which also ends its series).
func (o Outcome) OptedOut() bool {
	return o.Action == Suppress && len(o.Decisions) > 0 && o.Decisions[0].Kind == policy.KindOptOut
}

// Apply records the verdict on the visit: a move sets its time, a move or
// a suppression its reason and decisions; a visit that fires is left as it
// is. The deadline is the policy's and never moves: a visit moved past it
// is late (issue 16), and the move says so.
func (o Outcome) Apply(v *policy.Visit) {
	switch o.Action {
	case Move:
		v.DueAt, v.Reason, v.Decisions = o.At, o.Reason, append(v.Decisions, o.Decisions...)
		if v.Late() {
			v.Reason += "; late: after its deadline " + v.Deadline.UTC().Format(time.RFC3339)
		}
	case Suppress:
		v.Reason, v.Decisions = o.Reason, append(v.Decisions, o.Decisions...)
	}
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

// NeedsHistory tells whether Check reads the customer's past contacts: the
// tenant has caps, or the customer dislikes calls.
func (r Rules) NeedsHistory(p Prefs) bool { return len(r.Caps) > 0 || p.DislikesCalls }

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

// Planned is a customer's planned visit as a forecast reads it: when it is
// due, and what Check needs.
type Planned struct {
	DueAt time.Time
	Pending
}

// Forecast says what the frequency caps (and the dislikes-calls gap) will
// do to a customer's planned visits when they fall due, as far as it can be
// known now: the same Check as at firing, at each visit's due time, soonest
// first, with the contacts already made (history) and the planned visits
// before it counted as made (a visit a cap moves counts at its new time).
// It returns the outcome of every visit a cap moves or suppresses (by index
// into visits); the others fire as planned. Opt-outs, windows and holidays
// are left out: they are applied when the visit is planned and stop it at
// once (issue 16: caps visible when planned, not only at firing).
func (r Rules) Forecast(visits []Planned, p Prefs, history []Contact) map[int]Outcome {
	if !r.NeedsHistory(p) || len(visits) == 0 {
		return nil
	}
	order := make([]int, len(visits))
	for i := range order {
		order[i] = i
	}
	sort.SliceStable(order, func(a, b int) bool { return visits[order[a]].DueAt.Before(visits[order[b]].DueAt) })
	made := slices.Clone(history)
	out := map[int]Outcome{}
	for _, i := range order {
		v := visits[i]
		if v.CustomerChosen {
			made = append(made, Contact{Channel: v.Channel, At: v.DueAt})
			continue
		}
		o := r.Check(v.DueAt, v.Pending, Prefs{Windows: p.Windows, TimeZone: p.TimeZone, DislikesCalls: p.DislikesCalls}, made)
		switch {
		case o.Action == Fire:
			made = append(made, Contact{Channel: v.Channel, At: v.DueAt})
		case capped(o):
			out[i] = o
			if o.Action == Move {
				made = append(made, Contact{Channel: v.Channel, At: o.At})
			}
		default: // a window or quiet hours only: it fires at the placed time
			made = append(made, Contact{Channel: v.Channel, At: o.At})
		}
	}
	return out
}

// capped tells whether a cap (or the dislikes-calls gap) decided the outcome.
func capped(o Outcome) bool {
	for _, d := range o.Decisions {
		if d.Kind == policy.KindCap || d.Kind == policy.KindDislikes {
			return true
		}
	}
	return false
}
