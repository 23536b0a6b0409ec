package app_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/huifang/huifang/pkg/auth"
	"github.com/huifang/huifang/services/scheduler/internal/app"
)

// TestLeadersActOnTheirUnitsVisits: a leader lists, explains, reschedules
// and cancels only the visits of the org units its token names; a director
// any. A refused change changes nothing.
func TestLeadersActOnTheirUnitsVisits(t *testing.T) {
	b := setup(t)
	north := completed(t, "n-1", "purchase", t0.Add(-2*time.Hour))
	north.Service.OrgUnit = "north"
	plan(t, b, north)
	vs := visits(t, b, app.VisitQuery{ServiceID: "n-1"})
	require.NotEmpty(t, vs)
	v := vs[0]
	as := func(p auth.Principal) context.Context { return auth.With(b.ctx, p) }
	leader := func(units ...string) context.Context {
		return as(auth.Principal{Subject: "l", Tenant: "default", Roles: []auth.Role{auth.Leader}, AgentID: "l-1", OrgUnits: units})
	}

	got, err := b.a.ListVisits(leader("north"), app.VisitQuery{Tenant: "default", OrgUnit: "north", Limit: 10})
	require.NoError(t, err)
	require.Len(t, got, len(vs))
	_, err = b.a.ListVisits(leader("north"), app.VisitQuery{Tenant: "default", Limit: 10})
	require.ErrorIs(t, err, auth.ErrPermissionDenied, "every unit's visits")
	_, err = b.a.ListVisits(leader("south"), app.VisitQuery{Tenant: "default", OrgUnit: "north", Limit: 10})
	require.ErrorIs(t, err, auth.ErrPermissionDenied)
	_, err = b.a.Explain(leader("south"), "default", v.ID)
	require.ErrorIs(t, err, auth.ErrPermissionDenied)
	_, err = b.a.Cancel(leader("south"), "default", v.ID, "not mine")
	require.ErrorIs(t, err, auth.ErrPermissionDenied)
	_, err = b.a.Reschedule(leader("south"), "default", v.ID, t0.Add(48*time.Hour), "not mine")
	require.ErrorIs(t, err, auth.ErrPermissionDenied)
	after := visits(t, b, app.VisitQuery{ServiceID: "n-1"})[0]
	require.Equal(t, v.Status, after.Status)
	require.Equal(t, v.DueAt, after.DueAt, "unchanged")

	_, err = b.a.Cancel(leader("north"), "default", v.ID, "the customer moved away")
	require.NoError(t, err)
	_, err = b.a.ListVisits(as(auth.Principal{Subject: "d", Tenant: "default", Roles: []auth.Role{auth.Director}}), app.VisitQuery{Tenant: "default", Limit: 10})
	require.NoError(t, err)
}
