package sender_test

import (
	"context"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	typesv1 "github.com/huifang/huifang/proto/huifang/types/v1"

	"github.com/huifang/huifang/services/dispatch/internal/sender"
)

// TestTelnyxRequest: the request follows Telnyx's POST /v2/messages: a
// bearer key, JSON from/to/text, the idempotency key in its header.
func TestTelnyxRequest(t *testing.T) {
	var got struct {
		auth, key, ctype string
		body             map[string]string
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got.auth, got.key, got.ctype = r.Header.Get("Authorization"), r.Header.Get("Idempotency-Key"), r.Header.Get("Content-Type")
		require.NoError(t, json.NewDecoder(r.Body).Decode(&got.body))
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"data":{"id":"40385f64-5717-4562-b3fc-2c963f66afa6","record_type":"message"}}`))
	}))
	defer srv.Close()
	s := &sender.Telnyx{BaseURL: srv.URL + "/", APIKey: "KEY", From: "+8610000000", WebhookURL: "https://huifang.example/receipts/telnyx"}
	res, err := s.Send(context.Background(), sender.Message{IdempotencyKey: "huifang-t-1", Channel: typesv1.Channel_CHANNEL_SMS, To: "+8613800138000", Body: "您好"})
	require.NoError(t, err)
	require.Equal(t, "40385f64-5717-4562-b3fc-2c963f66afa6", res.ProviderMessageID)
	require.Equal(t, "Bearer KEY", got.auth)
	require.Equal(t, "huifang-t-1", got.key)
	require.Equal(t, "application/json", got.ctype)
	require.Equal(t, map[string]string{"from": "+8610000000", "to": "+8613800138000", "text": "您好",
		"webhook_url": "https://huifang.example/receipts/telnyx"}, got.body)

	_, err = s.Send(context.Background(), sender.Message{Channel: typesv1.Channel_CHANNEL_EMAIL})
	require.True(t, sender.IsPermanent(err), "Telnyx sends no email")
}

func TestTelnyxRetryableAnswers(t *testing.T) {
	for _, code := range []int{http.StatusRequestTimeout, http.StatusTooManyRequests, http.StatusBadGateway} {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(code) }))
		_, err := (&sender.Telnyx{BaseURL: srv.URL, APIKey: "k"}).Send(context.Background(),
			sender.Message{IdempotencyKey: "k", Channel: typesv1.Channel_CHANNEL_SMS, To: "+1", Body: "x"})
		srv.Close()
		require.Error(t, err)
		require.False(t, sender.IsPermanent(err), "HTTP %d is retried", code)
	}
}

func TestParseTelnyxWebhook(t *testing.T) {
	tests := []struct {
		name  string
		body  string
		want  sender.Receipt
		final bool
		err   bool
	}{
		{name: "delivered", body: `{"data":{"event_type":"message.finalized","payload":{"id":"m-1","to":[{"status":"delivered"}]}}}`,
			want: sender.Receipt{ProviderMessageID: "m-1", Delivered: true}, final: true},
		{name: "delivery failed", body: `{"data":{"event_type":"message.finalized","payload":{"id":"m-2","to":[{"status":"delivery_failed"}],"errors":[{"code":"40300","title":"Blocked as spam"}]}}}`,
			want: sender.Receipt{ProviderMessageID: "m-2", Error: "telnyx: delivery_failed: 40300 Blocked as spam"}, final: true},
		{name: "not final yet", body: `{"data":{"event_type":"message.sent","payload":{"id":"m-3"}}}`},
		{name: "not JSON", body: `<xml/>`, err: true},
		{name: "no id", body: `{"data":{"event_type":"message.finalized","payload":{}}}`, err: true},
		{name: "a control character in the id", body: `{"data":{"event_type":"message.finalized","payload":{"id":"m\u0000"}}}`, err: true},
		{name: "a long failure, cut", body: `{"data":{"event_type":"message.finalized","payload":{"id":"m-4","to":[{"status":"` + strings.Repeat("é", 150) + `"}]}}}`,
			want: sender.Receipt{ProviderMessageID: "m-4", Error: "telnyx: " + strings.Repeat("é", 96)}, final: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, final, err := sender.ParseTelnyxWebhook([]byte(tc.body))
			require.Equal(t, tc.err, err != nil, "%v", err)
			if tc.err {
				require.ErrorIs(t, err, sender.ErrBadWebhook)
			}
			require.Equal(t, tc.final, final)
			require.Equal(t, tc.want, got)
		})
	}
}

// TestResendRequest: the request follows Resend's POST /emails: a bearer
// key, JSON from/to/subject/text, the idempotency key in its header.
func TestResendRequest(t *testing.T) {
	var got struct {
		auth, key, path string
		body            map[string]any
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got.auth, got.key, got.path = r.Header.Get("Authorization"), r.Header.Get("Idempotency-Key"), r.URL.Path
		require.NoError(t, json.NewDecoder(r.Body).Decode(&got.body))
		_, _ = w.Write([]byte(`{"id":"49a3999c-0ce1-4ea6-ab68-afcd6dc2e794"}`))
	}))
	defer srv.Close()
	s := &sender.Resend{BaseURL: srv.URL + "/", APIKey: "re_KEY", From: "回访中心 <care@huifang.example>"}
	res, err := s.Send(context.Background(), sender.Message{IdempotencyKey: "huifang-t-1", Channel: typesv1.Channel_CHANNEL_EMAIL,
		To: "wf@example.com", Subject: "服务回访", Body: "您好"})
	require.NoError(t, err)
	require.Equal(t, "49a3999c-0ce1-4ea6-ab68-afcd6dc2e794", res.ProviderMessageID)
	require.Equal(t, "Bearer re_KEY", got.auth)
	require.Equal(t, "huifang-t-1", got.key)
	require.Equal(t, "/emails", got.path)
	require.Equal(t, map[string]any{"from": "回访中心 <care@huifang.example>", "to": []any{"wf@example.com"}, "subject": "服务回访", "text": "您好"}, got.body)

	_, err = s.Send(context.Background(), sender.Message{Channel: typesv1.Channel_CHANNEL_SMS})
	require.True(t, sender.IsPermanent(err), "Resend sends no SMS")
}

// TestResendAnswers: which of Resend's refusals are worth retrying.
func TestResendAnswers(t *testing.T) {
	tests := []struct {
		code      int
		body      string
		permanent bool
	}{
		{code: http.StatusRequestTimeout},
		{code: http.StatusTooManyRequests, body: `{"statusCode":429,"name":"rate_limit_exceeded","message":"Too many requests."}`},
		{code: http.StatusInternalServerError, body: `{"statusCode":500,"name":"internal_server_error"}`},
		{code: http.StatusConflict, body: `{"statusCode":409,"name":"concurrent_idempotent_requests","message":"Same idempotency key used while original request is still in progress."}`},
		{code: http.StatusConflict, body: `{"statusCode":409,"name":"invalid_idempotent_request","message":"Same idempotency key used with a different request payload."}`, permanent: true},
		{code: http.StatusUnprocessableEntity, body: `{"statusCode":422,"name":"validation_error","message":"Invalid 'to' field."}`, permanent: true},
		{code: http.StatusForbidden, body: `{"statusCode":403,"name":"invalid_api_key"}`, permanent: true},
	}
	for _, tc := range tests {
		t.Run(http.StatusText(tc.code)+" "+tc.body, func(t *testing.T) {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
				w.WriteHeader(tc.code)
				_, _ = w.Write([]byte(tc.body))
			}))
			defer srv.Close()
			_, err := (&sender.Resend{BaseURL: srv.URL, APIKey: "k", From: "a@b.example"}).Send(context.Background(),
				sender.Message{IdempotencyKey: "k", Channel: typesv1.Channel_CHANNEL_EMAIL, To: "c@d.example", Body: "x"})
			require.Error(t, err)
			require.Equal(t, tc.permanent, sender.IsPermanent(err), "%v", err)
		})
	}
}

func TestByChannelNames(t *testing.T) {
	by := sender.ByChannel{SMS: &sender.Telnyx{}, Email: &sender.Resend{}}
	require.Equal(t, "telnyx", sender.NameOf(by, typesv1.Channel_CHANNEL_SMS))
	require.Equal(t, "resend", sender.NameOf(by, typesv1.Channel_CHANNEL_EMAIL))
	require.Equal(t, "telnyx", sender.NameOf(&sender.Telnyx{}, typesv1.Channel_CHANNEL_EMAIL))
}

// signTelnyx returns the headers Telnyx sends with body, signed by priv at ts.
func signTelnyx(priv ed25519.PrivateKey, ts time.Time, body string) http.Header {
	stamp := strconv.FormatInt(ts.Unix(), 10)
	h := http.Header{}
	h.Set("telnyx-signature-ed25519", base64.StdEncoding.EncodeToString(ed25519.Sign(priv, []byte(stamp+"|"+body))))
	h.Set("telnyx-timestamp", stamp)
	return h
}

// A webhook is taken only when the account's key signed its timestamp and
// this very body, within five minutes of now either way.
func TestVerifyTelnyxWebhook(t *testing.T) {
	pub, priv, err := ed25519.GenerateKey(nil)
	require.NoError(t, err)
	otherPub, otherPriv, err := ed25519.GenerateKey(nil)
	require.NoError(t, err)
	now := time.Date(2026, 12, 1, 9, 0, 0, 0, time.UTC)
	const body = `{"data":{"event_type":"message.finalized","payload":{"id":"m-1","to":[{"status":"delivered"}]}}}`
	signed := signTelnyx(priv, now, body)
	for _, tc := range []struct {
		name string
		key  ed25519.PublicKey
		h    http.Header
		body string
		now  time.Time
		want string // "" when taken
	}{
		{name: "signed now", key: pub, h: signed, body: body, now: now},
		{name: "signed 4 minutes ago", key: pub, h: signTelnyx(priv, now.Add(-4*time.Minute), body), body: body, now: now},
		{name: "no headers", key: pub, h: http.Header{}, body: body, now: now, want: "headers are required"},
		{name: "another key", key: pub, h: signTelnyx(otherPriv, now, body), body: body, now: now, want: "does not match"},
		{name: "our key, checked with another", key: otherPub, h: signed, body: body, now: now, want: "does not match"},
		{name: "another body", key: pub, h: signed, body: strings.Replace(body, "delivered", "failed", 1), now: now, want: "does not match"},
		{name: "another timestamp", key: pub, h: with(signed, "telnyx-timestamp", strconv.FormatInt(now.Unix()+1, 10)), body: body, now: now, want: "does not match"},
		{name: "a replay 6 minutes later", key: pub, h: signed, body: body, now: now.Add(6 * time.Minute), want: "more than 5m0s from now"},
		{name: "signed 6 minutes ahead", key: pub, h: signTelnyx(priv, now.Add(6*time.Minute), body), body: body, now: now, want: "more than 5m0s from now"},
		{name: "not base64", key: pub, h: with(signed, "telnyx-signature-ed25519", "%%%"), body: body, now: now, want: "not a base64 Ed25519 signature"},
		{name: "a short signature", key: pub, h: with(signed, "telnyx-signature-ed25519", "AAAA"), body: body, now: now, want: "not a base64 Ed25519 signature"},
		{name: "not seconds", key: pub, h: with(signed, "telnyx-timestamp", "soon"), body: body, now: now, want: "not Unix seconds"},
		{name: "no key configured", key: nil, h: signed, body: body, now: now, want: "TELNYX_PUBLIC_KEY"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := sender.VerifyTelnyxWebhook(tc.key, tc.h, []byte(tc.body), tc.now)
			if tc.want == "" {
				require.NoError(t, err)
				return
			}
			require.ErrorIs(t, err, sender.ErrUnsigned)
			require.ErrorContains(t, err, tc.want)
		})
	}
}

// with returns a copy of h with name set to value.
func with(h http.Header, name, value string) http.Header {
	c := h.Clone()
	c.Set(name, value)
	return c
}

// The public key is read as Telnyx's portal shows it: base64 of 32 bytes.
func TestParseTelnyxPublicKey(t *testing.T) {
	pub, _, err := ed25519.GenerateKey(nil)
	require.NoError(t, err)
	got, err := sender.ParseTelnyxPublicKey(" " + base64.StdEncoding.EncodeToString(pub) + "\n")
	require.NoError(t, err)
	require.Equal(t, pub, got)
	_, err = sender.ParseTelnyxPublicKey("not base64!")
	require.ErrorContains(t, err, "not base64")
	_, err = sender.ParseTelnyxPublicKey(base64.StdEncoding.EncodeToString(pub[:16]))
	require.ErrorContains(t, err, "16 bytes, want 32")
}

// signTelnyxAt is the account's signature (base64) of ts|body.
func signTelnyxAt(priv ed25519.PrivateKey, ts string, body []byte) string {
	return base64.StdEncoding.EncodeToString(ed25519.Sign(priv, append([]byte(ts+"|"), body...)))
}
