package app_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	typesv1 "github.com/huifang/huifang/proto/huifang/types/v1"

	"github.com/huifang/huifang/services/dispatch/internal/message"
	"github.com/huifang/huifang/services/dispatch/internal/sender"
	"github.com/huifang/huifang/services/dispatch/internal/task"
)

// fakeResend is a local stand-in for Resend's POST /emails: it checks the
// bearer key, answers a key it saw in the last 24 hours with the first
// answer and sends nothing again, refuses the same key with another
// message (409 invalid_idempotent_request), and counts what it delivered.
type fakeResend struct {
	mu        sync.Mutex
	requests  int
	delivered []resendEmail // once per key
	byKey     map[string]resendSeen
	failNext  int // answer 500 to this many requests
}

type resendEmail struct {
	From    string   `json:"from"`
	To      []string `json:"to"`
	Subject string   `json:"subject"`
	Text    string   `json:"text"`
}

type resendSeen struct {
	id    string
	email string // the request, to refuse the same key with another message
}

func (f *fakeResend) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.requests++
	w.Header().Set("Content-Type", "application/json")
	if r.Method != http.MethodPost || r.URL.Path != "/emails" || r.Header.Get("Authorization") != "Bearer re_KEY" {
		w.WriteHeader(http.StatusUnauthorized)
		_, _ = io.WriteString(w, `{"statusCode":401,"name":"missing_api_key","message":"Missing API key in the authorization header."}`)
		return
	}
	if f.failNext > 0 {
		f.failNext--
		w.WriteHeader(http.StatusInternalServerError)
		_, _ = io.WriteString(w, `{"statusCode":500,"name":"internal_server_error","message":"An unexpected error occurred."}`)
		return
	}
	raw, _ := io.ReadAll(r.Body)
	var e resendEmail
	if err := json.Unmarshal(raw, &e); err != nil || len(e.To) == 0 || e.From == "" {
		w.WriteHeader(http.StatusUnprocessableEntity)
		_, _ = io.WriteString(w, `{"statusCode":422,"name":"validation_error","message":"Missing 'to' or 'from' field."}`)
		return
	}
	key := r.Header.Get("Idempotency-Key")
	seen, ok := f.byKey[key]
	switch {
	case ok && seen.email != string(raw):
		w.WriteHeader(http.StatusConflict)
		_, _ = io.WriteString(w, `{"statusCode":409,"name":"invalid_idempotent_request","message":"Same idempotency key used with a different request payload."}`)
		return
	case !ok:
		seen = resendSeen{id: "re-" + key, email: string(raw)}
		if key != "" {
			f.byKey[key] = seen
		}
		f.delivered = append(f.delivered, e)
	}
	_, _ = io.WriteString(w, `{"id":"`+seen.id+`"}`)
}

// withResend sends the bundle's email through a fake Resend server.
func withResend(t *testing.T, b sendBundle) *fakeResend {
	t.Helper()
	fake := &fakeResend{byKey: map[string]resendSeen{}}
	srv := httptest.NewServer(fake)
	t.Cleanup(srv.Close)
	by := b.a.Send.Sender.(sender.ByChannel)
	by.Email = &sender.Resend{BaseURL: srv.URL, APIKey: "re_KEY", From: "回访中心 <care@huifang.example>"}
	b.a.Send.Sender = by
	return fake
}

// TestEmailIdempotentAfterCrash: with EMAIL_SENDER=resend, a sender that
// dies after Resend took the email and before it recorded that leaves the
// message "sending"; after its lease another round sends it again with the
// same Idempotency-Key, Resend answers with the first email id, and the
// customer gets one email.
func TestEmailIdempotentAfterCrash(t *testing.T) {
	b := setupSend(t)
	fake := withResend(t, b)
	ctx := context.Background()
	x := b.addSMS(t, "v-1", func(x *task.Task) { x.Channel = typesv1.Channel_CHANNEL_EMAIL; x.PolicyID = "p-mail" })

	job, ok, err := b.a.ClaimSend(ctx)
	require.NoError(t, err)
	require.True(t, ok)
	require.Equal(t, "w***@example.com", job.Message.To, "the message kept holds the address masked")
	require.Contains(t, job.Message.Body, message.NamePlaceholder, "and no name")
	first, err := b.a.Send.Sender.Send(ctx, sender.Message{IdempotencyKey: job.Message.IdempotencyKey, Channel: job.Message.Channel,
		To: "wf@example.com", Subject: job.Message.Subject, Body: message.Greet(job.Message.Body, "王芳")})
	require.NoError(t, err)
	// The process dies here: Finish never runs.

	b.clock.Advance(2 * time.Minute)
	n, err := b.a.SendDue(ctx)
	require.NoError(t, err)
	require.Equal(t, 1, n)

	require.Equal(t, 2, fake.requests, "Resend was asked twice")
	require.Equal(t, []resendEmail{{From: "回访中心 <care@huifang.example>", To: []string{"wf@example.com"}, Subject: "服务回访",
		Text: "王芳您好！感谢您选择我们的服务，如对本次服务有任何意见，欢迎随时联系我们。"}}, fake.delivered, "and sent once")
	require.Equal(t, task.StatusSent, b.task(t, x.ID).Status)
	var provider, id string
	require.NoError(t, b.pool.QueryRow(ctx, `SELECT provider, provider_message_id FROM messages WHERE task_id = $1`, x.ID).Scan(&provider, &id))
	require.Equal(t, "resend", provider, "the email's provider, not the SMS one")
	require.Equal(t, first.ProviderMessageID, id, "the retry got the first email's id")
	require.Zero(t, b.count(t, `SELECT count(*) FROM local_sent_messages`))
}

// TestEmailRetriesThenSends: Resend's 5xx answers are retried after the
// backoff with the same key; the email goes out once.
func TestEmailRetriesThenSends(t *testing.T) {
	b := setupSend(t)
	fake := withResend(t, b)
	fake.failNext = 1
	ctx := context.Background()
	x := b.addSMS(t, "v-1", func(x *task.Task) { x.Channel = typesv1.Channel_CHANNEL_EMAIL })
	_, err := b.a.SendDue(ctx)
	require.NoError(t, err)
	got := b.task(t, x.ID)
	require.Equal(t, task.StatusOpen, got.Status)
	require.True(t, got.AvailableAt.Equal(t0.Add(time.Minute)), "retried after SEND_BACKOFF: %s", got.AvailableAt)
	b.clock.Advance(time.Minute)
	_, err = b.a.SendDue(ctx)
	require.NoError(t, err)
	require.Equal(t, task.StatusSent, b.task(t, x.ID).Status)
	require.Len(t, fake.delivered, 1)
	require.Equal(t, 2, fake.requests)
}

// TestEmailPermanentRefusal: a refusal Resend will repeat (a bad key) ends
// the visit unreachable at once, without retries.
func TestEmailPermanentRefusal(t *testing.T) {
	b := setupSend(t)
	fake := withResend(t, b)
	by := b.a.Send.Sender.(sender.ByChannel)
	by.Email.(*sender.Resend).APIKey = "re_WRONG"
	ctx := context.Background()
	x := b.addSMS(t, "v-1", func(x *task.Task) { x.Channel = typesv1.Channel_CHANNEL_EMAIL })
	_, err := b.a.SendDue(ctx)
	require.NoError(t, err)
	require.Equal(t, task.StatusUnreachable, b.task(t, x.ID).Status)
	require.Equal(t, 1, fake.requests)
	var msgErr string
	require.NoError(t, b.pool.QueryRow(ctx, `SELECT error FROM messages WHERE task_id = $1`, x.ID).Scan(&msgErr))
	require.Contains(t, msgErr, "missing_api_key")
}
