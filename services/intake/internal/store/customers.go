package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"google.golang.org/protobuf/encoding/protojson"

	typesv1 "github.com/huifang/huifang/proto/huifang/types/v1"

	"github.com/huifang/huifang/pkg/outbox"
	"github.com/huifang/huifang/pkg/postgres"
	"github.com/huifang/huifang/services/intake/internal/archive"
	"github.com/huifang/huifang/services/intake/internal/privacy"
)

// selectCustomers reads customers with their data keys (customer_keys as
// ck); a query adds its WHERE clause, and locks with FOR UPDATE OF customers.
const selectCustomers = `SELECT id, tenant_id, external_id, name, phone, email, name_enc, phone_enc, email_enc, key_id, dek_version,
  ck.key_version, ck.kek_id, ck.wrapped, tier, upstream_tier, kind, referred_by, org_unit, owner_ids, preferences, version, source_updated_at, updated_at
FROM customers LEFT JOIN LATERAL (SELECT k.version AS key_version, k.kek_id, k.wrapped FROM customer_keys k
  WHERE k.tenant_id = customers.tenant_id AND k.customer_id = customers.id) ck ON true`

// scanCustomer reads a customer row, its name, phone and email opened with
// its data key. A customer whose data key was destroyed reads with Erased
// set and those fields empty. Rows not yet re-sealed (dek_version 0) read as
// they were stored: a clear name, contacts sealed under the ring key key_id
// or, before that, in clear.
func (s *Store) scanCustomer(ctx context.Context, row pgx.Row) (*archive.Customer, error) {
	c, _, err := s.scanSealed(ctx, row)
	return c, err
}

// openedKey is the data key a customer's fields were opened with, and its
// version: what they are sealed under again when it is saved.
type openedKey struct {
	dk      *privacy.DataKey
	version int64
}

// scanSealed is scanCustomer that also returns the data key the fields
// were opened with; nil when the row has none usable (not yet re-sealed,
// or erased).
func (s *Store) scanSealed(ctx context.Context, row pgx.Row) (*archive.Customer, *openedKey, error) {
	var c archive.Customer
	// The columns read into no field of c, in one value: Scan's pointers
	// make what they point to escape, one allocation for all of them.
	var r struct {
		clearName, clearPh, clearEm string
		nameEnc, phoneEnc, emailEnc []byte
		ringKeyID                   string
		dekVersion                  int64
		keyVersion                  *int64
		kekID                       *string
		wrapped                     []byte
		prefs                       []byte
	}
	err := row.Scan(&c.ID, &c.TenantID, &c.ExternalID, &r.clearName, &r.clearPh, &r.clearEm, &r.nameEnc, &r.phoneEnc, &r.emailEnc, &r.ringKeyID, &r.dekVersion,
		&r.keyVersion, &r.kekID, &r.wrapped, &c.Tier, &c.UpstreamTier, &c.Kind, &c.ReferredBy, &c.OrgUnit, &c.Owners, &r.prefs, &c.Version, &c.SourceUpdatedAt, &c.UpdatedAt)
	if err != nil {
		return nil, nil, wrap("read customer", err)
	}
	var key *openedKey
	switch {
	case r.dekVersion == 0:
		if err := s.openLegacy(&c, r.clearName, r.clearPh, r.clearEm, r.ringKeyID, r.phoneEnc, r.emailEnc); err != nil {
			return nil, nil, err
		}
	case r.keyVersion == nil || *r.keyVersion != r.dekVersion:
		c.Erased = true
	default:
		dk, err := s.openKey(ctx, c.TenantID, c.ID, storedKey{version: r.dekVersion, kekID: *r.kekID, wrapped: r.wrapped})
		if err != nil {
			return nil, nil, err
		}
		key = &openedKey{dk: dk, version: r.dekVersion}
		for _, f := range []struct {
			name string
			dst  *string
			data []byte
		}{{fieldName, &c.Name, r.nameEnc}, {fieldPhone, &c.Phone, r.phoneEnc}, {fieldEmail, &c.Email, r.emailEnc}} {
			if *f.dst, err = dk.Open(f.data, privacy.FieldAAD(c.TenantID, c.ID, f.name, r.dekVersion)); err != nil {
				return nil, nil, fmt.Errorf("store: customer %s %s: %w", c.ID, f.name, err)
			}
		}
	}
	if len(r.prefs) > 2 {
		p := &typesv1.ContactPreferences{}
		if err := protojson.Unmarshal(r.prefs, p); err != nil {
			return nil, nil, fmt.Errorf("store: customer %s preferences: %w", c.ID, err)
		}
		c.Preferences = archive.PreferencesFromProto(p)
	}
	return &c, key, nil
}

// openLegacy reads the fields of a row not yet sealed under a data key.
func (s *Store) openLegacy(c *archive.Customer, name, phone, email, ringKeyID string, phoneEnc, emailEnc []byte) error {
	c.Name, c.Phone, c.Email = name, phone, email
	var err error
	if len(phoneEnc) > 0 {
		if c.Phone, err = s.Cipher.Open(ringKeyID, phoneEnc); err != nil {
			return fmt.Errorf("store: customer %s phone: %w", c.ID, err)
		}
	}
	if len(emailEnc) > 0 {
		if c.Email, err = s.Cipher.Open(ringKeyID, emailEnc); err != nil {
			return fmt.Errorf("store: customer %s email: %w", c.ID, err)
		}
	}
	return nil
}

// scanCustomers reads the customer rows of a query.
func (s *Store) scanCustomers(ctx context.Context, rows pgx.Rows, op string) ([]*archive.Customer, error) {
	defer rows.Close()
	var out []*archive.Customer
	for rows.Next() {
		c, err := s.scanCustomer(ctx, rows)
		if err != nil {
			return nil, err
		}
		out = append(out, c)
	}
	if err := rows.Err(); err != nil {
		return nil, wrap(op, err)
	}
	return out, nil
}

// save writes the customer as it is: name, phone and email sealed under
// its data key (made when it has none), the clear columns and the old ring
// key id cleared, contacts hashed with the current hash key.
func (s *Store) save(ctx context.Context, q postgres.Querier, c *archive.Customer) error {
	prefs, err := preferencesJSON(c)
	if err != nil {
		return err
	}
	owners := ownersOf(c)
	hashes := []any{s.Cipher.HashPhone(c.Phone), s.Cipher.HashEmail(c.Email), s.Cipher.HashKeyID()}
	search := s.searchHashes(c)
	// The fast way: the data key cached last, when it is still the one
	// stored (checked in the same statement: a key cached by a transaction
	// that rolled back, or since destroyed or re-wrapped, is not used).
	if ver, wrapped, dk, ok := s.keyCache().Latest(c.TenantID, c.ID); ok {
		sealed := func(field, v string) []byte { return dk.Seal(v, privacy.FieldAAD(c.TenantID, c.ID, field, ver)) }
		tag, err := q.Exec(ctx, `UPDATE customers SET name = '', phone = '', email = '', name_enc = $4, phone_enc = $5, email_enc = $6, key_id = '',
  dek_version = $7, phone_hash = $8, email_hash = $9, hash_key_id = $10, tier = $11, kind = $12, referred_by = $13, org_unit = $14, owner_ids = $15,
  preferences = $16, version = $17, source_updated_at = $18, updated_at = $19, external_id = $3, upstream_tier = $21, search_hashes = $22
WHERE id = $1 AND tenant_id = $2
  AND EXISTS (SELECT 1 FROM customer_keys WHERE tenant_id = $2 AND customer_id = $1 AND version = $7 AND wrapped = $20)`,
			c.ID, c.TenantID, c.ExternalID, sealed(fieldName, c.Name), sealed(fieldPhone, c.Phone), sealed(fieldEmail, c.Email), ver,
			hashes[0], hashes[1], hashes[2], c.Tier, c.KindOrDefault(), c.ReferredBy, c.OrgUnit, owners, prefs,
			c.Version, c.SourceUpdatedAt, c.UpdatedAt, wrapped, c.UpstreamTier, search)
		if err != nil {
			return wrap("save customer", err)
		}
		if tag.RowsAffected() == 1 {
			return nil
		}
	}
	dk, ver, err := s.dataKey(ctx, q, c.TenantID, c.ID)
	if err != nil {
		return err
	}
	sealed := func(field, v string) []byte { return dk.Seal(v, privacy.FieldAAD(c.TenantID, c.ID, field, ver)) }
	_, err = q.Exec(ctx, `INSERT INTO customers (id, tenant_id, external_id, name, phone, email, name_enc, phone_enc, email_enc, key_id, dek_version,
  phone_hash, email_hash, tier, kind, referred_by, org_unit, owner_ids, preferences, version, source_updated_at, updated_at, hash_key_id, upstream_tier,
  search_hashes)
VALUES ($1, $2, $3, '', '', '', $4, $5, $6, '', $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, $21)
ON CONFLICT (id) DO UPDATE SET name = '', phone = '', email = '', name_enc = EXCLUDED.name_enc, phone_enc = EXCLUDED.phone_enc,
  email_enc = EXCLUDED.email_enc, key_id = '', dek_version = EXCLUDED.dek_version, phone_hash = EXCLUDED.phone_hash, email_hash = EXCLUDED.email_hash,
  hash_key_id = EXCLUDED.hash_key_id, tier = EXCLUDED.tier, kind = EXCLUDED.kind, referred_by = EXCLUDED.referred_by, org_unit = EXCLUDED.org_unit,
  owner_ids = EXCLUDED.owner_ids, preferences = EXCLUDED.preferences, version = EXCLUDED.version, source_updated_at = EXCLUDED.source_updated_at,
  updated_at = EXCLUDED.updated_at, upstream_tier = EXCLUDED.upstream_tier, search_hashes = EXCLUDED.search_hashes`,
		c.ID, c.TenantID, c.ExternalID, sealed(fieldName, c.Name), sealed(fieldPhone, c.Phone), sealed(fieldEmail, c.Email), ver,
		hashes[0], hashes[1], c.Tier, c.KindOrDefault(), c.ReferredBy, c.OrgUnit, owners, prefs,
		c.Version, c.SourceUpdatedAt, c.UpdatedAt, hashes[2], c.UpstreamTier, search)
	return wrap("save customer", err)
}

// CustomerKey finds one customer of a tenant: by id, external id or phone
// (the first set; by phone, the most recently updated of those with the number).
type CustomerKey struct {
	Tenant, ID, ExternalID, Phone string
}

// Customer reads one customer; ErrNotFound when there is none.
func (s *Store) Customer(ctx context.Context, q postgres.Querier, k CustomerKey) (*archive.Customer, error) {
	var row pgx.Row
	switch {
	case k.ID != "":
		row = q.QueryRow(ctx, selectCustomers+` WHERE tenant_id = $1 AND id = $2`, k.Tenant, k.ID)
	case k.ExternalID != "":
		row = q.QueryRow(ctx, selectCustomers+` WHERE tenant_id = $1 AND external_id = $2`, k.Tenant, k.ExternalID)
	default:
		row = q.QueryRow(ctx, selectCustomers+` WHERE tenant_id = $1 AND phone_hash = $2 ORDER BY updated_at DESC LIMIT 1`,
			k.Tenant, s.Cipher.HashPhone(k.Phone))
	}
	return s.scanCustomer(ctx, row)
}

// CustomerFilter narrows Customers.
type CustomerFilter struct {
	Tenant string
	// Tier, when set, lists one tier.
	Tier string
	// FewerOwnersThan, when set, lists the customers known to fewer staff.
	FewerOwnersThan int
}

// Customers lists customers by id after the cursor.
func (s *Store) Customers(ctx context.Context, q postgres.Querier, f CustomerFilter, limit int, afterID string) ([]*archive.Customer, error) {
	rows, err := q.Query(ctx, selectCustomers+`
WHERE tenant_id = $1 AND ($2 = '' OR tier = $2) AND ($5 = 0 OR cardinality(owner_ids) < $5) AND id > $3 ORDER BY id LIMIT $4`,
		f.Tenant, f.Tier, afterID, limit, f.FewerOwnersThan)
	if err != nil {
		return nil, wrap("list customers", err)
	}
	return s.scanCustomers(ctx, rows, "list customers")
}

// UpdateFunc decides a change of a locked customer: it changes c and says
// whether to save it.
type UpdateFunc func(c *archive.Customer) (save bool, err error)

// update runs fn on the customer that row read and locked (SELECT … FOR
// UPDATE) and saves it when fn says so.
func (s *Store) update(ctx context.Context, q postgres.Querier, row pgx.Row, fn UpdateFunc) (*archive.Customer, error) {
	c, err := s.scanCustomer(ctx, row)
	if err != nil {
		return nil, err
	}
	save, err := fn(c)
	if err != nil || !save {
		return c, err
	}
	return c, s.save(ctx, q, c)
}

// UpdateCustomer locks the customer by id (SELECT … FOR UPDATE), lets fn
// decide and saves it when fn says so; ErrNotFound when there is none.
func (s *Store) UpdateCustomer(ctx context.Context, q postgres.Querier, tenant, id string, fn UpdateFunc) (*archive.Customer, error) {
	return s.update(ctx, q, q.QueryRow(ctx, selectCustomers+` WHERE tenant_id = $1 AND id = $2 FOR UPDATE OF customers`, tenant, id), fn)
}

// UpdateCustomerByExternalID is UpdateCustomer by the upstream system's id.
func (s *Store) UpdateCustomerByExternalID(ctx context.Context, q postgres.Querier, tenant, externalID string, fn UpdateFunc) (*archive.Customer, error) {
	return s.update(ctx, q, q.QueryRow(ctx, selectCustomers+` WHERE tenant_id = $1 AND external_id = $2 FOR UPDATE OF customers`, tenant, externalID), fn)
}

// UpsertCustomer locks the customer (tenant, externalID), creating it first
// when there is none: an empty row with a new id and source time at
// (INSERT … ON CONFLICT DO NOTHING, then locked, so two writers creating the
// same customer at once queue on its row instead of failing). fn decides,
// told whether this call created the row (its version is 0 then); the
// customer is saved when fn says so.
func (s *Store) UpsertCustomer(ctx context.Context, q postgres.Querier, tenant, externalID string, at time.Time,
	fn func(c *archive.Customer, created bool) (save bool, err error)) (*archive.Customer, error) {
	lock := func() pgx.Row {
		return q.QueryRow(ctx, selectCustomers+` WHERE tenant_id = $1 AND external_id = $2 FOR UPDATE OF customers`, tenant, externalID)
	}
	created := false
	c, err := s.scanCustomer(ctx, lock())
	if errors.Is(err, ErrNotFound) {
		tag, err := q.Exec(ctx, `INSERT INTO customers (id, tenant_id, external_id, source_updated_at, version) VALUES ($1, $2, $3, $4, 0)
ON CONFLICT (tenant_id, external_id) DO NOTHING`, outbox.NewEventID(), tenant, externalID, at)
		if err != nil {
			return nil, wrap("create customer", err)
		}
		created = tag.RowsAffected() == 1
		c, err = s.scanCustomer(ctx, lock())
		if err != nil {
			return nil, err
		}
	} else if err != nil {
		return nil, err
	}
	save, err := fn(c, created)
	if err != nil || !save {
		return c, err
	}
	return c, s.save(ctx, q, c)
}

// UpdateTiered runs fn on up to limit customers that hold a tier, by id
// after afterID, each locked (rows other writers hold are skipped: their
// writer re-evaluates them), and saves those fn says to. It returns how many
// it read and the last id, the cursor of the next page.
func (s *Store) UpdateTiered(ctx context.Context, q postgres.Querier, afterID string, limit int, fn UpdateFunc) (int, string, error) {
	rows, err := q.Query(ctx, selectCustomers+` WHERE tier <> '' AND id > $1 ORDER BY id LIMIT $2 FOR UPDATE OF customers SKIP LOCKED`, afterID, limit)
	if err != nil {
		return 0, afterID, wrap("tiered customers", err)
	}
	page, err := s.scanCustomers(ctx, rows, "tiered customers")
	if err != nil {
		return 0, afterID, err
	}
	last := afterID
	for _, c := range page {
		save, err := fn(c)
		if err != nil {
			return 0, afterID, err
		}
		if save {
			if err := s.save(ctx, q, c); err != nil {
				return 0, afterID, err
			}
		}
		last = c.ID
	}
	return len(page), last, nil
}

// SealLegacyContacts seals the contacts of the rows written before
// encryption (saved again as they are, stamped now) and returns how many.
func (s *Store) SealLegacyContacts(ctx context.Context, q postgres.Querier, now time.Time) (int, error) {
	rows, err := q.Query(ctx, selectCustomers+` WHERE phone <> '' OR email <> '' FOR UPDATE OF customers`)
	if err != nil {
		return 0, wrap("legacy customers", err)
	}
	legacy, err := s.scanCustomers(ctx, rows, "legacy customers")
	if err != nil {
		return 0, err
	}
	for _, c := range legacy {
		c.UpdatedAt = now
		if err := s.save(ctx, q, c); err != nil {
			return 0, err
		}
	}
	return len(legacy), nil
}
