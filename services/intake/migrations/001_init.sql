-- The customer archive: one customer per (tenant, external id).
CREATE TABLE customers (
  id text PRIMARY KEY,
  tenant_id text NOT NULL,
  external_id text NOT NULL,
  name text NOT NULL DEFAULT '',
  phone text NOT NULL DEFAULT '',
  email text NOT NULL DEFAULT '',
  tier text NOT NULL DEFAULT '',
  -- The source time of the newest data taken; older updates do not overwrite it.
  source_updated_at timestamptz NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now(),
  UNIQUE (tenant_id, external_id)
);

-- Completed services reported by upstream systems, once per (source_system, source_event_id).
CREATE TABLE services (
  id text PRIMARY KEY,
  tenant_id text NOT NULL,
  source_system text NOT NULL,
  source_event_id text NOT NULL,
  service_type text NOT NULL,
  completed_at timestamptz NOT NULL,
  customer_id text NOT NULL REFERENCES customers (id),
  org_unit text NOT NULL DEFAULT '',
  staff_id text NOT NULL DEFAULT '',
  amount_minor bigint NOT NULL DEFAULT 0,
  product jsonb,
  received_at timestamptz NOT NULL DEFAULT now(),
  UNIQUE (tenant_id, source_system, source_event_id)
);
CREATE INDEX services_customer ON services (customer_id, completed_at DESC);
