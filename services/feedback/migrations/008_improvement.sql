-- Seed 003 (改进落实率): for a problem a follow-up found, the owning
-- department's improvement plan: measures with an owner and a due date
-- within 30 days of the problem, each carried out or not. The texts and
-- notes are free text that a redaction blanks like complaint descriptions.
CREATE TABLE improvement_plans (
  complaint_id text PRIMARY KEY REFERENCES complaints (id),
  tenant_id text NOT NULL,
  set_by text NOT NULL,
  set_at timestamptz NOT NULL,
  updated_at timestamptz NOT NULL
);

CREATE TABLE improvement_measures (
  id text PRIMARY KEY,
  complaint_id text NOT NULL REFERENCES improvement_plans (complaint_id) ON DELETE CASCADE,
  position int NOT NULL,
  text text NOT NULL,
  owner text NOT NULL,
  due_at timestamptz NOT NULL,
  completed_at timestamptz,
  completed_by text NOT NULL DEFAULT '',
  note text NOT NULL DEFAULT '',
  UNIQUE (complaint_id, position)
);
