-- Follow-up policies. Built-in policies have tenant_id '*' and apply to every tenant.
CREATE TABLE policies (
  id text NOT NULL,
  version int NOT NULL,
  tenant_id text NOT NULL,
  name text NOT NULL,
  spec jsonb NOT NULL,
  active boolean NOT NULL DEFAULT true,
  builtin boolean NOT NULL DEFAULT false,
  created_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (id, version),
  UNIQUE (tenant_id, name, version)
);

-- Planned visits are durable timers: the firing loop claims due ones with
-- FOR UPDATE SKIP LOCKED and writes VisitDue through the outbox.
CREATE TABLE planned_visits (
  id text PRIMARY KEY,
  tenant_id text NOT NULL,
  service_id text NOT NULL,
  customer_id text NOT NULL DEFAULT '',
  customer jsonb,
  policy_id text NOT NULL,
  policy_version int NOT NULL,
  step int NOT NULL,
  channel int NOT NULL,
  group_name text NOT NULL DEFAULT '',
  due_at timestamptz NOT NULL,
  deadline timestamptz NOT NULL,
  -- planned, due, suppressed or cancelled
  status text NOT NULL,
  reason text NOT NULL DEFAULT '',
  sample_draw double precision NOT NULL DEFAULT 0,
  org_unit text NOT NULL DEFAULT '',
  service_type text NOT NULL,
  service_completed_at timestamptz NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now(),
  fired_at timestamptz,
  UNIQUE (tenant_id, service_id, policy_id, step)
);
-- The firing scan reads only pending rows, so its cost does not grow with fired history.
CREATE INDEX planned_visits_pending_due ON planned_visits (due_at) WHERE status = 'planned';
CREATE INDEX planned_visits_tenant_due ON planned_visits (tenant_id, due_at, id);
CREATE INDEX planned_visits_service ON planned_visits (tenant_id, service_id);
