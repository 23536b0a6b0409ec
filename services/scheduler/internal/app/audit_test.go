package app_test

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/huifang/huifang/pkg/audit"
	"github.com/huifang/huifang/pkg/audit/audittest"
	"github.com/huifang/huifang/pkg/auth"
	"github.com/huifang/huifang/services/scheduler/internal/app"
	"github.com/huifang/huifang/services/scheduler/internal/policy"
)

// auditLog returns the tenant's audit entries, oldest first, after checking
// that their chain holds.
func auditLog(t *testing.T, b bundle, tenant string) []audit.Event {
	t.Helper()
	return audittest.Log(t, b.pool, tenant)
}

// Every change of a policy or a pack writes its audit entry, by the caller
// the guard verified, in the change's own transaction: a change that fails
// or rolls back writes none.
func TestPolicyChangesAreAudited(t *testing.T) {
	b := setup(t)
	admin := auth.With(b.ctx, auth.Principal{Subject: "kc-admin", Tenant: "acme", Roles: []auth.Role{auth.TenantAdmin}})
	p := policy.Policy{Name: "instant", Trigger: policy.Trigger{ServiceTypes: []string{"repair"}}, Steps: []policy.Step{{Channel: 1, SampleRate: 1}}}

	created, err := b.a.CreatePolicy(admin, "acme", p)
	require.NoError(t, err)
	_, err = b.a.CreatePolicy(admin, "acme", p)
	require.Error(t, err, "a second policy of the same name is refused")
	p.Steps[0].Channel = 2
	_, err = b.a.UpdatePolicy(admin, "acme", created.ID, p)
	require.NoError(t, err)
	_, err = b.a.UpdatePolicy(admin, "acme", "no-such-policy", p)
	require.Error(t, err)
	_, err = b.a.SetActive(admin, "acme", created.ID, false)
	require.NoError(t, err)
	_, err = b.a.LoadPolicyPack(admin, "acme", "property", true)
	require.NoError(t, err)
	_, err = b.a.LoadPolicyPack(admin, "acme", "no-such-pack", false)
	require.Error(t, err)
	_, err = b.a.SetActive(context.Background(), "acme", created.ID, true)
	require.NoError(t, err)

	es := auditLog(t, b, "acme")
	var actions []string
	for _, e := range es {
		actions = append(actions, e.Action)
	}
	require.Equal(t, []string{"policy.create", "policy.update", "policy.deactivate", "pack.load", "policy.activate"}, actions,
		"one entry per change; the refused ones wrote none")
	require.Equal(t, audit.Actor{Subject: "kc-admin", Roles: []string{"tenant_admin"}}, es[0].Actor)
	require.Equal(t, audit.Target{Kind: "policy", ID: created.ID}, es[1].Target)
	require.JSONEq(t, `{"name":"instant","version":2,"active":true}`, string(es[1].Detail))
	require.Equal(t, audit.Target{Kind: "pack", ID: "property"}, es[3].Target)
	require.Contains(t, string(es[3].Detail), `"inactive":true`)
	require.Equal(t, "system:scheduler", es[4].Actor.Subject, "no caller: the service itself")
	require.Equal(t, t0, es[0].At.UTC(), "at the app's clock")

	// The entry is written in the change's transaction: rolled back with it.
	tx, err := b.pool.Begin(b.ctx)
	require.NoError(t, err)
	inTx := &app.App{DB: tx, Now: b.clock.Now}
	_, err = inTx.CreatePolicy(admin, "acme", policy.Policy{Name: "later", Trigger: p.Trigger, Steps: p.Steps})
	require.NoError(t, err)
	require.NoError(t, tx.Rollback(b.ctx))
	require.Len(t, auditLog(t, b, "acme"), len(es), "rolled back with the policy")
	ps, err := b.a.ListPolicies(b.ctx, "acme", "", 100)
	require.NoError(t, err)
	for _, p := range ps {
		require.NotEqual(t, "later", p.Name)
	}
}
