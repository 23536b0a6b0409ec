package message

import (
	"time"

	typesv1 "github.com/huifang/huifang/proto/huifang/types/v1"
)

// Statuses of a message.
const (
	StatusSending   = "sending"
	StatusSent      = "sent"
	StatusDelivered = "delivered"
	StatusFailed    = "failed"
)

// Message is the one automatic message of a task. Every try sends the same
// IdempotencyKey, so a provider that saw the message drops the copy.
type Message struct {
	ID                string
	Tenant            string
	TaskID            string
	VisitID           string
	Channel           typesv1.Channel
	To                string
	Subject           string
	Body              string
	IdempotencyKey    string
	Status            string
	Tries             int
	Provider          string
	ProviderMessageID string
	Error             string
	CreatedAt         time.Time
	UpdatedAt         time.Time
	// AppointmentID is set on an appointment's reminder (TaskID is then
	// the on-site visit's task); empty on a visit's own message.
	AppointmentID string
}

// KeyOf is the idempotency key of the message of task taskID.
func KeyOf(taskID string) string { return "huifang-" + taskID }

// Try counts one more try through provider at now: the message is sending.
func (m *Message) Try(provider string, now time.Time) {
	m.Tries++
	m.Status, m.Provider, m.UpdatedAt = StatusSending, provider, now
}

// Untry takes back a try that never reached the provider (its address
// could not be had): the message waits for its next try with its tries as
// before.
func (m *Message) Untry(reason string, now time.Time) {
	m.Tries = max(0, m.Tries-1)
	m.Error, m.UpdatedAt = reason, now
}

// Current reports whether m is still the try a sender made (tries): a
// sender whose lease ran out and whose message another sender took over
// (or finished) records nothing.
func (m Message) Current(tries int) bool { return m.Status == StatusSending && m.Tries == tries }

// Recorded reports whether the outcome of the sender's try (tries) is
// already recorded on m: the try is still the last one and m is no longer
// sending (sent or failed by that sender, or a receipt came since).
func (m Message) Recorded(tries int) bool { return m.Status != StatusSending && m.Tries == tries }

// Sent records the provider's acceptance.
func (m *Message) Sent(providerMessageID string, now time.Time) {
	m.Status, m.ProviderMessageID, m.Error, m.UpdatedAt = StatusSent, providerMessageID, "", now
}

// Retry is when a failed message is tried again.
type Retry struct {
	// Backoff is the delay after the first failed try; it doubles per try.
	Backoff time.Duration
	// MaxTries ends a message as failed.
	MaxTries int
}

// Failed records a failed try (err) at now and returns the delay before the
// next try, or false when the message has failed for good: a permanent
// refusal, or MaxTries tries.
func (m *Message) Failed(err string, permanent bool, now time.Time, r Retry) (time.Duration, bool) {
	m.Error, m.UpdatedAt = err, now
	if permanent || m.Tries >= r.MaxTries {
		m.Status = StatusFailed
		return 0, false
	}
	return r.Backoff << (m.Tries - 1), true
}

// Receipt records a provider's delivery report once, and reports whether
// it changed m (a repeated report does not).
func (m *Message) Receipt(delivered bool, err string, now time.Time) bool {
	if m.Status == StatusDelivered || m.Status == StatusFailed {
		return false
	}
	m.Status, m.UpdatedAt, m.Error = StatusDelivered, now, ""
	if !delivered {
		m.Status, m.Error = StatusFailed, err
	}
	return true
}
