package privacy

import (
	"strings"
	"unicode/utf8"
)

// The masked forms every answer and event shows: enough for an agent or a
// report to tell customers apart on a screen, not enough to contact or
// identify one (docs/privacy.md).

// MaskPhone shows the last four digits of a phone number only:
// +8613800138000 → *******8000 (as many stars as the national number has
// other digits, at most seven); a number of six digits or fewer shows only
// its last two.
func MaskPhone(phone string) string {
	d := strings.TrimPrefix(NormalizePhone(phone), "+")
	if len(d) > 11 && strings.HasPrefix(d, "86") {
		d = d[2:]
	}
	switch {
	case d == "":
		return ""
	case len(d) <= 6:
		return "****" + d[max(0, len(d)-2):]
	default:
		return strings.Repeat("*", min(len(d)-4, 7)) + d[len(d)-4:]
	}
}

// MaskEmail keeps the first letter and the domain: wang@example.com → w***@example.com.
func MaskEmail(email string) string {
	email = strings.TrimSpace(email)
	local, domain, ok := strings.Cut(email, "@")
	if email == "" {
		return ""
	}
	if !ok || local == "" {
		return "***"
	}
	r, _ := utf8.DecodeRuneInString(local)
	return string(r) + "***@" + domain
}

// MaskName keeps the first character and hides the rest, one star each up
// to three: 王小明 → 王**, Alice Wang → A***.
func MaskName(name string) string {
	name = strings.TrimSpace(name)
	if name == "" {
		return ""
	}
	r, size := utf8.DecodeRuneInString(name)
	rest := utf8.RuneCountInString(name[size:])
	return string(r) + strings.Repeat("*", max(1, min(rest, 3)))
}
