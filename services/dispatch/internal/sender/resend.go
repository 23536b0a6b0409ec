package sender

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	typesv1 "github.com/huifang/huifang/proto/huifang/types/v1"
)

// Resend sends email through Resend's Email API
// (POST {BaseURL}/emails with a Bearer API key and a JSON body of from, to,
// subject and text). It sends the idempotency key in the Idempotency-Key
// header: Resend answers a request whose key it saw in the last 24 hours
// with the first answer (the same email id) and sends nothing again, so a
// retry after a lost answer or a crash does not send the email twice.
type Resend struct {
	// BaseURL is https://api.resend.com in production; tests point it at a fake.
	BaseURL string
	APIKey  string
	// From is the sender, e.g. "回访中心 <care@example.com>" (a verified domain).
	From string
	// ReplyTo is optional.
	ReplyTo string
	Client  *http.Client
}

// Name is "resend".
func (r *Resend) Name() string { return "resend" }

type resendRequest struct {
	From    string   `json:"from"`
	To      []string `json:"to"`
	Subject string   `json:"subject"`
	Text    string   `json:"text"`
	ReplyTo string   `json:"reply_to,omitempty"`
}

type resendResponse struct {
	ID      string `json:"id"`
	Name    string `json:"name"`
	Message string `json:"message"`
}

// resendConcurrent is the error name of a request whose key another
// request still holds: worth retrying.
const resendConcurrent = "concurrent_idempotent_requests"

// Send posts m. 2xx is accepted; 408, 429, 5xx and a 409 for a concurrent
// request with the same key are worth retrying; any other answer (a bad
// key, a rejected address, the same key with another message) is a
// PermanentError.
func (r *Resend) Send(ctx context.Context, m Message) (Result, error) {
	if m.Channel != typesv1.Channel_CHANNEL_EMAIL {
		return Result{}, &PermanentError{Err: fmt.Errorf("resend sends email only, not %s", m.Channel)}
	}
	body, err := json.Marshal(resendRequest{From: r.From, To: []string{m.To}, Subject: m.Subject, Text: m.Body, ReplyTo: r.ReplyTo})
	if err != nil {
		return Result{}, fmt.Errorf("resend: %w", err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, strings.TrimRight(r.BaseURL, "/")+"/emails", bytes.NewReader(body))
	if err != nil {
		return Result{}, &PermanentError{Err: fmt.Errorf("resend: %w", err)}
	}
	req.Header.Set("Authorization", "Bearer "+r.APIKey)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json")
	req.Header.Set("Idempotency-Key", m.IdempotencyKey)
	client := r.Client
	if client == nil {
		client = &http.Client{Timeout: 30 * time.Second}
	}
	resp, err := client.Do(req)
	if err != nil {
		return Result{}, fmt.Errorf("resend: %w", err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return Result{}, fmt.Errorf("resend: read answer: %w", err)
	}
	var out resendResponse
	_ = json.Unmarshal(raw, &out)
	if resp.StatusCode >= 200 && resp.StatusCode < 300 {
		if out.ID == "" {
			return Result{}, fmt.Errorf("resend: answer %d without id", resp.StatusCode)
		}
		return Result{ProviderMessageID: out.ID}, nil
	}
	reason := fmt.Sprintf("resend: HTTP %d", resp.StatusCode)
	if out.Name != "" || out.Message != "" {
		reason += fmt.Sprintf(": %s %s", out.Name, out.Message)
	}
	switch {
	case resp.StatusCode == http.StatusRequestTimeout, resp.StatusCode == http.StatusTooManyRequests, resp.StatusCode >= 500,
		resp.StatusCode == http.StatusConflict && out.Name == resendConcurrent:
		return Result{}, fmt.Errorf("%s", reason)
	}
	return Result{}, &PermanentError{Err: fmt.Errorf("%s", reason)}
}
