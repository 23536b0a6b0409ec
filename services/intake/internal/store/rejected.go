package store

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/huifang/huifang/pkg/postgres"
	"github.com/huifang/huifang/services/intake/internal/ingest"
	"github.com/huifang/huifang/services/intake/internal/privacy"
)

// Refused inputs are written by pkg/inbox (inbox.Reject) with SealPayload as
// their sealer; the store reads them, marks replays and seals old rows.

const rejectedColumns = `id, tenant_id, source, field, reason, content_type, payload, received_at, replayed_at, replayed_service_id`

// SealPayload is the inbox.Sealer of intake: refused payloads are kept
// encrypted at rest with the current key (seeds 000, 001).
func (s *Store) SealPayload(_ context.Context, payload []byte) ([]byte, error) {
	return s.Cipher.SealPayload(payload), nil
}

// scanRejected reads a row of rejected_events, its payload decrypted (rows
// stored before sealing are read as they are; one that no longer opens is
// read without its payload, OpenErr set).
func (s *Store) scanRejected(r pgx.Row) (ingest.Rejected, error) {
	var x ingest.Rejected
	err := r.Scan(&x.ID, &x.Tenant, &x.Source, &x.Field, &x.Reason, &x.ContentType, &x.Payload, &x.ReceivedAt, &x.ReplayedAt, &x.ReplayedServiceID)
	if err != nil {
		return x, wrap("read rejected", err)
	}
	if x.Payload, err = s.Cipher.OpenPayload(x.Payload); err != nil {
		x.Payload, x.OpenErr = nil, fmt.Errorf("store: rejected %s: %w", x.ID, err)
	}
	return x, nil
}

// ListRejected lists refused inputs newest first, after the cursor (received_at, id).
func (s *Store) ListRejected(ctx context.Context, q postgres.Querier, tenant string, limit int, afterTime time.Time, afterID string) ([]ingest.Rejected, error) {
	rows, err := q.Query(ctx, `SELECT `+rejectedColumns+`
FROM rejected_events WHERE tenant_id = $1 AND ($3 = '' OR (received_at, id) < ($2, $3))
ORDER BY received_at DESC, id DESC LIMIT $4`, tenant, afterTime, afterID, limit)
	if err != nil {
		return nil, wrap("list rejected", err)
	}
	list, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (ingest.Rejected, error) { return s.scanRejected(r) })
	return list, wrap("list rejected", err)
}

// Rejected reads one refused input; ErrNotFound when there is none.
func (s *Store) Rejected(ctx context.Context, q postgres.Querier, tenant, id string) (ingest.Rejected, error) {
	return s.scanRejected(q.QueryRow(ctx, `SELECT `+rejectedColumns+` FROM rejected_events WHERE tenant_id = $1 AND id = $2`, tenant, id))
}

// UpdateRejected locks one refused input (SELECT … FOR UPDATE), lets fn
// change it and saves what a replay changes (replayed_at,
// replayed_service_id); an error of fn saves nothing. ErrNotFound when
// there is none.
func (s *Store) UpdateRejected(ctx context.Context, q postgres.Querier, tenant, id string, fn func(r *ingest.Rejected) error) error {
	r, err := s.scanRejected(q.QueryRow(ctx, `SELECT `+rejectedColumns+` FROM rejected_events WHERE tenant_id = $1 AND id = $2 FOR UPDATE`, tenant, id))
	if err != nil {
		return err
	}
	if err := fn(&r); err != nil {
		return err
	}
	_, err = q.Exec(ctx, `UPDATE rejected_events SET replayed_at = $2, replayed_service_id = $3 WHERE id = $1`, r.ID, r.ReplayedAt, r.ReplayedServiceID)
	return wrap("mark replayed", err)
}

// SealLegacyRejected encrypts the payloads of up to batch refused inputs
// stored before sealing (rows others hold are skipped) and returns how many
// it sealed.
func (s *Store) SealLegacyRejected(ctx context.Context, q postgres.Querier, batch int) (int, error) {
	rows, err := q.Query(ctx, `SELECT id, payload FROM rejected_events
WHERE length(payload) > 0 AND substring(payload FROM 1 FOR $2) <> $3 ORDER BY id LIMIT $1 FOR UPDATE SKIP LOCKED`,
		batch, len(privacy.SealedPrefix()), privacy.SealedPrefix())
	if err != nil {
		return 0, wrap("legacy rejected", err)
	}
	type row struct {
		id      string
		payload []byte
	}
	list, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (row, error) {
		var x row
		return x, r.Scan(&x.id, &x.payload)
	})
	if err != nil {
		return 0, wrap("legacy rejected", err)
	}
	for _, x := range list {
		if _, err := q.Exec(ctx, `UPDATE rejected_events SET payload = $2 WHERE id = $1`, x.id, s.Cipher.SealPayload(x.payload)); err != nil {
			return 0, wrap("seal rejected "+x.id, err)
		}
	}
	return len(list), nil
}

// DeleteRejectedNaming deletes the tenant's refused inputs whose payload
// names s (ingest.Rejected.Names), reading them in pages of batch, and
// returns how many it deleted. An erasure calls it: a refused input kept
// the person's contacts sealed under the tenant's key, not theirs.
func (s *Store) DeleteRejectedNaming(ctx context.Context, q postgres.Querier, tenant string, who ingest.Subject, batch int) (int, error) {
	deleted, after := 0, ""
	for {
		rows, err := q.Query(ctx, `SELECT `+rejectedColumns+` FROM rejected_events
WHERE tenant_id = $1 AND id > $2 ORDER BY id LIMIT $3`, tenant, after, batch)
		if err != nil {
			return deleted, wrap("find rejected", err)
		}
		list, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (ingest.Rejected, error) { return s.scanRejected(r) })
		if err != nil {
			return deleted, wrap("find rejected", err)
		}
		var ids []string
		for i := range list {
			if list[i].Names(who) {
				ids = append(ids, list[i].ID)
			}
		}
		if len(ids) > 0 {
			tag, err := q.Exec(ctx, `DELETE FROM rejected_events WHERE tenant_id = $1 AND id = ANY($2)`, tenant, ids)
			if err != nil {
				return deleted, wrap("delete rejected", err)
			}
			deleted += int(tag.RowsAffected())
		}
		if len(list) < batch {
			return deleted, nil
		}
		after = list[len(list)-1].ID
	}
}
