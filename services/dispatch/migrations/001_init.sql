-- Call-center agents. A task of a group goes only to agents in that group.
CREATE TABLE agents (
  tenant_id text NOT NULL,
  id text NOT NULL,
  name text NOT NULL,
  groups text[] NOT NULL DEFAULT '{default}',
  org_unit text NOT NULL DEFAULT '',
  created_at timestamptz NOT NULL,
  updated_at timestamptz NOT NULL,
  PRIMARY KEY (tenant_id, id)
);

-- The work of making one due visit: open until an agent claims it; a claim
-- whose lease ran out puts the task back in the queue.
CREATE TABLE tasks (
  id text PRIMARY KEY,
  tenant_id text NOT NULL,
  visit_id text NOT NULL,
  -- The types.v1.Customer snapshot of the VisitDue event, in protojson.
  customer jsonb,
  -- The types.v1.Channel name, e.g. CHANNEL_PHONE.
  channel text NOT NULL DEFAULT 'CHANNEL_UNSPECIFIED',
  -- The group that must make the visit; '' means any agent.
  group_name text NOT NULL DEFAULT '',
  org_unit text NOT NULL DEFAULT '',
  service_type text NOT NULL DEFAULT '',
  due_at timestamptz NOT NULL,
  -- The latest time the visit counts as timely; NULL when the event set none
  -- (such tasks come after every task with a deadline).
  deadline timestamptz,
  status text NOT NULL DEFAULT 'open' CHECK (status IN ('open', 'claimed')),
  agent_id text NOT NULL DEFAULT '',
  lease_expires_at timestamptz,
  created_at timestamptz NOT NULL,
  -- A redelivered or re-emitted VisitDue creates no second task.
  UNIQUE (tenant_id, visit_id)
);
-- The claim path: the most urgent open (or lease-expired) task of a tenant.
CREATE INDEX tasks_claim ON tasks (tenant_id, status, deadline, due_at);
