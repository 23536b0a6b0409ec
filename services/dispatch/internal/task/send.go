package task

import (
	"fmt"
	"time"
)

// Sending leases an automatic task to a sender until now+lease for try
// number tries of its message: a new claim, so the fencing token goes up.
func (t *Task) Sending(tries int, now time.Time, lease time.Duration) {
	t.Status, t.LeaseExpiresAt, t.Attempts = StatusSending, now.Add(lease), tries
	t.LeaseToken++
	t.ClaimRequestID = ""
}

// MaySend checks, right before the provider is called, that the sender
// whose claim answered token still holds t: ErrClaimedAgain when another
// claim came since, ErrLeaseExpired when t is still being sent under this
// claim but its lease ran out at now (another sender may take it over at any
// moment). A task closed meanwhile under the same claim (cancelled) is
// left to the caller, as before.
func (t Task) MaySend(token int64, now time.Time) error {
	if token != t.LeaseToken {
		return ErrClaimedAgain
	}
	if t.Status == StatusSending && !t.LeaseExpiresAt.After(now) {
		return ErrLeaseExpired
	}
	return nil
}

// Sent records that the provider took the message; it reports false (and
// changes nothing) when the task is no longer being sent (cancelled meanwhile).
func (t *Task) Sent() bool {
	if t.Status != StatusSending {
		return false
	}
	t.Status, t.LeaseExpiresAt = StatusSent, time.Time{}
	return true
}

// RetrySend puts a task whose send failed back in the sender's queue at
// next; false when it is no longer being sent.
func (t *Task) RetrySend(next time.Time) bool {
	if t.Status != StatusSending {
		return false
	}
	t.Status, t.LeaseExpiresAt, t.AvailableAt = StatusOpen, time.Time{}, next
	return true
}

// End closes an automatic task with status (failed, unreachable): it
// counts as one attempt at least.
func (t *Task) End(status string) {
	t.Status, t.LeaseExpiresAt = status, time.Time{}
	if t.Attempts == 0 {
		t.Attempts = 1
	}
}

// NotSentReason says why a message was given up after tries.
func (t Task) NotSentReason(tries int, err string) string {
	return fmt.Sprintf("%s not sent after %d tries: %s", t.Channel, tries, err)
}

// NoAddressReason says why a task without an address is unreachable.
func (t Task) NoAddressReason() string { return "no address for " + t.Channel.String() }

// Delivered records the provider's receipt on a sent task: delivered, or
// failed; false when the task is not waiting for one.
func (t *Task) Delivered(ok bool) bool {
	if t.Status != StatusSent {
		return false
	}
	t.Status = StatusDelivered
	if !ok {
		t.Status = StatusFailed
	}
	return true
}
