package migrations_test

import (
	"context"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/huifang/huifang/pkg/app"
	"github.com/huifang/huifang/pkg/pgtest"
	"github.com/huifang/huifang/pkg/postgres"
	"github.com/huifang/huifang/pkg/servicetest"
	"github.com/huifang/huifang/services/analytics/migrations"
)

// Issue 16: seed 003's 改进落实率 is the figure improvement, which replaces
// the stand-in improvement_30d; a tenant's target on the stand-in carries
// over at the upgrade, unless the tenant set one on improvement already.
func TestUpgradeCarriesImprovementTargetsOver(t *testing.T) {
	ctx := context.Background()
	pool, err := postgres.Open(ctx, servicetest.Logger(), pgtest.NewDatabase(t), "analytics",
		app.Migrations("analytics", servicetest.MigrationsBefore(t, migrations.FS, "010"))...)
	require.NoError(t, err)
	defer pool.Close()
	_, err = pool.Exec(ctx, `INSERT INTO targets (tenant_id, figure, percent) VALUES
  ('a', 'improvement_30d', 80), ('b', 'improvement_30d', 85), ('b', 'improvement', 95), ('b', 'coverage', 70)`)
	require.NoError(t, err)

	require.NoError(t, postgres.Migrate(ctx, pool, "analytics", postgres.Migrations{Set: "analytics", FS: migrations.FS}))

	rows, err := pool.Query(ctx, `SELECT tenant_id || ' ' || figure || ' ' || percent FROM targets ORDER BY 1`)
	require.NoError(t, err)
	got, err := pgx.CollectRows(rows, pgx.RowTo[string])
	require.NoError(t, err)
	require.Equal(t, []string{"a improvement 80", "b coverage 70", "b improvement 95"}, got)
}

// The services stored before 011 keep their columns and have no event id:
// their ServiceCompleted was applied with an inbox row, which a redelivery
// finds (the consumer's TestKeyedEventsOfEntriesStoredBefore).
func TestUpgradeLeavesStoredServicesWithoutEventID(t *testing.T) {
	ctx := context.Background()
	pool, err := postgres.Open(ctx, servicetest.Logger(), pgtest.NewDatabase(t), "analytics",
		app.Migrations("analytics", servicetest.MigrationsBefore(t, migrations.FS, "011"))...)
	require.NoError(t, err)
	defer pool.Close()
	_, err = pool.Exec(ctx, `INSERT INTO services (tenant_id, service_id, product_category, vehicle_model, plate_masked, advisor)
VALUES ('default', 's1', 'washer', 'A4', '沪A***45', 'st1')`)
	require.NoError(t, err)

	require.NoError(t, postgres.Migrate(ctx, pool, "analytics", postgres.Migrations{Set: "analytics", FS: migrations.FS}))

	var got string
	require.NoError(t, pool.QueryRow(ctx, `SELECT concat_ws('|', service_id, product_category, vehicle_model, plate_masked, advisor, coalesce(event_id, 'null')) FROM services`).Scan(&got))
	require.Equal(t, "s1|washer|A4|沪A***45|st1|null", got)
	var requests int
	require.NoError(t, pool.QueryRow(ctx, `SELECT count(*) FROM rebuild_requests WHERE reason LIKE '011%'`).Scan(&requests))
	require.Zero(t, requests, "no rebuild: the services keep what they had")
}
