package app_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	typesv1 "github.com/huifang/huifang/proto/huifang/types/v1"

	calendar "github.com/huifang/huifang/pkg/contact"
	"github.com/huifang/huifang/pkg/stream"
	"github.com/huifang/huifang/services/scheduler/internal/app"
	"github.com/huifang/huifang/services/scheduler/internal/contact"
)

// A command's Tx form joins the caller's transaction: what it planned, the
// customer and the events it wrote are seen inside it and vanish with its
// rollback. On an App whose DB is a transaction, the command's own
// transaction is a savepoint: it commits with the caller.
func TestPlanServiceJoinsTheCallersTransaction(t *testing.T) {
	b := setup(t)
	rows := func(sql string) int {
		var n int
		require.NoError(t, b.pool.QueryRow(b.ctx, sql).Scan(&n))
		return n
	}

	tx, err := b.pool.Begin(b.ctx)
	require.NoError(t, err)
	n, err := b.a.PlanServiceTx(b.ctx, tx, completed(t, "s-1", "purchase", t0))
	require.NoError(t, err)
	require.Equal(t, 1, n)
	var inside int
	require.NoError(t, tx.QueryRow(b.ctx, `SELECT count(*) FROM outbox WHERE subject = $1`, stream.SubjectVisitPlanned).Scan(&inside))
	require.Equal(t, 1, inside, "the event is written in the caller's transaction")
	require.NoError(t, tx.Rollback(b.ctx))
	for _, q := range []string{`SELECT count(*) FROM planned_visits`, `SELECT count(*) FROM outbox`, `SELECT count(*) FROM customers`, `SELECT count(*) FROM services`} {
		require.Zero(t, rows(q), "rolled back with the caller: %s", q)
	}

	tx, err = b.pool.Begin(b.ctx)
	require.NoError(t, err)
	inTx := &app.App{DB: tx, Now: b.clock.Now}
	n, err = inTx.PlanService(b.ctx, completed(t, "s-2", "purchase", t0))
	require.NoError(t, err)
	require.Equal(t, 1, n)
	require.Zero(t, rows(`SELECT count(*) FROM planned_visits`), "not committed before the caller commits")
	require.NoError(t, tx.Commit(b.ctx))
	require.Equal(t, 1, rows(`SELECT count(*) FROM planned_visits`))
	require.Equal(t, 1, rows(`SELECT count(*) FROM outbox`))
}

// Every VisitDue carries the tenant's contact calendar, so dispatch places
// retries by the same rules: the windows, quiet hours, time zone, the
// holiday rule and the holidays from the visit's due day on (the local
// date in the tenant's zone).
func TestVisitDueCarriesTheContactCalendar(t *testing.T) {
	b := setup(t)
	r := contact.Preset002()
	r.TimeZone, r.AvoidHolidays = "Asia/Shanghai", true
	r.Quiet = &calendar.Window{Start: 21 * 60, End: 8 * 60}
	r.Holidays = []string{"2026-11-28", "2026-11-29", "2026-12-01", "2026-12-25"}
	_, err := b.a.SetContactPolicy(b.ctx, "default", r, "")
	require.NoError(t, err)
	// Due 29 Nov 18:00 in Shanghai, a holiday: moved off it, out of the quiet hours, into the
	// first window: 30 Nov 10:00 in Shanghai (02:00 UTC).
	plan(t, b, completed(t, "s-1", "purchase", t0))
	due := time.Date(2026, 11, 30, 2, 0, 0, 0, time.UTC)
	require.Equal(t, 1, fire(t, b, due))
	// Another tenant has no contact policy: its visits carry no calendar.
	other := completed(t, "s-2", "purchase", t0)
	other.Service.Tenant = "shop"
	plan(t, b, other)
	require.Equal(t, 1, fire(t, b, t0.Add(2*day)))

	dues := dueEvents(t, b)
	require.Len(t, dues, 2)
	require.Equal(t, "default", dues[0].TenantId)
	require.Equal(t, due, dues[0].DueAt.AsTime())
	cal := dues[0].ContactCalendar
	require.NotNil(t, cal)
	require.Equal(t, []*typesv1.ContactWindow{{StartMinute: 600, EndMinute: 690}, {StartMinute: 930, EndMinute: 1020}}, cal.Windows)
	require.Equal(t, &typesv1.ContactWindow{StartMinute: 21 * 60, EndMinute: 8 * 60}, cal.QuietHours)
	require.Equal(t, "Asia/Shanghai", cal.TimeZone)
	require.True(t, cal.AvoidHolidays)
	require.Equal(t, []string{"2026-12-01", "2026-12-25"}, cal.Holidays, "the holidays from the due day (30 Nov in Shanghai) on")
	require.Equal(t, "shop", dues[1].TenantId)
	require.Nil(t, dues[1].ContactCalendar)
}
