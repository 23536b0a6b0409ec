// Package sender delivers automatic follow-ups (SMS, email): the Sender
// interface, a local sender for development that records every message
// to a table and to the log, an adapter for Telnyx's Messaging API (SMS)
// and one for Resend's Email API.
package sender

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	typesv1 "github.com/huifang/huifang/proto/huifang/types/v1"
)

// Message is one message to send. Every try of the same message carries
// the same IdempotencyKey, so a provider that saw it drops the copy.
type Message struct {
	IdempotencyKey string
	Channel        typesv1.Channel
	To             string
	Subject        string
	Body           string
	// Shown is the message as dispatch keeps and shows it: the address
	// masked, the customer's name as the {name} placeholder. What a sender
	// records or logs is this, never To or Body.
	Shown Shown
}

// Shown is a message without personal data.
type Shown struct {
	To, Subject, Body string
}

// Result is what the provider said on acceptance.
type Result struct {
	// ProviderMessageID identifies the message in delivery receipts.
	ProviderMessageID string
}

// Sender sends messages. Send is safe to call again with the same key.
type Sender interface {
	// Name is the provider's name, stored with each message.
	Name() string
	Send(ctx context.Context, m Message) (Result, error)
}

// PermanentError is a refusal that retrying will not change (a bad
// number, a rejected request).
type PermanentError struct{ Err error }

func (e *PermanentError) Error() string { return "permanent: " + e.Err.Error() }
func (e *PermanentError) Unwrap() error { return e.Err }

// IsPermanent reports whether err is a PermanentError.
func IsPermanent(err error) bool {
	var p *PermanentError
	return errors.As(err, &p)
}

// ByChannel sends SMS with one sender and email with another.
type ByChannel struct {
	SMS   Sender
	Email Sender
}

// Name names the SMS sender (the one receipts come from).
func (b ByChannel) Name() string { return b.SMS.Name() }

// NameFor names the sender of channel c, stored with each message.
func (b ByChannel) NameFor(c typesv1.Channel) string {
	if c == typesv1.Channel_CHANNEL_EMAIL && b.Email != nil {
		return b.Email.Name()
	}
	return b.SMS.Name()
}

// ChannelNamer is a Sender made of one sender per channel.
type ChannelNamer interface {
	NameFor(c typesv1.Channel) string
}

// NameOf names the sender s uses for channel c.
func NameOf(s Sender, c typesv1.Channel) string {
	if n, ok := s.(ChannelNamer); ok {
		return n.NameFor(c)
	}
	return s.Name()
}

// Send sends m with the sender of its channel.
func (b ByChannel) Send(ctx context.Context, m Message) (Result, error) {
	switch m.Channel {
	case typesv1.Channel_CHANNEL_SMS:
		return b.SMS.Send(ctx, m)
	case typesv1.Channel_CHANNEL_EMAIL:
		return b.Email.Send(ctx, m)
	}
	return Result{}, &PermanentError{Err: fmt.Errorf("no sender for %s", m.Channel)}
}

// Local records messages in the local_sent_messages table and logs them,
// sending nothing: what it records is the message as shown (Shown: the
// address masked, the name a placeholder), never the clear contact. A message whose key it saw before is not recorded again.
type Local struct {
	Pool *pgxpool.Pool
	Log  *slog.Logger
	Now  func() time.Time
}

// Name is "local".
func (l *Local) Name() string { return "local" }

// Send records m once per idempotency key.
func (l *Local) Send(ctx context.Context, m Message) (Result, error) {
	tag, err := l.Pool.Exec(ctx, `INSERT INTO local_sent_messages (idempotency_key, channel, recipient, subject, body, sent_at)
VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (idempotency_key) DO NOTHING`, m.IdempotencyKey, m.Channel.String(), m.Shown.To, m.Shown.Subject, m.Shown.Body, l.Now())
	if err != nil {
		return Result{}, fmt.Errorf("local sender: %w", err)
	}
	if tag.RowsAffected() == 0 {
		l.Log.InfoContext(ctx, "local sender: duplicate dropped", "key", m.IdempotencyKey)
	} else {
		l.Log.InfoContext(ctx, "local sender: message", "key", m.IdempotencyKey, "channel", m.Channel.String(), "to", m.Shown.To, "chars", len([]rune(m.Body)))
	}
	return Result{ProviderMessageID: "local-" + m.IdempotencyKey}, nil
}
