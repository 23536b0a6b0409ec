package app_test

import (
	"context"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/huifang/huifang/pkg/auth"
	"github.com/huifang/huifang/services/intake/internal/app"
	"github.com/huifang/huifang/services/intake/internal/archive"
)

// TestCustomersInTheLeadersUnits: a leader reads and changes only the
// customers of the org units its token names; a director any. A refused
// change changes nothing.
func TestCustomersInTheLeadersUnits(t *testing.T) {
	b := setup(t)
	_, err := b.app.IngestService(b.ctx, app.IngestService{Event: event(t, strings.Replace(repair, `"staff_id"`, `"org_unit":"north","staff_id"`, 1)), Source: "grpc"})
	require.NoError(t, err)
	as := func(p auth.Principal) context.Context { return auth.With(b.ctx, p) }
	leader := func(units ...string) context.Context {
		return as(auth.Principal{Subject: "l", Tenant: "default", Roles: []auth.Role{auth.Leader}, AgentID: "l-1", OrgUnits: units})
	}
	q := app.CustomerQuery{Tenant: "default", ExternalID: "c-1"}
	c, err := b.app.GetCustomer(leader("north"), q)
	require.NoError(t, err)
	require.Equal(t, "north", c.OrgUnit)
	_, err = b.app.GetCustomer(leader("south"), q)
	require.ErrorIs(t, err, auth.ErrPermissionDenied)
	_, err = b.app.GetCustomer(as(auth.Principal{Subject: "d", Tenant: "default", Roles: []auth.Role{auth.Director}}), q)
	require.NoError(t, err)

	before := count(t, b.pool, `SELECT count(*) FROM outbox`)
	_, err = b.app.UpdateContactPreferences(leader("south"), app.UpdateContactPreferences{Tenant: "default", CustomerID: c.ID,
		Preferences: &archive.Preferences{DislikesCalls: true}})
	require.ErrorIs(t, err, auth.ErrPermissionDenied)
	require.Equal(t, before, count(t, b.pool, `SELECT count(*) FROM outbox`), "no CustomerUpdated for a refused change")
	after, err := b.app.GetCustomer(b.ctx, q)
	require.NoError(t, err)
	require.Equal(t, c.Version, after.Version, "the customer is unchanged")
}
