package sender

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	typesv1 "github.com/huifang/huifang/proto/huifang/types/v1"
)

// Telnyx sends SMS through Telnyx's Messaging API v2
// (POST {BaseURL}/v2/messages with a Bearer API key and a JSON body of
// from, to, text and webhook_url). It sends the idempotency key in the
// Idempotency-Key header, so a retry after a lost answer or a crash does
// not send the message twice. Delivery reports arrive as webhooks
// (ParseTelnyxWebhook).
type Telnyx struct {
	// BaseURL is https://api.telnyx.com in production; tests point it at a fake.
	BaseURL string
	APIKey  string
	// From is the sending number (E.164) or alphanumeric sender id.
	From string
	// MessagingProfileID is optional.
	MessagingProfileID string
	// WebhookURL receives delivery reports; optional.
	WebhookURL string
	Client     *http.Client
}

// Name is "telnyx".
func (t *Telnyx) Name() string { return "telnyx" }

type telnyxRequest struct {
	From               string `json:"from,omitempty"`
	To                 string `json:"to"`
	Text               string `json:"text"`
	MessagingProfileID string `json:"messaging_profile_id,omitempty"`
	WebhookURL         string `json:"webhook_url,omitempty"`
}

type telnyxResponse struct {
	Data struct {
		ID string `json:"id"`
	} `json:"data"`
	Errors []struct {
		Code   string `json:"code"`
		Title  string `json:"title"`
		Detail string `json:"detail"`
	} `json:"errors"`
}

// Send posts m. 2xx is accepted; 408, 429 and 5xx are worth retrying; any
// other answer is a PermanentError.
func (t *Telnyx) Send(ctx context.Context, m Message) (Result, error) {
	if m.Channel != typesv1.Channel_CHANNEL_SMS {
		return Result{}, &PermanentError{Err: fmt.Errorf("telnyx sends SMS only, not %s", m.Channel)}
	}
	body, err := json.Marshal(telnyxRequest{From: t.From, To: m.To, Text: m.Body, MessagingProfileID: t.MessagingProfileID, WebhookURL: t.WebhookURL})
	if err != nil {
		return Result{}, fmt.Errorf("telnyx: %w", err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, strings.TrimRight(t.BaseURL, "/")+"/v2/messages", bytes.NewReader(body))
	if err != nil {
		return Result{}, &PermanentError{Err: fmt.Errorf("telnyx: %w", err)}
	}
	req.Header.Set("Authorization", "Bearer "+t.APIKey)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json")
	req.Header.Set("Idempotency-Key", m.IdempotencyKey)
	client := t.Client
	if client == nil {
		client = &http.Client{Timeout: 30 * time.Second}
	}
	resp, err := client.Do(req)
	if err != nil {
		return Result{}, fmt.Errorf("telnyx: %w", err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return Result{}, fmt.Errorf("telnyx: read answer: %w", err)
	}
	var out telnyxResponse
	_ = json.Unmarshal(raw, &out)
	if resp.StatusCode >= 200 && resp.StatusCode < 300 {
		if out.Data.ID == "" {
			return Result{}, fmt.Errorf("telnyx: answer %d without data.id", resp.StatusCode)
		}
		return Result{ProviderMessageID: out.Data.ID}, nil
	}
	reason := fmt.Sprintf("telnyx: HTTP %d", resp.StatusCode)
	if len(out.Errors) > 0 {
		reason += fmt.Sprintf(": %s %s %s", out.Errors[0].Code, out.Errors[0].Title, out.Errors[0].Detail)
	}
	if resp.StatusCode == http.StatusRequestTimeout || resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode >= 500 {
		return Result{}, fmt.Errorf("%s", reason)
	}
	return Result{}, &PermanentError{Err: fmt.Errorf("%s", reason)}
}

// Receipt is a provider's delivery report.
type Receipt struct {
	ProviderMessageID string
	Delivered         bool
	Error             string
}

// ErrBadWebhook wraps every reason ParseTelnyxWebhook refuses a body.
var ErrBadWebhook = errors.New("telnyx webhook: not a message webhook")

// Bounds of what a receipt records: the provider's words on a failure, the
// message id (Telnyx's are UUIDs).
const (
	maxReceiptError = 200
	maxMessageID    = 128
)

// ParseTelnyxWebhook reads a Telnyx message webhook. Only
// message.finalized events are final; it reports false for the others.
// Every error wraps ErrBadWebhook; the error a failed receipt records is
// cut to 200 bytes.
func ParseTelnyxWebhook(body []byte) (Receipt, bool, error) {
	var ev struct {
		Data struct {
			EventType string `json:"event_type"`
			Payload   struct {
				ID string `json:"id"`
				To []struct {
					Status string `json:"status"`
				} `json:"to"`
				Errors []struct {
					Code  string `json:"code"`
					Title string `json:"title"`
				} `json:"errors"`
			} `json:"payload"`
		} `json:"data"`
	}
	if err := json.Unmarshal(body, &ev); err != nil {
		return Receipt{}, false, fmt.Errorf("%w: %w", ErrBadWebhook, err)
	}
	if ev.Data.EventType != "message.finalized" {
		return Receipt{}, false, nil
	}
	p := ev.Data.Payload
	if p.ID == "" {
		return Receipt{}, false, fmt.Errorf("%w: no payload.id", ErrBadWebhook)
	}
	if len(p.ID) > maxMessageID || strings.ContainsFunc(p.ID, unicode.IsControl) {
		return Receipt{}, false, fmt.Errorf("%w: payload.id is not a message id (at most %d bytes, no control characters)", ErrBadWebhook, maxMessageID)
	}
	r := Receipt{ProviderMessageID: p.ID}
	if len(p.To) > 0 && p.To[0].Status == "delivered" {
		r.Delivered = true
	} else {
		status := "unknown"
		if len(p.To) > 0 {
			status = p.To[0].Status
		}
		r.Error = "telnyx: " + status
		if len(p.Errors) > 0 {
			r.Error += ": " + p.Errors[0].Code + " " + p.Errors[0].Title
		}
		// Postgres text holds no NUL; the provider's words are cut short.
		r.Error = cut(strings.ReplaceAll(r.Error, "\x00", ""), maxReceiptError)
	}
	return r, true, nil
}

// cut returns s cut to at most n bytes, on a rune boundary.
func cut(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}
