// Package store keeps intake's customer archive, service records, service
// types and rejected inputs in Postgres.
package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	eventsv1 "github.com/huifang/huifang/proto/huifang/events/v1"
	typesv1 "github.com/huifang/huifang/proto/huifang/types/v1"

	"github.com/huifang/huifang/pkg/outbox"
	"github.com/huifang/huifang/pkg/stream"
	"github.com/huifang/huifang/services/intake/internal/archive"
	"github.com/huifang/huifang/services/intake/internal/privacy"
	"github.com/huifang/huifang/services/intake/internal/tier"
)

// ErrNotFound is returned when a customer or a rejected input does not exist.
var ErrNotFound = errors.New("not found")

// Result is what ingesting one event did.
type Result struct {
	ServiceID  string
	CustomerID string
	// Duplicate is true when the event was seen before (the same source ids,
	// or the same complaint through another channel) and nothing changed.
	Duplicate bool
}

// Store is intake's storage.
type Store struct {
	Pool   *pgxpool.Pool
	Cipher *privacy.Cipher
	Rules  []tier.Rule
	Now    func() time.Time
}

// Customer is a customer of the archive, decrypted.
type Customer struct {
	ID, TenantID, ExternalID string
	archive.Record
	Tier      string
	Version   int64
	UpdatedAt time.Time
	Metrics   tier.Metrics
}

// Proto is the customer's snapshot as events carry it (contacts in clear:
// events stay inside Huifang; API responses mask them).
func (c *Customer) Proto() *typesv1.Customer {
	kind := c.Kind
	if kind == "" {
		kind = "individual"
	}
	return &typesv1.Customer{
		Id: c.ID, ExternalId: c.ExternalID, Name: c.Name, Phone: c.Phone, Email: c.Email, Tier: c.Tier,
		Preferences: c.Preferences, OwnerIds: c.Owners, OrgUnit: c.OrgUnit, Kind: kind, ReferredBy: c.ReferredBy,
	}
}

// TenantTypes returns the service types the tenant registered.
func TenantTypes(ctx context.Context, q pgx.Tx, tenant string) ([]string, error) {
	rows, err := q.Query(ctx, `SELECT name FROM service_types WHERE tenant_id = $1 ORDER BY name`, tenant)
	if err != nil {
		return nil, fmt.Errorf("store: tenant types: %w", err)
	}
	names, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, fmt.Errorf("store: tenant types: %w", err)
	}
	return names, nil
}

// Ingest stores a validated event within tx: the customer (created or merged
// by the archive's rule, its tier re-evaluated), the service record, the
// ServiceCompleted event and, when the customer changed, CustomerUpdated, all
// through the outbox. A resend of the same (tenant, source_system,
// source_event_id), or the same complaint reference for the same customer
// through another channel (seed 000), changes nothing.
func (s *Store) Ingest(ctx context.Context, tx pgx.Tx, ev *eventsv1.ServiceCompleted) (Result, error) {
	var res Result
	err := tx.QueryRow(ctx, `SELECT id, customer_id FROM services WHERE tenant_id = $1 AND source_system = $2 AND source_event_id = $3`,
		ev.TenantId, ev.SourceSystem, ev.SourceEventId).Scan(&res.ServiceID, &res.CustomerID)
	switch {
	case err == nil:
		res.Duplicate = true
		return res, nil
	case !errors.Is(err, pgx.ErrNoRows):
		return res, fmt.Errorf("store: look up service: %w", err)
	}
	cust, err := s.lockByExternalID(ctx, tx, ev.TenantId, ev.Customer.ExternalId)
	if err != nil {
		return res, err
	}
	ref := ev.GetComplaint().GetReference()
	if cust != nil && ref != "" {
		err := tx.QueryRow(ctx, `SELECT id FROM services WHERE tenant_id = $1 AND customer_id = $2 AND complaint_ref = $3`,
			ev.TenantId, cust.ID, ref).Scan(&res.ServiceID)
		switch {
		case err == nil:
			res.CustomerID, res.Duplicate = cust.ID, true
			return res, nil
		case !errors.Is(err, pgx.ErrNoRows):
			return res, fmt.Errorf("store: look up complaint: %w", err)
		}
	}
	at := ev.CompletedAt.AsTime()
	if ev.SourceUpdatedAt != nil {
		at = ev.SourceUpdatedAt.AsTime()
	}
	in := archive.FromProto(ev.Customer, at)
	in.Owners = archive.AddOwners(in.Owners, ev.StaffId)
	if in.OrgUnit == "" {
		in.OrgUnit = ev.OrgUnit
	}
	cust, changed, err := s.merge(ctx, tx, ev.TenantId, ev.Customer.ExternalId, cust, in)
	if err != nil {
		return res, err
	}
	res.CustomerID = cust.ID

	var product, vehicle, complaint []byte
	if product, err = marshal(ev.Product); err == nil {
		if vehicle, err = marshal(ev.Vehicle); err == nil {
			complaint, err = marshal(ev.Complaint)
		}
	}
	if err != nil {
		return res, fmt.Errorf("store: service details: %w", err)
	}
	res.ServiceID = outbox.NewEventID()
	if _, err := tx.Exec(ctx, `INSERT INTO services (id, tenant_id, source_system, source_event_id, service_type, completed_at, customer_id, org_unit, staff_id, amount_minor, product, vehicle, vin, complaint, complaint_ref, claim_amount_minor)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16)`,
		res.ServiceID, ev.TenantId, ev.SourceSystem, ev.SourceEventId, ev.ServiceType, ev.CompletedAt.AsTime(), cust.ID,
		ev.OrgUnit, ev.StaffId, ev.AmountMinor, nullJSON(product), nullJSON(vehicle), ev.GetVehicle().GetVin(), nullJSON(complaint), ref, ev.ClaimAmountMinor); err != nil {
		return res, fmt.Errorf("store: insert service: %w", err)
	}
	if err := s.finish(ctx, tx, cust, changed); err != nil {
		return res, err
	}
	out := proto.CloneOf(ev)
	out.ServiceId = res.ServiceID
	out.EventId = outbox.NewEventID()
	out.Customer = cust.Proto()
	if _, err := outbox.Add(ctx, tx, outbox.Message{ID: out.EventId, Subject: stream.SubjectServiceCompleted, Payload: out}); err != nil {
		return res, err
	}
	return res, nil
}

// Outcome is what upserting one customer record did.
type Outcome int

// Outcomes of UpsertCustomer.
const (
	Created Outcome = iota + 1
	Updated
	Unchanged
)

// UpsertCustomer merges one archive record within tx by the archive's rule,
// re-evaluates the tier and announces a change with CustomerUpdated.
func (s *Store) UpsertCustomer(ctx context.Context, tx pgx.Tx, tenant string, c *typesv1.Customer, at time.Time) (Outcome, string, error) {
	cust, err := s.lockByExternalID(ctx, tx, tenant, c.ExternalId)
	if err != nil {
		return 0, "", err
	}
	cust, changed, err := s.merge(ctx, tx, tenant, c.ExternalId, cust, archive.FromProto(c, at))
	if err != nil {
		return 0, "", err
	}
	isNew := cust.Version == 0
	before := cust.Version
	if err := s.finish(ctx, tx, cust, changed); err != nil {
		return 0, "", err
	}
	switch {
	case isNew:
		return Created, cust.ID, nil
	case cust.Version != before:
		return Updated, cust.ID, nil
	}
	return Unchanged, cust.ID, nil
}

// merge applies in to the locked customer cur and returns what changed. When
// cur is nil the customer is created first (INSERT … ON CONFLICT DO NOTHING,
// then locked), so two writers creating the same customer at once queue on
// its row instead of failing.
func (s *Store) merge(ctx context.Context, tx pgx.Tx, tenant, externalID string, cur *Customer, in archive.Record) (*Customer, []string, error) {
	var created []string
	if cur == nil {
		tag, err := tx.Exec(ctx, `INSERT INTO customers (id, tenant_id, external_id, source_updated_at, version) VALUES ($1, $2, $3, $4, 0)
ON CONFLICT (tenant_id, external_id) DO NOTHING`, outbox.NewEventID(), tenant, externalID, in.SourceUpdatedAt)
		if err != nil {
			return nil, nil, fmt.Errorf("store: create customer: %w", err)
		}
		if tag.RowsAffected() == 1 {
			created = []string{"created"}
		}
		if cur, err = s.lockByExternalID(ctx, tx, tenant, externalID); err != nil {
			return nil, nil, err
		}
		if cur == nil {
			return nil, nil, fmt.Errorf("store: customer %s/%s vanished", tenant, externalID)
		}
	}
	return cur, append(created, archive.Merge(&cur.Record, in)...), nil
}

// finish re-evaluates the customer's tier and, when anything changed, bumps
// the version, saves it and writes CustomerUpdated. A new referral re-evaluates
// the referrer too.
func (s *Store) finish(ctx context.Context, tx pgx.Tx, c *Customer, changed []string) error {
	if err := s.evaluate(ctx, tx, c, &changed); err != nil {
		return err
	}
	if len(changed) == 0 {
		return nil
	}
	c.Version++
	if err := s.save(ctx, tx, c); err != nil {
		return err
	}
	if err := s.announce(ctx, tx, c, changed); err != nil {
		return err
	}
	for _, f := range changed {
		if f == "referred_by" && c.ReferredBy != "" {
			ref, err := s.lockByExternalID(ctx, tx, c.TenantID, c.ReferredBy)
			if err != nil || ref == nil {
				return err
			}
			return s.finish(ctx, tx, ref, nil)
		}
	}
	return nil
}

// evaluate reads the figures the tier rules need and sets the tier.
func (s *Store) evaluate(ctx context.Context, tx pgx.Tx, c *Customer, changed *[]string) error {
	if err := s.metrics(ctx, tx, c.TenantID, []*Customer{c}); err != nil {
		return err
	}
	if t := tier.Evaluate(s.Rules, c.Metrics); t != c.Tier {
		c.Tier = t
		*changed = append(*changed, "tier")
	}
	return nil
}

// querier runs a query: a pool or a transaction.
type querier interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
}

// metrics sets the figures the tier rules read (the last 365 days' spend,
// claims and cars, and the referrals) of customers of one tenant, in one
// query however many they are.
func (s *Store) metrics(ctx context.Context, q querier, tenant string, cs []*Customer) error {
	if len(cs) == 0 {
		return nil
	}
	ids, exts := make([]string, len(cs)), make([]string, len(cs))
	byID := make(map[string]*Customer, len(cs))
	for i, c := range cs {
		ids[i], exts[i] = c.ID, c.ExternalID
		byID[c.ID] = c
		c.Metrics = tier.Metrics{Kind: c.Kind}
	}
	rows, err := q.Query(ctx, `WITH c AS (SELECT * FROM unnest($1::text[], $2::text[]) AS c (id, ext))
SELECT c.id, coalesce(s.spend, 0), coalesce(s.claims, 0), coalesce(s.cars, 0), coalesce(r.n, 0)
FROM c
LEFT JOIN (SELECT customer_id, sum(amount_minor)::bigint AS spend, sum(claim_amount_minor)::bigint AS claims,
    count(DISTINCT vin) FILTER (WHERE vin <> '' AND service_type IN ('purchase', 'vehicle_delivery')) AS cars
  FROM services WHERE customer_id = ANY($1) AND completed_at > $3 GROUP BY customer_id) s ON s.customer_id = c.id
LEFT JOIN (SELECT referred_by, count(*) AS n FROM customers
  WHERE tenant_id = $4 AND referred_by = ANY($2) GROUP BY referred_by) r ON r.referred_by = c.ext`,
		ids, exts, s.Now().AddDate(-1, 0, 0), tenant)
	if err != nil {
		return fmt.Errorf("store: tier metrics: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var (
			id string
			m  tier.Metrics
		)
		if err := rows.Scan(&id, &m.SpendYearMinor, &m.ClaimsYearMinor, &m.CarsYear, &m.Referrals); err != nil {
			return fmt.Errorf("store: tier metrics: %w", err)
		}
		if c := byID[id]; c != nil {
			m.Kind = c.Kind
			c.Metrics = m
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("store: tier metrics: %w", err)
	}
	return nil
}

func (s *Store) announce(ctx context.Context, tx pgx.Tx, c *Customer, changed []string) error {
	ev := &eventsv1.CustomerUpdated{
		EventId: outbox.NewEventID(), TenantId: c.TenantID, Customer: c.Proto(), Version: c.Version,
		ChangedFields: changed, UpdatedAt: timestamppb.New(s.Now()),
	}
	if _, err := outbox.Add(ctx, tx, outbox.Message{ID: ev.EventId, Subject: stream.SubjectCustomerUpdated, Payload: ev}); err != nil {
		return fmt.Errorf("store: customer updated: %w", err)
	}
	return nil
}

// save writes the customer, contacts sealed with the current key.
func (s *Store) save(ctx context.Context, tx pgx.Tx, c *Customer) error {
	prefs := []byte("{}")
	if c.Preferences != nil {
		var err error
		if prefs, err = protojson.Marshal(c.Preferences); err != nil {
			return fmt.Errorf("store: preferences: %w", err)
		}
	}
	owners := c.Owners
	if owners == nil {
		owners = []string{}
	}
	kind := c.Kind
	if kind == "" {
		kind = "individual"
	}
	_, err := tx.Exec(ctx, `INSERT INTO customers (id, tenant_id, external_id, name, phone, email, phone_enc, email_enc, key_id, phone_hash, email_hash,
  tier, kind, referred_by, org_unit, owner_ids, preferences, version, source_updated_at, updated_at, hash_key_id)
VALUES ($1, $2, $3, $4, '', '', $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19)
ON CONFLICT (id) DO UPDATE SET name = EXCLUDED.name, phone = '', email = '', phone_enc = EXCLUDED.phone_enc, email_enc = EXCLUDED.email_enc,
  key_id = EXCLUDED.key_id, phone_hash = EXCLUDED.phone_hash, email_hash = EXCLUDED.email_hash, hash_key_id = EXCLUDED.hash_key_id, tier = EXCLUDED.tier, kind = EXCLUDED.kind,
  referred_by = EXCLUDED.referred_by, org_unit = EXCLUDED.org_unit, owner_ids = EXCLUDED.owner_ids, preferences = EXCLUDED.preferences,
  version = EXCLUDED.version, source_updated_at = EXCLUDED.source_updated_at, updated_at = EXCLUDED.updated_at`,
		c.ID, c.TenantID, c.ExternalID, c.Name, s.Cipher.Seal(c.Phone), s.Cipher.Seal(c.Email), s.Cipher.KeyID(),
		s.Cipher.HashPhone(c.Phone), s.Cipher.HashEmail(c.Email), c.Tier, kind, c.ReferredBy, c.OrgUnit, owners, prefs,
		c.Version, c.SourceUpdatedAt, s.Now(), s.Cipher.HashKeyID())
	if err != nil {
		return fmt.Errorf("store: save customer: %w", err)
	}
	return nil
}

const customerColumns = `id, tenant_id, external_id, name, phone, email, phone_enc, email_enc, key_id, tier, kind, referred_by, org_unit,
  owner_ids, preferences, version, source_updated_at, updated_at`

func (s *Store) scanCustomer(row pgx.Row) (*Customer, error) {
	var (
		c                  Customer
		legacyPhone, legEm string
		phoneEnc, emailEnc []byte
		keyID              string
		prefs              []byte
	)
	err := row.Scan(&c.ID, &c.TenantID, &c.ExternalID, &c.Name, &legacyPhone, &legEm, &phoneEnc, &emailEnc, &keyID, &c.Tier, &c.Kind,
		&c.ReferredBy, &c.OrgUnit, &c.Owners, &prefs, &c.Version, &c.SourceUpdatedAt, &c.UpdatedAt)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("store: read customer: %w", err)
	}
	// Rows written before encryption keep clear contacts until their next save.
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
		c.Preferences = &typesv1.ContactPreferences{}
		if err := protojson.Unmarshal(prefs, c.Preferences); err != nil {
			return nil, fmt.Errorf("store: customer %s preferences: %w", c.ID, err)
		}
	}
	return &c, nil
}

// lockByExternalID reads and locks a customer; nil when there is none.
func (s *Store) lockByExternalID(ctx context.Context, tx pgx.Tx, tenant, externalID string) (*Customer, error) {
	c, err := s.scanCustomer(tx.QueryRow(ctx, `SELECT `+customerColumns+` FROM customers WHERE tenant_id = $1 AND external_id = $2 FOR UPDATE`, tenant, externalID))
	if errors.Is(err, ErrNotFound) {
		return nil, nil
	}
	return c, err
}

// CustomerQuery finds one customer: by id, external id or phone (the first set).
type CustomerQuery struct {
	Tenant, ID, ExternalID, Phone string
}

// GetCustomer finds a customer, with the figures its tier was computed from.
func (s *Store) GetCustomer(ctx context.Context, q CustomerQuery) (*Customer, error) {
	var row pgx.Row
	switch {
	case q.ID != "":
		row = s.Pool.QueryRow(ctx, `SELECT `+customerColumns+` FROM customers WHERE tenant_id = $1 AND id = $2`, q.Tenant, q.ID)
	case q.ExternalID != "":
		row = s.Pool.QueryRow(ctx, `SELECT `+customerColumns+` FROM customers WHERE tenant_id = $1 AND external_id = $2`, q.Tenant, q.ExternalID)
	default:
		row = s.Pool.QueryRow(ctx, `SELECT `+customerColumns+` FROM customers WHERE tenant_id = $1 AND phone_hash = $2 ORDER BY updated_at DESC LIMIT 1`,
			q.Tenant, s.Cipher.HashPhone(q.Phone))
	}
	c, err := s.scanCustomer(row)
	if err != nil {
		return nil, err
	}
	// Reading never changes the archive: the figures are shown, the tier stays.
	if err := s.metrics(ctx, s.Pool, c.TenantID, []*Customer{c}); err != nil {
		return nil, err
	}
	return c, nil
}

// CustomerFilter narrows ListCustomers.
type CustomerFilter struct {
	Tenant string
	// Tier, when set, lists one tier.
	Tier string
	// FewerThanTwoOwners lists customers known to fewer than two staff (seed 002).
	FewerThanTwoOwners bool
}

// ListCustomers lists customers by id after the cursor, with the figures
// their tiers are computed from (one query for the whole page).
func (s *Store) ListCustomers(ctx context.Context, f CustomerFilter, limit int, afterID string) ([]*Customer, error) {
	rows, err := s.Pool.Query(ctx, `SELECT `+customerColumns+` FROM customers
WHERE tenant_id = $1 AND ($2 = '' OR tier = $2) AND (NOT $5 OR cardinality(owner_ids) < 2) AND id > $3 ORDER BY id LIMIT $4`,
		f.Tenant, f.Tier, afterID, limit, f.FewerThanTwoOwners)
	if err != nil {
		return nil, fmt.Errorf("store: list customers: %w", err)
	}
	defer rows.Close()
	var out []*Customer
	for rows.Next() {
		c, err := s.scanCustomer(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, c)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("store: list customers: %w", err)
	}
	if err := s.metrics(ctx, s.Pool, f.Tenant, out); err != nil {
		return nil, err
	}
	return out, nil
}

// UpdateCustomer changes a customer by id with fn inside a transaction that
// holds its row lock; fn returns the names of the fields it changed. A change
// bumps the version and writes CustomerUpdated.
func (s *Store) UpdateCustomer(ctx context.Context, tenant, id string, fn func(c *Customer) ([]string, error)) (*Customer, error) {
	var out *Customer
	err := pgx.BeginFunc(ctx, s.Pool, func(tx pgx.Tx) error {
		c, err := s.scanCustomer(tx.QueryRow(ctx, `SELECT `+customerColumns+` FROM customers WHERE tenant_id = $1 AND id = $2 FOR UPDATE`, tenant, id))
		if err != nil {
			return err
		}
		changed, err := fn(c)
		if err != nil {
			return err
		}
		if err := s.finish(ctx, tx, c, changed); err != nil {
			return err
		}
		out = c
		return nil
	})
	return out, err
}

// EncryptLegacy seals the contacts of rows written before encryption and
// returns how many it changed.
func (s *Store) EncryptLegacy(ctx context.Context) (int, error) {
	n := 0
	err := pgx.BeginFunc(ctx, s.Pool, func(tx pgx.Tx) error {
		rows, err := tx.Query(ctx, `SELECT `+customerColumns+` FROM customers WHERE phone <> '' OR email <> '' FOR UPDATE`)
		if err != nil {
			return fmt.Errorf("store: legacy rows: %w", err)
		}
		var legacy []*Customer
		for rows.Next() {
			c, err := s.scanCustomer(rows)
			if err != nil {
				rows.Close()
				return err
			}
			legacy = append(legacy, c)
		}
		rows.Close()
		for _, c := range legacy {
			if err := s.save(ctx, tx, c); err != nil {
				return err
			}
		}
		n = len(legacy)
		return rows.Err()
	})
	return n, err
}

// RegisterType adds a tenant-defined service type; registering it again
// updates its description.
func (s *Store) RegisterType(ctx context.Context, tenant, name, description string) error {
	if _, err := s.Pool.Exec(ctx, `INSERT INTO service_types (tenant_id, name, description) VALUES ($1, $2, $3)
ON CONFLICT (tenant_id, name) DO UPDATE SET description = EXCLUDED.description`, tenant, name, description); err != nil {
		return fmt.Errorf("store: register type: %w", err)
	}
	return nil
}

// ServiceType is a tenant-defined type.
type ServiceType struct{ Name, Description string }

// ListTypes lists the tenant's own service types.
func (s *Store) ListTypes(ctx context.Context, tenant string) ([]ServiceType, error) {
	rows, err := s.Pool.Query(ctx, `SELECT name, description FROM service_types WHERE tenant_id = $1 ORDER BY name`, tenant)
	if err != nil {
		return nil, fmt.Errorf("store: list types: %w", err)
	}
	types, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (ServiceType, error) {
		var t ServiceType
		return t, r.Scan(&t.Name, &t.Description)
	})
	if err != nil {
		return nil, fmt.Errorf("store: list types: %w", err)
	}
	return types, nil
}

func marshal(m proto.Message) ([]byte, error) {
	if m == nil || !m.ProtoReflect().IsValid() {
		return nil, nil
	}
	return protojson.Marshal(m)
}

func nullJSON(b []byte) any {
	if b == nil {
		return nil
	}
	return json.RawMessage(b)
}

// Rejected is one row of rejected_events.
type Rejected struct {
	ID, Tenant, Source, Field, Reason, ContentType string
	Payload                                        []byte
	ReceivedAt                                     time.Time
	ReplayedAt                                     *time.Time
	ReplayedServiceID                              string
	// OpenErr is set (and Payload empty) when the stored payload does not
	// open, e.g. its key was taken out of ENCRYPTION_KEYS: the row is still
	// listed, but cannot be replayed as it is.
	OpenErr error
}

const rejectedColumns = `id, tenant_id, source, field, reason, content_type, payload, received_at, replayed_at, replayed_service_id`

// scanRejected reads a row of rejected_events, its payload decrypted (rows
// stored before sealing are read as they are).
func (s *Store) scanRejected(r pgx.Row) (Rejected, error) {
	var x Rejected
	err := r.Scan(&x.ID, &x.Tenant, &x.Source, &x.Field, &x.Reason, &x.ContentType, &x.Payload, &x.ReceivedAt, &x.ReplayedAt, &x.ReplayedServiceID)
	if err != nil {
		return x, err
	}
	if x.Payload, err = s.Cipher.OpenPayload(x.Payload); err != nil {
		x.Payload, x.OpenErr = nil, fmt.Errorf("store: rejected %s: %w", x.ID, err)
	}
	return x, nil
}

// SealPayload is the inbox.Sealer of intake: refused payloads are kept
// encrypted at rest with the current key (seeds 000, 001).
func (s *Store) SealPayload(_ context.Context, payload []byte) ([]byte, error) {
	return s.Cipher.SealPayload(payload), nil
}

// SealLegacyRejected encrypts the payloads of rejected inputs stored before
// sealing, a batch per transaction, and returns how many it sealed.
func (s *Store) SealLegacyRejected(ctx context.Context, batch int) (int, error) {
	total := 0
	for {
		n := 0
		err := pgx.BeginFunc(ctx, s.Pool, func(tx pgx.Tx) error {
			rows, err := tx.Query(ctx, `SELECT id, payload FROM rejected_events
WHERE length(payload) > 0 AND substring(payload FROM 1 FOR $2) <> $3 ORDER BY id LIMIT $1 FOR UPDATE SKIP LOCKED`,
				batch, len(privacy.SealedPrefix()), privacy.SealedPrefix())
			if err != nil {
				return fmt.Errorf("store: legacy rejected: %w", err)
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
				return fmt.Errorf("store: legacy rejected: %w", err)
			}
			for _, x := range list {
				if _, err := tx.Exec(ctx, `UPDATE rejected_events SET payload = $2 WHERE id = $1`, x.id, s.Cipher.SealPayload(x.payload)); err != nil {
					return fmt.Errorf("store: seal rejected %s: %w", x.id, err)
				}
			}
			n = len(list)
			return nil
		})
		total += n
		if err != nil || n < batch {
			return total, err
		}
	}
}

// ListRejected lists rejected inputs newest first, after the cursor (received_at, id).
func (s *Store) ListRejected(ctx context.Context, tenant string, limit int, afterTime time.Time, afterID string) ([]Rejected, error) {
	rows, err := s.Pool.Query(ctx, `SELECT `+rejectedColumns+`
FROM rejected_events WHERE tenant_id = $1 AND ($3 = '' OR (received_at, id) < ($2, $3))
ORDER BY received_at DESC, id DESC LIMIT $4`, tenant, afterTime, afterID, limit)
	if err != nil {
		return nil, fmt.Errorf("store: list rejected: %w", err)
	}
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (Rejected, error) { return s.scanRejected(r) })
}

// GetRejected returns one rejected input.
func (s *Store) GetRejected(ctx context.Context, tenant, id string) (Rejected, error) {
	x, err := s.scanRejected(s.Pool.QueryRow(ctx, `SELECT `+rejectedColumns+` FROM rejected_events WHERE tenant_id = $1 AND id = $2`, tenant, id))
	if errors.Is(err, pgx.ErrNoRows) {
		return x, ErrNotFound
	}
	if err != nil {
		return x, fmt.Errorf("store: get rejected: %w", err)
	}
	return x, nil
}

// LockRejected reads and locks one rejected input within tx.
func (s *Store) LockRejected(ctx context.Context, tx pgx.Tx, tenant, id string) (Rejected, error) {
	x, err := s.scanRejected(tx.QueryRow(ctx, `SELECT `+rejectedColumns+` FROM rejected_events WHERE tenant_id = $1 AND id = $2 FOR UPDATE`, tenant, id))
	if errors.Is(err, pgx.ErrNoRows) {
		return x, ErrNotFound
	}
	if err != nil {
		return x, fmt.Errorf("store: lock rejected: %w", err)
	}
	return x, nil
}

// MarkReplayed records that a replay stored the rejected input as serviceID.
func MarkReplayed(ctx context.Context, tx pgx.Tx, id, serviceID string, at time.Time) error {
	if _, err := tx.Exec(ctx, `UPDATE rejected_events SET replayed_at = $2, replayed_service_id = $3 WHERE id = $1`, id, at, serviceID); err != nil {
		return fmt.Errorf("store: mark replayed: %w", err)
	}
	return nil
}

// Timestamp converts for the API.
func Timestamp(t time.Time) *timestamppb.Timestamp { return timestamppb.New(t) }

// RefreshTiers re-evaluates the customers that hold a tier, a page at a time
// (each page in one transaction, skipping rows other writers hold), and
// returns how many changed. Rules are minimums over figures of the last 365
// days, which only fall as time passes, so customers without a tier cannot
// gain one this way; those who lost the ground for theirs lose it, announced
// with CustomerUpdated.
func (s *Store) RefreshTiers(ctx context.Context, pageSize int) (int, error) {
	changed, after := 0, ""
	for {
		n := 0
		err := pgx.BeginFunc(ctx, s.Pool, func(tx pgx.Tx) error {
			rows, err := tx.Query(ctx, `SELECT `+customerColumns+` FROM customers WHERE tier <> '' AND id > $1 ORDER BY id LIMIT $2 FOR UPDATE SKIP LOCKED`, after, pageSize)
			if err != nil {
				return fmt.Errorf("store: tiered customers: %w", err)
			}
			var page []*Customer
			for rows.Next() {
				c, err := s.scanCustomer(rows)
				if err != nil {
					rows.Close()
					return err
				}
				page = append(page, c)
			}
			rows.Close()
			if err := rows.Err(); err != nil {
				return fmt.Errorf("store: tiered customers: %w", err)
			}
			for _, c := range page {
				before := c.Version
				if err := s.finish(ctx, tx, c, nil); err != nil {
					return err
				}
				if c.Version != before {
					changed++
				}
				after = c.ID
			}
			n = len(page)
			return nil
		})
		if err != nil {
			return changed, err
		}
		if n < pageSize {
			return changed, nil
		}
	}
}

// Rehash recomputes the keyed search hashes of the customers whose hashes
// were made under another HASH_KEY (hash_key_id differs from the current
// one), from their decrypted contacts. It works through the archive by id,
// batch rows per transaction (skipping rows other writers hold: their save
// hashes them anew), and returns how many it re-hashed. Each batch commits
// on its own, so an interrupted run loses nothing and a second run goes on
// with the rows still stale. Versions do not change and nothing is
// announced: hashes never leave intake.
func (s *Store) Rehash(ctx context.Context, batch int) (int64, error) {
	var total int64
	keyID, after := s.Cipher.HashKeyID(), ""
	for {
		n := 0
		err := pgx.BeginFunc(ctx, s.Pool, func(tx pgx.Tx) error {
			rows, err := tx.Query(ctx, `SELECT `+customerColumns+` FROM customers
WHERE id > $1 AND hash_key_id <> $2 ORDER BY id LIMIT $3 FOR UPDATE SKIP LOCKED`, after, keyID, batch)
			if err != nil {
				return fmt.Errorf("store: stale hashes: %w", err)
			}
			var page []*Customer
			for rows.Next() {
				c, err := s.scanCustomer(rows)
				if err != nil {
					rows.Close()
					return err
				}
				page = append(page, c)
			}
			rows.Close()
			if err := rows.Err(); err != nil {
				return fmt.Errorf("store: stale hashes: %w", err)
			}
			for _, c := range page {
				if _, err := tx.Exec(ctx, `UPDATE customers SET phone_hash = $2, email_hash = $3, hash_key_id = $4 WHERE id = $1`,
					c.ID, s.Cipher.HashPhone(c.Phone), s.Cipher.HashEmail(c.Email), keyID); err != nil {
					return fmt.Errorf("store: rehash customer %s: %w", c.ID, err)
				}
				after = c.ID
			}
			n = len(page)
			return nil
		})
		total += int64(n)
		if err != nil || n < batch {
			return total, err
		}
	}
}

// StaleHashes counts the customers whose search hashes were made under
// another HASH_KEY than the current one.
func (s *Store) StaleHashes(ctx context.Context) (int64, error) {
	var n int64
	if err := s.Pool.QueryRow(ctx, `SELECT count(*) FROM customers WHERE hash_key_id <> $1`, s.Cipher.HashKeyID()).Scan(&n); err != nil {
		return 0, fmt.Errorf("store: stale hashes: %w", err)
	}
	return n, nil
}
