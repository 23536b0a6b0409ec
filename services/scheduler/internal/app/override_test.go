package app_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/huifang/huifang/services/scheduler/internal/app"
	"github.com/huifang/huifang/services/scheduler/internal/contact"
	"github.com/huifang/huifang/services/scheduler/internal/policy"
	"github.com/huifang/huifang/services/scheduler/internal/store"
	"github.com/huifang/huifang/services/scheduler/internal/visit"
)

const builtinPurchase = "builtin-appliance-purchase"

func purchaseOf(t *testing.T, tenant, id string) app.Completed {
	in := completed(t, id, "purchase", t0)
	in.Service.Tenant = tenant
	return in
}

func listed(t *testing.T, b bundle, tenant, id string) policy.Policy {
	t.Helper()
	ps, err := b.a.ListPolicies(b.ctx, tenant, "", 100)
	require.NoError(t, err)
	for _, p := range ps {
		if p.ID == id {
			return p
		}
	}
	t.Fatalf("policy %s not listed for %s", id, tenant)
	return policy.Policy{}
}

// A tenant switches a built-in policy off for itself only (a real-estate
// tenant does not want seed 001's purchase visit), and on again; other
// tenants keep it.
func TestTenantSwitchesABuiltinPolicyForItselfOnly(t *testing.T) {
	b := setup(t)
	off, err := b.a.SetActive(b.ctx, "estate", builtinPurchase, false)
	require.NoError(t, err)
	require.False(t, off.Active)
	require.True(t, off.TenantOverride)
	require.True(t, off.Builtin)

	require.Equal(t, 0, plan(t, b, purchaseOf(t, "estate", "e-1")), "switched off for estate")
	require.Equal(t, 1, plan(t, b, purchaseOf(t, "shop", "s-1")), "shop still has seed 001's visit")

	require.False(t, listed(t, b, "estate", builtinPurchase).Active, "ListPolicies shows the tenant's effective state")
	require.True(t, listed(t, b, "estate", builtinPurchase).TenantOverride)
	shop := listed(t, b, "shop", builtinPurchase)
	require.True(t, shop.Active)
	require.False(t, shop.TenantOverride)
	got, err := b.a.GetPolicy(b.ctx, "estate", builtinPurchase, 0)
	require.NoError(t, err)
	require.False(t, got.Active)

	on, err := b.a.SetActive(b.ctx, "estate", builtinPurchase, true)
	require.NoError(t, err)
	require.True(t, on.Active)
	require.Equal(t, 1, plan(t, b, purchaseOf(t, "estate", "e-2")), "on again")

	_, err = b.a.UpdatePolicy(b.ctx, "estate", builtinPurchase, got)
	require.ErrorIs(t, err, policy.ErrBuiltin, "a tenant switches a built-in, it does not edit it")
	_, err = b.a.SetActive(b.ctx, "estate", "nope", false)
	require.ErrorIs(t, err, store.ErrNotFound)
}

// Issue 16: loading a pack never doubles a follow-up. The starter
// appliance-purchase (seed 001) plans a purchase call for a tenant that has
// configured nothing; once the tenant loads the appliance pack (its own
// purchase call) or the real-estate pack (buyers: seed 002), it steps aside
// and ListPolicies and GetPolicy say why.
func TestStarterBuiltinStepsAsideForAPack(t *testing.T) {
	b := setup(t)
	policiesOf := func(tenant, service string) map[string]int {
		vs, err := b.a.ListVisits(b.ctx, app.VisitQuery{Tenant: tenant, ServiceID: service, Limit: 100})
		require.NoError(t, err)
		n := map[string]int{}
		for _, v := range vs {
			p, err := b.a.GetPolicy(b.ctx, tenant, v.PolicyID, v.PolicyVersion)
			require.NoError(t, err)
			n[p.Name]++
		}
		return n
	}
	plan(t, b, purchaseOf(t, "newco", "n-1"))
	require.Equal(t, map[string]int{"appliance-purchase": 1}, policiesOf("newco", "n-1"), "a tenant that configured nothing gets seed 001's starter")
	require.True(t, listed(t, b, "newco", builtinPurchase).Active)

	_, err := b.a.LoadPolicyPack(b.ctx, "shop", "appliance", false)
	require.NoError(t, err)
	plan(t, b, purchaseOf(t, "shop", "s-1"))
	require.Equal(t, map[string]int{"appliance-purchase-followup": 1}, policiesOf("shop", "s-1"), "one purchase call, the pack's")
	shop := listed(t, b, "shop", builtinPurchase)
	require.False(t, shop.Active)
	require.Equal(t, "the tenant's policy appliance-purchase-followup is triggered by purchase", shop.SupersededBy)
	got, err := b.a.GetPolicy(b.ctx, "shop", builtinPurchase, 0)
	require.NoError(t, err)
	require.Equal(t, shop.SupersededBy, got.SupersededBy)

	_, err = b.a.LoadPolicyPack(b.ctx, "estate", "realestate", false)
	require.NoError(t, err)
	plan(t, b, purchaseOf(t, "estate", "e-1"))
	n := policiesOf("estate", "e-1")
	require.Zero(t, n["appliance-purchase"], "a home buyer gets no appliance call")
	require.Positive(t, n["realestate-buyer"])

	_, err = b.a.LoadPolicyPack(b.ctx, "clinic", "hospital", false)
	require.NoError(t, err)
	require.Equal(t, "the tenant loaded the hospital pack (policy hospital-discharge)", listed(t, b, "clinic", builtinPurchase).SupersededBy)
	require.True(t, listed(t, b, "clinic", "builtin-complaint-resolved").Active, "the confirmation of a resolved complaint is every tenant's")

	// Loaded off to simulate first, the pack configures nothing yet.
	_, err = b.a.LoadPolicyPack(b.ctx, "trial", "appliance", true)
	require.NoError(t, err)
	require.Equal(t, 1, plan(t, b, purchaseOf(t, "trial", "t-1")))
	require.Equal(t, map[string]int{"appliance-purchase": 1}, policiesOf("trial", "t-1"))
}

// A rescheduled visit fell due at the time the customer chose: the contact
// windows (seed 002: 10:00–11:30, 15:30–17:00) and caps do not move it again;
// an opt-out still stops it.
func TestCustomerChosenTimeIsNotMovedWhenDue(t *testing.T) {
	b := setup(t)
	r := contact.Preset002()
	r.Caps = []contact.Cap{{Channel: policy.ChannelPhone, Max: 1, Per: policy.Duration(3 * day)}}
	_, err := b.a.SetContactPolicy(b.ctx, "default", r, "")
	require.NoError(t, err)
	plan(t, b, completed(t, "p-1", "purchase", t0.Add(-2*time.Hour))) // due 08:00 UTC, inside no window: moved to 10:00
	plan(t, b, completed(t, "p-2", "purchase", t0.Add(-2*time.Hour)))
	vs := append(visits(t, b, app.VisitQuery{ServiceID: "p-1"}), visits(t, b, app.VisitQuery{ServiceID: "p-2"})...)
	require.Len(t, vs, 2)
	require.Equal(t, t0.Add(day), vs[0].DueAt, "placed in the first window, 10:00")

	chosen := t0.Add(day + 10*time.Hour) // 20:00 UTC the next day: outside every window
	got, err := b.a.Reschedule(b.ctx, "default", vs[0].ID, chosen, "customer asked for the evening")
	require.NoError(t, err)
	require.True(t, got.CustomerChosen)
	require.Equal(t, chosen, got.DueAt)
	_, err = b.a.Reschedule(b.ctx, "default", vs[1].ID, chosen, "same evening")
	require.NoError(t, err)
	// p-2's customer opts out of calls before it is due.
	_, err = b.a.OptOut(b.ctx, app.OptOut{Tenant: "default", CustomerID: "cust-p-2", Channel: policy.ChannelPhone, At: t0})
	require.NoError(t, err)
	// A call to p-1's customer fell due an hour before: the 1-call-in-3-days cap would move it.
	_, err = b.pool.Exec(b.ctx, `INSERT INTO planned_visits (id, tenant_id, service_id, customer_id, policy_id, policy_version, step, channel, due_at, deadline,
  status, service_type, service_completed_at, fired_at) VALUES ('earlier', 'default', 'x', 'cust-p-1', 'other', 1, 0, 1, $1, $1, 'due', 'repair', $1, $1)`, chosen.Add(-time.Hour))
	require.NoError(t, err)

	require.Equal(t, 1, fire(t, b, chosen))
	v, err := store.GetVisit(b.ctx, b.pool, "default", vs[0].ID)
	require.NoError(t, err)
	require.Equal(t, visit.StatusDue, v.Status, "fired at the time the customer chose")
	require.Equal(t, chosen, v.DueAt)
	require.Equal(t, chosen, v.FiredAt.UTC())
	last := v.Decisions[len(v.Decisions)-1]
	require.Equal(t, policy.KindReschedule, last.Kind)
	require.Contains(t, last.Detail, "the customer chose this time")
	cancelled, err := store.GetVisit(b.ctx, b.pool, "default", vs[1].ID)
	require.NoError(t, err)
	require.Equal(t, visit.StatusCancelled, cancelled.Status, "an opt-out still ends it")
}

// Seed 000 (auto): invite again if the first invitation failed. A failed
// visit (VisitUnreachable) is a visit_unreachable service naming the failed
// visit's policy; policies triggered by it plan the second invitation, once.
func TestUnreachableVisitTriggersTheReinvitation(t *testing.T) {
	b := setup(t)
	warranty := t0.AddDate(0, 2, 0)
	require.NoError(t, store.InsertPolicy(b.ctx, b.pool, policy.Policy{ID: "p-w", Tenant: "default", Name: "warranty", Version: 1, Active: true, CreatedAt: t0,
		Trigger: policy.Trigger{ServiceTypes: []string{"vehicle_delivery"}},
		Steps:   []policy.Step{{Anchor: policy.Anchor{From: policy.AnchorWarrantyUntil}, Offset: policy.Duration(-14 * day), Window: policy.Duration(14 * day), Channel: policy.ChannelPhone, SampleRate: 1}}}))
	require.NoError(t, store.InsertPolicy(b.ctx, b.pool, policy.Policy{ID: "p-r", Tenant: "default", Name: "warranty-again", Version: 1, Active: true, CreatedAt: t0,
		Trigger: policy.Trigger{ServiceTypes: []string{policy.TypeVisitUnreachable}, Attributes: map[string]string{policy.AttrFailedPolicy: "warranty"}, OncePerCustomer: true},
		Steps: []policy.Step{
			{Offset: policy.Duration(day), Window: policy.Duration(3 * day), Channel: policy.ChannelSMS, SampleRate: 1},
			{Anchor: policy.Anchor{From: policy.AnchorWarrantyUntil}, Offset: policy.Duration(-3 * day), Window: policy.Duration(3 * day), Channel: policy.ChannelPhone, SampleRate: 1},
		}}))
	in := completed(t, "v-1", "vehicle_delivery", t0)
	in.Service.WarrantyUntil = warranty
	plan(t, b, in)
	first := visits(t, b, app.VisitQuery{ServiceID: "v-1"})
	require.Len(t, first, 1)
	require.Equal(t, 1, fire(t, b, first[0].DueAt))

	failedAt := first[0].DueAt.Add(2 * day)
	b.clock.set(failedAt)
	unreachable := app.Unreachable{Tenant: "default", VisitID: first[0].ID, Attempts: 3, Reason: "no answer", At: failedAt}
	n, err := b.a.PlanUnreachable(b.ctx, unreachable)
	require.NoError(t, err)
	require.Equal(t, 2, n)
	again := visits(t, b, app.VisitQuery{ServiceID: "unreachable:" + first[0].ID})
	require.Len(t, again, 2)
	require.Equal(t, "p-r", again[0].PolicyID)
	require.Equal(t, failedAt.Add(day), again[0].DueAt, "a second SMS the next day")
	require.Equal(t, warranty.Add(-3*day), again[1].DueAt, "the original service's warranty date is kept")
	require.Equal(t, "cust-v-1", again[0].CustomerID)
	explained, err := b.a.Explain(b.ctx, "default", first[0].ID)
	require.NoError(t, err)
	require.Equal(t, policy.KindUnreachable, explained.Visit.Decisions[len(explained.Visit.Decisions)-1].Kind)

	n, err = b.a.PlanUnreachable(b.ctx, unreachable)
	require.NoError(t, err)
	require.Equal(t, 0, n, "once: the reinvitation is pending")
	_, err = b.a.PlanUnreachable(b.ctx, app.Unreachable{Tenant: "default", VisitID: "nope"})
	require.ErrorIs(t, err, store.ErrNotFound)
}
