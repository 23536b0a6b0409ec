package store

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"
)

// redactions blank the free text kept about one customer ($1 the tenant,
// $2 the customer), table by table; the records' append-only triggers let
// them through in a transaction that set huifang.redaction (migration 004).
func redactions() []struct{ table, sql string } {
	return []struct{ table, sql string }{
		{"visit_records", `UPDATE visit_records SET comments = '', signature_ref = '', attachments = '[]',
  problems = redact_text(problems, '{description}'), answers = redact_text(answers, '{comment,text}'),
  promised_replies = redact_text(promised_replies, '{question}')
WHERE tenant_id = $1 AND customer_id = $2`},
		{"record_amendments", `UPDATE record_amendments SET comments = CASE WHEN comments IS NULL THEN NULL ELSE '' END,
  signature_ref = CASE WHEN signature_ref IS NULL THEN NULL ELSE '' END, attachments = '[]', reason = '',
  answers = redact_text(answers, '{comment,text}'), changes = redact_text(changes, '{oldValue,newValue}')
WHERE tenant_id = $1 AND record_id IN (SELECT id FROM visit_records WHERE tenant_id = $1 AND customer_id = $2)`},
		{"complaints", `UPDATE complaints SET description = '', description_key = '', written_reply = '', written_reply_ref = ''
WHERE tenant_id = $1 AND customer_id = $2`},
		{"complaint_history", `UPDATE complaint_history SET detail = ''
WHERE complaint_id IN (SELECT id FROM complaints WHERE tenant_id = $1 AND customer_id = $2)`},
		{"reviews", `UPDATE reviews SET comments = ''
WHERE tenant_id = $1 AND record_id IN (SELECT id FROM visit_records WHERE tenant_id = $1 AND customer_id = $2)`},
	}
}

// RedactCustomer blanks the free text kept about an erased customer, within
// tx, and says how many rows of each table it touched: what agents typed,
// attachments and signatures, amendments, complaints' descriptions and
// written replies, the complaint history's details, reviewers' comments.
// Ratings, categories, severities, statuses, times and ids stay.
func RedactCustomer(ctx context.Context, tx pgx.Tx, tenant, customer string) (map[string]int, error) {
	if _, err := tx.Exec(ctx, `SET LOCAL huifang.redaction = 'on'`); err != nil {
		return nil, fmt.Errorf("store: redact: %w", err)
	}
	out := map[string]int{}
	for _, r := range redactions() {
		tag, err := tx.Exec(ctx, r.sql, tenant, customer)
		if err != nil {
			return nil, fmt.Errorf("store: redact %s: %w", r.table, err)
		}
		out[r.table] = int(tag.RowsAffected())
	}
	if _, err := tx.Exec(ctx, `SET LOCAL huifang.redaction = 'off'`); err != nil {
		return nil, fmt.Errorf("store: redact: %w", err)
	}
	return out, nil
}
