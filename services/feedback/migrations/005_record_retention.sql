-- Issue #14, retention of visit records: after RECORD_RETENTION the free
-- text of a record and of its complaints, once they are closed, is redacted
-- as an erasure redacts it (migration 004); text_redacted_at says when, so
-- that the purge does each row once. Ratings, categories, severities,
-- statuses, times and ids stay: the figures do not change.
ALTER TABLE visit_records ADD COLUMN text_redacted_at timestamptz;
ALTER TABLE complaints ADD COLUMN text_redacted_at timestamptz;
CREATE INDEX visit_records_unredacted ON visit_records (logged_at) WHERE text_redacted_at IS NULL;
CREATE INDEX complaints_unredacted ON complaints (updated_at) WHERE text_redacted_at IS NULL AND status = 'closed';

-- A redaction of a record may also say when it was done.
DROP TRIGGER visit_records_append_only ON visit_records;
CREATE TRIGGER visit_records_append_only BEFORE UPDATE OR DELETE ON visit_records
  FOR EACH ROW EXECUTE FUNCTION visit_records_append_only('comments', 'problems', 'answers', 'attachments', 'signature_ref', 'promised_replies', 'text_redacted_at');
