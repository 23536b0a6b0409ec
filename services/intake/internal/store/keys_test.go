package store_test

import (
	"context"
	"sync/atomic"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/huifang/huifang/services/intake/internal/archive"
	"github.com/huifang/huifang/services/intake/internal/privacy"
	"github.com/huifang/huifang/services/intake/internal/store"
)

const newKey = "k2:MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY="

// countingWrapper counts the unwraps of the wrapper it wraps.
type countingWrapper struct {
	privacy.KeyWrapper
	unwraps atomic.Int64
}

func (w *countingWrapper) Unwrap(ctx context.Context, tenant, keyID string, wrapped, aad []byte) ([]byte, error) {
	w.unwraps.Add(1)
	return w.KeyWrapper.Unwrap(ctx, tenant, keyID, wrapped, aad)
}

// storeWith is a store over the same database with another key ring.
func storeWith(t *testing.T, ring string) *store.Store {
	t.Helper()
	c, err := privacy.New(ring, privacy.DevHashKey)
	require.NoError(t, err)
	return &store.Store{Cipher: c}
}

func (b bundle) read(t *testing.T, st *store.Store, id string) (*archive.Customer, error) {
	t.Helper()
	return st.Customer(b.ctx, b.pool, store.CustomerKey{Tenant: "default", ID: id})
}

func (b bundle) exec(t *testing.T, sql string, args ...any) {
	t.Helper()
	_, err := b.pool.Exec(b.ctx, sql, args...)
	require.NoError(t, err)
}

// Name, phone and email are sealed at rest under the customer's own data
// key, which is stored only wrapped under the tenant's KEK; reads open them
// and unwrap the key once (the cache).
func TestFieldsSealedUnderTheCustomersKey(t *testing.T) {
	b := setup(t)
	w := &countingWrapper{KeyWrapper: b.st.Cipher.Wrapper()}
	b.st.Keys = w
	c := b.upsert(t, "c-1", archive.Record{Name: "王芳", Phone: "+8613800000001", Email: "wang@example.com", SourceUpdatedAt: t0})

	var (
		name, phone, email          string
		nameEnc, phoneEnc, emailEnc []byte
		dekVersion                  int64
		kekID                       string
		wrapped                     []byte
	)
	require.NoError(t, b.pool.QueryRow(b.ctx, `SELECT c.name, c.phone, c.email, c.name_enc, c.phone_enc, c.email_enc, c.dek_version, k.kek_id, k.wrapped
FROM customers c JOIN customer_keys k ON k.tenant_id = c.tenant_id AND k.customer_id = c.id WHERE c.id = $1`, c.ID).
		Scan(&name, &phone, &email, &nameEnc, &phoneEnc, &emailEnc, &dekVersion, &kekID, &wrapped))
	require.Equal(t, []string{"", "", ""}, []string{name, phone, email}, "nothing in clear")
	require.NotContains(t, string(nameEnc), "王芳")
	require.NotContains(t, string(phoneEnc), "13800000001")
	require.NotContains(t, string(emailEnc), "wang")
	require.EqualValues(t, 1, dekVersion)
	require.Equal(t, "dev", kekID)
	require.Len(t, wrapped, 12+privacy.DataKeySize+16, "nonce, key, tag")

	for range 3 {
		got, err := b.read(t, b.st, c.ID)
		require.NoError(t, err)
		require.Equal(t, []string{"王芳", "+8613800000001", "wang@example.com"}, []string{got.Name, got.Phone, got.Email})
		require.False(t, got.Erased)
	}
	require.Zero(t, w.unwraps.Load(), "the key made at the save is cached")

	fresh := storeWith(t, privacy.DevKeys)
	fresh.Keys = w
	for range 3 {
		got, err := b.read(t, fresh, c.ID)
		require.NoError(t, err)
		require.Equal(t, "王芳", got.Name)
	}
	require.EqualValues(t, 1, w.unwraps.Load(), "another process unwraps once, then reads from its cache")
}

// A ciphertext copied into another customer's row, or into another field
// of the same row, does not open: the read fails instead of showing it.
func TestCopiedCiphertextDoesNotOpen(t *testing.T) {
	b := setup(t)
	a := b.upsert(t, "c-a", archive.Record{Name: "甲", Phone: "+8613800000001", Email: "a@example.com", SourceUpdatedAt: t0})
	c := b.upsert(t, "c-b", archive.Record{Name: "乙", Phone: "+8613800000002", Email: "b@example.com", SourceUpdatedAt: t0})

	// Another customer's phone in c's row.
	b.exec(t, `UPDATE customers SET phone_enc = (SELECT phone_enc FROM customers WHERE id = $1) WHERE id = $2`, a.ID, c.ID)
	_, err := b.read(t, storeWith(t, privacy.DevKeys), c.ID)
	require.ErrorIs(t, err, privacy.ErrOpen)
	require.ErrorContains(t, err, "phone")

	// a's own phone in its email field.
	b.exec(t, `UPDATE customers SET email_enc = phone_enc WHERE id = $1`, a.ID)
	_, err = b.read(t, storeWith(t, privacy.DevKeys), a.ID)
	require.ErrorIs(t, err, privacy.ErrOpen)
	require.ErrorContains(t, err, "email")

	// Another customer's wrapped key does not unwrap for c either.
	b.exec(t, `UPDATE customer_keys SET wrapped = (SELECT wrapped FROM customer_keys WHERE customer_id = $1) WHERE customer_id = $2`, a.ID, c.ID)
	_, err = b.read(t, storeWith(t, privacy.DevKeys), c.ID)
	require.ErrorIs(t, err, privacy.ErrOpen)
}

// Destroying a customer's data key erases its name, phone and email for
// good: it reads with Erased and empty fields, is no longer found by phone,
// and a later save seals new data under a new key.
func TestDestroyCustomerKey(t *testing.T) {
	b := setup(t)
	c := b.upsert(t, "c-1", archive.Record{Name: "王芳", Phone: "+8613800000001", Email: "wang@example.com", Owners: []string{"s-1", "s-2"}, SourceUpdatedAt: t0})
	keep := b.upsert(t, "c-2", archive.Record{Name: "李四", Phone: "+8613800000002", SourceUpdatedAt: t0})

	require.NoError(t, b.tx(t, func(tx pgx.Tx) error { return b.st.DestroyCustomerKey(b.ctx, tx, "default", c.ID) }))
	for _, st := range []*store.Store{b.st, storeWith(t, privacy.DevKeys)} { // the cache was evicted; a fresh store has none
		got, err := b.read(t, st, c.ID)
		require.NoError(t, err, "an erased customer reads, it does not fail")
		require.True(t, got.Erased)
		require.Equal(t, []string{"", "", ""}, []string{got.Name, got.Phone, got.Email})
		require.Equal(t, []string{"s-1", "s-2"}, got.Owners, "the rest of the row stays")
		require.EqualValues(t, 1, got.Version)
	}
	_, err := b.st.Customer(b.ctx, b.pool, store.CustomerKey{Tenant: "default", Phone: "+8613800000001"})
	require.ErrorIs(t, err, store.ErrNotFound, "the search hash is gone")
	var keys, sealed int
	require.NoError(t, b.pool.QueryRow(b.ctx, `SELECT (SELECT count(*) FROM customer_keys WHERE customer_id = $1),
  (SELECT count(*) FROM customers WHERE id = $1 AND (name_enc IS NOT NULL OR phone_enc IS NOT NULL OR email_enc IS NOT NULL))`, c.ID).Scan(&keys, &sealed))
	require.Zero(t, keys)
	require.Zero(t, sealed)
	list, err := b.st.Customers(b.ctx, b.pool, store.CustomerFilter{Tenant: "default"}, 10, "")
	require.NoError(t, err)
	require.Len(t, list, 2)
	require.True(t, list[0].Erased != list[1].Erased, "only c is erased")
	got, err := b.read(t, b.st, keep.ID)
	require.NoError(t, err)
	require.Equal(t, "李四", got.Name, "other customers are untouched")

	require.NoError(t, b.tx(t, func(tx pgx.Tx) error { return b.st.DestroyCustomerKey(b.ctx, tx, "default", c.ID) }), "twice is no error")
	err = b.tx(t, func(tx pgx.Tx) error { return b.st.DestroyCustomerKey(b.ctx, tx, "other", c.ID) })
	require.ErrorIs(t, err, store.ErrNotFound, "a tenant erases its own customers")

	// New data after the erasure is sealed under a new key (version 2).
	require.NoError(t, b.tx(t, func(tx pgx.Tx) error {
		_, err := b.st.UpdateCustomer(b.ctx, tx, "default", c.ID, func(c *archive.Customer) (bool, error) {
			c.Phone = "+8613900000009"
			return true, nil
		})
		return err
	}))
	got, err = b.read(t, storeWith(t, privacy.DevKeys), c.ID)
	require.NoError(t, err)
	require.False(t, got.Erased)
	require.Equal(t, "+8613900000009", got.Phone)
	var version int64
	require.NoError(t, b.pool.QueryRow(b.ctx, `SELECT version FROM customer_keys WHERE customer_id = $1`, c.ID).Scan(&version))
	require.EqualValues(t, 2, version)
}

// A customer not yet re-sealed (a clear name; contacts in clear or under the
// old ring key) is erased too.
func TestDestroyCustomerKeyOfALegacyRow(t *testing.T) {
	b := setup(t)
	b.exec(t, `INSERT INTO customers (id, tenant_id, external_id, name, phone, source_updated_at) VALUES ('old-1', 'default', 'c-old', '老客户', '+8613800000001', now())`)
	require.NoError(t, b.tx(t, func(tx pgx.Tx) error { return b.st.DestroyCustomerKey(b.ctx, tx, "default", "old-1") }))
	got, err := b.read(t, b.st, "old-1")
	require.NoError(t, err)
	require.True(t, got.Erased)
	require.Empty(t, got.Name+got.Phone+got.Email)
}

// Rows stored before data keys are re-sealed in pages under data keys of
// their own, their clear columns cleared; versions do not change.
func TestResealPage(t *testing.T) {
	b := setup(t)
	b.exec(t, `INSERT INTO customers (id, tenant_id, external_id, name, phone, email, version, source_updated_at, updated_at)
VALUES ('old-1', 'default', 'c-1', '老客户', '+8613800000001', 'old@example.com', 3, now(), $1)`, t0)
	b.exec(t, `INSERT INTO customers (id, tenant_id, external_id, name, phone_enc, email_enc, key_id, phone_hash, source_updated_at)
VALUES ('old-2', 't2', 'c-2', '旧名', $1, $2, 'dev', $3, now())`,
		b.st.Cipher.Seal("+8613800000002"), b.st.Cipher.Seal("two@example.com"), b.st.Cipher.HashPhone("+8613800000002"))
	b.exec(t, `INSERT INTO customers (id, tenant_id, external_id, source_updated_at) VALUES ('old-3', 'default', 'c-3', now())`)

	p, err := b.st.PendingSeal(b.ctx, b.pool)
	require.NoError(t, err)
	require.Equal(t, store.Pending{Unsealed: 3}, p)

	after := ""
	var total int
	for {
		var n int
		require.NoError(t, b.tx(t, func(tx pgx.Tx) error {
			var err error
			n, after, err = b.st.ResealPage(b.ctx, tx, after, 2)
			return err
		}))
		total += n
		if n < 2 {
			break
		}
	}
	require.Equal(t, 3, total)
	p, err = b.st.PendingSeal(b.ctx, b.pool)
	require.NoError(t, err)
	require.True(t, p.Zero(), "%+v", p)

	var clear int
	require.NoError(t, b.pool.QueryRow(b.ctx, `SELECT count(*) FROM customers WHERE name <> '' OR phone <> '' OR email <> '' OR key_id <> '' OR dek_version = 0`).Scan(&clear))
	require.Zero(t, clear)
	fresh := storeWith(t, privacy.DevKeys)
	got, err := b.read(t, fresh, "old-1")
	require.NoError(t, err)
	require.Equal(t, []string{"老客户", "+8613800000001", "old@example.com"}, []string{got.Name, got.Phone, got.Email})
	require.EqualValues(t, 3, got.Version, "the version does not change")
	require.True(t, t0.Equal(got.UpdatedAt))
	got, err = fresh.Customer(b.ctx, b.pool, store.CustomerKey{Tenant: "t2", Phone: "+8613800000002"})
	require.NoError(t, err)
	require.Equal(t, []string{"old-2", "旧名", "two@example.com"}, []string{got.ID, got.Name, got.Email})
}

// Rotation: with a new key first in the ring, data keys are re-wrapped
// under it (the sealed values stay as they are); until then the old key id
// is still needed, and a ring without it is refused, naming it and the rows.
func TestRewrapAndMissingKeys(t *testing.T) {
	b := setup(t)
	c := b.upsert(t, "c-1", archive.Record{Name: "王芳", Phone: "+8613800000001", SourceUpdatedAt: t0})
	b.upsert(t, "c-2", archive.Record{Name: "李四", SourceUpdatedAt: t0})
	b.exec(t, `INSERT INTO customers (id, tenant_id, external_id, phone_enc, key_id, source_updated_at) VALUES ('old-1', 'default', 'c-old', $1, 'dev', now())`,
		b.st.Cipher.Seal("+8613800000003"))
	var before []byte
	require.NoError(t, b.pool.QueryRow(b.ctx, `SELECT phone_enc FROM customers WHERE id = $1`, c.ID).Scan(&before))

	onlyNew := storeWith(t, newKey)
	err := onlyNew.CheckKeys(b.ctx, b.pool)
	var missing *store.MissingKeysError
	require.ErrorAs(t, err, &missing)
	require.Equal(t, []store.KeyUse{{KeyID: "dev", Keys: 2, Rows: 1}}, missing.Missing)
	require.ErrorContains(t, err, `"dev" (2 data keys wrapped under it, 1 customers whose contacts are sealed under it)`)
	require.ErrorContains(t, err, "docs/configuration.md")
	require.NoError(t, b.st.CheckKeys(b.ctx, b.pool))

	rotated := storeWith(t, newKey+","+privacy.DevKeys)
	require.NoError(t, rotated.CheckKeys(b.ctx, b.pool))
	p, err := rotated.PendingSeal(b.ctx, b.pool)
	require.NoError(t, err)
	require.Equal(t, store.Pending{Unsealed: 1, Rewrap: 2}, p)
	var n int
	require.NoError(t, b.tx(t, func(tx pgx.Tx) error {
		var err error
		n, err = rotated.RewrapPage(b.ctx, tx, 1)
		return err
	}))
	require.Equal(t, 1, n)
	require.NoError(t, b.tx(t, func(tx pgx.Tx) error {
		var err error
		n, err = rotated.RewrapPage(b.ctx, tx, 10)
		return err
	}))
	require.Equal(t, 1, n)
	require.NoError(t, b.tx(t, func(tx pgx.Tx) error {
		_, _, err := rotated.ResealPage(b.ctx, tx, "", 10)
		return err
	}))
	p, err = rotated.PendingSeal(b.ctx, b.pool)
	require.NoError(t, err)
	require.True(t, p.Zero(), "%+v", p)

	require.NoError(t, onlyNew.CheckKeys(b.ctx, b.pool), "the old key can go now")
	got, err := b.read(t, onlyNew, c.ID)
	require.NoError(t, err)
	require.Equal(t, "+8613800000001", got.Phone)
	got, err = b.read(t, onlyNew, "old-1")
	require.NoError(t, err)
	require.Equal(t, "+8613800000003", got.Phone)
	var after []byte
	require.NoError(t, b.pool.QueryRow(b.ctx, `SELECT phone_enc FROM customers WHERE id = $1`, c.ID).Scan(&after))
	require.Equal(t, before, after, "re-wrapping leaves the values as they are")
	_, err = b.read(t, b.st, c.ID)
	require.ErrorIs(t, err, privacy.ErrUnknownKey, "the old ring alone no longer unwraps")
}

// A save seals with the cached key only while it is the one stored: a key
// cached by a transaction that rolled back, or destroyed by another
// process, is not used (the data would not open).
func TestSaveChecksTheCachedKey(t *testing.T) {
	b := setup(t)
	b.exec(t, `INSERT INTO customers (id, tenant_id, external_id, name, source_updated_at) VALUES ('old-1', 'default', 'c-old', '老客户', now())`)
	rename := func(st *store.Store, name string, commit bool) {
		t.Helper()
		tx, err := b.pool.Begin(b.ctx)
		require.NoError(t, err)
		defer func() { _ = tx.Rollback(b.ctx) }()
		_, err = st.UpdateCustomer(b.ctx, tx, "default", "old-1", func(c *archive.Customer) (bool, error) {
			c.Name = name
			return true, nil
		})
		require.NoError(t, err)
		if commit {
			require.NoError(t, tx.Commit(b.ctx))
		}
	}
	check := func(want string) {
		t.Helper()
		got, err := b.read(t, storeWith(t, privacy.DevKeys), "old-1")
		require.NoError(t, err)
		require.False(t, got.Erased)
		require.Equal(t, want, got.Name)
	}
	rename(b.st, "回滚", false) // made and cached a key, rolled back
	rename(b.st, "甲", true)
	check("甲")

	other := storeWith(t, privacy.DevKeys)
	require.NoError(t, b.tx(t, func(tx pgx.Tx) error { return other.DestroyCustomerKey(b.ctx, tx, "default", "old-1") }))
	rename(b.st, "乙", true) // b.st still caches the destroyed key
	check("乙")
	var version int64
	require.NoError(t, b.pool.QueryRow(b.ctx, `SELECT version FROM customer_keys WHERE customer_id = 'old-1'`).Scan(&version))
	require.EqualValues(t, 2, version)
}
