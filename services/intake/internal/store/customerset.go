package store

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"google.golang.org/protobuf/encoding/protojson"

	"github.com/huifang/huifang/pkg/outbox"
	"github.com/huifang/huifang/pkg/postgres"
	"github.com/huifang/huifang/services/intake/internal/archive"
	"github.com/huifang/huifang/services/intake/internal/privacy"
)

// CustomerSet is customers of one tenant that a set-wise command (an
// import's batch) reads, locks and writes together: read in one statement
// (LockCustomerSet), changed in Go, written in a few whatever their number
// (SaveCustomerSet), where UpsertCustomer and its save take several
// statements per customer.
type CustomerSet struct {
	tenant string
	byExt  map[string]*member
	order  []*member
}

// member is one customer of a set.
type member struct {
	c *archive.Customer
	// key is the data key its fields are sealed under; nil for a new
	// customer (SaveCustomerSet makes one) and for one that has none
	// usable (not yet re-sealed, erased: saved one by one, as save does).
	key   *openedKey
	isNew bool
}

// LockCustomerSet reads the customers of tenant with these external ids,
// each with its data key, and locks them (FOR UPDATE, in id order, so that
// two sets lock their common customers alike); ids the archive does not
// hold are not in the set (Add them).
func (s *Store) LockCustomerSet(ctx context.Context, q postgres.Querier, tenant string, externalIDs []string) (*CustomerSet, error) {
	rows, err := q.Query(ctx, selectCustomers+` WHERE tenant_id = $1 AND external_id = ANY($2) ORDER BY id FOR UPDATE OF customers`,
		tenant, externalIDs)
	if err != nil {
		return nil, wrap("lock customers", err)
	}
	defer rows.Close()
	cs := &CustomerSet{tenant: tenant, byExt: make(map[string]*member, len(externalIDs))}
	for rows.Next() {
		c, key, err := s.scanSealed(ctx, rows)
		if err != nil {
			return nil, err
		}
		m := &member{c: c, key: key}
		cs.byExt[c.ExternalID], cs.order = m, append(cs.order, m)
	}
	if err := rows.Err(); err != nil {
		return nil, wrap("lock customers", err)
	}
	return cs, nil
}

// LockMore reads and locks the customers of the set's tenant with these
// external ids into cs, as LockCustomerSet does (ids the set holds already
// are not read again).
func (s *Store) LockMore(ctx context.Context, q postgres.Querier, cs *CustomerSet, externalIDs []string) error {
	var want []string
	for _, ext := range externalIDs {
		if _, ok := cs.byExt[ext]; !ok {
			want = append(want, ext)
		}
	}
	if len(want) == 0 {
		return nil
	}
	more, err := s.LockCustomerSet(ctx, q, cs.tenant, want)
	if err != nil {
		return err
	}
	for _, m := range more.order {
		cs.byExt[m.c.ExternalID], cs.order = m, append(cs.order, m)
	}
	return nil
}

// Customer is the customer of externalID the set holds.
func (cs *CustomerSet) Customer(externalID string) (*archive.Customer, bool) {
	m, ok := cs.byExt[externalID]
	if !ok {
		return nil, false
	}
	return m.c, true
}

// Add puts a customer the archive does not hold into the set, as
// UpsertCustomer creates one: a new id, version 0, source time at, the
// rest empty (the column defaults). SaveCustomerSet inserts it.
func (cs *CustomerSet) Add(externalID string, at time.Time) *archive.Customer {
	c := &archive.Customer{ID: outbox.NewEventID(), TenantID: cs.tenant, ExternalID: externalID,
		Record: archive.Record{Kind: archive.KindIndividual, Owners: []string{}, SourceUpdatedAt: at}}
	m := &member{c: c, isNew: true}
	cs.byExt[externalID], cs.order = m, append(cs.order, m)
	return c
}

// Customers lists the set's customers: those read, then those added.
func (cs *CustomerSet) Customers() []*archive.Customer {
	out := make([]*archive.Customer, len(cs.order))
	for i, m := range cs.order {
		out[i] = m.c
	}
	return out
}

// The staging table of SaveCustomerSet: the rows to write, as customers
// will hold them, with the data keys of the new ones, filled by COPY. It is
// the session's (made at its first import, so that the merge's plan is
// prepared once per connection) and emptied at every commit.
const stageTable = `SET LOCAL client_min_messages = warning;
CREATE TEMP TABLE IF NOT EXISTS customer_stage (
  n int NOT NULL, id text NOT NULL, external_id text NOT NULL, is_new boolean NOT NULL,
  name_enc bytea, phone_enc bytea, email_enc bytea, dek_version bigint NOT NULL,
  phone_hash text NOT NULL, email_hash text NOT NULL, hash_key_id text NOT NULL,
  tier text NOT NULL, kind text NOT NULL, referred_by text NOT NULL, org_unit text NOT NULL,
  owner_ids text[] NOT NULL, preferences jsonb NOT NULL, version bigint NOT NULL,
  source_updated_at timestamptz NOT NULL, updated_at timestamptz NOT NULL,
  kek_id text, wrapped bytea, upstream_tier text NOT NULL, search_hashes text[] NOT NULL
) ON COMMIT DELETE ROWS;
DELETE FROM customer_stage`

var stageColumns = []string{"n", "id", "external_id", "is_new", "name_enc", "phone_enc", "email_enc", "dek_version",
	"phone_hash", "email_hash", "hash_key_id", "tier", "kind", "referred_by", "org_unit",
	"owner_ids", "preferences", "version", "source_updated_at", "updated_at", "kek_id", "wrapped", "upstream_tier", "search_hashes"}

// mergeStage writes the staged rows into customers in one statement: the
// new ones inserted with their data keys unless a concurrent writer created
// the same (tenant, external id) meanwhile (their external ids are
// returned, nothing of them written), the others updated (rows the caller
// holds locked). The new ones go in the order of their external ids, the
// unique key's: two merges that insert some of the same customers (an
// import's calls in flight, a customer repeated in both) wait for each
// other's key in one order, where in the records' order each could wait
// for a key the other inserted first (a deadlock).
const mergeStage = mergeWrites + `
SELECT s.external_id FROM customer_stage s
WHERE s.is_new AND NOT EXISTS (SELECT 1 FROM inserted i WHERE i.id = s.id)
ORDER BY s.n`

// mergeStageWritesAfter is mergeStage that sets plan_cache_mode to auto
// for the rest of the transaction (SaveCustomerSetWritesAfter), once (a
// one-time filter).
const mergeStageWritesAfter = mergeWrites + `
SELECT s.external_id FROM customer_stage s
WHERE s.is_new AND NOT EXISTS (SELECT 1 FROM inserted i WHERE i.id = s.id)
  AND (SELECT set_config('plan_cache_mode', 'auto', true)) <> ''
ORDER BY s.n`

// mergeWrites are the writes of mergeStage.
const mergeWrites = `WITH inserted AS (
  INSERT INTO customers (id, tenant_id, external_id, name, phone, email, name_enc, phone_enc, email_enc, key_id, dek_version,
    phone_hash, email_hash, hash_key_id, tier, kind, referred_by, org_unit, owner_ids, preferences, version, source_updated_at, updated_at, upstream_tier,
    search_hashes)
  SELECT id, $1, external_id, '', '', '', name_enc, phone_enc, email_enc, '', dek_version,
    phone_hash, email_hash, hash_key_id, tier, kind, referred_by, org_unit, owner_ids, preferences, version, source_updated_at, updated_at, upstream_tier,
    search_hashes
  FROM customer_stage WHERE is_new ORDER BY external_id
  ON CONFLICT (tenant_id, external_id) DO NOTHING
  RETURNING id
), keys AS (
  INSERT INTO customer_keys (tenant_id, customer_id, version, kek_id, wrapped)
  SELECT $1, s.id, s.dek_version, s.kek_id, s.wrapped FROM customer_stage s JOIN inserted i ON i.id = s.id
), updated AS (
  UPDATE customers c SET name = '', phone = '', email = '', name_enc = s.name_enc, phone_enc = s.phone_enc, email_enc = s.email_enc,
    key_id = '', dek_version = s.dek_version, phone_hash = s.phone_hash, email_hash = s.email_hash, hash_key_id = s.hash_key_id,
    tier = s.tier, kind = s.kind, referred_by = s.referred_by, org_unit = s.org_unit, owner_ids = s.owner_ids,
    preferences = s.preferences, version = s.version, source_updated_at = s.source_updated_at, updated_at = s.updated_at,
    upstream_tier = s.upstream_tier, search_hashes = s.search_hashes
  FROM customer_stage s WHERE NOT s.is_new AND c.tenant_id = $1 AND c.id = s.id
)`

// SaveCustomerSet writes the customers of cs listed in save (changed in
// Go, each once) as save would, set-wise: name, phone and email sealed
// under the customer's data key (a new customer's made and wrapped here),
// the rows and new keys copied into a staging table and written by one
// statement. It returns the external ids of new customers a concurrent
// writer created meanwhile: nothing of those is written (their keys
// neither), the caller merges them again the one-record way. A customer
// without a usable data key (not yet re-sealed, erased) is saved on its own.
func (s *Store) SaveCustomerSet(ctx context.Context, q postgres.Querier, cs *CustomerSet, save []*archive.Customer) (taken []string, err error) {
	return s.saveCustomerSet(ctx, q, cs, save, mergeStage)
}

// SaveCustomerSetWritesAfter is SaveCustomerSet for a transaction that
// only writes after it (the ingress batch's: its services, its outbox
// rows). Its merge leaves plan_cache_mode at auto for the rest of the
// transaction, as AddServices does, so that the foreign key's check of
// each new customer's data key (customer_keys.customer_id, a query of its
// own per row, its plan cached per connection) is planned a few times per
// connection and then reused, where the pools' force_custom_plan planned it
// again for every new customer. The pool's mode is back at the commit.
func (s *Store) SaveCustomerSetWritesAfter(ctx context.Context, q postgres.Querier, cs *CustomerSet, save []*archive.Customer) (taken []string, err error) {
	return s.saveCustomerSet(ctx, q, cs, save, mergeStageWritesAfter)
}

// saveCustomerSet is SaveCustomerSet merging with the statement merge.
func (s *Store) saveCustomerSet(ctx context.Context, q postgres.Querier, cs *CustomerSet, save []*archive.Customer, merge string) (taken []string, err error) {
	if len(save) == 0 {
		return nil, nil
	}
	hashKeyID := s.Cipher.HashKeyID()
	var (
		rows  [][]any
		alone []*archive.Customer
	)
	for _, c := range save {
		m, ok := cs.byExt[c.ExternalID]
		if !ok || m.c != c {
			return nil, fmt.Errorf("store: customer %s is not of the set", c.ID)
		}
		key, kekID, wrapped := m.key, "", []byte(nil)
		if m.isNew {
			const version = 1 // as dataKey makes the first one
			raw := privacy.NewDataKey()
			var err error
			kekID, wrapped, err = s.keys().Wrap(ctx, cs.tenant, raw, privacy.DataKeyAAD(c.ID, version))
			if err != nil {
				return nil, fmt.Errorf("store: customer %s: wrap a data key: %w", c.ID, err)
			}
			dk, err := privacy.OpenDataKey(raw)
			if err != nil {
				return nil, err
			}
			key = &openedKey{dk: dk, version: version}
		}
		if key == nil {
			alone = append(alone, c)
			continue
		}
		prefs, err := preferencesJSON(c)
		if err != nil {
			return nil, err
		}
		sealed := func(field, v string) []byte {
			return key.dk.Seal(v, privacy.FieldAAD(c.TenantID, c.ID, field, key.version))
		}
		rows = append(rows, []any{len(rows), c.ID, c.ExternalID, m.isNew,
			sealed(fieldName, c.Name), sealed(fieldPhone, c.Phone), sealed(fieldEmail, c.Email), key.version,
			s.Cipher.HashPhone(c.Phone), s.Cipher.HashEmail(c.Email), hashKeyID,
			c.Tier, c.KindOrDefault(), c.ReferredBy, c.OrgUnit, ownersOf(c), prefs, c.Version, c.SourceUpdatedAt, c.UpdatedAt, nullable(kekID), wrapped, c.UpstreamTier, s.searchHashes(c)})
	}
	if len(rows) > 0 {
		if taken, err = s.mergeRows(ctx, q, cs.tenant, rows, merge); err != nil {
			return nil, err
		}
	}
	for _, c := range alone {
		if err := s.save(ctx, q, c); err != nil {
			return nil, err
		}
	}
	return taken, nil
}

// mergeRows copies rows into the staging table and merges them into
// customers with the statement merge (mergeStage or a variant).
func (s *Store) mergeRows(ctx context.Context, q postgres.Querier, tenant string, rows [][]any, merge string) ([]string, error) {
	// The staging table's statements go alone (several commands in one
	// string cannot ride in a pipeline's batch): what a pipeline holds
	// goes first.
	if p, ok := q.(*postgres.Pipeline); ok {
		if err := p.Flush(ctx); err != nil {
			return nil, wrap("staging table", err)
		}
	}
	if _, err := q.Exec(ctx, stageTable); err != nil {
		return nil, wrap("staging table", err)
	}
	if _, err := q.CopyFrom(ctx, pgx.Identifier{"customer_stage"}, stageColumns, pgx.CopyFromRows(rows)); err != nil {
		return nil, wrap("copy customers", err)
	}
	res, err := q.Query(ctx, merge, tenant)
	if err != nil {
		return nil, wrap("merge customers", err)
	}
	taken, err := pgx.CollectRows(res, pgx.RowTo[string])
	if err != nil {
		return nil, wrap("merge customers", err)
	}
	return taken, nil
}

// preferencesJSON is what the preferences column holds of c's preferences.
func preferencesJSON(c *archive.Customer) ([]byte, error) {
	if c.Preferences == nil {
		return []byte("{}"), nil
	}
	prefs, err := protojson.Marshal(c.Preferences.Proto())
	if err != nil {
		return nil, fmt.Errorf("store: preferences: %w", err)
	}
	return prefs, nil
}

// nullable is s, NULL when empty.
func nullable(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

// ownersOf is what the owner_ids column holds of c's owners.
func ownersOf(c *archive.Customer) []string {
	if c.Owners == nil {
		return []string{}
	}
	return c.Owners
}
