package store

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/huifang/huifang/pkg/postgres"
	"github.com/huifang/huifang/services/intake/internal/privacy"
)

// The fields sealed under a customer's data key, as named in their
// additional data (privacy.FieldAAD).
const (
	fieldName  = "name"
	fieldPhone = "phone"
	fieldEmail = "email"
)

// CurrentKeyID is the id of the key new data keys are wrapped under.
func (s *Store) CurrentKeyID() string { return s.keys().CurrentKeyID() }

// storedKey is a customer's data key as customer_keys holds it.
type storedKey struct {
	version int64
	kekID   string
	wrapped []byte
}

// openKey unwraps the customer's data key k, from the cache when it holds
// exactly this wrapped key.
func (s *Store) openKey(ctx context.Context, tenant, customer string, k storedKey) (*privacy.DataKey, error) {
	cache := s.keyCache()
	if dk, ok := cache.Get(tenant, customer, k.version, k.wrapped); ok {
		return dk, nil
	}
	raw, err := s.keys().Unwrap(ctx, tenant, k.kekID, k.wrapped, privacy.DataKeyAAD(customer, k.version))
	if err != nil {
		return nil, fmt.Errorf("store: customer %s data key: %w", customer, err)
	}
	dk, err := privacy.OpenDataKey(raw)
	if err != nil {
		return nil, fmt.Errorf("store: customer %s data key: %w", customer, err)
	}
	cache.Put(tenant, customer, k.version, k.wrapped, dk)
	return dk, nil
}

// dataKey returns the customer's data key and its version, making one when
// the customer has none (a new customer, one not yet re-sealed, or one whose
// key was destroyed: its version is then one above the last). The caller
// holds the customer's row lock, so no two writers make a key at once.
func (s *Store) dataKey(ctx context.Context, q postgres.Querier, tenant, customer string) (*privacy.DataKey, int64, error) {
	var k storedKey
	err := q.QueryRow(ctx, `SELECT version, kek_id, wrapped FROM customer_keys WHERE tenant_id = $1 AND customer_id = $2`,
		tenant, customer).Scan(&k.version, &k.kekID, &k.wrapped)
	if err == nil {
		dk, err := s.openKey(ctx, tenant, customer, k)
		return dk, k.version, err
	}
	if !errors.Is(err, pgx.ErrNoRows) {
		return nil, 0, wrap("read data key", err)
	}
	var last int64
	err = q.QueryRow(ctx, `SELECT dek_version FROM customers WHERE tenant_id = $1 AND id = $2`, tenant, customer).Scan(&last)
	if err != nil && !errors.Is(err, pgx.ErrNoRows) {
		return nil, 0, wrap("read data key version", err)
	}
	raw := privacy.NewDataKey()
	k.version = last + 1
	if k.kekID, k.wrapped, err = s.keys().Wrap(ctx, tenant, raw, privacy.DataKeyAAD(customer, k.version)); err != nil {
		return nil, 0, fmt.Errorf("store: customer %s: wrap a data key: %w", customer, err)
	}
	if _, err := q.Exec(ctx, `INSERT INTO customer_keys (tenant_id, customer_id, version, kek_id, wrapped) VALUES ($1, $2, $3, $4, $5)`,
		tenant, customer, k.version, k.kekID, k.wrapped); err != nil {
		return nil, 0, wrap("store data key", err)
	}
	dk, err := privacy.OpenDataKey(raw)
	if err != nil {
		return nil, 0, err
	}
	s.keyCache().Put(tenant, customer, k.version, k.wrapped, dk)
	return dk, k.version, nil
}

// DestroyCustomerKey erases a customer's name, phone and email for good
// (crypto-shredding): under the customer's row lock it deletes the wrapped
// data key and the sealed values, clears the search hashes (a search by
// phone no longer finds it) and whatever a row not yet re-sealed holds in
// clear, and forgets the cached key. Afterwards the customer reads with
// Erased set and empty name, phone and email; the rest of the row (tier,
// owners, preferences, services) stays. A later save seals the fields then
// held under a new data key. Destroying twice is no error; ErrNotFound when
// there is no such customer.
func (s *Store) DestroyCustomerKey(ctx context.Context, q postgres.Querier, tenant, customerID string) error {
	var one int
	err := q.QueryRow(ctx, `SELECT 1 FROM customers WHERE tenant_id = $1 AND id = $2 FOR UPDATE`, tenant, customerID).Scan(&one)
	if err != nil {
		return wrap("lock customer "+customerID, err)
	}
	if _, err := q.Exec(ctx, `DELETE FROM customer_keys WHERE tenant_id = $1 AND customer_id = $2`, tenant, customerID); err != nil {
		return wrap("destroy data key of "+customerID, err)
	}
	if _, err := q.Exec(ctx, `UPDATE customers SET name = '', phone = '', email = '', name_enc = NULL, phone_enc = NULL, email_enc = NULL,
  key_id = '', phone_hash = '', email_hash = '', search_hashes = '{}', dek_version = greatest(dek_version, 1) WHERE tenant_id = $1 AND id = $2`,
		tenant, customerID); err != nil {
		return wrap("erase customer "+customerID, err)
	}
	s.keyCache().Evict(tenant, customerID)
	return nil
}

// ResealPage moves up to limit customers not yet sealed under a data key
// (dek_version 0: a clear name, contacts under the old ring key or in
// clear), by id after afterID, under data keys of their own, clearing the
// clear columns; rows other writers hold are skipped (their save seals them).
// Versions and timestamps do not change: the customer's data does not. It
// returns how many it re-sealed and the last id, the cursor of the next page.
func (s *Store) ResealPage(ctx context.Context, q postgres.Querier, afterID string, limit int) (int, string, error) {
	rows, err := q.Query(ctx, selectCustomers+` WHERE dek_version = 0 AND id > $1 ORDER BY id LIMIT $2 FOR UPDATE OF customers SKIP LOCKED`,
		afterID, limit)
	if err != nil {
		return 0, afterID, wrap("unsealed customers", err)
	}
	page, err := s.scanCustomers(ctx, rows, "unsealed customers")
	if err != nil {
		return 0, afterID, err
	}
	last := afterID
	for _, c := range page {
		if err := s.save(ctx, q, c); err != nil {
			return 0, afterID, err
		}
		last = c.ID
	}
	return len(page), last, nil
}

// RewrapPage re-wraps up to limit data keys wrapped under another KEK than
// the current one (after a new key was put first in ENCRYPTION_KEYS): only
// the wrapped key changes, the values sealed under it stay. Keys other
// writers hold are skipped. It returns how many it re-wrapped.
func (s *Store) RewrapPage(ctx context.Context, q postgres.Querier, limit int) (int, error) {
	w := s.keys()
	rows, err := q.Query(ctx, `SELECT tenant_id, customer_id, version, kek_id, wrapped FROM customer_keys
WHERE kek_id <> $1 ORDER BY tenant_id, customer_id LIMIT $2 FOR UPDATE SKIP LOCKED`, w.CurrentKeyID(), limit)
	if err != nil {
		return 0, wrap("keys to re-wrap", err)
	}
	type stale struct {
		tenant, customer string
		storedKey
	}
	page, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (stale, error) {
		var x stale
		return x, r.Scan(&x.tenant, &x.customer, &x.version, &x.kekID, &x.wrapped)
	})
	if err != nil {
		return 0, wrap("keys to re-wrap", err)
	}
	for _, x := range page {
		aad := privacy.DataKeyAAD(x.customer, x.version)
		raw, err := w.Unwrap(ctx, x.tenant, x.kekID, x.wrapped, aad)
		if err != nil {
			return 0, fmt.Errorf("store: customer %s data key: %w", x.customer, err)
		}
		kekID, wrapped, err := w.Wrap(ctx, x.tenant, raw, aad)
		if err != nil {
			return 0, fmt.Errorf("store: customer %s: re-wrap its data key: %w", x.customer, err)
		}
		if _, err := q.Exec(ctx, `UPDATE customer_keys SET kek_id = $3, wrapped = $4, rewrapped_at = now() WHERE tenant_id = $1 AND customer_id = $2`,
			x.tenant, x.customer, kekID, wrapped); err != nil {
			return 0, wrap("re-wrap data key of "+x.customer, err)
		}
	}
	return len(page), nil
}

// Pending is the work left to the background re-seal.
type Pending struct {
	// Unsealed counts the customers not yet sealed under a data key.
	Unsealed int64
	// Rewrap counts the data keys wrapped under another KEK than the current one.
	Rewrap int64
}

// Zero tells whether nothing is left.
func (p Pending) Zero() bool { return p.Unsealed == 0 && p.Rewrap == 0 }

// PendingSeal counts the work left to the background re-seal.
func (s *Store) PendingSeal(ctx context.Context, q postgres.Querier) (Pending, error) {
	var p Pending
	err := q.QueryRow(ctx, `SELECT (SELECT count(*) FROM customers WHERE dek_version = 0),
  (SELECT count(*) FROM customer_keys WHERE kek_id <> $1)`, s.keys().CurrentKeyID()).Scan(&p.Unsealed, &p.Rewrap)
	return p, wrap("pending re-seal", err)
}

// KeyUse is how many rows need one key id.
type KeyUse struct {
	KeyID string
	// Keys counts the data keys wrapped under it; Rows the customers
	// whose contacts are still sealed directly under it (before data keys).
	Keys, Rows int64
}

// MissingKeys lists the key ids the database still needs that the key
// wrapper (ENCRYPTION_KEYS) does not hold: data keys wrapped under them,
// contacts not yet re-sealed that were sealed under them. Empty when every
// key id in use is held.
func (s *Store) MissingKeys(ctx context.Context, q postgres.Querier) ([]KeyUse, error) {
	rows, err := q.Query(ctx, `SELECT key_id, sum(keys)::bigint, sum(cust)::bigint FROM (
  SELECT kek_id AS key_id, count(*) AS keys, 0 AS cust FROM customer_keys GROUP BY kek_id
  UNION ALL
  SELECT key_id, 0, count(*) FROM customers WHERE dek_version = 0 AND key_id <> '' AND (phone_enc IS NOT NULL OR email_enc IS NOT NULL) GROUP BY key_id
) u GROUP BY key_id ORDER BY key_id`)
	if err != nil {
		return nil, wrap("key ids in use", err)
	}
	uses, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (KeyUse, error) {
		var u KeyUse
		return u, r.Scan(&u.KeyID, &u.Keys, &u.Rows)
	})
	if err != nil {
		return nil, wrap("key ids in use", err)
	}
	w := s.keys()
	return slices.DeleteFunc(uses, func(u KeyUse) bool { return w.HasKey(u.KeyID) }), nil
}

// MissingKeysError is the refusal to start while the database needs key
// ids ENCRYPTION_KEYS no longer holds.
type MissingKeysError struct{ Missing []KeyUse }

func (e *MissingKeysError) Error() string {
	var b strings.Builder
	b.WriteString("ENCRYPTION_KEYS lacks key ids the database still needs:")
	for i, u := range e.Missing {
		if i > 0 {
			b.WriteString(";")
		}
		fmt.Fprintf(&b, " %q (%d data keys wrapped under it, %d customers whose contacts are sealed under it)", u.KeyID, u.Keys, u.Rows)
	}
	b.WriteString(". Put them back in ENCRYPTION_KEYS after the current key, start intake and wait until huifang_intake_encryption_pending" +
		" is 0 (or the log says the re-seal is done) before removing them; see docs/configuration.md, \"Encryption keys\"")
	return b.String()
}

// CheckKeys refuses (a *MissingKeysError) a key wrapper that lacks key ids
// the database still needs.
func (s *Store) CheckKeys(ctx context.Context, q postgres.Querier) error {
	missing, err := s.MissingKeys(ctx, q)
	if err != nil {
		return err
	}
	if len(missing) > 0 {
		return &MissingKeysError{Missing: missing}
	}
	return nil
}
