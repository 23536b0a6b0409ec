package migrations_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/huifang/huifang/pkg/app"
	"github.com/huifang/huifang/pkg/pgtest"
	"github.com/huifang/huifang/pkg/postgres"
	"github.com/huifang/huifang/pkg/servicetest"
	"github.com/huifang/huifang/services/intake/internal/store"
	"github.com/huifang/huifang/services/intake/migrations"
)

// Issue 15: the ledger's index of a customer's entries loses its id column
// at the upgrade; the entries stored before read as they did, pages and
// ties of the same time in id order included.
func TestUpgradeNarrowsLedgerCustomerIndex(t *testing.T) {
	ctx := context.Background()
	pool, err := postgres.Open(ctx, servicetest.Logger(), pgtest.NewDatabase(t), "intake", app.Migrations("intake", servicetest.MigrationsBefore(t, migrations.FS, "008"))...)
	require.NoError(t, err)
	defer pool.Close()
	_, err = pool.Exec(ctx, `
INSERT INTO ledger_entries (tenant_id, id, customer_id, kind, at) VALUES
  ('default', 'e-3', 'c-1', 'visit_due', '2026-12-01T10:00:00Z'),
  ('default', 'e-1', 'c-1', 'service', '2026-12-01T09:00:00Z'),
  ('default', 'e-2', 'c-1', 'visit_planned', '2026-12-01T10:00:00Z'),
  ('default', 'e-4', 'c-2', 'service', '2026-12-01T09:30:00Z'),
  ('default', 'e-5', '', 'visit_assigned', '2026-12-01T11:00:00Z')`)
	require.NoError(t, err)

	require.NoError(t, postgres.Migrate(ctx, pool, "intake", postgres.Migrations{Set: "intake", FS: migrations.FS}))

	var def string
	require.NoError(t, pool.QueryRow(ctx, `SELECT indexdef FROM pg_indexes WHERE indexname = 'ledger_entries_customer'`).Scan(&def))
	require.Contains(t, def, "(tenant_id, customer_id, at) WHERE (customer_id <> ''::text)")

	st := &store.Store{}
	ids := func(q store.LedgerQuery, limit int) []string {
		q.Tenant, q.CustomerID = "default", "c-1"
		es, err := st.Ledger(ctx, pool, q, limit)
		require.NoError(t, err)
		var out []string
		for _, e := range es {
			out = append(out, e.ID)
		}
		return out
	}
	ten := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	require.Equal(t, []string{"e-1", "e-2", "e-3"}, ids(store.LedgerQuery{}, 10))
	require.Equal(t, []string{"e-3"}, ids(store.LedgerQuery{AfterAt: ten, AfterID: "e-2"}, 10))
	require.Equal(t, []string{"e-2", "e-1"}, ids(store.LedgerQuery{NewestFirst: true, AfterAt: ten, AfterID: "e-3"}, 10))
	require.Equal(t, []string{"e-2", "e-3"}, ids(store.LedgerQuery{From: &ten}, 10))
}

// Services stored before the upgrade (the ingress kept an inbox row for
// their events) do not say the ingress stored them; the ingress finds them
// by source as before, and stores new ones marked.
func TestUpgradeServicesViaIngress(t *testing.T) {
	ctx := context.Background()
	pool, err := postgres.Open(ctx, servicetest.Logger(), pgtest.NewDatabase(t), "intake", app.Migrations("intake", servicetest.MigrationsBefore(t, migrations.FS, "009"))...)
	require.NoError(t, err)
	defer pool.Close()
	_, err = pool.Exec(ctx, `
INSERT INTO customers (id, tenant_id, external_id, source_updated_at) VALUES ('c-1', 'default', 'ext-1', now());
INSERT INTO services (id, tenant_id, source_system, source_event_id, service_type, completed_at, customer_id)
VALUES ('s-1', 'default', 'dms', 'e-1', 'repair', now(), 'c-1')`)
	require.NoError(t, err)

	require.NoError(t, postgres.Migrate(ctx, pool, "intake", postgres.Migrations{Set: "intake", FS: migrations.FS}))

	st := &store.Store{}
	key := store.SourceKey{Tenant: "default", System: "dms", EventID: "e-1"}
	seen, err := st.ServicesBySource(ctx, pool, "intake-ingress", []store.IngressKey{{SourceKey: key, Inbox: "ingress:default/dms/e-1"}})
	require.NoError(t, err)
	require.Equal(t, map[store.SourceKey]store.StoredService{key: {ServiceID: "s-1", CustomerID: "c-1"}}, seen)
	_, err = pool.Exec(ctx, `INSERT INTO inbox (consumer, event_id) VALUES ('intake-ingress', 'ingress:default/dms/e-1')`)
	require.NoError(t, err)
	seen, err = st.ServicesBySource(ctx, pool, "intake-ingress", []store.IngressKey{{SourceKey: key, Inbox: "ingress:default/dms/e-1"}})
	require.NoError(t, err)
	require.Equal(t, map[store.SourceKey]store.StoredService{key: {ServiceID: "s-1", CustomerID: "c-1", Claimed: true}}, seen)
}
