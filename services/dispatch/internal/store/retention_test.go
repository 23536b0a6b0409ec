package store_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/huifang/huifang/services/dispatch/internal/store"
)

// Messages that reached their end are kept for MESSAGE_RETENTION, then
// purged with the local sender's record of them; a message still sending
// stays whatever its age, and so do the tasks.
func TestPurgeMessages(t *testing.T) {
	b := setup(t)
	ctx := context.Background()
	_, err := b.pool.Exec(ctx, `
INSERT INTO tasks (id, tenant_id, visit_id, channel, service_type, due_at, deadline, available_at, status, created_at, updated_at)
SELECT 't-' || n, 'default', 'v-' || n, 'CHANNEL_SMS', 'repair', now(), now(), now(), 'done', now(), now() FROM generate_series(1, 4) n;
INSERT INTO messages (id, tenant_id, task_id, visit_id, channel, recipient, body, idempotency_key, status, created_at, updated_at) VALUES
  ('old-sent', 'default', 't-1', 'v-1', 'CHANNEL_SMS', '*******8000', 'hi', 'k-1', 'sent', now() - interval '100 days', now() - interval '100 days'),
  ('old-failed', 'default', 't-2', 'v-2', 'CHANNEL_SMS', '*******8000', 'hi', 'k-2', 'failed', now() - interval '95 days', now() - interval '95 days'),
  ('old-sending', 'default', 't-3', 'v-3', 'CHANNEL_SMS', '*******8000', 'hi', 'k-3', 'sending', now() - interval '100 days', now() - interval '100 days'),
  ('new', 'default', 't-4', 'v-4', 'CHANNEL_SMS', '*******8000', 'hi', 'k-4', 'delivered', now() - interval '1 day', now() - interval '1 day');
INSERT INTO local_sent_messages (idempotency_key, channel, recipient, body, sent_at) VALUES
  ('k-1', 'CHANNEL_SMS', '*******8000', 'hi', now() - interval '100 days'), ('k-4', 'CHANNEL_SMS', '*******8000', 'hi', now() - interval '1 day')`)
	require.NoError(t, err)
	cutoff := time.Now().Add(-90 * 24 * time.Hour)
	n, err := store.PurgeMessages(ctx, b.pool, cutoff, 1)
	require.NoError(t, err)
	require.Equal(t, 1, n, "the limit")
	n, err = store.PurgeMessages(ctx, b.pool, cutoff, 100)
	require.NoError(t, err)
	require.Equal(t, 1, n)
	var messages, local []string
	require.NoError(t, b.pool.QueryRow(ctx, `SELECT array_agg(id ORDER BY id) FROM messages`).Scan(&messages))
	require.Equal(t, []string{"new", "old-sending"}, messages)
	require.NoError(t, b.pool.QueryRow(ctx, `SELECT array_agg(idempotency_key) FROM local_sent_messages`).Scan(&local))
	require.Equal(t, []string{"k-4"}, local)
	var tasks int
	require.NoError(t, b.pool.QueryRow(ctx, `SELECT count(*) FROM tasks`).Scan(&tasks))
	require.Equal(t, 4, tasks)
}
