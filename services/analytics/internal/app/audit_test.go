package app_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/huifang/huifang/pkg/audit"
	"github.com/huifang/huifang/pkg/audit/audittest"
	"github.com/huifang/huifang/pkg/auth"
	"github.com/huifang/huifang/services/analytics/internal/app"
	"github.com/huifang/huifang/services/analytics/internal/figures"
)

// auditLog returns the tenant's audit entries, oldest first, after checking
// that their chain holds.
func (b bundle) auditLog(t *testing.T, tenant string) []audit.Event {
	t.Helper()
	return audittest.Log(t, b.pool, tenant)
}

// Targets, the incentive rule and reports write their audit entries in
// their own transactions, by the verified caller; a refused change writes
// none.
func TestSettingsAndReportsAreAudited(t *testing.T) {
	b := setup(t)
	admin := auth.With(context.Background(), auth.Principal{Subject: "kc-admin", Tenant: "acme", Roles: []auth.Role{auth.TenantAdmin}})
	director := auth.With(context.Background(), auth.Principal{Subject: "kc-director", Tenant: "acme", Roles: []auth.Role{auth.Director}, AgentID: "d-1"})

	require.NoError(t, b.app.SetTarget(admin, "acme", figures.Coverage, 95))
	require.Error(t, b.app.SetTarget(admin, "acme", figures.Coverage, 101), "the database refuses a percent above 100")
	require.NoError(t, b.app.SetIncentiveRule(admin, "acme", figures.IncentiveRule{AgentRewardFen: 100}))
	from := time.Date(2025, 3, 1, 0, 0, 0, 0, time.UTC)
	r, err := b.app.Report(director, app.ReportOf{Tenant: "acme", OrgUnit: "north", From: from, To: from.AddDate(0, 1, 0), Previous: 2, Format: "csv"})
	require.NoError(t, err)

	es := b.auditLog(t, "acme")
	require.Len(t, es, 3, "the refused target wrote none")
	require.Equal(t, "target.set", es[0].Action)
	require.Equal(t, audit.Target{Kind: "target", ID: figures.Coverage}, es[0].Target)
	require.JSONEq(t, `{"percent":95}`, string(es[0].Detail))
	require.Equal(t, audit.Actor{Subject: "kc-admin", Roles: []string{"tenant_admin"}}, es[0].Actor)
	require.Equal(t, "incentive_rule.set", es[1].Action)
	require.Contains(t, string(es[1].Detail), `"agent_reward_fen":100`)
	require.Equal(t, "report.generate", es[2].Action)
	require.Equal(t, audit.Target{Kind: "report", ID: r.Name()}, es[2].Target)
	require.JSONEq(t, `{"org_unit":"north","from":"2025-03-01","to":"2025-04-01","previous":2,"format":"csv"}`, string(es[2].Detail))
	require.Equal(t, "kc-director", es[2].Actor.Subject)

	// In the caller's transaction: rolled back with it.
	tx, err := b.pool.Begin(context.Background())
	require.NoError(t, err)
	inTx := &app.App{DB: tx}
	require.NoError(t, inTx.SetTarget(admin, "acme", figures.Timeliness, 90))
	require.NoError(t, tx.Rollback(context.Background()))
	require.Len(t, b.auditLog(t, "acme"), 3)
	require.Zero(t, b.count(t, `SELECT count(*) FROM targets WHERE figure = $1`, figures.Timeliness))
}
