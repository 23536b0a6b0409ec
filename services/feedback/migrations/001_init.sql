-- Visits that fell due, learnt from VisitDue: the context a record is logged against.
CREATE TABLE visits (
  tenant_id text NOT NULL,
  visit_id text NOT NULL,
  customer_id text NOT NULL DEFAULT '',
  service_id text NOT NULL DEFAULT '',
  policy_id text NOT NULL DEFAULT '',
  -- The planned channel, as the huifang.types.v1.Channel name.
  channel text NOT NULL DEFAULT 'CHANNEL_UNSPECIFIED',
  due_at timestamptz,
  deadline timestamptz,
  org_unit text NOT NULL DEFAULT '',
  service_type text NOT NULL DEFAULT '',
  service_completed_at timestamptz,
  received_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (tenant_id, visit_id)
);

-- Records of completed follow-ups: append-only, one per visit (seed 004: records
-- are not to be altered).
CREATE TABLE visit_records (
  id text PRIMARY KEY,
  tenant_id text NOT NULL,
  visit_id text NOT NULL,
  agent_id text NOT NULL,
  channel text NOT NULL,
  -- huifang.types.v1.Answer and Problem lists in protojson.
  answers jsonb NOT NULL DEFAULT '[]',
  problems jsonb NOT NULL DEFAULT '[]',
  comments text NOT NULL DEFAULT '',
  started_at timestamptz,
  ended_at timestamptz,
  logged_at timestamptz NOT NULL,
  customer_id text NOT NULL DEFAULT '',
  org_unit text NOT NULL DEFAULT '',
  UNIQUE (tenant_id, visit_id),
  FOREIGN KEY (tenant_id, visit_id) REFERENCES visits (tenant_id, visit_id)
);

-- Complaints opened from records, routed to the owning department.
CREATE TABLE complaints (
  id text PRIMARY KEY,
  tenant_id text NOT NULL,
  record_id text NOT NULL REFERENCES visit_records (id),
  visit_id text NOT NULL,
  customer_id text NOT NULL DEFAULT '',
  org_unit text NOT NULL DEFAULT '',
  category text NOT NULL,
  description text NOT NULL,
  department text NOT NULL,
  severity text NOT NULL,
  status text NOT NULL,
  deadline timestamptz NOT NULL,
  created_at timestamptz NOT NULL,
  owner_agent_id text NOT NULL
);
CREATE INDEX complaints_tenant_created ON complaints (tenant_id, created_at DESC, id DESC);
CREATE INDEX complaints_record ON complaints (record_id);

-- Append-only, enforced by the database: a stored record is never updated or deleted.
CREATE FUNCTION visit_records_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  RAISE EXCEPTION 'visit records are append-only (seed 004)';
END $$;
CREATE TRIGGER visit_records_append_only BEFORE UPDATE OR DELETE ON visit_records
  FOR EACH ROW EXECUTE FUNCTION visit_records_append_only();
