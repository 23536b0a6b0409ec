-- Issue #14: when a customer is erased, the free text kept about them is
-- redacted: what an agent typed (comments, problem descriptions, answers'
-- comments and text, promised replies' questions), attachments and
-- signatures, amendments and their before/after values, complaints'
-- descriptions and written replies, the complaint history's details and
-- the reviewers' comments. Ratings, categories, severities, times and ids
-- stay, so the figures do not change.
--
-- Records, amendments and sign-offs stay append-only (seed 004): the one
-- change the database lets through is a redaction, in a transaction that
-- says so (SET LOCAL huifang.redaction = 'on'), and of the columns the
-- trigger names only.
CREATE OR REPLACE FUNCTION visit_records_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF TG_OP = 'UPDATE' AND current_setting('huifang.redaction', true) = 'on'
     AND (to_jsonb(NEW) - TG_ARGV) = (to_jsonb(OLD) - TG_ARGV) THEN
    RETURN NEW;
  END IF;
  RAISE EXCEPTION 'visit records are append-only (seed 004)';
END $$;

DROP TRIGGER visit_records_append_only ON visit_records;
CREATE TRIGGER visit_records_append_only BEFORE UPDATE OR DELETE ON visit_records
  FOR EACH ROW EXECUTE FUNCTION visit_records_append_only('comments', 'problems', 'answers', 'attachments', 'signature_ref', 'promised_replies');
DROP TRIGGER record_amendments_append_only ON record_amendments;
CREATE TRIGGER record_amendments_append_only BEFORE UPDATE OR DELETE ON record_amendments
  FOR EACH ROW EXECUTE FUNCTION visit_records_append_only('comments', 'answers', 'attachments', 'signature_ref', 'changes', 'reason');

-- redact_text blanks the named keys of every object of a JSON array (the
-- free text of answers, problems, promised replies, field changes).
CREATE FUNCTION redact_text(items jsonb, keys text[]) RETURNS jsonb LANGUAGE sql IMMUTABLE AS $$
  SELECT coalesce(jsonb_agg(CASE WHEN jsonb_typeof(i) = 'object'
    THEN i || (SELECT coalesce(jsonb_object_agg(k, ''), '{}') FROM unnest(keys) k WHERE i ? k) ELSE i END ORDER BY n), '[]'::jsonb)
  FROM jsonb_array_elements(CASE WHEN jsonb_typeof(items) = 'array' THEN items ELSE '[]'::jsonb END) WITH ORDINALITY AS e(i, n)
$$;
