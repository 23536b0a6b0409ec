package store

import (
	"context"

	"github.com/huifang/huifang/pkg/postgres"
)

// RehashPage recomputes the keyed search hashes (phone, email and
// SearchCustomers' name and phone-tail hashes) of up to limit customers,
// by id after afterID, whose hashes were made under another HASH_KEY
// (hash_key_id differs from the current one), from their decrypted
// contacts; rows other writers hold are skipped (their save hashes them
// anew). Versions do not change: hashes never leave intake. It returns how
// many it re-hashed and the last id, the cursor of the next page.
func (s *Store) RehashPage(ctx context.Context, q postgres.Querier, afterID string, limit int) (int, string, error) {
	keyID := s.Cipher.HashKeyID()
	rows, err := q.Query(ctx, selectCustomers+`
WHERE id > $1 AND hash_key_id <> $2 ORDER BY id LIMIT $3 FOR UPDATE OF customers SKIP LOCKED`, afterID, keyID, limit)
	if err != nil {
		return 0, afterID, wrap("stale hashes", err)
	}
	page, err := s.scanCustomers(ctx, rows, "stale hashes")
	if err != nil {
		return 0, afterID, err
	}
	last := afterID
	for _, c := range page {
		if _, err := q.Exec(ctx, `UPDATE customers SET phone_hash = $2, email_hash = $3, hash_key_id = $4, search_hashes = $5 WHERE id = $1`,
			c.ID, s.Cipher.HashPhone(c.Phone), s.Cipher.HashEmail(c.Email), keyID, s.searchHashes(c)); err != nil {
			return 0, afterID, wrap("rehash customer "+c.ID, err)
		}
		last = c.ID
	}
	return len(page), last, nil
}

// StaleHashes counts the customers whose search hashes were made under
// another HASH_KEY than the current one.
func (s *Store) StaleHashes(ctx context.Context, q postgres.Querier) (int64, error) {
	var n int64
	err := q.QueryRow(ctx, `SELECT count(*) FROM customers WHERE hash_key_id <> $1`, s.Cipher.HashKeyID()).Scan(&n)
	return n, wrap("stale hashes", err)
}
