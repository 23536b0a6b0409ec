package consumer_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/huifang/huifang/pkg/audit"
	"github.com/huifang/huifang/pkg/auth"
	"github.com/huifang/huifang/services/analytics/internal/consumer"
)

// A rebuild is recorded in the audit log (tenant "*": every tenant's
// rollups) in its swap's transaction, by whoever asked for it: a migration
// (the service itself) or the verified caller. A swap that fails before its
// commit leaves no entry.
func TestRebuildIsAudited(t *testing.T) {
	b := setup(t)
	ctx := context.Background()
	b.consumed(t, consumer.DefaultBatch)
	log := func() []audit.Event {
		v, err := audit.Verify(ctx, b.pool, audit.AllTenants)
		require.NoError(t, err)
		require.Nil(t, v.Broken)
		es, err := audit.List(ctx, b.pool, audit.Filter{Tenant: audit.AllTenants}, 0, 10)
		require.NoError(t, err)
		slices.Reverse(es)
		return es
	}
	es := log()
	require.Len(t, es, 1, "the rebuild the migrations asked for")
	require.Equal(t, "rollups.rebuild", es[0].Action)
	require.Equal(t, audit.System("analytics"), es[0].Actor)
	require.Contains(t, string(es[0].Detail), `"requested_by":"migration"`)

	operator := auth.With(ctx, auth.Principal{Subject: "kc-operator", Tenant: auth.AllTenants, Roles: []auth.Role{auth.PlatformOperator}})
	injected := errors.New("injected failure")
	consumer.SetFault(b.gate, func(stage string) error {
		if stage == "swap" {
			return injected
		}
		return nil
	})
	_, err := b.app.Rebuild(operator)
	require.ErrorIs(t, err, injected)
	require.Len(t, log(), 1, "the failed swap took its entry with it")

	consumer.SetFault(b.gate, nil)
	seq, err := b.app.Rebuild(operator)
	require.NoError(t, err)
	es = log()
	require.Len(t, es, 2)
	require.Equal(t, audit.Actor{Subject: "kc-operator", Roles: []string{"platform_operator"}}, es[1].Actor)
	require.Equal(t, audit.Target{Kind: "rollups", ID: "analytics"}, es[1].Target)
	require.JSONEq(t, fmt.Sprintf(`{"stream_last_sequence":%d}`, seq), string(es[1].Detail))
}
