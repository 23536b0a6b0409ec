-- The agent dispatch assigned each visit to, learnt from VisitAssigned. Kept apart from visits:
-- VisitAssigned may be consumed before the visit's VisitDue. The newest assignment wins.
CREATE TABLE visit_assignments (
  tenant_id text NOT NULL,
  visit_id text NOT NULL,
  agent_id text NOT NULL,
  assigned_at timestamptz NOT NULL,
  event_id text NOT NULL,
  updated_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (tenant_id, visit_id)
);

-- One problem raised several times is recorded once (seeds 000, 002): a new problem of the same
-- customer, category and normalized description attaches to the complaint still open.
ALTER TABLE complaints
  ADD COLUMN description_key text NOT NULL DEFAULT '',
  -- Anonymous, or only a written reply requested (seed 000): no follow-up, the written reply is attached.
  ADD COLUMN anonymous boolean NOT NULL DEFAULT false,
  ADD COLUMN written_reply_only boolean NOT NULL DEFAULT false,
  ADD COLUMN written_reply text NOT NULL DEFAULT '',
  ADD COLUMN written_reply_ref text NOT NULL DEFAULT '';
CREATE INDEX complaints_same_problem ON complaints (tenant_id, customer_id, category, description_key)
  WHERE status <> 'closed';

-- Which complaints each record's problems went to, in problem order: the ones it opened and the
-- open ones it was attached to.
CREATE TABLE record_complaints (
  record_id text NOT NULL REFERENCES visit_records (id),
  complaint_id text NOT NULL REFERENCES complaints (id),
  position int NOT NULL,
  attached boolean NOT NULL,
  PRIMARY KEY (record_id, complaint_id)
);
CREATE INDEX record_complaints_complaint ON record_complaints (complaint_id);
INSERT INTO record_complaints (record_id, complaint_id, position, attached)
SELECT record_id, id, (row_number() OVER (PARTITION BY record_id ORDER BY id))::int - 1, false FROM complaints;
