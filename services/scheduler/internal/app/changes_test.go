package app_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/huifang/huifang/pkg/auth"
	"github.com/huifang/huifang/pkg/invalid"
	"github.com/huifang/huifang/services/scheduler/internal/app"
	"github.com/huifang/huifang/services/scheduler/internal/change"
	"github.com/huifang/huifang/services/scheduler/internal/policy"
	"github.com/huifang/huifang/services/scheduler/internal/store"
)

// people of tenant acme, as the guard puts their verified tokens in the context.
func as(b bundle, subject string, roles ...auth.Role) context.Context {
	return auth.With(b.ctx, auth.Principal{Subject: subject, Tenant: "acme", Roles: roles})
}

func repairsPolicy() policy.Policy {
	return policy.Policy{Name: "repairs", SourceRule: "seed 000 (property): repairs within 1 month, at least 30%",
		Trigger: policy.Trigger{ServiceTypes: []string{"repair"}},
		Steps:   []policy.Step{{Window: policy.Duration(30 * day), Channel: policy.ChannelPhone, SampleRate: 1}}}
}

func synthetic() change.Load {
	return change.Load{From: t0, Synthetic: &change.Synthetic{ServicesPerDay: 10, Days: 3, ServiceTypes: []string{"repair"}}}
}

// Issue 16, plans approved before they run: seed 000 (第八条: 回访计划应包括回访
// 对象、回访时间、回访方式等内容,并经公司领导审批后执行) and seed 004 (三、(一)3:
// 隨訪計劃經隨訪中心主任審核後報上級領導批準實施; DOMAIN.md: "Director plans and
// approves"). A tenant that turns approval on has its admin's direct writes
// refused; the admin proposes with a dry run, cannot approve their own
// change, and the director's approval applies it once, with the audit
// entries of the direct call naming the change and both people.
func TestPolicyChangeNeedsTheDirectorsApproval(t *testing.T) {
	b := setup(t)
	admin, director := as(b, "admin-1", auth.TenantAdmin), as(b, "d-1", auth.Director)

	got, err := b.a.PolicyApproval(b.ctx, "acme")
	require.NoError(t, err)
	require.False(t, got.Required, "off until the tenant turns it on")
	_, err = b.a.SetPolicyApproval(admin, "acme", true)
	require.NoError(t, err)
	_, err = b.a.SetPolicyApproval(admin, "acme", false)
	require.ErrorIs(t, err, auth.ErrPermissionDenied, "the admin whose changes it holds back does not lift it")
	got, err = b.a.PolicyApproval(b.ctx, "acme")
	require.NoError(t, err)
	require.True(t, got.Required)
	require.Equal(t, "admin-1", got.UpdatedBy)

	// Every direct write is refused, saying to propose; other tenants are unaffected.
	_, err = b.a.CreatePolicy(admin, "acme", repairsPolicy())
	require.ErrorIs(t, err, app.ErrApprovalRequired)
	require.Contains(t, err.Error(), "ProposePolicyChange")
	_, err = b.a.LoadPolicyPack(admin, "acme", "property", false)
	require.ErrorIs(t, err, app.ErrApprovalRequired)
	_, err = b.a.SetActive(admin, "acme", "builtin-appliance-purchase", false)
	require.ErrorIs(t, err, app.ErrApprovalRequired)
	other, err := b.a.CreatePolicy(b.ctx, "shop", repairsPolicy())
	require.NoError(t, err)
	_, err = b.a.UpdatePolicy(b.ctx, "shop", other.ID, repairsPolicy())
	require.NoError(t, err)

	// The admin proposes; the proposal carries the dry run.
	draft := repairsPolicy()
	p, err := b.a.ProposePolicyChange(admin, app.Proposal{Tenant: "acme", Change: change.Change{Kind: change.Create, Policy: &draft},
		Reason: "seed 000: repairs followed up within a month", Load: synthetic()})
	require.NoError(t, err)
	require.Equal(t, change.Proposed, p.State)
	require.Equal(t, change.Person{Subject: "admin-1", Roles: []string{"tenant_admin"}}, p.ProposedBy)
	require.Equal(t, t0, p.ProposedAt)
	require.Equal(t, []change.Version{{Name: "repairs"}}, p.BasedOn)
	require.Len(t, p.DryRuns, 1)
	require.Equal(t, 30, p.DryRuns[0].Counts.Services)
	require.Equal(t, 30, p.DryRuns[0].Counts.Visits, "one call per repair")
	require.Equal(t, map[string]int{"CHANNEL_PHONE": 30}, p.DryRuns[0].Counts.PerChannel)
	active, err := store.ActivePolicies(b.ctx, b.pool, "acme")
	require.NoError(t, err)
	for _, a := range active {
		require.NotEqual(t, "repairs", a.Name, "nothing applies before the approval")
	}

	// Four eyes: the proposer does not approve, even holding the director's role.
	_, err = b.a.DecidePolicyChange(as(b, "admin-1", auth.TenantAdmin, auth.Director), "acme", p.ID, true, "")
	require.ErrorIs(t, err, change.ErrOwnProposal)

	b.clock.set(t0.Add(2 * time.Hour))
	approved, err := b.a.DecidePolicyChange(director, "acme", p.ID, true, "approved at the monthly review")
	require.NoError(t, err)
	require.Equal(t, change.Approved, approved.State)
	require.Equal(t, change.Person{Subject: "d-1", Roles: []string{"director"}}, approved.DecidedBy)
	require.Equal(t, t0.Add(2*time.Hour), approved.DecidedAt)
	require.Len(t, approved.Applied, 1)
	require.Equal(t, 1, approved.Applied[0].Version)
	require.True(t, approved.Applied[0].Active)
	pol, err := b.a.GetPolicy(b.ctx, "acme", approved.Applied[0].PolicyID, 0)
	require.NoError(t, err)
	require.Equal(t, "repairs", pol.Name)
	require.True(t, pol.Active)

	// A retry applies nothing again; the other decision is refused.
	again, err := b.a.DecidePolicyChange(director, "acme", p.ID, true, "")
	require.NoError(t, err)
	require.Equal(t, approved.Applied, again.Applied)
	require.Equal(t, approved.DecidedAt, again.DecidedAt)
	var n int
	require.NoError(t, b.pool.QueryRow(b.ctx, `SELECT count(*) FROM policies WHERE tenant_id = 'acme' AND name = 'repairs'`).Scan(&n))
	require.Equal(t, 1, n, "applied at most once")
	_, err = b.a.DecidePolicyChange(director, "acme", p.ID, false, "changed my mind")
	require.ErrorIs(t, err, change.ErrDecided)

	var actions []string
	for _, e := range auditLog(t, b, "acme") {
		actions = append(actions, e.Action+" by "+e.Actor.Subject)
	}
	require.Equal(t, []string{"policy_approval.set by admin-1", "policy_change.propose by admin-1", "policy.create by d-1", "policy_change.approve by d-1"}, actions)
	es := auditLog(t, b, "acme")
	require.JSONEq(t, `{"name":"repairs","version":1,"active":true,"change":"`+p.ID+`","proposed_by":"admin-1"}`, string(es[2].Detail))

	// The unknown and the foreign proposal are not found.
	_, err = b.a.DecidePolicyChange(director, "acme", "nope", true, "")
	require.ErrorIs(t, err, store.ErrNotFound)
	_, err = b.a.GetPolicyChange(b.ctx, "shop", p.ID)
	require.ErrorIs(t, err, store.ErrNotFound)

	// The director lifts the setting: direct writes work again.
	_, err = b.a.SetPolicyApproval(director, "acme", false)
	require.NoError(t, err)
	_, err = b.a.SetActive(admin, "acme", pol.ID, false)
	require.NoError(t, err)
}

// A change proposed against a version that has changed since is refused on
// approval, naming the policy, and stays proposed to be rejected.
func TestStaleProposalIsRefused(t *testing.T) {
	b := setup(t)
	admin, director := as(b, "admin-1", auth.TenantAdmin), as(b, "d-1", auth.Director)
	pol, err := b.a.CreatePolicy(admin, "acme", repairsPolicy())
	require.NoError(t, err)
	_, err = b.a.SetPolicyApproval(admin, "acme", true)
	require.NoError(t, err)

	weekly, sample := repairsPolicy(), repairsPolicy()
	weekly.Steps[0].Every, weekly.Steps[0].MaxOccurrences = policy.Duration(7*day), 4
	sample.Steps[0].SampleRate = 0.3
	first, err := b.a.ProposePolicyChange(admin, app.Proposal{Tenant: "acme", Change: change.Change{Kind: change.Update, PolicyID: pol.ID, Policy: &weekly},
		Reason: "weekly", Load: synthetic()})
	require.NoError(t, err)
	require.Equal(t, []change.Version{{PolicyID: pol.ID, Name: "repairs", Version: 1, Active: true}}, first.BasedOn)
	second, err := b.a.ProposePolicyChange(admin, app.Proposal{Tenant: "acme", Change: change.Change{Kind: change.Update, PolicyID: pol.ID, Policy: &sample},
		Reason: "seed 000: at least 30%", Load: synthetic()})
	require.NoError(t, err)
	require.Equal(t, 120, first.DryRuns[0].Counts.Visits+first.DryRuns[0].Counts.Suppressed, "4 weekly calls per repair")

	ok, err := b.a.DecidePolicyChange(director, "acme", second.ID, true, "")
	require.NoError(t, err)
	require.Equal(t, 2, ok.Applied[0].Version)
	_, err = b.a.DecidePolicyChange(director, "acme", first.ID, true, "")
	require.ErrorIs(t, err, change.ErrStale)
	require.Contains(t, err.Error(), "policy repairs ("+pol.ID+") was at version 1 when proposed and is at version 2 now")
	still, err := b.a.GetPolicyChange(b.ctx, "acme", first.ID)
	require.NoError(t, err)
	require.Equal(t, change.Proposed, still.State)
	rejected, err := b.a.DecidePolicyChange(director, "acme", first.ID, false, "superseded by the sampling change")
	require.NoError(t, err)
	require.Equal(t, change.Rejected, rejected.State)
	require.Equal(t, "superseded by the sampling change", rejected.Note)
	cur, err := b.a.GetPolicy(b.ctx, "acme", pol.ID, 0)
	require.NoError(t, err)
	require.Equal(t, 2, cur.Version)
	require.Equal(t, 0.3, cur.Steps[0].SampleRate)

	// History: newest first, by state, in pages.
	all, err := b.a.ListPolicyChanges(b.ctx, store.ChangeQuery{Tenant: "acme", Limit: 10})
	require.NoError(t, err)
	require.Len(t, all, 2)
	onlyRejected, err := b.a.ListPolicyChanges(b.ctx, store.ChangeQuery{Tenant: "acme", State: change.Rejected, Limit: 10})
	require.NoError(t, err)
	require.Len(t, onlyRejected, 1)
	require.Equal(t, first.ID, onlyRejected[0].ID)
	page1, err := b.a.ListPolicyChanges(b.ctx, store.ChangeQuery{Tenant: "acme", Limit: 1})
	require.NoError(t, err)
	page2, err := b.a.ListPolicyChanges(b.ctx, store.ChangeQuery{Tenant: "acme", AfterAt: page1[0].ProposedAt, AfterID: page1[0].ID, Limit: 1})
	require.NoError(t, err)
	require.Len(t, page2, 1)
	require.NotEqual(t, page1[0].ID, page2[0].ID)
}

// A pack, a switch and a new policy's name taken since: what each change
// proposes, simulates and applies.
func TestProposeEveryKindOfChange(t *testing.T) {
	b := setup(t)
	admin, director := as(b, "admin-1", auth.TenantAdmin), as(b, "d-1", auth.Director)
	_, err := b.a.SetPolicyApproval(admin, "acme", true)
	require.NoError(t, err)

	// A pack: each policy it loads on is simulated; the approval loads the pack as proposed.
	pk, err := b.a.ProposePolicyChange(admin, app.Proposal{Tenant: "acme", Change: change.Change{Kind: change.LoadPack, Pack: "property"},
		Reason: "seed 000 property management", Load: change.Load{From: t0, Synthetic: &change.Synthetic{ServicesPerDay: 10, Days: 2,
			ServiceTypes: []string{"complaint_closed", "repair", "community_event"}, Severities: []string{"general"}}}})
	require.NoError(t, err)
	require.Len(t, pk.BasedOn, len(pk.Change.Snapshot.Policies))
	require.Len(t, pk.DryRuns, len(pk.Change.Snapshot.Policies), "the property pack loads every policy on")
	for _, r := range pk.DryRuns {
		require.Positive(t, r.Counts.Services, r.Name)
	}
	done, err := b.a.DecidePolicyChange(director, "acme", pk.ID, true, "")
	require.NoError(t, err)
	require.Len(t, done.Applied, len(pk.Change.Snapshot.Policies))
	taken := done.Applied[0].Name
	for _, v := range done.Applied {
		require.Equal(t, 1, v.Version)
		require.True(t, v.Active)
	}

	// Switching a built-in off for the tenant, by proposal.
	off, err := b.a.ProposePolicyChange(admin, app.Proposal{Tenant: "acme", Change: change.Change{Kind: change.Deactivate, PolicyID: "builtin-complaint-resolved"},
		Reason: "the pack confirms complaints itself", Load: synthetic()})
	require.NoError(t, err)
	require.Len(t, off.DryRuns, 1, "what the policy would no longer plan")
	done, err = b.a.DecidePolicyChange(director, "acme", off.ID, true, "")
	require.NoError(t, err)
	require.False(t, done.Applied[0].Active)

	// Refused at once: a malformed change, an unknown policy or pack, a name in use.
	_, err = b.a.ProposePolicyChange(admin, app.Proposal{Tenant: "acme", Change: change.Change{Kind: change.Create, Policy: &policy.Policy{Name: "x"}}})
	bad, ok := invalid.As(err)
	require.True(t, ok, "%v", err)
	var fields []string
	for _, v := range bad.Violations {
		fields = append(fields, v.Field)
	}
	require.Contains(t, fields, "reason")
	require.Contains(t, fields, "policy.trigger.service_types")
	_, err = b.a.ProposePolicyChange(admin, app.Proposal{Tenant: "acme", Change: change.Change{Kind: change.Activate, PolicyID: "nope"}, Reason: "r"})
	require.ErrorIs(t, err, store.ErrNotFound)
	_, err = b.a.ProposePolicyChange(admin, app.Proposal{Tenant: "acme", Change: change.Change{Kind: change.LoadPack, Pack: "nope"}, Reason: "r"})
	_, ok = invalid.As(err)
	require.True(t, ok)
	dup := repairsPolicy()
	dup.Name = taken
	_, err = b.a.ProposePolicyChange(admin, app.Proposal{Tenant: "acme", Change: change.Change{Kind: change.Create, Policy: &dup}, Reason: "r", Load: synthetic()})
	require.ErrorIs(t, err, store.ErrConflict)

	// A new policy whose name was taken between proposal and approval.
	fresh := repairsPolicy()
	fresh.Name = "holiday-visits"
	p1, err := b.a.ProposePolicyChange(admin, app.Proposal{Tenant: "acme", Change: change.Change{Kind: change.Create, Policy: &fresh}, Reason: "seed 000 holidays", Load: synthetic()})
	require.NoError(t, err)
	p2, err := b.a.ProposePolicyChange(admin, app.Proposal{Tenant: "acme", Change: change.Change{Kind: change.Create, Policy: &fresh}, Reason: "the same, twice", Load: synthetic()})
	require.NoError(t, err)
	_, err = b.a.DecidePolicyChange(director, "acme", p1.ID, true, "")
	require.NoError(t, err)
	_, err = b.a.DecidePolicyChange(director, "acme", p2.ID, true, "")
	require.ErrorIs(t, err, change.ErrStale)
	require.Contains(t, err.Error(), "policy holiday-visits was created since (version 1)")
}
