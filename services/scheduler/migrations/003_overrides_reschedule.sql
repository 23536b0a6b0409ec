-- A tenant's switch of a built-in policy (tenant '*'): on or off for that tenant only.
CREATE TABLE policy_overrides (
  tenant_id text NOT NULL,
  policy_id text NOT NULL,
  active boolean NOT NULL,
  updated_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (tenant_id, policy_id)
);

-- The customer chose the visit's time (ReschedulePlannedVisit): contact windows, quiet hours,
-- holidays and caps no longer move it when it falls due.
ALTER TABLE planned_visits ADD COLUMN customer_chosen boolean NOT NULL DEFAULT false;
