-- Seed 000 (cement logistics, 回访制度新版): each day the agent calls the
-- recipients of the previous day's deliveries to confirm product and
-- quantity, and a written report goes to the general manager after each
-- round. A round visit is a visit of a delivery (service type delivery)
-- that fell due (VisitDue): its policy, day and org unit select the round;
-- the customer's masked name comes with VisitDue; the agent, the attempts,
-- unreachable, cancelled and the first record come from the visit's ledger
-- entry after each of its events; the answers of aspects product_matches
-- and quantity_matches from VisitLogged (NULL: not answered); the
-- delivery_mismatch complaint from ComplaintEscalated. Only masked forms
-- are kept here, as everywhere but intake.
CREATE TABLE round_visits (
  tenant_id text NOT NULL,
  visit_id text NOT NULL,
  policy_id text NOT NULL DEFAULT '',
  org_unit text NOT NULL DEFAULT '',
  due_at timestamptz NOT NULL,
  service_id text NOT NULL DEFAULT '',
  customer_id text NOT NULL DEFAULT '',
  name_masked text NOT NULL DEFAULT '',
  agent_id text NOT NULL DEFAULT '',
  attempted boolean NOT NULL DEFAULT false,
  unreachable boolean NOT NULL DEFAULT false,
  cancelled boolean NOT NULL DEFAULT false,
  logged_at timestamptz,
  record_id text NOT NULL DEFAULT '',
  product_matches boolean,
  quantity_matches boolean,
  complaint_id text NOT NULL DEFAULT '',
  PRIMARY KEY (tenant_id, visit_id)
);
-- A round report reads one policy's visits due in one day.
CREATE INDEX round_visits_due ON round_visits (tenant_id, policy_id, due_at);

-- The deliveries' confirmations of the past come from the stream.
INSERT INTO rebuild_requests (reason) VALUES ('009: round reports of delivery confirmations')
ON CONFLICT (reason) DO NOTHING;
