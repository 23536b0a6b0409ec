package sender_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"

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
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, final, err := sender.ParseTelnyxWebhook([]byte(tc.body))
			require.Equal(t, tc.err, err != nil, "%v", err)
			require.Equal(t, tc.final, final)
			require.Equal(t, tc.want, got)
		})
	}
}
