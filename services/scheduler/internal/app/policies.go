package app

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/huifang/huifang/pkg/audit"
	"github.com/huifang/huifang/pkg/invalid"
	"github.com/huifang/huifang/pkg/outbox"
	"github.com/huifang/huifang/pkg/postgres"
	"github.com/huifang/huifang/services/scheduler/internal/policy"
	"github.com/huifang/huifang/services/scheduler/internal/store"
	"github.com/huifang/huifang/services/scheduler/packs"
)

// EnsureBuiltins writes the built-in policies (tenant "*") if they are missing.
func (a *App) EnsureBuiltins(ctx context.Context) error {
	for _, p := range policy.Builtin() {
		if err := store.InsertBuiltin(ctx, a.DB, p); err != nil {
			return err
		}
	}
	return nil
}

// CreatePolicy validates a tenant's new policy and stores it as version 1,
// on; it applies to services completed from then on. A name the tenant
// uses is store.ErrConflict; a tenant whose changes need approval is
// ErrApprovalRequired.
func (a *App) CreatePolicy(ctx context.Context, tenant string, p policy.Policy) (policy.Policy, error) {
	p.ID, p.Tenant, p.Version, p.Active, p.CreatedAt = outbox.NewEventID(), tenant, 1, true, a.now()
	if err := policy.Validate(p); err != nil {
		return policy.Policy{}, err
	}
	err := a.inTx(ctx, func(tx pgx.Tx) error {
		if err := direct(ctx, tx, tenant); err != nil {
			return err
		}
		return a.createTx(ctx, tx, p, nil)
	})
	if err != nil {
		return policy.Policy{}, err
	}
	return p, nil
}

// createTx stores p, a valid version 1, within tx, with its audit entry
// (extra added to the entry's detail).
func (a *App) createTx(ctx context.Context, tx pgx.Tx, p policy.Policy, extra audit.Detail) error {
	err := store.InsertPolicy(ctx, tx, p)
	if errors.Is(err, store.ErrConflict) {
		return fmt.Errorf("tenant %s already has a policy named %q: %w", p.Tenant, p.Name, err)
	}
	if err != nil {
		return err
	}
	return a.auditTx(ctx, tx, p.Tenant, "policy.create", policyTarget(p), with(policyDetail(p), extra))
}

// with returns d with extra's keys added.
func with(d, extra audit.Detail) audit.Detail {
	for k, v := range extra {
		d[k] = v
	}
	return d
}

func policyTarget(p policy.Policy) audit.Target { return audit.Target{Kind: "policy", ID: p.ID} }

// policyDetail is what the audit log keeps of a policy's change: its name,
// version and state (the steps are in the policy's versions).
func policyDetail(p policy.Policy) audit.Detail {
	d := audit.Detail{"name": p.Name, "version": p.Version, "active": p.Active}
	if p.Pack != "" {
		d["pack"] = p.Pack
	}
	return d
}

// UpdatePolicy validates the next version of a tenant's policy and stores
// it; visits already planned keep the version they came from. A built-in
// is policy.ErrBuiltin, an unknown policy store.ErrNotFound, a tenant whose
// changes need approval ErrApprovalRequired.
func (a *App) UpdatePolicy(ctx context.Context, tenant, id string, next policy.Policy) (p policy.Policy, err error) {
	if err := policy.Validate(next); err != nil {
		return policy.Policy{}, err
	}
	now := a.now()
	err = a.inTx(ctx, func(tx pgx.Tx) error {
		if err := direct(ctx, tx, tenant); err != nil {
			return err
		}
		p, err = a.updateTx(ctx, tx, tenant, id, next, now, nil)
		return err
	})
	if err != nil {
		return policy.Policy{}, fmt.Errorf("policy %s: %w", id, err)
	}
	return p, nil
}

// updateTx stores next, valid, as the next version of policy id within tx,
// with its audit entry (extra added to the entry's detail).
func (a *App) updateTx(ctx context.Context, tx pgx.Tx, tenant, id string, next policy.Policy, now time.Time, extra audit.Detail) (policy.Policy, error) {
	p, err := store.UpdatePolicy(ctx, tx, tenant, id, func(cur policy.Policy) (policy.Policy, error) {
		next.Pack, next.CreatedAt = cur.Pack, now
		return cur.Revise(next)
	})
	if err != nil {
		return policy.Policy{}, err
	}
	return p, a.auditTx(ctx, tx, tenant, "policy.update", policyTarget(p), with(policyDetail(p), extra))
}

// SetActive switches a policy on or off for the tenant: its own policy
// (every version; a deactivated policy plans nothing new and its recurring
// series end at their next visit), or a built-in for the tenant only. A
// tenant whose changes need approval is ErrApprovalRequired.
func (a *App) SetActive(ctx context.Context, tenant, id string, active bool) (p policy.Policy, err error) {
	if err := policy.SwitchableBy(tenant); err != nil {
		return policy.Policy{}, fmt.Errorf("policy %s: %w", id, err)
	}
	err = a.inTx(ctx, func(tx pgx.Tx) error {
		if err := direct(ctx, tx, tenant); err != nil {
			return err
		}
		p, err = a.setActiveTx(ctx, tx, tenant, id, active, nil)
		return err
	})
	if err != nil {
		return policy.Policy{}, fmt.Errorf("policy %s: %w", id, err)
	}
	return p, nil
}

// setActiveTx switches policy id within tx, with its audit entry (extra
// added to the entry's detail).
func (a *App) setActiveTx(ctx context.Context, tx pgx.Tx, tenant, id string, active bool, extra audit.Detail) (policy.Policy, error) {
	p, err := setActive(ctx, tx, tenant, id, active)
	if err != nil {
		return policy.Policy{}, err
	}
	action, detail := "policy.deactivate", policyDetail(p)
	if active {
		action = "policy.activate"
	}
	if p.TenantOverride {
		detail["builtin"] = true // switched for this tenant only
	}
	return p, a.auditTx(ctx, tx, tenant, action, policyTarget(p), with(detail, extra))
}

func setActive(ctx context.Context, tx pgx.Tx, tenant, id string, active bool) (policy.Policy, error) {
	cur, err := store.GetPolicy(ctx, tx, tenant, id, 0)
	if err != nil {
		return policy.Policy{}, err
	}
	override, err := cur.SwitchedByOverride(tenant)
	switch {
	case err != nil:
		return policy.Policy{}, err
	case override:
		err = store.SetOverride(ctx, tx, tenant, id, active)
	default:
		err = store.SetActive(ctx, tx, tenant, id, active)
	}
	if err != nil {
		return policy.Policy{}, err
	}
	return store.GetPolicy(ctx, tx, tenant, id, 0)
}

// LoadPolicyPack creates a shipped pack's policies for the tenant, in one
// transaction: a policy of the same name gets a new version instead; with
// inactive every policy is loaded (or switched) off, else the pack says
// which start off. A tenant whose changes need approval is
// ErrApprovalRequired.
func (a *App) LoadPolicyPack(ctx context.Context, tenant, name string, inactive bool) (out []policy.Policy, err error) {
	pk, err := pack(name)
	if err != nil {
		return nil, err
	}
	now := a.now()
	err = a.inTx(ctx, func(tx pgx.Tx) error {
		if err := direct(ctx, tx, tenant); err != nil {
			return err
		}
		out, err = a.loadPackTx(ctx, tx, tenant, pk, inactive, now, nil)
		return err
	})
	return out, err
}

// pack returns the shipped pack of that name (InvalidArgument on pack when none).
func pack(name string) (packs.Pack, error) {
	pk, ok, err := packs.Get(name)
	if err != nil {
		return packs.Pack{}, err
	}
	if !ok {
		return packs.Pack{}, invalid.New("pack", "must be one of the packs ListPolicyPacks lists")
	}
	return pk, nil
}

// loadPackTx loads pk for the tenant within tx, with its audit entry (extra
// added to the entry's detail).
func (a *App) loadPackTx(ctx context.Context, tx pgx.Tx, tenant string, pk packs.Pack, inactive bool, now time.Time, extra audit.Detail) ([]policy.Policy, error) {
	var out []policy.Policy
	for _, p := range pk.Policies {
		id, err := store.PolicyIDByName(ctx, tx, tenant, p.Name)
		if err != nil {
			return nil, err
		}
		p.CreatedAt = now
		if id == "" {
			p.ID, p.Tenant, p.Version, p.Active = outbox.NewEventID(), tenant, 1, !inactive && pk.LoadsActive(p.Name)
			if err := store.InsertPolicy(ctx, tx, p); err != nil {
				return nil, fmt.Errorf("policy %s: %w", p.Name, err)
			}
			out = append(out, p)
			continue
		}
		next := p
		p, err = store.UpdatePolicy(ctx, tx, tenant, id, func(cur policy.Policy) (policy.Policy, error) { return cur.Revise(next) })
		if err == nil && inactive {
			p, err = setActive(ctx, tx, tenant, id, false)
		}
		if err != nil {
			return nil, fmt.Errorf("policy %s: %w", next.Name, err)
		}
		out = append(out, p)
	}
	loaded := make([]audit.Detail, len(out))
	for i, p := range out {
		loaded[i] = audit.Detail{"id": p.ID, "version": p.Version, "active": p.Active}
	}
	detail := with(audit.Detail{"inactive": inactive, "policies": loaded}, extra)
	return out, a.auditTx(ctx, tx, tenant, "pack.load", audit.Target{Kind: "pack", ID: pk.Name}, detail)
}

// PolicyPacks returns the shipped packs, each policy on or off as
// LoadPolicyPack loads it.
func (a *App) PolicyPacks() ([]packs.Pack, error) {
	all, err := packs.All()
	if err != nil {
		return nil, err
	}
	for _, pk := range all {
		for i := range pk.Policies {
			pk.Policies[i].Active = pk.LoadsActive(pk.Policies[i].Name)
		}
	}
	return all, nil
}

// ListPolicies lists the tenant's policies and the built-ins (latest
// versions, with the tenant's effective state), by id after afterID.
func (a *App) ListPolicies(ctx context.Context, tenant, afterID string, limit int) ([]policy.Policy, error) {
	ps, err := store.ListPolicies(ctx, a.DB, tenant, afterID, limit)
	if err != nil {
		return nil, err
	}
	return effective(ctx, a.DB, tenant, ps)
}

// effective shows the tenant a starter built-in among ps as planning sees
// it: off, with the reason, once the tenant configured its services
// (policy.Effective).
func effective(ctx context.Context, q postgres.Querier, tenant string, ps []policy.Policy) ([]policy.Policy, error) {
	if !slices.ContainsFunc(ps, func(p policy.Policy) bool { return p.Starter && p.Active }) {
		return ps, nil
	}
	active, err := store.ActivePolicies(ctx, q, tenant)
	if err != nil {
		return nil, err
	}
	off := map[string]string{}
	for _, p := range policy.Effective(active) {
		if p.SupersededBy != "" {
			off[p.ID] = p.SupersededBy
		}
	}
	for i := range ps {
		if why, ok := off[ps[i].ID]; ok {
			ps[i].Active, ps[i].SupersededBy = false, why
		}
	}
	return ps, nil
}

// GetPolicy returns a version of a policy the tenant sees (0 = the latest).
func (a *App) GetPolicy(ctx context.Context, tenant, id string, version int) (policy.Policy, error) {
	p, err := store.GetPolicy(ctx, a.DB, tenant, id, version)
	if err != nil {
		return p, fmt.Errorf("policy %s: %w", id, err)
	}
	ps, err := effective(ctx, a.DB, tenant, []policy.Policy{p})
	if err != nil {
		return p, err
	}
	return ps[0], nil
}
