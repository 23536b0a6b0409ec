package app_test

import (
	"context"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/huifang/huifang/pkg/audit"
	"github.com/huifang/huifang/pkg/audit/audittest"
	"github.com/huifang/huifang/pkg/auth"
	"github.com/huifang/huifang/services/dispatch/internal/app"
	"github.com/huifang/huifang/services/dispatch/internal/task"
)

// auditLog returns the tenant's audit entries, oldest first, after checking
// that their chain holds.
func auditLog(t *testing.T, b bundle, tenant string) []audit.Event {
	t.Helper()
	return audittest.Log(t, b.pool, tenant)
}

// Agent, role and org-unit changes and reassignments write their audit
// entries in their own transactions, by the verified caller; a change that
// is refused writes none, and no name (personal data) is kept.
func TestOrgChangesAndReassignmentsAreAudited(t *testing.T) {
	b := setup(t)
	admin := auth.With(context.Background(), auth.Principal{Subject: "kc-admin", Tenant: "default", Roles: []auth.Role{auth.TenantAdmin}})
	leader := auth.With(context.Background(), auth.Principal{Subject: "kc-lead", Tenant: "default", Roles: []auth.Role{auth.Leader}, AgentID: "lead-1"})

	_, err := b.a.UpsertOrgUnit(admin, task.OrgUnit{ID: "east", Name: "East branch"})
	require.NoError(t, err)
	_, err = b.a.UpsertOrgUnit(admin, task.OrgUnit{ID: "east-1", Name: "East 1", ParentID: "nowhere"})
	require.Error(t, err, "an unknown parent is refused")
	for _, ag := range []task.Agent{
		{ID: "a-1", Name: "李娜", Groups: []string{"g-1"}},
		{ID: "a-2", Name: "王强", Groups: []string{"g-1"}},
		{ID: "lead-1", Name: "张伟", Role: task.RoleLeader, Groups: []string{"g-1"}},
	} {
		_, err := b.a.UpsertAgent(admin, ag)
		require.NoError(t, err)
	}
	_, err = b.a.UpsertAgent(admin, task.Agent{ID: "a-2", Name: "王强", Role: task.RoleLeader, Groups: []string{"g-1", "g-2"}})
	require.NoError(t, err)
	_, err = b.a.UpsertAgent(admin, task.Agent{ID: "a-3"})
	require.Error(t, err, "an agent without a name is refused")

	x := b.add(t, "v-1", func(x *task.Task) { x.Group = "g-1" })
	_, found := b.claim(t, "a-1")
	require.True(t, found)
	_, err = b.a.Reassign(leader, "default", x.ID, "lead-1", "nobody", "a-1 is sick")
	require.Error(t, err, "an unknown agent is refused")
	_, err = b.a.Reassign(leader, "default", x.ID, "lead-1", "a-2", "a-1 is sick")
	require.NoError(t, err)

	es := auditLog(t, b, "default")
	var actions []string
	for _, e := range es {
		actions = append(actions, e.Action)
		require.NotContains(t, string(e.Detail), "王", "no names in the log")
		require.NotContains(t, string(e.Detail), "sick", "no free text in the log")
	}
	require.Equal(t, []string{"org_unit.upsert", "agent.create", "agent.create", "agent.create", "agent.update", "task.reassign"}, actions)
	require.Equal(t, audit.Actor{Subject: "kc-admin", Roles: []string{"tenant_admin"}}, es[1].Actor)
	require.Equal(t, audit.Target{Kind: "agent", ID: "a-2"}, es[4].Target)
	require.JSONEq(t, `{"role":"leader","role_before":"agent","org_unit":"","groups":["g-1","g-2"],"active":true,"changed":["role","groups"]}`, string(es[4].Detail))
	require.Equal(t, audit.Target{Kind: "task", ID: x.ID}, es[5].Target)
	require.Equal(t, "kc-lead", es[5].Actor.Subject)
	require.JSONEq(t, `{"visit_id":"v-1","from_agent":"a-1","to_agent":"a-2","leader_id":"lead-1"}`, string(es[5].Detail))

	// In the caller's transaction: rolled back with it.
	tx, err := b.pool.Begin(context.Background())
	require.NoError(t, err)
	inTx := &app.App{DB: tx, Now: b.clock.Now}
	_, err = inTx.UpsertAgent(admin, task.Agent{ID: "a-9", Name: "赵敏"})
	require.NoError(t, err)
	require.NoError(t, tx.Rollback(context.Background()))
	require.Len(t, auditLog(t, b, "default"), len(es))
	var agents int
	require.NoError(t, pgx.BeginFunc(context.Background(), b.pool, func(tx pgx.Tx) error {
		return tx.QueryRow(context.Background(), `SELECT count(*) FROM agents WHERE id = 'a-9'`).Scan(&agents)
	}))
	require.Zero(t, agents)
}
