package app

import (
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	typesv1 "github.com/huifang/huifang/proto/huifang/types/v1"

	"github.com/huifang/huifang/pkg/audit/audittest"
	"github.com/huifang/huifang/services/feedback/internal/record"
	"github.com/huifang/huifang/services/feedback/internal/store"
)

// An erased customer's free text is redacted everywhere feedback keeps it
// (record, amendment, complaint, its history); the ratings, categories and
// statuses stay, another customer's text stays, the records stay
// append-only for anything but a redaction, and the redaction is audited.
func TestForgetCustomerRedactsTheFreeText(t *testing.T) {
	e := setup(t)
	const secret = "王芳 +8613800138000"
	for _, id := range []string{"v-1", "v-2"} {
		e.seedVisit(t, id)
		d := draft(id, typesv1.Rating_RATING_UNSATISFIED, record.Problem{Category: "service_quality", Description: "late, said " + secret})
		d.Comments = "called " + secret
		d.Answers[0].Comment = "ask " + secret
		d.NoShow = &record.NoShow{Reason: typesv1.NoShowReason_NO_SHOW_REASON_OTHER, Note: "away with " + secret} // seed 000: the reason's note is free text too
		rec, err := e.app.LogVisit(e.ctx, d)
		require.NoError(t, err)
		comments := "corrected: " + secret
		_, err = e.app.AmendRecord(e.ctx, record.AmendDraft{TenantID: "default", RecordID: rec.ID, By: "leader-1", Reason: "typo about " + secret,
			Correction: record.Correction{Comments: &comments}})
		require.NoError(t, err)
	}
	holds := func(table, customer string) int {
		var n int
		q := `SELECT count(*) FROM ` + table + ` r WHERE r::text LIKE '%王芳%'`
		switch table {
		case "record_amendments":
			q += ` AND record_id IN (SELECT id FROM visit_records WHERE customer_id = $1)`
		case "complaint_history":
			q += ` AND complaint_id IN (SELECT id FROM complaints WHERE customer_id = $1)`
		default:
			q += ` AND customer_id = $1`
		}
		require.NoError(t, e.pool.QueryRow(e.ctx, q, customer).Scan(&n))
		return n
	}
	tables := []string{"visit_records", "record_amendments", "complaints"}
	for _, table := range tables {
		require.Positive(t, holds(table, "cust-v-1"), table)
	}

	require.NoError(t, pgx.BeginFunc(e.ctx, e.pool, func(tx pgx.Tx) error { return e.app.ForgetCustomerTx(e.ctx, tx, "default", "cust-v-1") }))
	for _, table := range append(tables, "complaint_history") {
		require.Zero(t, holds(table, "cust-v-1"), "%s still holds the erased customer's text", table)
	}
	require.Positive(t, holds("visit_records", "cust-v-2"), "another customer's record is untouched")
	var rating, category string
	require.NoError(t, e.pool.QueryRow(e.ctx, `SELECT r.answers->0->>'rating', c.category FROM visit_records r JOIN complaints c ON c.record_id = r.id
WHERE r.customer_id = 'cust-v-1'`).Scan(&rating, &category))
	require.Equal(t, "RATING_UNSATISFIED", rating, "the figures do not change")
	require.Equal(t, "service_quality", category)
	var reason, note string
	require.NoError(t, e.pool.QueryRow(e.ctx, `SELECT no_show_reason, no_show_note FROM visit_records WHERE customer_id = 'cust-v-1'`).Scan(&reason, &note))
	require.Equal(t, [2]string{"other", ""}, [2]string{reason, note}, "the no-show's reason stays, its note is blanked")
	log := audittest.Log(t, e.pool, "default")
	require.Equal(t, "customer.redact", log[len(log)-1].Action)
	require.Contains(t, string(log[len(log)-1].Detail), `"visit_records":1`)

	// Still append-only: outside a redaction, and for any other column.
	_, err := e.pool.Exec(e.ctx, `UPDATE visit_records SET comments = '' WHERE customer_id = 'cust-v-2'`)
	require.ErrorContains(t, err, "append-only")
	err = pgx.BeginFunc(e.ctx, e.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(e.ctx, `SET LOCAL huifang.redaction = 'on'`); err != nil {
			return err
		}
		_, err := tx.Exec(e.ctx, `UPDATE visit_records SET agent_id = 'someone-else' WHERE customer_id = 'cust-v-2'`)
		return err
	})
	require.ErrorContains(t, err, "append-only")
	_, err = e.pool.Exec(e.ctx, `DELETE FROM record_amendments`)
	require.ErrorContains(t, err, "append-only")
}

// RECORD_RETENTION: a record's free text, and its complaints', goes once
// the record is older than the retention and every complaint it went to
// was closed before then; each once; ratings and categories stay.
func TestRedactBeforeTakesClosedRecordsOnly(t *testing.T) {
	e := setup(t)
	const secret = "王芳 +8613800138000"
	e.seedVisit(t, "v-1")
	d := draft("v-1", typesv1.Rating_RATING_UNSATISFIED, record.Problem{Category: "service_quality", Description: "late, said " + secret})
	d.Comments = "called " + secret
	_, err := e.app.LogVisit(e.ctx, d)
	require.NoError(t, err)
	e.seedVisit(t, "v-2")
	d = draft("v-2", typesv1.Rating_RATING_SATISFIED)
	d.Comments = "called " + secret
	_, err = e.app.LogVisit(e.ctx, d)
	require.NoError(t, err)
	holds := func(q string) int {
		var n int
		require.NoError(t, e.pool.QueryRow(e.ctx, q).Scan(&n))
		return n
	}
	const records, complaints = `SELECT count(*) FROM visit_records r WHERE r::text LIKE '%王芳%'`, `SELECT count(*) FROM complaints c WHERE c::text LIKE '%王芳%'`
	require.Equal(t, 2, holds(records))
	require.Equal(t, 1, holds(complaints))

	before := e.clock.Now().Add(-time.Hour)
	n, err := store.RedactBefore(e.ctx, e.pool, before, 100)
	require.NoError(t, err)
	require.Zero(t, n, "nothing is older than the retention yet")

	later := e.clock.Now().Add(24 * time.Hour)
	n, err = store.RedactBefore(e.ctx, e.pool, later, 100)
	require.NoError(t, err)
	require.Equal(t, 1, n, "v-2's record; v-1's complaint is open, so its record stays")
	require.Equal(t, 1, holds(records))
	require.Equal(t, 1, holds(complaints))

	_, err = e.pool.Exec(e.ctx, `UPDATE complaints SET status = 'closed', updated_at = $1`, e.clock.Now())
	require.NoError(t, err)
	n, err = store.RedactBefore(e.ctx, e.pool, later, 100)
	require.NoError(t, err)
	require.Equal(t, 2, n, "v-1's record and its complaint")
	require.Zero(t, holds(records))
	require.Zero(t, holds(complaints))
	n, err = store.RedactBefore(e.ctx, e.pool, later, 100)
	require.NoError(t, err)
	require.Zero(t, n, "each once")

	var rating, category string
	require.NoError(t, e.pool.QueryRow(e.ctx, `SELECT r.answers->0->>'rating', c.category FROM visit_records r JOIN complaints c ON c.record_id = r.id
WHERE r.visit_id = 'v-1'`).Scan(&rating, &category))
	require.Equal(t, "RATING_UNSATISFIED", rating, "the figures do not change")
	require.Equal(t, "service_quality", category)
}
