package store

import (
	"context"
	"fmt"
	"time"

	"github.com/huifang/huifang/pkg/postgres"
)

// PurgeMessages deletes at most limit messages that reached their end
// (sent, delivered, failed) before cutoff (MESSAGE_RETENTION), and the
// local sender's record of them and of anything it sent before cutoff.
// Messages still sending stay; the tasks stay.
func PurgeMessages(ctx context.Context, db postgres.Querier, cutoff time.Time, limit int) (int, error) {
	var n int
	err := db.QueryRow(ctx, `WITH gone AS (
  DELETE FROM messages WHERE id = ANY (ARRAY(
    SELECT id FROM messages WHERE status IN ('sent', 'delivered', 'failed') AND updated_at < $1 LIMIT $2))
  RETURNING idempotency_key),
local AS (
  DELETE FROM local_sent_messages l WHERE l.idempotency_key IN (SELECT idempotency_key FROM gone) OR l.sent_at < $1)
SELECT count(*) FROM gone`, cutoff, limit).Scan(&n)
	if err != nil {
		return 0, fmt.Errorf("store: purge messages: %w", err)
	}
	return n, nil
}
