-- Seed 003's satisfaction votes, rolled up per tenant, UTC day (of the
-- visit's logged_at), org unit and aspect. Each VisitLogged adds its votes in
-- the same transaction as its inbox row, so a redelivery never counts twice.
-- Queries sum these rows; no raw record is kept or scanned.
CREATE TABLE satisfaction_daily (
  tenant_id text NOT NULL,
  day date NOT NULL,
  org_unit text NOT NULL DEFAULT '',
  aspect text NOT NULL,
  satisfied bigint NOT NULL DEFAULT 0 CHECK (satisfied >= 0),
  fairly_satisfied bigint NOT NULL DEFAULT 0 CHECK (fairly_satisfied >= 0),
  unsatisfied bigint NOT NULL DEFAULT 0 CHECK (unsatisfied >= 0),
  PRIMARY KEY (tenant_id, day, org_unit, aspect)
);
-- GetSatisfaction filters by tenant and aspect over a range of days.
CREATE INDEX satisfaction_daily_aspect_day ON satisfaction_daily (tenant_id, aspect, day);
