package task

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	typesv1 "github.com/huifang/huifang/proto/huifang/types/v1"

	"github.com/huifang/huifang/pkg/enum"
	"github.com/huifang/huifang/pkg/invalid"
)

// RetryRule says when to try again after a disposition, and how many
// attempts a visit gets in all before it is unreachable (无效回访).
type RetryRule struct {
	After time.Duration
	Max   int
}

// RetryPolicy holds the rules of each channel and disposition.
type RetryPolicy map[typesv1.Channel]map[typesv1.Disposition]RetryRule

// Rule returns the rule of channel c and disposition d; a channel without
// rules uses the phone's.
func (p RetryPolicy) Rule(c typesv1.Channel, d typesv1.Disposition) (RetryRule, bool) {
	rules, ok := p[c]
	if !ok {
		rules = p[typesv1.Channel_CHANNEL_PHONE]
	}
	r, ok := rules[d]
	return r, ok
}

// ParseRetryRules reads "no_answer=2h/3,busy=30m/3": after a no answer, try
// again 2 hours later, 3 attempts in all.
func ParseRetryRules(s string) (map[typesv1.Disposition]RetryRule, error) {
	out := map[typesv1.Disposition]RetryRule{}
	for part := range strings.SplitSeq(s, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		name, spec, ok := strings.Cut(part, "=")
		after, maxS, ok2 := strings.Cut(spec, "/")
		if !ok || !ok2 {
			return nil, fmt.Errorf("retry rule %q: want disposition=AFTER/MAX", part)
		}
		d, known := enum.Parse[typesv1.Disposition](name)
		if !known {
			return nil, fmt.Errorf("retry rule %q: unknown disposition %q", part, name)
		}
		dur, err := time.ParseDuration(strings.TrimSpace(after))
		if err != nil || dur <= 0 {
			return nil, fmt.Errorf("retry rule %q: the delay must be a positive duration", part)
		}
		n, err := strconv.Atoi(strings.TrimSpace(maxS))
		if err != nil || n < 1 {
			return nil, fmt.Errorf("retry rule %q: the maximum must be a positive number of attempts", part)
		}
		out[d] = RetryRule{After: dur, Max: n}
	}
	return out, nil
}

// Outcome is what one attempt does to its task.
type Outcome struct {
	// Status is the task's status after the attempt.
	Status string
	// NextAttemptAt is when the task is worked again; zero when it is not.
	NextAttemptAt time.Time
	// Unreachable: the visit could not be made (无效回访); Reason says why.
	Unreachable bool
	Reason      string
	// OptOut: the customer asked not to be contacted on this channel again.
	OptOut bool
}

// Decide applies an agent's disposition of attempt number attempt (1 for
// the first) of t at now. callBackAt is the time a customer asked to be
// called back. A retry is placed in the task's contact calendar with the
// customer's own windows and zone (pkg/contact: windows, quiet hours,
// holidays); a call-back keeps the customer's time unless it falls in
// quiet hours.
func Decide(t Task, d typesv1.Disposition, attempt int, now, callBackAt time.Time, policy RetryPolicy) (Outcome, error) {
	switch d {
	case typesv1.Disposition_DISPOSITION_ANSWERED:
		return Outcome{Status: StatusDone}, nil
	case typesv1.Disposition_DISPOSITION_REFUSED:
		return Outcome{Status: StatusRefused}, nil
	case typesv1.Disposition_DISPOSITION_ASKED_TO_STOP:
		return Outcome{Status: StatusOptedOut, OptOut: true}, nil
	case typesv1.Disposition_DISPOSITION_WRONG_NUMBER:
		return Outcome{Status: StatusUnreachable, Unreachable: true, Reason: "wrong number"}, nil
	case typesv1.Disposition_DISPOSITION_CALL_BACK_LATER:
		if callBackAt.IsZero() {
			return Outcome{}, invalid.New("call_back_at", "is required for DISPOSITION_CALL_BACK_LATER")
		}
		if !callBackAt.After(now) {
			return Outcome{}, invalid.New("call_back_at", "must be in the future")
		}
		next, _ := t.Calendar.Place(callBackAt, false, t.Customer.Contact(), false)
		return Outcome{Status: StatusOpen, NextAttemptAt: next}, nil
	case typesv1.Disposition_DISPOSITION_NO_ANSWER, typesv1.Disposition_DISPOSITION_BUSY:
		rule, ok := policy.Rule(t.Channel, d)
		if !ok {
			rule = RetryRule{Max: 1}
		}
		if attempt >= rule.Max {
			return Outcome{Status: StatusUnreachable, Unreachable: true,
				Reason: fmt.Sprintf("%s after %d attempts", enum.Name(d), attempt)}, nil
		}
		return Outcome{Status: StatusOpen, NextAttemptAt: t.Place(now.Add(rule.After))}, nil
	}
	return Outcome{}, invalid.New("disposition", fmt.Sprintf("must be an agent's outcome (answered, no answer, busy, wrong number, refused, call back later, asked to stop), not %s", d))
}

// Record records attempt number t.Attempts+1 of h, the holder of t, with
// disposition d at now (Decide), and applies its outcome: the attempt
// count and last disposition, the new status, the next moment it may be
// worked; the lease ends. Who made a done or refused visit stays its agent.
func (t *Task) Record(h Holder, d typesv1.Disposition, now, callBackAt time.Time, policy RetryPolicy) (int, Outcome, error) {
	if err := t.HeldBy(h); err != nil {
		return 0, Outcome{}, err
	}
	agentID := h.AgentID
	n := t.Attempts + 1
	out, err := Decide(*t, d, n, now, callBackAt, policy)
	if err != nil {
		return 0, Outcome{}, err
	}
	t.Attempts, t.LastDisposition, t.Status = n, d, out.Status
	t.AgentID, t.LeaseExpiresAt = "", time.Time{}
	if out.Status == StatusDone || out.Status == StatusRefused {
		t.AgentID = agentID // who made the visit
	}
	if !out.NextAttemptAt.IsZero() {
		t.AvailableAt = out.NextAttemptAt
	}
	return n, out, nil
}

// CheckDisposition reports a disposition an agent may not record (SENT etc.)
// as bad input before any lookup.
func CheckDisposition(d typesv1.Disposition) error {
	switch d {
	case typesv1.Disposition_DISPOSITION_UNSPECIFIED:
		return invalid.New("disposition", "is required")
	case typesv1.Disposition_DISPOSITION_SENT, typesv1.Disposition_DISPOSITION_DELIVERED, typesv1.Disposition_DISPOSITION_FAILED:
		return invalid.New("disposition", "is reported by automatic channels, not by agents")
	}
	if _, ok := typesv1.Disposition_name[int32(d)]; !ok {
		return invalid.New("disposition", fmt.Sprintf("must be a known disposition, not %d", d))
	}
	return nil
}
