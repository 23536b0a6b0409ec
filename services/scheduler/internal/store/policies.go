package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/huifang/huifang/pkg/postgres"
	"github.com/huifang/huifang/services/scheduler/internal/policy"
)

// InsertBuiltin writes a built-in policy (tenant "*") if it is missing.
func InsertBuiltin(ctx context.Context, q postgres.Querier, p policy.Policy) error {
	spec, err := json.Marshal(p)
	if err != nil {
		return fmt.Errorf("store: builtin %s: %w", p.Name, err)
	}
	_, err = q.Exec(ctx, `INSERT INTO policies (id, version, tenant_id, name, spec, active, builtin)
VALUES ($1, $2, $3, $4, $5, true, true) ON CONFLICT DO NOTHING`, p.ID, p.Version, p.Tenant, p.Name, spec)
	return translate("builtin "+p.Name, err)
}

// InsertPolicy stores a version of a tenant's policy; ErrConflict when the
// tenant has a policy of that name at that version (or the version exists).
func InsertPolicy(ctx context.Context, q postgres.Querier, p policy.Policy) error {
	spec, err := json.Marshal(p)
	if err != nil {
		return fmt.Errorf("store: policy: %w", err)
	}
	_, err = q.Exec(ctx, `INSERT INTO policies (id, version, tenant_id, name, spec, active, builtin, created_at)
VALUES ($1, $2, $3, $4, $5, $6, false, $7)`, p.ID, p.Version, p.Tenant, p.Name, spec, p.Active, p.CreatedAt)
	return translate("insert policy", err)
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
func ActivePolicies(ctx context.Context, q postgres.Querier, tenant string) ([]policy.Policy, error) {
	rows, err := q.Query(ctx, `SELECT `+policyCols+` FROM (`+effectivePolicies+`) e WHERE active`, tenant)
	if err != nil {
		return nil, translate("active policies", err)
	}
	ps, err := pgx.CollectRows(rows, scanPolicy)
	return ps, translate("active policies", err)
}

// ListPolicies lists the tenant's policies and the built-ins (latest versions,
// with the tenant's effective state), by id, after the cursor id.
func ListPolicies(ctx context.Context, q postgres.Querier, tenant, afterID string, limit int) ([]policy.Policy, error) {
	rows, err := q.Query(ctx, `SELECT `+policyCols+` FROM (`+effectivePolicies+`) e
WHERE ($2 = '' OR id > $2) ORDER BY id LIMIT $3`, tenant, afterID, limit)
	if err != nil {
		return nil, translate("list policies", err)
	}
	ps, err := pgx.CollectRows(rows, scanPolicy)
	return ps, translate("list policies", err)
}

// GetPolicy returns a version of a policy the tenant can see (0 = the
// latest), with the tenant's override of a built-in applied.
func GetPolicy(ctx context.Context, q postgres.Querier, tenant, id string, version int) (policy.Policy, error) {
	rows, err := q.Query(ctx, `SELECT p.spec, coalesce(o.active, p.active), p.created_at, p.version, o.active IS NOT NULL
FROM policies p LEFT JOIN policy_overrides o ON o.tenant_id = $2 AND o.policy_id = p.id AND p.tenant_id = '`+policy.AllTenants+`'
WHERE p.id = $1 AND p.tenant_id IN ($2, '`+policy.AllTenants+`') AND ($3 = 0 OR p.version = $3)
ORDER BY p.version DESC LIMIT 1`, id, tenant, version)
	if err != nil {
		return policy.Policy{}, translate("get policy", err)
	}
	p, err := pgx.CollectExactlyOneRow(rows, scanPolicy)
	return p, translate("get policy", err)
}

// PolicyIDByName returns the id of the tenant's own policy of that name ("" when none).
func PolicyIDByName(ctx context.Context, q postgres.Querier, tenant, name string) (string, error) {
	var id string
	err := q.QueryRow(ctx, `SELECT id FROM policies WHERE tenant_id = $1 AND name = $2 ORDER BY version DESC LIMIT 1`, tenant, name).Scan(&id)
	if err = translate("policy by name", err); errors.Is(err, ErrNotFound) {
		return "", nil
	}
	return id, err
}

// UpdatePolicy stores the next version of a policy by closure: within tx,
// versions of the policy are serialised (an advisory lock), fn gets the
// latest version the tenant sees and returns the version to store.
func UpdatePolicy(ctx context.Context, tx pgx.Tx, tenant, id string, fn func(cur policy.Policy) (policy.Policy, error)) (policy.Policy, error) {
	if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock(hashtext('scheduler.policy:' || $1))`, id); err != nil {
		return policy.Policy{}, translate("lock policy", err)
	}
	cur, err := GetPolicy(ctx, tx, tenant, id, 0)
	if err != nil {
		return policy.Policy{}, err
	}
	next, err := fn(cur.Clone())
	if err != nil {
		return policy.Policy{}, err
	}
	return next, InsertPolicy(ctx, tx, next)
}

// SetActive switches every version of the tenant's own policy on or off.
func SetActive(ctx context.Context, q postgres.Querier, tenant, id string, active bool) error {
	tag, err := q.Exec(ctx, `UPDATE policies SET active = $3 WHERE id = $1 AND tenant_id = $2`, id, tenant, active)
	if err != nil {
		return translate("set active", err)
	}
	if tag.RowsAffected() == 0 {
		return ErrNotFound
	}
	return nil
}

// SetOverride records a tenant's switch of a built-in policy, for that tenant only.
func SetOverride(ctx context.Context, q postgres.Querier, tenant, id string, active bool) error {
	_, err := q.Exec(ctx, `INSERT INTO policy_overrides (tenant_id, policy_id, active, updated_at) VALUES ($1, $2, $3, now())
ON CONFLICT (tenant_id, policy_id) DO UPDATE SET active = EXCLUDED.active, updated_at = EXCLUDED.updated_at`, tenant, id, active)
	return translate("override built-in policy", err)
}
