-- Issue 16: a step's sample rate is a minimum, met by a deterministic quota
-- (policy/quota.go). One row per stratum: the tenant, the policy, the step,
-- the service's org unit and the calendar month of the service in the
-- tenant's time zone. The planning transaction upserts its row (locking it
-- until the commit, so concurrent planners count one after the other) and
-- samples a service in exactly when fewer than ceil(rate × eligible) were.
CREATE TABLE sample_quotas (
  tenant_id text NOT NULL,
  policy_id text NOT NULL,
  step int NOT NULL,
  org_unit text NOT NULL,
  -- The calendar month, YYYY-MM.
  period text NOT NULL,
  -- Services eligible for the step so far, and how many of them were sampled in.
  eligible bigint NOT NULL,
  sampled bigint NOT NULL,
  -- Whether the service counted last was sampled in.
  last_in boolean NOT NULL,
  updated_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (tenant_id, policy_id, step, org_unit, period),
  CHECK (sampled <= eligible)
);
