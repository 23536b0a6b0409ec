package store

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// redactions blank the free text of the visit records that records selects
// and of the complaints that complaints selects (SQL conditions on
// visit_records and complaints, with the statement's arguments), table by
// table; the records' append-only triggers let them through in a
// transaction that set huifang.redaction (migrations 004, 005).
func redactions(records, complaints string) []struct {
	table, sql   string
	ofComplaints bool
} {
	return []struct {
		table, sql   string
		ofComplaints bool
	}{
		{"visit_records", `UPDATE visit_records SET comments = '', signature_ref = '', attachments = '[]', no_show_note = '',
  problems = redact_text(problems, '{description}'), answers = redact_text(answers, '{comment,text}'),
  promised_replies = redact_text(promised_replies, '{question}'), text_redacted_at = coalesce(text_redacted_at, now())
WHERE ` + records, false},
		{"record_amendments", `UPDATE record_amendments SET comments = CASE WHEN comments IS NULL THEN NULL ELSE '' END,
  signature_ref = CASE WHEN signature_ref IS NULL THEN NULL ELSE '' END, attachments = '[]', reason = '',
  answers = redact_text(answers, '{comment,text}'), changes = redact_text(changes, '{oldValue,newValue}')
WHERE record_id IN (SELECT id FROM visit_records WHERE ` + records + `)`, false},
		{"reviews", `UPDATE reviews SET comments = ''
WHERE record_id IN (SELECT id FROM visit_records WHERE ` + records + `)`, false},
		{"complaints", `UPDATE complaints SET description = '', description_key = '', written_reply = '', written_reply_ref = '',
  text_redacted_at = coalesce(text_redacted_at, now())
WHERE ` + complaints, true},
		{"complaint_history", `UPDATE complaint_history SET detail = ''
WHERE complaint_id IN (SELECT id FROM complaints WHERE ` + complaints + `)`, true},
		{"improvement_measures", `UPDATE improvement_measures SET text = '', note = ''
WHERE complaint_id IN (SELECT id FROM complaints WHERE ` + complaints + `)`, true},
	}
}

// redact runs the redactions within tx, the conditions on records with
// recordArgs and those on complaints with complaintArgs, and says how many
// rows of each table they touched.
func redact(ctx context.Context, tx pgx.Tx, records string, recordArgs []any, complaints string, complaintArgs []any) (map[string]int, error) {
	if _, err := tx.Exec(ctx, `SET LOCAL huifang.redaction = 'on'`); err != nil {
		return nil, fmt.Errorf("store: redact: %w", err)
	}
	out := map[string]int{}
	for _, r := range redactions(records, complaints) {
		args := recordArgs
		if r.ofComplaints {
			args = complaintArgs
		}
		tag, err := tx.Exec(ctx, r.sql, args...)
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

// RedactCustomer blanks the free text kept about an erased customer, within
// tx, and says how many rows of each table it touched: what agents typed,
// attachments and signatures, amendments, complaints' descriptions and
// written replies, the complaint history's details, improvement measures'
// texts and notes, reviewers' comments.
// Ratings, categories, severities, statuses, times and ids stay.
func RedactCustomer(ctx context.Context, tx pgx.Tx, tenant, customer string) (map[string]int, error) {
	which := `tenant_id = $1 AND customer_id = $2`
	return redact(ctx, tx, which, []any{tenant, customer}, which, []any{tenant, customer})
}

// RedactBefore is the retention of visit records (RECORD_RETENTION): it
// blanks, as RedactCustomer does, the free text of up to limit records
// logged before cutoff whose complaints are all closed before cutoff, and
// of up to limit complaints closed before cutoff, each once; it returns how
// many records and complaints it redacted.
func RedactBefore(ctx context.Context, db *pgxpool.Pool, cutoff time.Time, limit int) (int, error) {
	var n int
	err := pgx.BeginFunc(ctx, db, func(tx pgx.Tx) error {
		var records, complaints []string
		rows, err := tx.Query(ctx, `SELECT r.id FROM visit_records r
WHERE r.text_redacted_at IS NULL AND r.logged_at < $1
  AND NOT EXISTS (SELECT 1 FROM record_complaints rc JOIN complaints c ON c.id = rc.complaint_id
    WHERE rc.record_id = r.id AND (c.status <> 'closed' OR c.updated_at >= $1))
  AND NOT EXISTS (SELECT 1 FROM complaints c WHERE c.record_id = r.id AND (c.status <> 'closed' OR c.updated_at >= $1))
ORDER BY r.logged_at LIMIT $2 FOR UPDATE SKIP LOCKED`, cutoff, limit)
		if err != nil {
			return fmt.Errorf("store: records to redact: %w", err)
		}
		if records, err = pgx.CollectRows(rows, pgx.RowTo[string]); err != nil {
			return fmt.Errorf("store: records to redact: %w", err)
		}
		rows, err = tx.Query(ctx, `SELECT id FROM complaints
WHERE text_redacted_at IS NULL AND status = 'closed' AND updated_at < $1
ORDER BY updated_at LIMIT $2 FOR UPDATE SKIP LOCKED`, cutoff, limit)
		if err != nil {
			return fmt.Errorf("store: complaints to redact: %w", err)
		}
		if complaints, err = pgx.CollectRows(rows, pgx.RowTo[string]); err != nil {
			return fmt.Errorf("store: complaints to redact: %w", err)
		}
		if len(records)+len(complaints) == 0 {
			return nil
		}
		got, err := redact(ctx, tx, `id = ANY($1)`, []any{records}, `id = ANY($1)`, []any{complaints})
		n = got["visit_records"] + got["complaints"]
		return err
	})
	return n, err
}
