package task

import (
	"errors"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/huifang/huifang/pkg/invalid"
)

// An agent's presence: whether it takes work now. A call center's agents
// say "ready" and "not ready" themselves: an agent on a break or offline is
// refused a claim (ErrOnBreak, ErrOffline) rather than made available by
// claiming, so that a desk left open during a break takes no call.
const (
	PresenceAvailable = "available"
	PresenceOnBreak   = "on_break"
	PresenceOffline   = "offline"
	// DefaultBreakReason is the reason code of a break given none.
	DefaultBreakReason = "break"
)

// Refusals of presence.
var (
	ErrOnBreak  = errors.New("task: the agent is on a break")
	ErrOffline  = errors.New("task: the agent is offline")
	ErrPresence = errors.New("task: a leader may set another agent only offline, and only an agent of the groups it oversees")
)

// Presence is an agent's presence and since when it holds.
type Presence struct {
	// State is PresenceAvailable, PresenceOnBreak or PresenceOffline; empty
	// (the zero Presence) for an agent that never set one: available.
	State string
	// Reason is a break's reason code; empty otherwise.
	Reason string
	// Since is when the agent entered State; zero when it never set one.
	Since time.Time
}

var reasonCode = regexp.MustCompile(`^[a-z0-9_]{1,32}$`)

// NewPresence checks a presence an agent asks for: a known state; a reason
// code (1–32 of a-z, 0-9, _) on a break only, DefaultBreakReason when
// none. Fields are named as in SetAgentPresenceRequest.
func NewPresence(state, reason string, at time.Time) (Presence, error) {
	reason = strings.TrimSpace(reason)
	var bad invalid.List
	switch state {
	case PresenceAvailable, PresenceOffline:
		if reason != "" {
			bad.Add("reason", "must be empty unless the presence is PRESENCE_ON_BREAK")
		}
	case PresenceOnBreak:
		if reason == "" {
			reason = DefaultBreakReason
		} else if !reasonCode.MatchString(reason) {
			bad.Add("reason", "must be a reason code of 1 to 32 lower-case letters, digits or _ (e.g. lunch, training)")
		}
	default:
		bad.Add("presence", "must be PRESENCE_AVAILABLE, PRESENCE_ON_BREAK or PRESENCE_OFFLINE")
	}
	if err := bad.Err(); err != nil {
		return Presence{}, err
	}
	return Presence{State: state, Reason: reason, Since: at}, nil
}

// Err says why an agent in presence p may not claim (ErrOnBreak,
// ErrOffline); nil when it is available.
func (p Presence) Err() error {
	switch p.State {
	case PresenceOnBreak:
		return ErrOnBreak
	case PresenceOffline:
		return ErrOffline
	}
	return nil
}

// MaySetPresence tells whether a caller may set target's presence to
// state: an agent its own, any; someone else's, only offline, by a
// director (wide) or a leader overseeing one of target's groups (groups:
// task.Oversees of the leader). ErrPresence otherwise.
func MaySetPresence(callerID string, wide bool, groups []string, target Agent, state string) error {
	if callerID == target.ID {
		return nil
	}
	if state != PresenceOffline {
		return ErrPresence
	}
	if wide {
		return nil
	}
	for _, g := range target.Groups {
		if slices.Contains(groups, g) {
			return nil
		}
	}
	return ErrPresence
}
