package app

import (
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	typesv1 "github.com/huifang/huifang/proto/huifang/types/v1"

	"github.com/huifang/huifang/pkg/audit/audittest"
	"github.com/huifang/huifang/services/feedback/internal/record"
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
