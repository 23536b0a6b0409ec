package store_test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/huifang/huifang/services/analytics/internal/rollup"
	"github.com/huifang/huifang/services/analytics/internal/store"
)

// The customer buckets kept per customer and year: a customer in two units
// counts once in each and once in all; a month's and a year's buckets are
// apart, and so are two years'; a customer leaves a bucket (by a negative
// delta) only when their last service there goes, and a customer-year or a
// bucket left empty is removed.
func TestApplyMembersDerivesEveryBucket(t *testing.T) {
	db := pool(t)
	ctx := context.Background()
	type svc struct {
		id, customer string
		day          time.Time
		unit         string
		covered      bool
	}
	day := func(y int, m time.Month, d int) time.Time { return time.Date(y, m, d, 10, 0, 0, 0, time.UTC) }
	coverage := func(s svc) rollup.ServiceCoverage {
		c := rollup.ServiceCoverage{Tenant: "default", ServiceID: s.id}
		return c.With("v"+s.id, rollup.ServiceVisit{Day: s.day, Done: s.covered, Customer: s.customer, Dims: rollup.Dims{OrgUnit: s.unit}}, true)
	}
	// move applies, in one transaction, the services in that enter and
	// the services out that leave.
	move := func(in, out []svc) {
		var was, is []rollup.MemberDelta
		for _, s := range in {
			is = append(is, coverage(s).Members()...)
		}
		for _, s := range out {
			was = append(was, coverage(s).Members()...)
		}
		require.NoError(t, pgx.BeginFunc(ctx, db, func(tx pgx.Tx) error {
			return store.ApplyMembers(ctx, tx, rollup.MemberDiff(was, is))
		}))
	}
	// buckets is every bucket as "span period unit covered/eligible" (unit
	// "*" for all units), checked against CustomerCoverage.
	buckets := func() []string {
		rows, err := db.Query(ctx, `SELECT span, period, all_units, org_unit FROM customer_coverage ORDER BY 1, 2, 3, 4`)
		require.NoError(t, err)
		type key struct {
			Span   string
			Period time.Time
			All    bool
			Unit   string
		}
		keys, err := pgx.CollectRows(rows, pgx.RowToStructByPos[key])
		require.NoError(t, err)
		var out []string
		for _, k := range keys {
			e, c, err := store.CustomerCoverage(ctx, db, "default", k.Span, k.Period, k.Unit)
			require.NoError(t, err)
			if k.All {
				k.Unit = "*"
			}
			out = append(out, fmt.Sprintf("%s %s %s %d/%d", k.Span, k.Period.Format(time.DateOnly), k.Unit, c, e))
		}
		return out
	}
	count := func(q string) (n int) {
		require.NoError(t, db.QueryRow(ctx, q).Scan(&n))
		return n
	}
	s1 := svc{"s1", "c", day(2025, 3, 10), "north", true}
	s1b := svc{"s1b", "c", day(2025, 3, 11), "north", false}
	d1 := svc{"d1", "d", day(2025, 3, 5), "north", false}
	s2 := svc{"s2", "c", day(2025, 3, 20), "south", false}
	s3 := svc{"s3", "c", day(2025, 12, 31), "north", false}
	s4 := svc{"s4", "c", day(2026, 1, 1), "north", true}

	move([]svc{s1, s1b, d1}, nil)
	require.Equal(t, []string{"month 2025-03-01 north 1/2", "month 2025-03-01 * 1/2", "year 2025-01-01 north 1/2", "year 2025-01-01 * 1/2"}, buckets(),
		"c with two services in one cell, one covered; d with one")

	move([]svc{s2}, nil)
	require.Equal(t, []string{"month 2025-03-01 north 1/2", "month 2025-03-01 south 0/1", "month 2025-03-01 * 1/2",
		"year 2025-01-01 north 1/2", "year 2025-01-01 south 0/1", "year 2025-01-01 * 1/2"}, buckets(),
		"c in a second unit: once more in the unit, still once in all")

	move([]svc{s3, s4}, nil)
	require.Equal(t, []string{"month 2025-03-01 north 1/2", "month 2025-03-01 south 0/1", "month 2025-03-01 * 1/2",
		"month 2025-12-01 north 0/1", "month 2025-12-01 * 0/1", "month 2026-01-01 north 1/1", "month 2026-01-01 * 1/1",
		"year 2025-01-01 north 1/2", "year 2025-01-01 south 0/1", "year 2025-01-01 * 1/2",
		"year 2026-01-01 north 1/1", "year 2026-01-01 * 1/1"}, buckets(),
		"31 December and 1 January: two months, two years")
	require.Equal(t, 3, count(`SELECT count(*) FROM customer_years`), "c's 2025 and 2026, d's 2025")
	rows, err := db.Query(ctx, `SELECT concat_ws(' ', span, period, CASE WHEN all_units THEN '*' ELSE org_unit END, services, covered)
FROM customer_members WHERE customer_id = 'c' AND period < '2026-01-01' ORDER BY span, period, all_units, org_unit`)
	require.NoError(t, err)
	members, err := pgx.CollectRows(rows, pgx.RowTo[string])
	require.NoError(t, err)
	require.Equal(t, []string{"month 2025-03-01 north 2 1", "month 2025-03-01 south 1 0", "month 2025-03-01 * 3 1",
		"month 2025-12-01 north 1 0", "month 2025-12-01 * 1 0",
		"year 2025-01-01 north 3 1", "year 2025-01-01 south 1 0", "year 2025-01-01 * 4 1"}, members,
		"customer_members: c's services and covered ones per bucket of 2025")

	move(nil, []svc{s1})
	require.Equal(t, []string{"month 2025-03-01 north 0/2", "month 2025-03-01 south 0/1", "month 2025-03-01 * 0/2",
		"month 2025-12-01 north 0/1", "month 2025-12-01 * 0/1", "month 2026-01-01 north 1/1", "month 2026-01-01 * 1/1",
		"year 2025-01-01 north 0/2", "year 2025-01-01 south 0/1", "year 2025-01-01 * 0/2",
		"year 2026-01-01 north 1/1", "year 2026-01-01 * 1/1"}, buckets(),
		"c's covered service gone: c stays (s1b) but is no longer covered in March nor in 2025")

	move(nil, []svc{s1b, s2, s3})
	require.Equal(t, []string{"month 2025-03-01 north 0/1", "month 2025-03-01 * 0/1", "month 2026-01-01 north 1/1", "month 2026-01-01 * 1/1",
		"year 2025-01-01 north 0/1", "year 2025-01-01 * 0/1", "year 2026-01-01 north 1/1", "year 2026-01-01 * 1/1"}, buckets(),
		"c's last services of 2025 gone: c leaves every bucket of 2025, the empty ones go")
	require.Equal(t, 2, count(`SELECT count(*) FROM customer_years`), "c's 2025 is removed")
	require.Equal(t, 8, count(`SELECT count(*) FROM customer_members`), "d in four buckets of 2025, c in four of 2026")

	move([]svc{{"e1", "e", day(2027, 2, 1), "", true}}, nil)
	require.Equal(t, []string{"month 2027-02-01  1/1", "month 2027-02-01 * 1/1", "year 2027-01-01  1/1", "year 2027-01-01 * 1/1"},
		slices.DeleteFunc(buckets(), func(b string) bool { return !strings.Contains(b, " 2027-") }),
		"a service of no org unit: its unit \"\" apart from all units")
}

// A rebuild's swap makes the views over the rollup tables (customer_members)
// again over the tables it puts in place, with their privileges.
func TestSwapShadowMakesTheViewsAgain(t *testing.T) {
	db := pool(t)
	ctx := context.Background()
	_, err := db.Exec(ctx, `GRANT SELECT ON customer_members TO PUBLIC`)
	require.NoError(t, err)
	live, shadow, err := store.Schemas(ctx, db)
	require.NoError(t, err)
	require.NoError(t, pgx.BeginFunc(ctx, db, func(tx pgx.Tx) error {
		since, err := store.CreateShadow(ctx, tx, live, shadow)
		require.NoError(t, err)
		_, err = tx.Exec(ctx, `INSERT INTO `+pgx.Identifier{shadow, "customer_years"}.Sanitize()+`
VALUES ('default', 'c', '2025-01-01', '{3}', '{north}', '{2}', '{1}')`)
		require.NoError(t, err)
		return store.SwapShadow(ctx, tx, live, shadow, "analytics", since)
	}))
	rows, err := db.Query(ctx, `SELECT concat_ws(' ', span, period, CASE WHEN all_units THEN '*' ELSE org_unit END, customer_id, services, covered)
FROM customer_members ORDER BY 1`)
	require.NoError(t, err)
	got, err := pgx.CollectRows(rows, pgx.RowTo[string])
	require.NoError(t, err)
	require.Equal(t, []string{"month 2025-03-01 * c 2 1", "month 2025-03-01 north c 2 1", "year 2025-01-01 * c 2 1", "year 2025-01-01 north c 2 1"}, got,
		"the view reads the table swapped in")
	var acl string
	require.NoError(t, db.QueryRow(ctx, `SELECT coalesce(relacl::text, '') FROM pg_class WHERE oid = 'customer_members'::regclass`).Scan(&acl))
	require.Contains(t, acl, ",=r/", "the grant to PUBLIC is kept")
}
