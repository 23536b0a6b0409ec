package task

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	typesv1 "github.com/huifang/huifang/proto/huifang/types/v1"

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
		d, known := typesv1.Disposition_value["DISPOSITION_"+strings.ToUpper(strings.TrimSpace(name))]
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
		out[typesv1.Disposition(d)] = RetryRule{After: dur, Max: n}
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
// called back. Retries land inside the customer's contact window.
func Decide(t Task, d typesv1.Disposition, attempt int, now, callBackAt time.Time, policy RetryPolicy, rules Rules) (Outcome, error) {
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
		return Outcome{Status: StatusOpen, NextAttemptAt: callBackAt}, nil
	case typesv1.Disposition_DISPOSITION_NO_ANSWER, typesv1.Disposition_DISPOSITION_BUSY:
		rule, ok := policy.Rule(t.Channel, d)
		if !ok {
			rule = RetryRule{Max: 1}
		}
		if attempt >= rule.Max {
			return Outcome{Status: StatusUnreachable, Unreachable: true,
				Reason: fmt.Sprintf("%s after %d attempts", strings.ToLower(strings.TrimPrefix(d.String(), "DISPOSITION_")), attempt)}, nil
		}
		ws, loc := rules.WindowsOf(t.Customer)
		return Outcome{Status: StatusOpen, NextAttemptAt: NextInWindow(now.Add(rule.After), ws, loc)}, nil
	}
	return Outcome{}, invalid.New("disposition", fmt.Sprintf("must be an agent's outcome (answered, no answer, busy, wrong number, refused, call back later, asked to stop), not %s", d))
}
