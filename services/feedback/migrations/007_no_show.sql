-- Seed 000, auto dealer: for no-shows record the reason. A record may say
-- that the customer its visit invited did not come: the reason (the short
-- name of huifang.types.v1.NoShowReason, '' for none) and a note, free
-- text that a redaction blanks like the comments.
ALTER TABLE visit_records
  ADD COLUMN no_show_reason text NOT NULL DEFAULT '',
  ADD COLUMN no_show_note text NOT NULL DEFAULT '';
CREATE INDEX visit_records_no_show ON visit_records (tenant_id, no_show_reason, logged_at DESC) WHERE no_show_reason <> '';

DROP TRIGGER visit_records_append_only ON visit_records;
CREATE TRIGGER visit_records_append_only BEFORE UPDATE OR DELETE ON visit_records
  FOR EACH ROW EXECUTE FUNCTION visit_records_append_only('comments', 'problems', 'answers', 'attachments', 'signature_ref', 'promised_replies', 'text_redacted_at', 'no_show_note');
