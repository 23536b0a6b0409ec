package policy

import (
	"encoding/json"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	typesv1 "github.com/huifang/huifang/proto/huifang/types/v1"

	"github.com/huifang/huifang/pkg/enum"
)

// Duration is a time.Duration written in policy files as "3d", "2w", "36h",
// "-14d" or "1d12h" (d = 24 h, w = 7 d). Numbers are read as nanoseconds, the
// form older stored specs used.
type Duration time.Duration

// D returns the time.Duration.
func (d Duration) D() time.Duration { return time.Duration(d) }

// MarshalJSON writes the shortest form in weeks, days and hours where exact.
func (d Duration) MarshalJSON() ([]byte, error) {
	return json.Marshal(FormatDuration(time.Duration(d)))
}

// UnmarshalJSON reads a string form or a number of nanoseconds.
func (d *Duration) UnmarshalJSON(b []byte) error {
	var n int64
	if err := json.Unmarshal(b, &n); err == nil {
		*d = Duration(n)
		return nil
	}
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("duration: %w", err)
	}
	v, err := ParseDuration(s)
	if err != nil {
		return err
	}
	*d = Duration(v)
	return nil
}

// ParseDuration reads "3d", "2w", "-14d", "1d12h", "90m" or any form
// time.ParseDuration takes.
func ParseDuration(s string) (time.Duration, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return 0, nil
	}
	neg := strings.HasPrefix(s, "-")
	rest := strings.TrimPrefix(s, "-")
	var total time.Duration
	for rest != "" {
		i := 0
		for i < len(rest) && (rest[i] >= '0' && rest[i] <= '9' || rest[i] == '.') {
			i++
		}
		j := i
		for j < len(rest) && !(rest[j] >= '0' && rest[j] <= '9') {
			j++
		}
		if i == 0 || j == i {
			return 0, fmt.Errorf("duration %q: want forms like 3d, 2w, 36h, 90m", s)
		}
		num, unit := rest[:i], rest[i:j]
		rest = rest[j:]
		var v time.Duration
		switch unit {
		case "w", "d":
			n, err := strconv.ParseFloat(num, 64)
			if err != nil {
				return 0, fmt.Errorf("duration %q: %w", s, err)
			}
			day := 24 * time.Hour
			if unit == "w" {
				day *= 7
			}
			f := n * float64(day)
			if f >= math.MaxInt64 { // n is not negative: the sign was taken off
				return 0, fmt.Errorf("duration %q: out of range", s)
			}
			v = time.Duration(f)
		default:
			var err error
			if v, err = time.ParseDuration(num + unit); err != nil {
				return 0, fmt.Errorf("duration %q: %w", s, err)
			}
		}
		if total > math.MaxInt64-v {
			return 0, fmt.Errorf("duration %q: out of range", s)
		}
		total += v
	}
	if neg {
		total = -total
	}
	return total, nil
}

// FormatDuration writes d as weeks, days and a Go duration for the rest.
func FormatDuration(d time.Duration) string {
	if d == 0 {
		return "0s"
	}
	sign := ""
	if d < 0 {
		if d == math.MinInt64 { // -d does not exist
			return d.String()
		}
		sign, d = "-", -d
	}
	day := 24 * time.Hour
	var b strings.Builder
	b.WriteString(sign)
	if d%day == 0 {
		if d%(7*day) == 0 {
			fmt.Fprintf(&b, "%dw", d/(7*day))
		} else {
			fmt.Fprintf(&b, "%dd", d/day)
		}
		return b.String()
	}
	if d >= day {
		fmt.Fprintf(&b, "%dd", d/day)
		d %= day
	}
	b.WriteString(d.String())
	return b.String()
}

// Channel is a huifang.types.v1.Channel number, written in policy files by
// name ("CHANNEL_PHONE" or "phone"); numbers are read too.
type Channel int32

// MarshalJSON writes the enum name.
func (c Channel) MarshalJSON() ([]byte, error) { return json.Marshal(ChannelName(int32(c))) }

// UnmarshalJSON reads a name or a number.
func (c *Channel) UnmarshalJSON(b []byte) error {
	var n int32
	if err := json.Unmarshal(b, &n); err == nil {
		*c = Channel(n)
		return nil
	}
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("channel: %w", err)
	}
	if c2, ok := enum.Parse[typesv1.Channel](s); ok {
		*c = Channel(c2)
		return nil
	}
	if strings.EqualFold(s, "CHANNEL_UNSPECIFIED") || strings.EqualFold(s, "unspecified") {
		*c = ChannelUnspecified
		return nil
	}
	return fmt.Errorf("channel %q: want CHANNEL_PHONE, CHANNEL_SMS, CHANNEL_ONSITE, CHANNEL_EMAIL or CHANNEL_WEB", s)
}
