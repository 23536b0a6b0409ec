-- Questionnaires: versioned templates. Tenant '*' holds the seed templates every tenant may use.
CREATE TABLE questionnaires (
  tenant_id text NOT NULL,
  id text NOT NULL,
  version int NOT NULL,
  name text NOT NULL,
  description text NOT NULL DEFAULT '',
  seed text NOT NULL DEFAULT '',
  -- huifang.feedback.v1.Question list in protojson.
  questions jsonb NOT NULL,
  created_at timestamptz NOT NULL,
  PRIMARY KEY (tenant_id, id, version)
);

-- Which questionnaire the visits of a scheduler policy use. Tenant '*' rows come from configuration.
CREATE TABLE policy_questionnaires (
  tenant_id text NOT NULL,
  policy_id text NOT NULL,
  questionnaire_id text NOT NULL,
  -- 0: the latest version at the time of logging.
  questionnaire_version int NOT NULL DEFAULT 0,
  updated_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (tenant_id, policy_id)
);

-- A confirmation visit names the complaint whose resolution it confirms.
ALTER TABLE visits ADD COLUMN complaint_id text NOT NULL DEFAULT '';

ALTER TABLE visit_records
  ADD COLUMN questionnaire_id text NOT NULL DEFAULT '',
  ADD COLUMN questionnaire_version int NOT NULL DEFAULT 0,
  ADD COLUMN signature_ref text NOT NULL DEFAULT '',
  ADD COLUMN attachments jsonb NOT NULL DEFAULT '[]',
  ADD COLUMN promised_replies jsonb NOT NULL DEFAULT '[]',
  ADD COLUMN confirmed_complaint_id text NOT NULL DEFAULT '';
CREATE INDEX visit_records_agent_logged ON visit_records (tenant_id, agent_id, logged_at);

-- Corrections of records: the record stays as logged (seed 004); each amendment says who, what and why.
CREATE TABLE record_amendments (
  id text PRIMARY KEY,
  tenant_id text NOT NULL,
  record_id text NOT NULL REFERENCES visit_records (id),
  seq bigserial NOT NULL,
  by_whom text NOT NULL,
  reason text NOT NULL,
  -- huifang.types.v1.Answer list in protojson: replacements.
  answers jsonb NOT NULL DEFAULT '[]',
  comments text,
  signature_ref text,
  attachments jsonb NOT NULL DEFAULT '[]',
  -- huifang.feedback.v1.FieldChange list in protojson.
  changes jsonb NOT NULL,
  at timestamptz NOT NULL
);
CREATE INDEX record_amendments_record ON record_amendments (record_id, seq);
CREATE TRIGGER record_amendments_append_only BEFORE UPDATE OR DELETE ON record_amendments
  FOR EACH ROW EXECUTE FUNCTION visit_records_append_only();

-- Leaders' reviews (sign-offs) of records.
CREATE TABLE record_sign_offs (
  tenant_id text NOT NULL,
  record_id text NOT NULL REFERENCES visit_records (id),
  seq bigserial NOT NULL,
  leader_id text NOT NULL,
  approved boolean NOT NULL,
  note text NOT NULL DEFAULT '',
  at timestamptz NOT NULL
);
CREATE INDEX record_sign_offs_record ON record_sign_offs (record_id, seq);
CREATE TRIGGER record_sign_offs_append_only BEFORE UPDATE OR DELETE ON record_sign_offs
  FOR EACH ROW EXECUTE FUNCTION visit_records_append_only();

-- The complaint loop.
ALTER TABLE complaints
  ADD COLUMN level int NOT NULL DEFAULT 0,
  ADD COLUMN service_id text NOT NULL DEFAULT '',
  -- How long the owner has at each level: the category rule's deadline.
  ADD COLUMN window_seconds bigint NOT NULL DEFAULT 172800,
  ADD COLUMN root_cause text NOT NULL DEFAULT '',
  ADD COLUMN action text NOT NULL DEFAULT '',
  ADD COLUMN outcome text NOT NULL DEFAULT '',
  ADD COLUMN close_reason text NOT NULL DEFAULT '',
  ADD COLUMN updated_at timestamptz;
UPDATE complaints SET updated_at = created_at;
ALTER TABLE complaints ALTER COLUMN updated_at SET NOT NULL;
-- The overdue scan: open or acknowledged complaints by deadline.
CREATE INDEX complaints_overdue ON complaints (deadline) WHERE status IN ('open', 'acknowledged');

CREATE TABLE complaint_history (
  complaint_id text NOT NULL REFERENCES complaints (id),
  seq bigserial NOT NULL,
  kind text NOT NULL,
  by_whom text NOT NULL DEFAULT '',
  at timestamptz NOT NULL,
  detail text NOT NULL DEFAULT '',
  level int NOT NULL DEFAULT 0,
  PRIMARY KEY (complaint_id, seq)
);

CREATE TABLE open_letters (
  id text PRIMARY KEY,
  tenant_id text NOT NULL,
  title text NOT NULL,
  body text NOT NULL,
  by_whom text NOT NULL,
  created_at timestamptz NOT NULL
);
CREATE TABLE open_letter_complaints (
  letter_id text NOT NULL REFERENCES open_letters (id),
  complaint_id text NOT NULL REFERENCES complaints (id),
  PRIMARY KEY (letter_id, complaint_id)
);
CREATE INDEX open_letter_complaints_complaint ON open_letter_complaints (complaint_id);

-- Quality-assurance reviews of records.
CREATE TABLE reviews (
  id text PRIMARY KEY,
  tenant_id text NOT NULL,
  record_id text NOT NULL REFERENCES visit_records (id),
  agent_id text NOT NULL,
  reviewer_id text NOT NULL,
  -- huifang.feedback.v1.ChecklistScore list in protojson.
  scores jsonb NOT NULL,
  score int NOT NULL,
  comments text NOT NULL DEFAULT '',
  at timestamptz NOT NULL
);
CREATE INDEX reviews_record ON reviews (record_id);
