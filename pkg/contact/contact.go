// Package contact says when a customer may be contacted: the daily contact
// windows for calls and on-site visits (seed 002: 10:00–11:30 and
// 15:30–17:00), quiet hours on every channel, the tenant's holidays, and the
// customer's own windows and time zone. It is the one implementation of
// these rules: the scheduler places planned visits with it, dispatch places
// retries and call-backs with it, from the calendar the visit carries
// (VisitDue.contact_calendar), and intake checks customers' windows with it.
// It does no I/O.
package contact

import (
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"
)

// MinutesPerDay bounds a Window's minutes.
const MinutesPerDay = 24 * 60

// Window is a daily time window in minutes after midnight, [Start, End).
// Start after End wraps over midnight (quiet hours 21:00–08:00).
type Window struct {
	Start int `json:"start_minute"`
	End   int `json:"end_minute"`
}

// Holds tells whether minute m of a day lies in the window.
func (w Window) Holds(m int) bool {
	if w.Start <= w.End {
		return m >= w.Start && m < w.End
	}
	return m >= w.Start || m < w.End
}

// Wraps tells whether the window runs over midnight.
func (w Window) Wraps() bool { return w.Start > w.End }

// Valid tells whether the window's minutes lie in a day and differ.
func (w Window) Valid() bool {
	return w.Start >= 0 && w.Start < MinutesPerDay && w.End >= 0 && w.End <= MinutesPerDay && w.Start != w.End
}

func (w Window) String() string {
	return fmt.Sprintf("%02d:%02d–%02d:%02d", w.Start/60, w.Start%60, w.End/60, w.End%60)
}

// Preferences are what a customer said about being contacted.
type Preferences struct {
	// Windows replace the calendar's windows for this customer; empty: the calendar's.
	Windows []Window
	// TimeZone is the customer's IANA zone; empty: the calendar's.
	TimeZone string
}

// Calendar is a tenant's contact calendar. The zero value allows any time.
type Calendar struct {
	// Windows for calls and on-site visits; empty means any time of day.
	Windows []Window `json:"windows,omitempty"`
	// Quiet hours: no contact on any channel.
	Quiet *Window `json:"quiet_hours,omitempty"`
	// TimeZone for customers without their own (IANA); empty means UTC.
	TimeZone string `json:"time_zone,omitempty"`
	// Holidays (YYYY-MM-DD, in the tenant's zone). Calls and on-site visits
	// move off them when AvoidHolidays.
	Holidays      []string `json:"holidays,omitempty"`
	AvoidHolidays bool     `json:"avoid_holidays,omitempty"`
	// Zones, when set, is where Location looks the time zones up, so that
	// each is read once; nil reads the zone's file at every Location.
	Zones *Zones `json:"-"`
}

// Zones loads time zones by IANA name, each once: time.LoadLocation reads
// the zone's file at every call, which planning a visit would otherwise do
// at least once. A service keeps one for its life; the zero value is ready
// and it is safe for concurrent use. A name that does not load is not kept.
type Zones struct {
	m sync.Map // name → *time.Location
}

// Load is time.LoadLocation(name), loaded once.
func (z *Zones) Load(name string) (*time.Location, error) {
	if loc, ok := z.m.Load(name); ok {
		return loc.(*time.Location), nil
	}
	loc, err := time.LoadLocation(name)
	if err != nil {
		return nil, err
	}
	z.m.Store(name, loc)
	return loc, nil
}

// Kinds of Move.
const (
	KindWindow  = "window"
	KindQuiet   = "quiet_hours"
	KindHoliday = "holiday"
)

// Move says why Place moved a time, and where to.
type Move struct {
	Kind   string
	Detail string
	At     time.Time
}

// Location is the customer's time zone, else the calendar's, else UTC.
func (c Calendar) Location(p Preferences) *time.Location {
	for _, tz := range []string{p.TimeZone, c.TimeZone} {
		if tz == "" {
			continue
		}
		load := time.LoadLocation
		if c.Zones != nil {
			load = c.Zones.Load
		}
		if loc, err := load(tz); err == nil {
			return loc
		}
	}
	return time.UTC
}

// IsHoliday tells whether the local day of t is one of the calendar's holidays.
func (c Calendar) IsHoliday(t time.Time) bool {
	return slices.Contains(c.Holidays, t.Format(time.DateOnly))
}

// Place returns the first time at or after t that the calendar and the
// customer allow, and a Move for every step it took. voice marks a call or
// an on-site visit (held to the windows and, with AvoidHolidays, moved off
// holidays); every channel is held to quiet hours. holidayStep marks a
// contact meant for a holiday (it is not moved off it).
func (c Calendar) Place(t time.Time, voice bool, p Preferences, holidayStep bool) (time.Time, []Move) {
	loc := c.Location(p)
	windows := c.Windows
	if len(p.Windows) > 0 {
		windows = p.Windows
	}
	windows = slices.Clone(windows)
	slices.SortFunc(windows, func(a, b Window) int { return a.Start - b.Start })
	var moves []Move
	orig := t
	for range 800 {
		l := t.In(loc)
		m := l.Hour()*60 + l.Minute()
		switch {
		case c.AvoidHolidays && voice && !holidayStep && c.IsHoliday(l):
			t = midnightAfter(l)
			moves = append(moves, Move{Kind: KindHoliday, Detail: l.Format(time.DateOnly) + " is a holiday of the tenant's calendar", At: t})
		case c.Quiet != nil && c.Quiet.Holds(m):
			next := atMinute(l, c.Quiet.End)
			if !next.After(l) {
				next = atMinute(midnightAfter(l), c.Quiet.End)
			}
			t = next
			moves = append(moves, Move{Kind: KindQuiet, Detail: "quiet hours " + c.Quiet.String() + " in " + loc.String(), At: t})
		case voice && len(windows) > 0 && !inAny(windows, m):
			t = nextWindow(l, windows)
			moves = append(moves, Move{Kind: KindWindow, Detail: "outside the contact windows " + windowsString(windows) + " in " + loc.String(), At: t})
		default:
			if !t.Equal(orig) {
				return t.UTC(), moves
			}
			return orig, nil
		}
	}
	return t.UTC(), moves
}

func midnightAfter(t time.Time) time.Time {
	y, m, d := t.Date()
	return time.Date(y, m, d+1, 0, 0, 0, 0, t.Location())
}

func atMinute(t time.Time, m int) time.Time {
	y, mo, d := t.Date()
	return time.Date(y, mo, d, m/60, m%60, 0, 0, t.Location())
}

func inAny(ws []Window, m int) bool {
	for _, w := range ws {
		if w.Holds(m) {
			return true
		}
	}
	return false
}

// nextWindow is the next start of a window after local time l (ws sorted).
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
	parts := make([]string, len(ws))
	for i, w := range ws {
		parts[i] = w.String()
	}
	return strings.Join(parts, ", ")
}
