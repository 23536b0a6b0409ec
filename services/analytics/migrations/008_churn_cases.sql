-- Seed 000 (auto dealer): each quarter the vehicles with no maintenance or
-- repair visit for 6+ months are listed, an agent finds the reason and the
-- remedy, and the "churned customer analysis" table (name, model, plate,
-- last visit, advisor, reason, remedy) goes with the report. A churn case
-- is a visit of the group churn_recovery (the auto pack's auto-churn call):
-- VisitDue opens it with the customer's masked name and the service it
-- follows (the last visit), VisitLogged fills in the agent's reason and
-- remedy (answers of aspects churn_reason and churn_remedy). The car and
-- the advisor come from the service: its model, its plate masked (沪A***45)
-- and its staff. Only masked forms are kept here, as everywhere but intake.
ALTER TABLE services
  ADD COLUMN vehicle_model text NOT NULL DEFAULT '',
  ADD COLUMN plate_masked text NOT NULL DEFAULT '',
  ADD COLUMN advisor text NOT NULL DEFAULT '';

CREATE TABLE churn_cases (
  tenant_id text NOT NULL,
  visit_id text NOT NULL,
  service_id text NOT NULL DEFAULT '',
  customer_id text NOT NULL DEFAULT '',
  name_masked text NOT NULL DEFAULT '',
  org_unit text NOT NULL DEFAULT '',
  due_at timestamptz NOT NULL,
  last_visit_at timestamptz,
  agent_id text NOT NULL DEFAULT '',
  record_id text NOT NULL DEFAULT '',
  logged_at timestamptz,
  reason text NOT NULL DEFAULT '',
  remedy text NOT NULL DEFAULT '',
  PRIMARY KEY (tenant_id, visit_id)
);
-- The report lists a tenant's cases due in its period.
CREATE INDEX churn_cases_due ON churn_cases (tenant_id, due_at);

-- The services' cars and the churn cases of the past come from the stream.
INSERT INTO rebuild_requests (reason) VALUES ('008: churned-customer analysis table')
ON CONFLICT (reason) DO NOTHING;
