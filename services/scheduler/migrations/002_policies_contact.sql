-- Recurring series, the contact policy and what explains a visit (issue #4).
ALTER TABLE planned_visits
  -- The occurrence in a recurring series (0 for the first visit of a step).
  ADD COLUMN occurrence int NOT NULL DEFAULT 0,
  -- When the policy wanted the visit, before the contact policy moved it.
  ADD COLUMN nominal_at timestamptz,
  -- Every decision about the visit (rule, anchor, sample, window, cap, opt-out, ...), for ExplainVisit.
  ADD COLUMN decisions jsonb NOT NULL DEFAULT '[]',
  ADD COLUMN sample_rate double precision NOT NULL DEFAULT 1,
  -- The service as the planner saw it, kept on recurring visits to plan the next one.
  ADD COLUMN service jsonb,
  -- Stop conditions copied from the policy version: service types that end the series, and
  -- whether an answered visit ends it.
  ADD COLUMN stop_types text[] NOT NULL DEFAULT '{}',
  ADD COLUMN stop_on_answer boolean NOT NULL DEFAULT false,
  ADD COLUMN holiday_step boolean NOT NULL DEFAULT false,
  ADD COLUMN complaint_id text NOT NULL DEFAULT '',
  ADD COLUMN severity int NOT NULL DEFAULT 0,
  ADD COLUMN product_category text NOT NULL DEFAULT '',
  ADD COLUMN updated_at timestamptz;
ALTER TABLE planned_visits DROP CONSTRAINT planned_visits_tenant_id_service_id_policy_id_step_key;
ALTER TABLE planned_visits ADD CONSTRAINT planned_visits_series_key UNIQUE (tenant_id, service_id, policy_id, step, occurrence);
-- The contact ledger for frequency caps: visits that fell due, per customer.
CREATE INDEX planned_visits_contacts ON planned_visits (tenant_id, customer_id, fired_at) WHERE status = 'due';
-- Stop conditions and opt-outs find a customer's pending visits.
CREATE INDEX planned_visits_customer_pending ON planned_visits (tenant_id, customer_id) WHERE status = 'planned';

-- What the scheduler knows of each customer's contact preferences: from CustomerUpdated
-- (newest version wins), ContactOptedOut, and the snapshot on ServiceCompleted.
CREATE TABLE customers (
  tenant_id text NOT NULL,
  customer_id text NOT NULL,
  version bigint NOT NULL DEFAULT 0,
  prefs jsonb NOT NULL DEFAULT '{}',
  -- Channels opted out of: only ever added to (ContactOptedOut), never lost to an older snapshot.
  opted_out int[] NOT NULL DEFAULT '{}',
  tier text NOT NULL DEFAULT '',
  updated_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (tenant_id, customer_id)
);

-- The tenant's contact policy: windows, quiet hours, holidays, time zone, caps.
CREATE TABLE contact_policies (
  tenant_id text PRIMARY KEY,
  spec jsonb NOT NULL,
  updated_at timestamptz NOT NULL DEFAULT now()
);

-- Every completed service seen, for SimulatePolicy's replay.
CREATE TABLE services (
  tenant_id text NOT NULL,
  service_id text NOT NULL,
  completed_at timestamptz NOT NULL,
  spec jsonb NOT NULL,
  PRIMARY KEY (tenant_id, service_id)
);
CREATE INDEX services_completed ON services (tenant_id, completed_at);
