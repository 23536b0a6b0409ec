package consumer_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/huifang/huifang/pkg/stream"
)

// What upstream systems publish holds clear contacts: once intake stored
// it (sealed) or refused it (sealed in rejected_events), it is deleted from
// the ingress stream, which then holds only what is not handled yet.
func TestHandledIngressLeavesTheStream(t *testing.T) {
	b := setup(t, 2)
	b.publish(t, stream.ContentTypeJSON, []byte(`{"source_system":"erp","source_event_id":"e-1","service_type":"repair","completed_at":"2026-11-28T10:00:00Z","customer":{"external_id":"c-1","name":"王芳","phone":"+8613800138000"}}`))
	b.publish(t, stream.ContentTypeJSON, []byte(`{"source_system":"erp","source_event_id":"e-2","service_type":"repair","completed_at":"2026-11-28T10:00:00Z","customer":{"phone":"+8613900139000"}}`))
	b.publish(t, stream.ContentTypeJSON, []byte(`{"source_system":"erp","source_event_id":"e-1","service_type":"repair","completed_at":"2026-11-28T10:00:00Z","customer":{"external_id":"c-1","name":"王芳","phone":"+8613800138000"}}`))
	b.drained(t, time.Minute)
	require.Equal(t, 1, b.count(t, `SELECT count(*) FROM services`))
	require.Equal(t, 1, b.count(t, `SELECT count(*) FROM rejected_events`))

	s, err := b.js.Stream(b.ctx, stream.IngressStream)
	require.NoError(t, err)
	require.Eventually(t, func() bool {
		info, err := s.Info(b.ctx)
		return err == nil && info.State.Msgs == 0 && info.State.LastSeq == 3
	}, time.Minute, 20*time.Millisecond, "stored, refused and duplicate messages all deleted from the stream")
}
