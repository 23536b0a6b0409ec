package app

import (
	"context"

	"github.com/jackc/pgx/v5"

	"github.com/huifang/huifang/pkg/audit"
)

// DefaultBatch is how many rows the background commands (re-hash, tier
// refresh, sealing legacy data) handle per transaction unless told otherwise.
const DefaultBatch = 500

// RehashContacts recomputes the search hashes made under another HASH_KEY
// (after the key changed, or rows stored before hash key ids were kept),
// batch customers per transaction, each committed on its own: an
// interrupted run loses nothing and the next goes on with the rows still
// stale. It returns how many it re-hashed and how many are still stale.
// Versions do not change and nothing is announced (hashes never leave
// intake). Each batch is recorded in the audit log in its transaction.
func (a *App) RehashContacts(ctx context.Context, batch int) (rehashed, remaining int64, err error) {
	after := ""
	for first := true; ; first = false {
		var n int
		err := pgx.BeginFunc(ctx, a.DB, func(tx pgx.Tx) error {
			var err error
			if n, after, err = a.Store.RehashPage(ctx, tx, after, batch); err != nil || (n == 0 && !first) {
				return err
			}
			// Every tenant's customers: tenant "*". The first batch is
			// recorded even when it finds nothing, so every call is.
			return a.auditTx(ctx, tx, audit.AllTenants, "contacts.rehash", audit.Target{Kind: "hash_key", ID: a.Store.Cipher.HashKeyID()},
				audit.Detail{"customers": n})
		})
		if err != nil {
			return rehashed, 0, err
		}
		rehashed += int64(n)
		if n < batch {
			break
		}
	}
	remaining, err = a.Store.StaleHashes(ctx, a.DB)
	return rehashed, remaining, err
}

// RehashStale is the re-hash at start: when customers are hashed under
// another HASH_KEY it re-hashes them, logging what it did. Until it is done
// such customers are not found by phone. Rows another writer held were
// skipped (the tier refresh, which starts at the same time, saves only the
// rows whose tier moved), so it goes over what is left again while that
// makes progress. A failure is logged, not returned: RehashContacts, or the
// next start, goes on where it stopped.
func (a *App) RehashStale(ctx context.Context) error {
	log := a.log()
	stale, err := a.Store.StaleHashes(ctx, a.DB)
	if err != nil {
		log.WarnContext(ctx, "counting stale search hashes failed", "err", err)
		return nil
	}
	if stale == 0 {
		return nil
	}
	log.InfoContext(ctx, "re-hashing contacts hashed under another HASH_KEY", "customers", stale)
	var total int64
	for {
		n, left, err := a.RehashContacts(ctx, DefaultBatch)
		total += n
		if err != nil {
			log.WarnContext(ctx, "re-hashing stopped; RehashContacts or the next start goes on", "rehashed", total, "err", err)
			return nil
		}
		if left == 0 || n == 0 {
			log.InfoContext(ctx, "contacts re-hashed", "customers", total, "remaining", left)
			return nil
		}
	}
}
