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
)

const customerColumns = `id, tenant_id, external_id, name, phone, email, phone_enc, email_enc, key_id, tier, kind, referred_by, org_unit,
  owner_ids, preferences, version, source_updated_at, updated_at`

// scanCustomer reads a customer row, contacts decrypted (rows written
// before encryption keep clear contacts until their next save).
func (s *Store) scanCustomer(row pgx.Row) (*archive.Customer, error) {
	var (
		c                  archive.Customer
		legacyPhone, legEm string
		phoneEnc, emailEnc []byte
		keyID              string
		prefs              []byte
	)
	err := row.Scan(&c.ID, &c.TenantID, &c.ExternalID, &c.Name, &legacyPhone, &legEm, &phoneEnc, &emailEnc, &keyID, &c.Tier, &c.Kind,
		&c.ReferredBy, &c.OrgUnit, &c.Owners, &prefs, &c.Version, &c.SourceUpdatedAt, &c.UpdatedAt)
	if err != nil {
		return nil, wrap("read customer", err)
	}
	c.Phone, c.Email = legacyPhone, legEm
	if len(phoneEnc) > 0 {
		if c.Phone, err = s.Cipher.Open(keyID, phoneEnc); err != nil {
			return nil, fmt.Errorf("store: customer %s phone: %w", c.ID, err)
		}
	}
	if len(emailEnc) > 0 {
		if c.Email, err = s.Cipher.Open(keyID, emailEnc); err != nil {
			return nil, fmt.Errorf("store: customer %s email: %w", c.ID, err)
		}
	}
	if len(prefs) > 2 {
		p := &typesv1.ContactPreferences{}
		if err := protojson.Unmarshal(prefs, p); err != nil {
			return nil, fmt.Errorf("store: customer %s preferences: %w", c.ID, err)
		}
		c.Preferences = archive.PreferencesFromProto(p)
	}
	return &c, nil
}

// scanCustomers reads the customer rows of a query.
func (s *Store) scanCustomers(rows pgx.Rows, op string) ([]*archive.Customer, error) {
	defer rows.Close()
	var out []*archive.Customer
	for rows.Next() {
		c, err := s.scanCustomer(rows)
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

// save writes the customer as it is, contacts sealed with the current key
// and hashed with the current hash key.
func (s *Store) save(ctx context.Context, q postgres.Querier, c *archive.Customer) error {
	prefs := []byte("{}")
	if c.Preferences != nil {
		var err error
		if prefs, err = protojson.Marshal(c.Preferences.Proto()); err != nil {
			return fmt.Errorf("store: preferences: %w", err)
		}
	}
	owners := c.Owners
	if owners == nil {
		owners = []string{}
	}
	_, err := q.Exec(ctx, `INSERT INTO customers (id, tenant_id, external_id, name, phone, email, phone_enc, email_enc, key_id, phone_hash, email_hash,
  tier, kind, referred_by, org_unit, owner_ids, preferences, version, source_updated_at, updated_at, hash_key_id)
VALUES ($1, $2, $3, $4, '', '', $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19)
ON CONFLICT (id) DO UPDATE SET name = EXCLUDED.name, phone = '', email = '', phone_enc = EXCLUDED.phone_enc, email_enc = EXCLUDED.email_enc,
  key_id = EXCLUDED.key_id, phone_hash = EXCLUDED.phone_hash, email_hash = EXCLUDED.email_hash, hash_key_id = EXCLUDED.hash_key_id, tier = EXCLUDED.tier, kind = EXCLUDED.kind,
  referred_by = EXCLUDED.referred_by, org_unit = EXCLUDED.org_unit, owner_ids = EXCLUDED.owner_ids, preferences = EXCLUDED.preferences,
  version = EXCLUDED.version, source_updated_at = EXCLUDED.source_updated_at, updated_at = EXCLUDED.updated_at`,
		c.ID, c.TenantID, c.ExternalID, c.Name, s.Cipher.Seal(c.Phone), s.Cipher.Seal(c.Email), s.Cipher.KeyID(),
		s.Cipher.HashPhone(c.Phone), s.Cipher.HashEmail(c.Email), c.Tier, c.KindOrDefault(), c.ReferredBy, c.OrgUnit, owners, prefs,
		c.Version, c.SourceUpdatedAt, c.UpdatedAt, s.Cipher.HashKeyID())
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
		row = q.QueryRow(ctx, `SELECT `+customerColumns+` FROM customers WHERE tenant_id = $1 AND id = $2`, k.Tenant, k.ID)
	case k.ExternalID != "":
		row = q.QueryRow(ctx, `SELECT `+customerColumns+` FROM customers WHERE tenant_id = $1 AND external_id = $2`, k.Tenant, k.ExternalID)
	default:
		row = q.QueryRow(ctx, `SELECT `+customerColumns+` FROM customers WHERE tenant_id = $1 AND phone_hash = $2 ORDER BY updated_at DESC LIMIT 1`,
			k.Tenant, s.Cipher.HashPhone(k.Phone))
	}
	return s.scanCustomer(row)
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
	rows, err := q.Query(ctx, `SELECT `+customerColumns+` FROM customers
WHERE tenant_id = $1 AND ($2 = '' OR tier = $2) AND ($5 = 0 OR cardinality(owner_ids) < $5) AND id > $3 ORDER BY id LIMIT $4`,
		f.Tenant, f.Tier, afterID, limit, f.FewerOwnersThan)
	if err != nil {
		return nil, wrap("list customers", err)
	}
	return s.scanCustomers(rows, "list customers")
}

// UpdateFunc decides a change of a locked customer: it changes c and says
// whether to save it.
type UpdateFunc func(c *archive.Customer) (save bool, err error)

// update runs fn on the customer that row read and locked (SELECT … FOR
// UPDATE) and saves it when fn says so.
func (s *Store) update(ctx context.Context, q postgres.Querier, row pgx.Row, fn UpdateFunc) (*archive.Customer, error) {
	c, err := s.scanCustomer(row)
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
	return s.update(ctx, q, q.QueryRow(ctx, `SELECT `+customerColumns+` FROM customers WHERE tenant_id = $1 AND id = $2 FOR UPDATE`, tenant, id), fn)
}

// UpdateCustomerByExternalID is UpdateCustomer by the upstream system's id.
func (s *Store) UpdateCustomerByExternalID(ctx context.Context, q postgres.Querier, tenant, externalID string, fn UpdateFunc) (*archive.Customer, error) {
	return s.update(ctx, q, q.QueryRow(ctx, `SELECT `+customerColumns+` FROM customers WHERE tenant_id = $1 AND external_id = $2 FOR UPDATE`, tenant, externalID), fn)
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
		return q.QueryRow(ctx, `SELECT `+customerColumns+` FROM customers WHERE tenant_id = $1 AND external_id = $2 FOR UPDATE`, tenant, externalID)
	}
	created := false
	c, err := s.scanCustomer(lock())
	if errors.Is(err, ErrNotFound) {
		tag, err := q.Exec(ctx, `INSERT INTO customers (id, tenant_id, external_id, source_updated_at, version) VALUES ($1, $2, $3, $4, 0)
ON CONFLICT (tenant_id, external_id) DO NOTHING`, outbox.NewEventID(), tenant, externalID, at)
		if err != nil {
			return nil, wrap("create customer", err)
		}
		created = tag.RowsAffected() == 1
		c, err = s.scanCustomer(lock())
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
	rows, err := q.Query(ctx, `SELECT `+customerColumns+` FROM customers WHERE tier <> '' AND id > $1 ORDER BY id LIMIT $2 FOR UPDATE SKIP LOCKED`, afterID, limit)
	if err != nil {
		return 0, afterID, wrap("tiered customers", err)
	}
	page, err := s.scanCustomers(rows, "tiered customers")
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
	rows, err := q.Query(ctx, `SELECT `+customerColumns+` FROM customers WHERE phone <> '' OR email <> '' FOR UPDATE`)
	if err != nil {
		return 0, wrap("legacy customers", err)
	}
	legacy, err := s.scanCustomers(rows, "legacy customers")
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
