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

// The customer members stored per bucket before 012 become one row per
// customer and year, whose cells are the month and org-unit members; the
// view customer_members shows every bucket's members as the table held
// them, and no rebuild is asked for.
func TestUpgradeKeepsCustomerMembersPerYear(t *testing.T) {
	ctx := context.Background()
	pool, err := postgres.Open(ctx, servicetest.Logger(), pgtest.NewDatabase(t), "analytics",
		app.Migrations("analytics", servicetest.MigrationsBefore(t, migrations.FS, "012"))...)
	require.NoError(t, err)
	defer pool.Close()
	// c: two services in north in March 2025 (one covered), one in south
	// in March and one in north in January 2026; d: one in north in March.
	members := []string{
		"default|month|2025-03-01|f|north|c|2|1", "default|month|2025-03-01|f|south|c|1|0", "default|month|2025-03-01|t||c|3|1",
		"default|year|2025-01-01|f|north|c|2|1", "default|year|2025-01-01|f|south|c|1|0", "default|year|2025-01-01|t||c|3|1",
		"default|month|2026-01-01|f|north|c|1|0", "default|month|2026-01-01|t||c|1|0",
		"default|year|2026-01-01|f|north|c|1|0", "default|year|2026-01-01|t||c|1|0",
		"default|month|2025-03-01|f|north|d|1|1", "default|month|2025-03-01|t||d|1|1",
		"default|year|2025-01-01|f|north|d|1|1", "default|year|2025-01-01|t||d|1|1",
	}
	_, err = pool.Exec(ctx, `INSERT INTO customer_members (tenant_id, span, period, all_units, org_unit, customer_id, services, covered)
SELECT p[1], p[2], p[3]::date, p[4]::boolean, p[5], p[6], p[7]::bigint, p[8]::bigint FROM unnest($1::text[]) m, string_to_array(m, '|') p`, members)
	require.NoError(t, err)
	_, err = pool.Exec(ctx, `DELETE FROM rebuild_requests`)
	require.NoError(t, err)

	require.NoError(t, postgres.Migrate(ctx, pool, "analytics", postgres.Migrations{Set: "analytics", FS: migrations.FS}))

	rows, err := pool.Query(ctx, `SELECT concat_ws('|', tenant_id, span, period, CASE WHEN all_units THEN 't' ELSE 'f' END, org_unit, customer_id, services, covered)
FROM customer_members ORDER BY customer_id, period >= '2026-01-01', span, period, org_unit = '', org_unit`)
	require.NoError(t, err)
	got, err := pgx.CollectRows(rows, pgx.RowTo[string])
	require.NoError(t, err)
	require.Equal(t, members, got)
	rows, err = pool.Query(ctx, `SELECT concat_ws(' ', customer_id, year, months, org_units, services, covered) FROM customer_years ORDER BY 1`)
	require.NoError(t, err)
	got, err = pgx.CollectRows(rows, pgx.RowTo[string])
	require.NoError(t, err)
	require.Equal(t, []string{"c 2025-01-01 {3,3} {north,south} {2,1} {1,0}", "c 2026-01-01 {1} {north} {1} {0}", "d 2025-01-01 {3} {north} {1} {1}"}, got)
	var requests int
	require.NoError(t, pool.QueryRow(ctx, `SELECT count(*) FROM rebuild_requests`).Scan(&requests))
	require.Zero(t, requests, "no rebuild: the members are carried over")
}
