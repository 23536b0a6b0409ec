package task

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Window is a daily contact window in minutes after midnight (seed 002:
// the best call times are 10:00–11:30 and 15:30–17:00).
type Window struct {
	Start, End int
}

// Location loads an IANA zone, UTC when empty or unknown.
func Location(name string) *time.Location {
	if name == "" {
		return time.UTC
	}
	loc, err := time.LoadLocation(name)
	if err != nil {
		return time.UTC
	}
	return loc
}

// NextInWindow returns t when it falls inside one of the windows (in loc),
// else the start of the next window; t itself when there are no windows.
func NextInWindow(t time.Time, windows []Window, loc *time.Location) time.Time {
	if len(windows) == 0 {
		return t
	}
	local := t.In(loc)
	midnight := time.Date(local.Year(), local.Month(), local.Day(), 0, 0, 0, 0, loc)
	var best time.Time
	for day := 0; day <= 7; day++ {
		base := midnight.AddDate(0, 0, day)
		for _, w := range windows {
			if w.End <= w.Start {
				continue
			}
			start := base.Add(time.Duration(w.Start) * time.Minute)
			end := base.Add(time.Duration(w.End) * time.Minute)
			if !t.Before(start) && t.Before(end) {
				return t
			}
			if start.After(t) && (best.IsZero() || start.Before(best)) {
				best = start
			}
		}
		if !best.IsZero() {
			return best.In(t.Location())
		}
	}
	return t
}

// ParseWindows reads "10:00-11:30,15:30-17:00"; empty is no windows.
func ParseWindows(s string) ([]Window, error) {
	var out []Window
	for part := range strings.SplitSeq(s, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		from, to, ok := strings.Cut(part, "-")
		if !ok {
			return nil, fmt.Errorf("window %q: want HH:MM-HH:MM", part)
		}
		a, err := parseClock(from)
		if err != nil {
			return nil, fmt.Errorf("window %q: %w", part, err)
		}
		b, err := parseClock(to)
		if err != nil {
			return nil, fmt.Errorf("window %q: %w", part, err)
		}
		if b <= a {
			return nil, fmt.Errorf("window %q: the end must be after the start", part)
		}
		out = append(out, Window{Start: a, End: b})
	}
	slices.SortFunc(out, func(x, y Window) int { return x.Start - y.Start })
	return out, nil
}

func parseClock(s string) (int, error) {
	h, m, ok := strings.Cut(strings.TrimSpace(s), ":")
	hh, err1 := strconv.Atoi(h)
	mm, err2 := strconv.Atoi(m)
	if !ok || err1 != nil || err2 != nil || hh < 0 || hh > 24 || mm < 0 || mm > 59 || hh*60+mm > 24*60 {
		return 0, fmt.Errorf("%q is not a time of day HH:MM", s)
	}
	return hh*60 + mm, nil
}
