-- Every figure is summed from `daily`: one row per tenant, metric, UTC day
-- and combination of dimensions, holding a count (n) and a sum (total, e.g.
-- seconds or review points). Events change these rows by deltas in the same
-- transaction as their inbox row, so a redelivered event never counts twice.
-- The per-visit and per-complaint ledgers below exist only so that an event
-- can compute its delta exactly (a visit due, then logged late, then its
-- agent changed); queries never read them, except the list of overdue
-- complaints. The first rollup (satisfaction_daily) is replaced: the new
-- consumer replays the whole stream into `daily`.
DROP TABLE IF EXISTS satisfaction_daily;

CREATE TABLE daily (
  tenant_id text NOT NULL,
  metric text NOT NULL,
  day date NOT NULL,
  org_unit text NOT NULL DEFAULT '',
  policy_id text NOT NULL DEFAULT '',
  service_type text NOT NULL DEFAULT '',
  product_category text NOT NULL DEFAULT '',
  channel text NOT NULL DEFAULT '',
  agent_id text NOT NULL DEFAULT '',
  aspect text NOT NULL DEFAULT '',
  category text NOT NULL DEFAULT '',
  n bigint NOT NULL DEFAULT 0,
  total bigint NOT NULL DEFAULT 0,
  PRIMARY KEY (tenant_id, metric, day, org_unit, policy_id, service_type, product_category, channel, agent_id, aspect, category)
);

-- One row per visit seen in any visit event.
CREATE TABLE visits (
  tenant_id text NOT NULL,
  visit_id text NOT NULL,
  state jsonb NOT NULL,
  PRIMARY KEY (tenant_id, visit_id)
);

-- One row per complaint.
CREATE TABLE complaints (
  tenant_id text NOT NULL,
  complaint_id text NOT NULL,
  state jsonb NOT NULL,
  open boolean NOT NULL,
  deadline timestamptz,
  PRIMARY KEY (tenant_id, complaint_id)
);
CREATE INDEX complaints_deadline ON complaints (tenant_id, deadline);

-- The product category and customer of each service, and each customer's
-- last service (seed 000: churned after 6 months without one).
CREATE TABLE services (
  tenant_id text NOT NULL,
  service_id text NOT NULL,
  product_category text NOT NULL DEFAULT '',
  PRIMARY KEY (tenant_id, service_id)
);
CREATE TABLE customers (
  tenant_id text NOT NULL,
  customer_id text NOT NULL,
  last_service_at timestamptz NOT NULL,
  PRIMARY KEY (tenant_id, customer_id)
);

-- Per-tenant targets in percent; seed 003's defaults live in the code.
CREATE TABLE targets (
  tenant_id text NOT NULL,
  figure text NOT NULL,
  percent integer NOT NULL CHECK (percent BETWEEN 0 AND 100),
  PRIMARY KEY (tenant_id, figure)
);

-- Breaches found; one per tenant, figure, org unit and period, published once.
CREATE TABLE breaches (
  id text PRIMARY KEY,
  tenant_id text NOT NULL,
  figure text NOT NULL,
  org_unit text NOT NULL,
  period_start timestamptz NOT NULL,
  period_end timestamptz NOT NULL,
  value double precision NOT NULL,
  target double precision NOT NULL,
  detected_at timestamptz NOT NULL,
  UNIQUE (tenant_id, figure, org_unit, period_start)
);
CREATE INDEX breaches_tenant_detected ON breaches (tenant_id, detected_at DESC, id DESC);

-- Per-tenant incentive rules (seed 000 auto dealer by default), amounts in fen.
CREATE TABLE incentive_rules (
  tenant_id text PRIMARY KEY,
  rule jsonb NOT NULL
);
