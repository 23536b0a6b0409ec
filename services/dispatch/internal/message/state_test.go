package message_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	typesv1 "github.com/huifang/huifang/proto/huifang/types/v1"

	"github.com/huifang/huifang/services/dispatch/internal/message"
)

// TestRetry: a failure worth retrying is tried again after Backoff·2^(tries−1);
// a permanent one, or MaxTries tries, fails the message.
func TestRetry(t *testing.T) {
	now := time.Date(2025, 3, 10, 9, 0, 0, 0, time.UTC)
	r := message.Retry{Backoff: time.Minute, MaxTries: 3}
	m := message.Message{IdempotencyKey: message.KeyOf("t-1")}
	require.Equal(t, "huifang-t-1", m.IdempotencyKey)
	for try, want := range []time.Duration{time.Minute, 2 * time.Minute} {
		m.Try("telnyx", now)
		require.True(t, m.Current(try+1))
		after, retry := m.Failed("503", false, now, r)
		require.True(t, retry)
		require.Equal(t, want, after)
		require.Equal(t, message.StatusSending, m.Status, "still to be sent")
	}
	m.Try("telnyx", now)
	_, retry := m.Failed("503", false, now, r)
	require.False(t, retry, "the third try was the last")
	require.Equal(t, message.StatusFailed, m.Status)
	require.False(t, m.Current(3))

	p := message.Message{}
	p.Try("telnyx", now)
	_, retry = p.Failed("401", true, now, r)
	require.False(t, retry, "a permanent refusal is not retried")
}

func TestReceiptOnce(t *testing.T) {
	now := time.Date(2025, 3, 10, 9, 0, 0, 0, time.UTC)
	m := message.Message{}
	m.Try("telnyx", now)
	m.Sent("tx-1", now)
	require.Equal(t, message.StatusSent, m.Status)
	require.True(t, m.Receipt(true, "", now))
	require.Equal(t, message.StatusDelivered, m.Status)
	require.False(t, m.Receipt(false, "telnyx: failed", now), "a repeated report changes nothing")
	require.Equal(t, message.StatusDelivered, m.Status)
}

func TestPick(t *testing.T) {
	own := message.Template{PolicyID: "p-1", Channel: typesv1.Channel_CHANNEL_SMS, Body: "own"}
	tenants := message.Template{PolicyID: message.AnyPolicy, Channel: typesv1.Channel_CHANNEL_SMS, Body: "tenant's"}
	require.Equal(t, own, message.Pick([]message.Template{tenants, own}, "default", "p-1", typesv1.Channel_CHANNEL_SMS))
	require.Equal(t, tenants, message.Pick([]message.Template{tenants}, "default", "p-1", typesv1.Channel_CHANNEL_SMS))
	require.Equal(t, message.Default("default", typesv1.Channel_CHANNEL_SMS), message.Pick(nil, "default", "p-1", typesv1.Channel_CHANNEL_SMS))
}
