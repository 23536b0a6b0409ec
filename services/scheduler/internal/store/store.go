// Package store keeps the scheduler's policies, contact policies, customer
// preferences and planned visits in Postgres.
package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	typesv1 "github.com/huifang/huifang/proto/huifang/types/v1"

	"github.com/huifang/huifang/pkg/postgres"
	"github.com/huifang/huifang/services/scheduler/internal/contact"
	"github.com/huifang/huifang/services/scheduler/internal/policy"
)

// Domain errors the API turns into gRPC codes.
var (
	// ErrNameTaken is returned when the tenant already has a policy of that name.
	ErrNameTaken = errors.New("a policy of that name exists")
	// ErrNotFound is returned for an unknown policy or visit.
	ErrNotFound = errors.New("not found")
	// ErrBuiltin is returned when a tenant tries to change a built-in policy.
	ErrBuiltin = errors.New("built-in policies apply to every tenant and cannot be changed by one")
	// ErrState is returned when a visit is not in a state that allows the change.
	ErrState = errors.New("the visit's status does not allow this")
)

// Store is the scheduler's storage.
type Store struct {
	Pool *pgxpool.Pool
}

// execer is a pool or a transaction.
type execer interface {
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
}

// EnsureBuiltins writes the built-in policies if they are missing.
func (s *Store) EnsureBuiltins(ctx context.Context) error {
	for _, p := range policy.Builtin() {
		spec, err := json.Marshal(p)
		if err != nil {
			return fmt.Errorf("store: builtin %s: %w", p.Name, err)
		}
		if _, err := s.Pool.Exec(ctx, `INSERT INTO policies (id, version, tenant_id, name, spec, active, builtin)
VALUES ($1, $2, $3, $4, $5, true, true) ON CONFLICT DO NOTHING`, p.ID, p.Version, p.Tenant, p.Name, spec); err != nil {
			return fmt.Errorf("store: builtin %s: %w", p.Name, err)
		}
	}
	return nil
}

// CreatePolicy stores a new policy (its Version, usually 1).
func (s *Store) CreatePolicy(ctx context.Context, p policy.Policy) error {
	return insertPolicy(ctx, s.Pool, p)
}

func insertPolicy(ctx context.Context, q execer, p policy.Policy) error {
	spec, err := json.Marshal(p)
	if err != nil {
		return fmt.Errorf("store: policy: %w", err)
	}
	_, err = q.Exec(ctx, `INSERT INTO policies (id, version, tenant_id, name, spec, active, builtin, created_at)
VALUES ($1, $2, $3, $4, $5, $6, false, $7)`, p.ID, p.Version, p.Tenant, p.Name, spec, p.Active, p.CreatedAt)
	if postgres.IsUniqueViolation(err) {
		return ErrNameTaken
	}
	if err != nil {
		return fmt.Errorf("store: insert policy: %w", err)
	}
	return nil
}

const policyCols = `spec, active, created_at, version, overridden`

func scanPolicy(r pgx.CollectableRow) (policy.Policy, error) {
	var spec []byte
	var p policy.Policy
	var active, overridden bool
	var created time.Time
	var version int
	if err := r.Scan(&spec, &active, &created, &version, &overridden); err != nil {
		return p, err
	}
	if err := json.Unmarshal(spec, &p); err != nil {
		return p, fmt.Errorf("policy spec: %w", err)
	}
	p.Active, p.CreatedAt, p.Version, p.TenantOverride = active, created, version, overridden
	return p, nil
}

// effectivePolicies is the latest version of every policy tenant $1 sees
// (its own and the built-ins), with its override of a built-in applied.
const effectivePolicies = `SELECT p.id, p.spec, coalesce(o.active, p.active) AS active, p.created_at, p.version, o.active IS NOT NULL AS overridden
FROM (SELECT DISTINCT ON (id) id, spec, active, created_at, version, tenant_id FROM policies
      WHERE tenant_id IN ($1, '` + policy.AllTenants + `') ORDER BY id, version DESC) p
LEFT JOIN policy_overrides o ON o.tenant_id = $1 AND o.policy_id = p.id AND p.tenant_id = '` + policy.AllTenants + `'`

// ActivePolicies returns the latest version of every policy active for the
// tenant: its own and the built-ins it has not switched off.
func ActivePolicies(ctx context.Context, tx pgx.Tx, tenant string) ([]policy.Policy, error) {
	rows, err := tx.Query(ctx, `SELECT `+policyCols+` FROM (`+effectivePolicies+`) e WHERE active`, tenant)
	if err != nil {
		return nil, fmt.Errorf("store: active policies: %w", err)
	}
	return pgx.CollectRows(rows, scanPolicy)
}

// ListPolicies lists the tenant's policies and the built-ins (latest versions,
// with the tenant's effective state), by id, after the cursor id.
func (s *Store) ListPolicies(ctx context.Context, tenant, afterID string, limit int) ([]policy.Policy, error) {
	rows, err := s.Pool.Query(ctx, `SELECT `+policyCols+` FROM (`+effectivePolicies+`) e
WHERE ($2 = '' OR id > $2) ORDER BY id LIMIT $3`, tenant, afterID, limit)
	if err != nil {
		return nil, fmt.Errorf("store: list policies: %w", err)
	}
	return pgx.CollectRows(rows, scanPolicy)
}

// GetPolicy returns a version of a policy the tenant can see (0 = the latest).
func (s *Store) GetPolicy(ctx context.Context, tenant, id string, version int) (policy.Policy, error) {
	return getPolicy(ctx, s.Pool, tenant, id, version)
}

type rowQuerier interface {
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

func getPolicy(ctx context.Context, q rowQuerier, tenant, id string, version int) (policy.Policy, error) {
	row := q.QueryRow(ctx, `SELECT p.spec, coalesce(o.active, p.active), p.created_at, p.version, o.active IS NOT NULL
FROM policies p LEFT JOIN policy_overrides o ON o.tenant_id = $2 AND o.policy_id = p.id AND p.tenant_id = '`+policy.AllTenants+`'
WHERE p.id = $1 AND p.tenant_id IN ($2, '`+policy.AllTenants+`') AND ($3 = 0 OR p.version = $3)
ORDER BY p.version DESC LIMIT 1`, id, tenant, version)
	var spec []byte
	var p policy.Policy
	var v int
	var overridden bool
	if err := row.Scan(&spec, &p.Active, &p.CreatedAt, &v, &overridden); err != nil {
		if errors.Is(err, pgx.ErrNoRows) {
			return p, ErrNotFound
		}
		return p, fmt.Errorf("store: get policy: %w", err)
	}
	active, created := p.Active, p.CreatedAt
	if err := json.Unmarshal(spec, &p); err != nil {
		return p, fmt.Errorf("store: policy spec: %w", err)
	}
	p.Active, p.CreatedAt, p.Version, p.TenantOverride = active, created, v, overridden
	return p, nil
}

// UpdatePolicy stores a new version of the tenant's policy: edit gets the
// latest version and returns the new content, which is stored as version+1.
// Visits already planned keep the version they came from.
func (s *Store) UpdatePolicy(ctx context.Context, tenant, id string, edit func(policy.Policy) (policy.Policy, error)) (policy.Policy, error) {
	var out policy.Policy
	err := pgx.BeginFunc(ctx, s.Pool, func(tx pgx.Tx) error {
		// Serialise versions of one policy.
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock(hashtext('scheduler.policy:' || $1))`, id); err != nil {
			return fmt.Errorf("lock policy: %w", err)
		}
		cur, err := getPolicy(ctx, tx, tenant, id, 0)
		if err != nil {
			return err
		}
		if cur.Builtin || cur.Tenant == policy.AllTenants {
			return ErrBuiltin
		}
		next, err := edit(cur.Clone())
		if err != nil {
			return err
		}
		next.ID, next.Tenant, next.Version, next.Active, next.Builtin = cur.ID, cur.Tenant, cur.Version+1, cur.Active, false
		out = next
		return insertPolicy(ctx, tx, next)
	})
	return out, err
}

// SetActive turns a tenant's policy on or off (every version). For a
// built-in policy it records the tenant's override: the policy is on or off
// for that tenant only, every other tenant keeps the built-in's state.
func (s *Store) SetActive(ctx context.Context, tenant, id string, active bool) (policy.Policy, error) {
	if tenant == policy.AllTenants {
		return policy.Policy{}, ErrBuiltin
	}
	tag, err := s.Pool.Exec(ctx, `UPDATE policies SET active = $3 WHERE id = $1 AND tenant_id = $2`, id, tenant, active)
	if err != nil {
		return policy.Policy{}, fmt.Errorf("store: set active: %w", err)
	}
	if tag.RowsAffected() == 0 {
		p, err := s.GetPolicy(ctx, tenant, id, 0)
		if err != nil {
			return p, err
		}
		if !p.Builtin {
			return p, ErrNotFound
		}
		if _, err := s.Pool.Exec(ctx, `INSERT INTO policy_overrides (tenant_id, policy_id, active, updated_at) VALUES ($1, $2, $3, now())
ON CONFLICT (tenant_id, policy_id) DO UPDATE SET active = EXCLUDED.active, updated_at = EXCLUDED.updated_at`, tenant, id, active); err != nil {
			return p, fmt.Errorf("store: override built-in policy: %w", err)
		}
	}
	return s.GetPolicy(ctx, tenant, id, 0)
}

// ContactRules returns the tenant's contact policy (the zero value when none is set).
func (s *Store) ContactRules(ctx context.Context, tenant string) (contact.Rules, error) {
	m, err := contactRules(ctx, s.Pool, []string{tenant})
	return m[tenant], err
}

type multiQuerier interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
}

func contactRules(ctx context.Context, q multiQuerier, tenants []string) (map[string]contact.Rules, error) {
	rows, err := q.Query(ctx, `SELECT tenant_id, spec FROM contact_policies WHERE tenant_id = ANY($1)`, tenants)
	if err != nil {
		return nil, fmt.Errorf("store: contact policies: %w", err)
	}
	out := map[string]contact.Rules{}
	var tenant string
	var spec []byte
	_, err = pgx.ForEachRow(rows, []any{&tenant, &spec}, func() error {
		var r contact.Rules
		if err := json.Unmarshal(spec, &r); err != nil {
			return fmt.Errorf("contact policy of %s: %w", tenant, err)
		}
		out[tenant] = r
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("store: contact policies: %w", err)
	}
	return out, nil
}

// SetContactRules replaces the tenant's contact policy.
func (s *Store) SetContactRules(ctx context.Context, tenant string, r contact.Rules, now time.Time) error {
	spec, err := json.Marshal(r)
	if err != nil {
		return fmt.Errorf("store: contact policy: %w", err)
	}
	if _, err := s.Pool.Exec(ctx, `INSERT INTO contact_policies (tenant_id, spec, updated_at) VALUES ($1, $2, $3)
ON CONFLICT (tenant_id) DO UPDATE SET spec = EXCLUDED.spec, updated_at = EXCLUDED.updated_at`, tenant, spec, now); err != nil {
		return fmt.Errorf("store: set contact policy: %w", err)
	}
	return nil
}

// PrefsFromProto turns the archive's contact preferences into the contact package's.
func PrefsFromProto(p *typesv1.ContactPreferences) contact.Prefs {
	out := contact.Prefs{TimeZone: p.GetTimeZone(), DislikesCalls: p.GetDislikesCalls()}
	for _, c := range p.GetOptedOut() {
		out.OptedOut = append(out.OptedOut, int32(c))
	}
	for _, w := range p.GetWindows() {
		out.Windows = append(out.Windows, contact.Window{Start: int(w.GetStartMinute()), End: int(w.GetEndMinute())})
	}
	return out
}

// UpsertCustomer records a customer's preferences. version 0 is a snapshot
// carried by a ServiceCompleted: it never overwrites what CustomerUpdated
// (version ≥ 1) said; a CustomerUpdated overwrites only older versions.
// Opt-outs are only ever added.
func UpsertCustomer(ctx context.Context, tx pgx.Tx, tenant string, c *typesv1.Customer, version int64, at time.Time) error {
	if c.GetId() == "" {
		return nil
	}
	prefs := PrefsFromProto(c.GetPreferences())
	b, err := json.Marshal(prefs)
	if err != nil {
		return fmt.Errorf("store: prefs: %w", err)
	}
	if prefs.OptedOut == nil {
		prefs.OptedOut = []int32{}
	}
	_, err = tx.Exec(ctx, `INSERT INTO customers (tenant_id, customer_id, version, prefs, opted_out, tier, updated_at)
VALUES ($1, $2, $3, $4, $5, $6, $7)
ON CONFLICT (tenant_id, customer_id) DO UPDATE SET version = EXCLUDED.version, prefs = EXCLUDED.prefs, tier = EXCLUDED.tier,
  updated_at = EXCLUDED.updated_at,
  opted_out = ARRAY(SELECT DISTINCT unnest(customers.opted_out || EXCLUDED.opted_out))
WHERE customers.version < EXCLUDED.version OR (EXCLUDED.version = 0 AND customers.version = 0)`,
		tenant, c.GetId(), version, b, prefs.OptedOut, c.GetTier(), at)
	if err != nil {
		return fmt.Errorf("store: upsert customer: %w", err)
	}
	return nil
}

// AddOptOut records that the customer opted out of a channel.
func AddOptOut(ctx context.Context, tx pgx.Tx, tenant, customer string, channel int32, at time.Time) error {
	_, err := tx.Exec(ctx, `INSERT INTO customers (tenant_id, customer_id, opted_out, updated_at) VALUES ($1, $2, ARRAY[$3::int], $4)
ON CONFLICT (tenant_id, customer_id) DO UPDATE SET opted_out = ARRAY(SELECT DISTINCT unnest(customers.opted_out || ARRAY[$3::int])), updated_at = $4`,
		tenant, customer, channel, at)
	if err != nil {
		return fmt.Errorf("store: opt out: %w", err)
	}
	return nil
}

type custKey struct{ tenant, customer string }

// prefsFor loads the preferences of the customers.
func prefsFor(ctx context.Context, q multiQuerier, keys []custKey) (map[custKey]contact.Prefs, error) {
	out := map[custKey]contact.Prefs{}
	if len(keys) == 0 {
		return out, nil
	}
	ts, cs := make([]string, len(keys)), make([]string, len(keys))
	for i, k := range keys {
		ts[i], cs[i] = k.tenant, k.customer
	}
	rows, err := q.Query(ctx, `SELECT c.tenant_id, c.customer_id, c.prefs, c.opted_out FROM customers c
JOIN unnest($1::text[], $2::text[]) AS k(t, c) ON c.tenant_id = k.t AND c.customer_id = k.c`, ts, cs)
	if err != nil {
		return nil, fmt.Errorf("store: prefs: %w", err)
	}
	var k custKey
	var b []byte
	var opted []int32
	_, err = pgx.ForEachRow(rows, []any{&k.tenant, &k.customer, &b, &opted}, func() error {
		var p contact.Prefs
		if err := json.Unmarshal(b, &p); err != nil {
			return err
		}
		for _, o := range opted {
			if !slices.Contains(p.OptedOut, o) {
				p.OptedOut = append(p.OptedOut, o)
			}
		}
		out[k] = p
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("store: prefs: %w", err)
	}
	return out, nil
}

// PolicyIDByName returns the id of the tenant's policy of that name ("" when none).
func (s *Store) PolicyIDByName(ctx context.Context, tenant, name string) (string, error) {
	var id string
	err := s.Pool.QueryRow(ctx, `SELECT id FROM policies WHERE tenant_id = $1 AND name = $2 ORDER BY version DESC LIMIT 1`, tenant, name).Scan(&id)
	if errors.Is(err, pgx.ErrNoRows) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("store: policy by name: %w", err)
	}
	return id, nil
}
