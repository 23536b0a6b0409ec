package app_test

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/huifang/huifang/pkg/auth"
	"github.com/huifang/huifang/services/analytics/internal/app"
	"github.com/huifang/huifang/services/analytics/internal/rollup"
)

// TestLeadersReadTheirUnits: a leader reads the figures of an org unit its
// token names, and must name one; a director reads the tenant's.
func TestLeadersReadTheirUnits(t *testing.T) {
	b := setup(t)
	b.applyScenario(t)
	as := func(p auth.Principal) context.Context { return auth.With(context.Background(), p) }
	leader := as(auth.Principal{Subject: "l", Tenant: "default", Roles: []auth.Role{auth.Leader}, AgentID: "l-1", OrgUnits: []string{"north"}})
	director := as(auth.Principal{Subject: "d", Tenant: "default", Roles: []auth.Role{auth.Director}})
	in := app.Scope{Tenant: "default", Filter: rollup.Dims{OrgUnit: "north"}}
	out := app.Scope{Tenant: "default", Filter: rollup.Dims{OrgUnit: "south"}}
	all := app.Scope{Tenant: "default"}

	_, err := b.app.Satisfaction(leader, in, "overall")
	require.NoError(t, err)
	_, err = b.app.Satisfaction(leader, out, "overall")
	require.ErrorIs(t, err, auth.ErrPermissionDenied)
	_, err = b.app.Coverage(leader, all)
	require.ErrorIs(t, err, auth.ErrPermissionDenied, "the whole tenant")
	_, err = b.app.Scorecards(leader, out)
	require.ErrorIs(t, err, auth.ErrPermissionDenied, "another unit's agents")
	_, err = b.app.Report(leader, app.ReportOf{Tenant: "default", OrgUnit: "south"})
	require.ErrorIs(t, err, auth.ErrPermissionDenied)
	_, err = b.app.Satisfaction(director, all, "overall")
	require.NoError(t, err)
}
