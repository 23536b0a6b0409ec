package migrations_test

import (
	"context"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/stretchr/testify/require"

	"github.com/huifang/huifang/pkg/app"
	"github.com/huifang/huifang/pkg/pgtest"
	"github.com/huifang/huifang/pkg/postgres"
	"github.com/huifang/huifang/pkg/servicetest"
	"github.com/huifang/huifang/services/scheduler/migrations"
)

// Issue #14: visits planned before the scheduler stopped keeping contacts
// lose the clear name, phone and email of their customer snapshot at the
// upgrade; the masked forms and whether there is an address stay.
func TestUpgradeForgetsClearContacts(t *testing.T) {
	ctx := context.Background()
	pool, err := postgres.Open(ctx, servicetest.Logger(), pgtest.NewDatabase(t), "scheduler", app.Migrations("scheduler", servicetest.MigrationsBefore(t, migrations.FS, "005"))...)
	require.NoError(t, err)
	defer pool.Close()
	_, err = pool.Exec(ctx, `
INSERT INTO planned_visits (id, tenant_id, service_id, customer_id, customer, policy_id, policy_version, step, channel, due_at, deadline, status, service_type, service_completed_at)
VALUES ('v-1', 'default', 's-1', 'c-1', '{"id":"c-1","name":"Alice Wang","email":"alice@example.com","orgUnit":"north"}', 'p-1', 1, 0, 1, now(), now(), 'planned', 'repair', now()),
       ('v-2', 'default', 's-2', 'c-2', NULL, 'p-1', 1, 0, 1, now(), now(), 'planned', 'repair', now())`)
	require.NoError(t, err)

	require.NoError(t, postgres.Migrate(ctx, pool, "scheduler", postgres.Migrations{Set: "scheduler", FS: migrations.FS}))

	var customer string
	require.NoError(t, pool.QueryRow(ctx, `SELECT customer::text FROM planned_visits WHERE id = 'v-1'`).Scan(&customer))
	require.JSONEq(t, `{"id":"c-1","orgUnit":"north","nameMasked":"A***","emailMasked":"a***@example.com","hasEmail":true}`, customer)
	var none *string
	require.NoError(t, pool.QueryRow(ctx, `SELECT customer::text FROM planned_visits WHERE id = 'v-2'`).Scan(&none))
	require.Nil(t, none)
}

// Issue #14: opt-outs kept before their sources were recorded are carried
// into opt_outs at the upgrade, said to be so, at the customer's last change.
func TestUpgradeRecordsKeptOptOuts(t *testing.T) {
	ctx := context.Background()
	pool, err := postgres.Open(ctx, servicetest.Logger(), pgtest.NewDatabase(t), "scheduler", app.Migrations("scheduler", servicetest.MigrationsBefore(t, migrations.FS, "006"))...)
	require.NoError(t, err)
	defer pool.Close()
	_, err = pool.Exec(ctx, `INSERT INTO customers (tenant_id, customer_id, opted_out, updated_at)
VALUES ('default', 'c-1', '{1,4}', '2026-01-02T03:04:05Z'), ('default', 'c-2', '{}', now())`)
	require.NoError(t, err)

	require.NoError(t, postgres.Migrate(ctx, pool, "scheduler", postgres.Migrations{Set: "scheduler", FS: migrations.FS}))

	var got []string
	require.NoError(t, pool.QueryRow(ctx, `SELECT array_agg(customer_id || ' ' || channel || ' ' || source || ' ' || to_char(opted_out_at AT TIME ZONE 'UTC', 'YYYY-MM-DD') ORDER BY channel)
FROM opt_outs`).Scan(&got))
	require.Equal(t, []string{"c-1 CHANNEL_EMAIL recorded before sources were kept 2026-01-02", "c-1 CHANNEL_PHONE recorded before sources were kept 2026-01-02"}, got)
}

// Issue 15: a service's visits are found through the series key, the index
// that had only its first two columns is gone.
func TestServiceLookupUsesSeriesKey(t *testing.T) {
	ctx := context.Background()
	pool := servicetest.Pool(t, "scheduler", migrations.FS)
	var n int
	require.NoError(t, pool.QueryRow(ctx, `SELECT count(*) FROM pg_indexes WHERE indexname = 'planned_visits_service'`).Scan(&n))
	require.Zero(t, n)
	tx, err := pool.Begin(ctx)
	require.NoError(t, err)
	defer func() { _ = tx.Rollback(ctx) }()
	_, err = tx.Exec(ctx, `SET LOCAL enable_seqscan = off`)
	require.NoError(t, err)
	rows, err := tx.Query(ctx, `EXPLAIN SELECT id FROM planned_visits WHERE tenant_id = 'default' AND service_id = 's-1'`)
	require.NoError(t, err)
	plan, err := pgx.CollectRows(rows, pgx.RowTo[string])
	require.NoError(t, err)
	require.Contains(t, strings.Join(plan, "\n"), "planned_visits_series_key")
}

// Issue 15: services recorded before 010 keep no event id (their events
// were applied with an inbox row, which a redelivery still finds); a
// service recorded after keeps the id of the event that recorded it.
func TestUpgradeKeepsServicesWithoutEventIDs(t *testing.T) {
	ctx := context.Background()
	pool, err := postgres.Open(ctx, servicetest.Logger(), pgtest.NewDatabase(t), "scheduler", app.Migrations("scheduler", servicetest.MigrationsBefore(t, migrations.FS, "010"))...)
	require.NoError(t, err)
	defer pool.Close()
	_, err = pool.Exec(ctx, `INSERT INTO services (tenant_id, service_id, completed_at, spec) VALUES ('default', 's-1', now(), '{}')`)
	require.NoError(t, err)

	require.NoError(t, postgres.Migrate(ctx, pool, "scheduler", postgres.Migrations{Set: "scheduler", FS: migrations.FS}))

	_, err = pool.Exec(ctx, `INSERT INTO services (tenant_id, service_id, completed_at, spec, event_id) VALUES ('default', 's-2', now(), '{}', 'ev-2')`)
	require.NoError(t, err)
	var got []string
	require.NoError(t, pool.QueryRow(ctx, `SELECT array_agg(service_id || ' ' || coalesce(event_id, 'none') ORDER BY service_id) FROM services`).Scan(&got))
	require.Equal(t, []string{"s-1 none", "s-2 ev-2"}, got)
}
