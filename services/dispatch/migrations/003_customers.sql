-- Issue #5: CustomerUpdated. The newest version of each customer dispatch
-- has seen (an older version arriving late changes nothing), and its
-- snapshot, which a task created later starts from.
CREATE TABLE customer_versions (
  tenant_id text NOT NULL,
  customer_id text NOT NULL,
  version bigint NOT NULL,
  -- The types.v1.Customer snapshot of that version, in protojson.
  customer jsonb NOT NULL,
  updated_at timestamptz NOT NULL,
  PRIMARY KEY (tenant_id, customer_id)
);

-- A customer's active tasks (refresh, opt-out).
CREATE INDEX tasks_customer ON tasks (tenant_id, (customer->>'id')) WHERE status IN ('open', 'claimed', 'sending');
