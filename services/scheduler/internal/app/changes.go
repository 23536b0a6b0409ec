package app

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/huifang/huifang/pkg/audit"
	"github.com/huifang/huifang/pkg/auth"
	"github.com/huifang/huifang/pkg/invalid"
	"github.com/huifang/huifang/pkg/outbox"
	"github.com/huifang/huifang/pkg/postgres"
	"github.com/huifang/huifang/services/scheduler/internal/change"
	"github.com/huifang/huifang/services/scheduler/internal/policy"
	"github.com/huifang/huifang/services/scheduler/internal/store"
)

// ErrApprovalRequired refuses a direct policy write of a tenant whose
// policy changes need approval.
var ErrApprovalRequired = errors.New("the tenant's policy changes need approval (seeds 000, 004: plans are approved before they run): " +
	"propose this change with ProposePolicyChange and have a director approve it with ApprovePolicyChange")

// defaultDryRun is the replay of a proposal that names no load: the
// tenant's services of the last 30 days.
const defaultDryRun = 30 * 24 * time.Hour

// direct refuses a direct write of the tenant's policies while its changes
// need approval (ErrApprovalRequired). The setting's row stays locked FOR
// SHARE until tx ends, so a write that found it off commits before anyone
// turns it on. The built-ins' tenant "*" has no such setting.
func direct(ctx context.Context, tx pgx.Tx, tenant string) error {
	if tenant == policy.AllTenants {
		return nil
	}
	s, err := store.PolicyApproval(ctx, tx, tenant, true)
	if err != nil {
		return err
	}
	if s.Required {
		return fmt.Errorf("tenant %s: %w", tenant, ErrApprovalRequired)
	}
	return nil
}

// PolicyApproval returns the tenant's setting: whether its policy changes
// need approval.
func (a *App) PolicyApproval(ctx context.Context, tenant string) (store.Approval, error) {
	return store.PolicyApproval(ctx, a.DB, tenant, false)
}

// SetPolicyApproval turns the tenant's "policy changes need approval" on or
// off, audited (policy_approval.set). Anyone the permission table lets set
// it may turn it on; turning it off is for a director or a platform
// operator, since a tenant admin, whose changes it holds back, would
// otherwise lift it, write, and turn it on again.
func (a *App) SetPolicyApproval(ctx context.Context, tenant string, required bool) (out store.Approval, err error) {
	if tenant == policy.AllTenants {
		return store.Approval{}, invalid.New("tenant_id", `must name one tenant: the built-ins (tenant "*") need no approval`)
	}
	by := audit.By(ctx, service)
	err = a.inTx(ctx, func(tx pgx.Tx) error {
		cur, err := store.PolicyApproval(ctx, tx, tenant, false)
		if err != nil {
			return err
		}
		if p, ok := auth.From(ctx); ok && cur.Required && !required && !p.HasAny(auth.Director, auth.PlatformOperator) {
			return auth.Deny("required", "only a director or a platform operator turns approval off: it holds back the tenant admin's own changes")
		}
		out = store.Approval{Tenant: tenant, Required: required, UpdatedBy: by.Subject, UpdatedAt: a.now()}
		if err := store.SetPolicyApproval(ctx, tx, out); err != nil {
			return err
		}
		return a.auditTx(ctx, tx, tenant, "policy_approval.set", audit.Target{Kind: "tenant", ID: tenant},
			audit.Detail{"required": required, "was": cur.Required})
	})
	return out, err
}

// Proposal is a change to propose: what, why, and the load of its dry run
// (none: the tenant's services of the last 30 days).
type Proposal struct {
	Tenant string
	Change change.Change
	Reason string
	Load   change.Load
}

// person is the caller of ctx as a proposal keeps it: the subject of its
// verified token and its roles (system:scheduler without one).
func person(ctx context.Context) change.Person {
	by := audit.By(ctx, service)
	return change.Person{Subject: by.Subject, Roles: by.Roles}
}

// ProposePolicyChange stores a change to the tenant's policies as a
// proposal by the caller, with the versions it is proposed against and its
// dry run (the simulation of each policy it puts into effect, or takes out
// of it, over the load), audited (policy_change.propose). Nothing applies
// until a director approves it (DecidePolicyChange). A change that could not
// be applied now is refused now: an invalid policy, an unknown policy or
// pack, a built-in to edit, a name the tenant uses.
func (a *App) ProposePolicyChange(ctx context.Context, in Proposal) (change.Proposal, error) {
	if err := checkProposal(in); err != nil {
		return change.Proposal{}, err
	}
	now := a.now()
	p := change.Proposal{
		ID: outbox.NewEventID(), Tenant: in.Tenant, Change: in.Change, Reason: strings.TrimSpace(in.Reason),
		State: change.Proposed, Load: in.Load, ProposedBy: person(ctx), ProposedAt: now,
	}
	if p.Change.Kind == change.LoadPack {
		pk, err := pack(p.Change.Pack)
		if err != nil {
			return change.Proposal{}, err
		}
		p.Change.Snapshot = &pk
	}
	if p.Load.Synthetic == nil && p.Load.From.IsZero() && p.Load.To.IsZero() {
		p.Load.From, p.Load.To = now.Add(-defaultDryRun), now
	}
	var err error
	if p.BasedOn, err = basedOn(ctx, a.DB, p); err != nil {
		return change.Proposal{}, err
	}
	if p.DryRuns, err = a.dryRun(ctx, p); err != nil {
		return change.Proposal{}, err
	}
	err = a.inTx(ctx, func(tx pgx.Tx) error {
		if err := store.InsertChange(ctx, tx, p); err != nil {
			return err
		}
		return a.auditTx(ctx, tx, p.Tenant, "policy_change.propose", changeTarget(p), changeDetail(p))
	})
	return p, err
}

// checkProposal refuses a malformed proposal, naming the fields.
func checkProposal(in Proposal) error {
	var l invalid.List
	if strings.TrimSpace(in.Reason) == "" {
		l.Add("reason", "is required: say why the change is wanted")
	}
	if in.Tenant == policy.AllTenants {
		l.Add("tenant_id", `must name one tenant: the built-ins (tenant "*") are not changed by proposal`)
	}
	c := in.Change
	needPolicy := func() {
		if c.Policy == nil {
			l.Add("policy", "is required")
			return
		}
		if err := policy.Validate(*c.Policy); err != nil {
			if e, ok := invalid.As(err); ok {
				for _, v := range e.Violations {
					l.Add(v.Field, v.Rule)
				}
			}
		}
	}
	switch c.Kind {
	case change.Create:
		needPolicy()
	case change.Update:
		if c.PolicyID == "" {
			l.Add("policy_id", "is required")
		}
		needPolicy()
	case change.Activate, change.Deactivate:
		if c.PolicyID == "" {
			l.Add("policy_id", "is required")
		}
	case change.LoadPack:
		if c.Pack == "" {
			l.Add("pack", "is required")
		}
	default:
		l.Add("change", "is required: create, update, activate, deactivate or load_pack")
	}
	return l.Err()
}

// basedOn returns the policies p's change touches as they stand: for a new
// policy its name (version 0; a name the tenant uses is store.ErrConflict),
// for an update or a switch the policy (unknown: store.ErrNotFound; a
// built-in edited or a foreign policy switched: the policy package's
// refusals), for a pack each of its policies by name.
func basedOn(ctx context.Context, q postgres.Querier, p change.Proposal) ([]change.Version, error) {
	c := p.Change
	switch c.Kind {
	case change.Create:
		id, err := store.PolicyIDByName(ctx, q, p.Tenant, c.Policy.Name)
		if err != nil {
			return nil, err
		}
		if id != "" {
			return nil, fmt.Errorf("tenant %s already has a policy named %q: %w", p.Tenant, c.Policy.Name, store.ErrConflict)
		}
		return []change.Version{{Name: c.Policy.Name}}, nil
	case change.LoadPack:
		var out []change.Version
		for _, pol := range c.Snapshot.Policies {
			v, err := versionOf(ctx, q, p.Tenant, change.Version{Name: pol.Name})
			if err != nil {
				return nil, err
			}
			out = append(out, v)
		}
		return out, nil
	}
	cur, err := store.GetPolicy(ctx, q, p.Tenant, c.PolicyID, 0)
	if err != nil {
		return nil, fmt.Errorf("policy %s: %w", c.PolicyID, err)
	}
	if c.Kind == change.Update {
		_, err = cur.Revise(*c.Policy)
	} else {
		_, err = cur.SwitchedByOverride(p.Tenant)
	}
	if err != nil {
		return nil, fmt.Errorf("policy %s: %w", c.PolicyID, err)
	}
	return []change.Version{{PolicyID: cur.ID, Name: cur.Name, Version: cur.Version, Active: cur.Active}}, nil
}

// versionOf returns the policy v names as it stands: by id, or the tenant's
// own policy of v's name; Version 0 when there is none.
func versionOf(ctx context.Context, q postgres.Querier, tenant string, v change.Version) (change.Version, error) {
	id := v.PolicyID
	if id == "" {
		var err error
		if id, err = store.PolicyIDByName(ctx, q, tenant, v.Name); err != nil || id == "" {
			return change.Version{Name: v.Name}, err
		}
	}
	cur, err := store.GetPolicy(ctx, q, tenant, id, 0)
	if errors.Is(err, store.ErrNotFound) {
		return change.Version{PolicyID: v.PolicyID, Name: v.Name}, nil
	}
	if err != nil {
		return change.Version{}, err
	}
	return change.Version{PolicyID: cur.ID, Name: cur.Name, Version: cur.Version, Active: cur.Active}, nil
}

// dryRun simulates each policy p's change puts into effect (a new policy,
// the next version, a policy switched on, the pack's policies it loads on)
// or takes out of it (a policy switched off: the visits it would no longer
// plan) over p's load, as SimulatePolicy does.
func (a *App) dryRun(ctx context.Context, p change.Proposal) ([]change.Run, error) {
	c := p.Change
	sim := Simulation{Tenant: p.Tenant, From: p.Load.From, To: p.Load.To, Horizon: p.Load.Horizon}
	if syn := p.Load.Synthetic; syn != nil {
		sim.Synthetic = &Synthetic{ServicesPerDay: syn.ServicesPerDay, Days: syn.Days,
			ServiceTypes: syn.ServiceTypes, Tiers: syn.Tiers, Severities: syn.Severities, OrgUnits: syn.OrgUnits}
	}
	type target struct {
		id    string
		name  string
		draft *policy.Policy
	}
	var targets []target
	switch c.Kind {
	case change.Create:
		targets = []target{{name: c.Policy.Name, draft: c.Policy}}
	case change.Update:
		targets = []target{{id: c.PolicyID, name: c.Policy.Name, draft: c.Policy}}
	case change.Activate, change.Deactivate:
		targets = []target{{id: c.PolicyID, name: p.BasedOn[0].Name}}
	case change.LoadPack:
		for i, pol := range c.Snapshot.Policies {
			if !c.Inactive && c.Snapshot.LoadsActive(pol.Name) {
				targets = append(targets, target{id: p.BasedOn[i].PolicyID, name: pol.Name, draft: &c.Snapshot.Policies[i]})
			}
		}
	}
	var out []change.Run
	for _, t := range targets {
		s := sim
		if t.draft != nil {
			d := t.draft.Clone()
			s.Draft = &d
		} else {
			s.PolicyID = t.id
		}
		res, err := a.Simulate(ctx, s)
		if err != nil {
			return nil, err
		}
		out = append(out, change.Run{PolicyID: t.id, Name: t.name, Counts: res.Counts()})
	}
	return out, nil
}

// Counts is the result as a proposal's dry run keeps it.
func (r SimulationResult) Counts() change.Counts {
	c := change.Counts{Services: r.Services, Visits: r.Visits, Suppressed: r.Suppressed,
		PerChannel: r.PerChannel, PerGroup: r.PerGroup, PeakDayVisits: r.PeakDayVisits}
	for _, d := range r.PerDay {
		c.PerDay = append(c.PerDay, change.DayCount{Date: d.Date, Visits: d.Visits})
	}
	return c
}

func changeTarget(p change.Proposal) audit.Target {
	return audit.Target{Kind: "policy_change", ID: p.ID}
}

// changeDetail is what the audit log keeps of a proposal: its kind, the
// policy or pack, and the versions it is based on (never its reason: free
// text stays out of the log).
func changeDetail(p change.Proposal) audit.Detail {
	d := audit.Detail{"kind": p.Change.Kind, "proposed_by": p.ProposedBy.Subject}
	switch {
	case p.Change.Pack != "":
		d["pack"] = p.Change.Pack
	case p.Change.PolicyID != "":
		d["policy_id"] = p.Change.PolicyID
	case p.Change.Policy != nil:
		d["name"] = p.Change.Policy.Name
	}
	based := make([]audit.Detail, len(p.BasedOn))
	for i, b := range p.BasedOn {
		based[i] = audit.Detail{"id": b.PolicyID, "name": b.Name, "version": b.Version}
	}
	d["based_on"] = based
	return d
}

// GetPolicyChange returns a proposal of the tenant (store.ErrNotFound).
func (a *App) GetPolicyChange(ctx context.Context, tenant, id string) (change.Proposal, error) {
	p, err := store.GetChange(ctx, a.DB, tenant, id)
	if err != nil {
		return p, fmt.Errorf("policy change %s: %w", id, err)
	}
	return p, nil
}

// ListPolicyChanges lists a page of the tenant's proposals, newest first.
func (a *App) ListPolicyChanges(ctx context.Context, q store.ChangeQuery) ([]change.Proposal, error) {
	return store.ListChanges(ctx, a.DB, q)
}

// DecidePolicyChange approves or rejects a proposal of the tenant as the
// caller, audited (policy_change.approve, policy_change.reject). An
// approval applies the change in the same transaction, with the audit
// entries the direct call writes (naming the change and its proposer), and
// keeps the policy versions it left; it is refused when the caller proposed
// the change (change.ErrOwnProposal, four eyes) or a policy it was proposed
// against has changed since (change.ErrStale, naming it). A decision
// repeated (a retry) is answered with the proposal as it stands and applies
// nothing again; the other decision on a decided proposal is
// change.ErrDecided. An unknown proposal is store.ErrNotFound.
func (a *App) DecidePolicyChange(ctx context.Context, tenant, id string, approve bool, note string) (out change.Proposal, err error) {
	if !approve && strings.TrimSpace(note) == "" {
		return change.Proposal{}, invalid.New("reason", "is required: say why the change is rejected")
	}
	d := change.Decision{Approve: approve, By: person(ctx), At: a.now(), Note: strings.TrimSpace(note)}
	err = a.inTx(ctx, func(tx pgx.Tx) error {
		var decided bool
		out, err = store.UpdateChange(ctx, tx, tenant, id, func(p change.Proposal) (change.Proposal, bool, error) {
			next, changed, err := p.Decide(d)
			if err != nil || !changed || !approve {
				decided = changed
				return next, changed, err
			}
			now := map[string]int{}
			for _, b := range p.BasedOn {
				v, err := versionOf(ctx, tx, tenant, b)
				if err != nil {
					return p, false, err
				}
				now[b.Key()] = v.Version
			}
			if err := p.Stale(now); err != nil {
				return p, false, err
			}
			if next.Applied, err = a.apply(ctx, tx, next, d.At); err != nil {
				return p, false, err
			}
			decided = true
			return next, true, nil
		})
		if err != nil || !decided {
			return err
		}
		action, detail := "policy_change.reject", changeDetail(out)
		if approve {
			action = "policy_change.approve"
			applied := make([]audit.Detail, len(out.Applied))
			for i, v := range out.Applied {
				applied[i] = audit.Detail{"id": v.PolicyID, "version": v.Version, "active": v.Active}
			}
			detail["applied"] = applied
		}
		return a.auditTx(ctx, tx, tenant, action, changeTarget(out), detail)
	})
	if err != nil {
		return change.Proposal{}, fmt.Errorf("policy change %s: %w", id, err)
	}
	return out, nil
}

// apply carries out an approved change within tx as the direct call would,
// and returns the policies as it left them.
func (a *App) apply(ctx context.Context, tx pgx.Tx, p change.Proposal, now time.Time) ([]change.Version, error) {
	extra := audit.Detail{"change": p.ID, "proposed_by": p.ProposedBy.Subject}
	c := p.Change
	var ps []policy.Policy
	switch c.Kind {
	case change.Create:
		pol := c.Policy.Clone()
		pol.ID, pol.Tenant, pol.Version, pol.Active, pol.CreatedAt = outbox.NewEventID(), p.Tenant, 1, true, now
		if err := policy.Validate(pol); err != nil {
			return nil, err
		}
		if err := a.createTx(ctx, tx, pol, extra); err != nil {
			return nil, err
		}
		ps = []policy.Policy{pol}
	case change.Update:
		if err := policy.Validate(*c.Policy); err != nil {
			return nil, err
		}
		pol, err := a.updateTx(ctx, tx, p.Tenant, c.PolicyID, c.Policy.Clone(), now, extra)
		if err != nil {
			return nil, err
		}
		ps = []policy.Policy{pol}
	case change.Activate, change.Deactivate:
		pol, err := a.setActiveTx(ctx, tx, p.Tenant, c.PolicyID, c.Kind == change.Activate, extra)
		if err != nil {
			return nil, err
		}
		ps = []policy.Policy{pol}
	case change.LoadPack:
		var err error
		if ps, err = a.loadPackTx(ctx, tx, p.Tenant, *c.Snapshot, c.Inactive, now, extra); err != nil {
			return nil, err
		}
	default:
		return nil, fmt.Errorf("app: policy change %s: unknown kind %q", p.ID, c.Kind)
	}
	out := make([]change.Version, len(ps))
	for i, pol := range ps {
		out[i] = change.Version{PolicyID: pol.ID, Name: pol.Name, Version: pol.Version, Active: pol.Active}
	}
	return out, nil
}
