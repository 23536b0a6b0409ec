-- Issue #5: the org tree, agents' roles, skills, shifts and capacity; the
-- routing and retry state of tasks; attempts; automatic messages.

-- The follow-up center as a tree (seed 004: center → groups).
CREATE TABLE org_units (
  tenant_id text NOT NULL,
  id text NOT NULL,
  name text NOT NULL,
  parent_id text NOT NULL DEFAULT '',
  kind text NOT NULL DEFAULT '',
  leader_id text NOT NULL DEFAULT '',
  created_at timestamptz NOT NULL,
  updated_at timestamptz NOT NULL,
  PRIMARY KEY (tenant_id, id)
);

ALTER TABLE agents
  ADD COLUMN role text NOT NULL DEFAULT 'agent',
  ADD COLUMN role_rank int NOT NULL DEFAULT 1,
  ADD COLUMN languages text[] NOT NULL DEFAULT '{}',
  ADD COLUMN product_lines text[] NOT NULL DEFAULT '{}',
  ADD COLUMN regions text[] NOT NULL DEFAULT '{}',
  ADD COLUMN shift_weekdays int[] NOT NULL DEFAULT '{}',
  ADD COLUMN shift_start int NOT NULL DEFAULT 0,
  ADD COLUMN shift_end int NOT NULL DEFAULT 0,
  ADD COLUMN shift_tz text NOT NULL DEFAULT '',
  -- 0: the service's DEFAULT_CAPACITY.
  ADD COLUMN capacity int NOT NULL DEFAULT 0,
  ADD COLUMN active boolean NOT NULL DEFAULT true;

-- Whether an agent's shift covers a moment (see task.Shift.On, its twin).
CREATE FUNCTION on_shift(days int[], start_min int, end_min int, tz text, at timestamptz) RETURNS boolean
LANGUAGE sql STABLE AS $$
  SELECT (cardinality(days) = 0 OR extract(isodow FROM local) ::int = ANY (days))
     AND (start_min = end_min
          OR (start_min < end_min AND m >= start_min AND m < end_min)
          OR (start_min > end_min AND (m >= start_min OR m < end_min)))
  FROM (SELECT at AT TIME ZONE COALESCE(NULLIF(tz, ''), 'UTC') AS local) l,
       LATERAL (SELECT (extract(hour FROM l.local) * 60 + extract(minute FROM l.local))::int AS m) x
$$;

ALTER TABLE tasks DROP CONSTRAINT tasks_status_check;
ALTER TABLE tasks
  ADD CONSTRAINT tasks_status_check CHECK (status IN ('open', 'claimed', 'done', 'unreachable', 'opted_out',
    'refused', 'cancelled', 'sending', 'sent', 'delivered', 'failed')),
  ADD COLUMN required_role text NOT NULL DEFAULT '',
  ADD COLUMN required_rank int NOT NULL DEFAULT 0,
  ADD COLUMN policy_id text NOT NULL DEFAULT '',
  ADD COLUMN product_category text NOT NULL DEFAULT '',
  -- types.v1.Severity number: higher first.
  ADD COLUMN severity int NOT NULL DEFAULT 0,
  -- Lower first (key customers first).
  ADD COLUMN tier_rank int NOT NULL DEFAULT 0,
  ADD COLUMN primary_owner text NOT NULL DEFAULT '',
  ADD COLUMN backup_owner text NOT NULL DEFAULT '',
  ADD COLUMN language text NOT NULL DEFAULT '',
  ADD COLUMN automatic boolean NOT NULL DEFAULT false,
  ADD COLUMN available_at timestamptz,
  ADD COLUMN attempts int NOT NULL DEFAULT 0,
  ADD COLUMN last_disposition text NOT NULL DEFAULT '',
  -- '' | 'near' | 'past': the SLA events already written.
  ADD COLUMN sla_stage text NOT NULL DEFAULT '',
  ADD COLUMN updated_at timestamptz;
UPDATE tasks SET available_at = due_at, updated_at = created_at;
ALTER TABLE tasks ALTER COLUMN available_at SET NOT NULL, ALTER COLUMN updated_at SET NOT NULL;

DROP INDEX tasks_claim;
-- The agents' queue: deadline first (none last), then severity, then tier.
CREATE INDEX tasks_queue ON tasks (tenant_id, deadline, severity DESC, tier_rank, due_at, id)
  WHERE status IN ('open', 'claimed') AND NOT automatic;
-- What an agent holds (capacity).
CREATE INDEX tasks_held ON tasks (tenant_id, agent_id) WHERE status = 'claimed';
-- The sender's queue.
CREATE INDEX tasks_outgoing ON tasks (available_at) WHERE status IN ('open', 'sending') AND automatic;
-- The SLA clock.
CREATE INDEX tasks_sla ON tasks (deadline) WHERE status IN ('open', 'claimed', 'sending') AND sla_stage <> 'past';

-- Every attempt to make a visit, append-only.
CREATE TABLE attempts (
  id text PRIMARY KEY,
  tenant_id text NOT NULL,
  task_id text NOT NULL REFERENCES tasks (id),
  visit_id text NOT NULL,
  agent_id text NOT NULL DEFAULT '',
  attempt int NOT NULL,
  disposition text NOT NULL,
  note text NOT NULL DEFAULT '',
  attempted_at timestamptz NOT NULL,
  next_attempt_at timestamptz,
  UNIQUE (task_id, attempt)
);

-- Visits cancelled before their task existed: a later VisitDue makes none.
CREATE TABLE cancelled_visits (
  tenant_id text NOT NULL,
  visit_id text NOT NULL,
  reason text NOT NULL DEFAULT '',
  cancelled_at timestamptz NOT NULL,
  PRIMARY KEY (tenant_id, visit_id)
);

-- Message templates per policy and channel; policy '*' is the tenant's default.
CREATE TABLE templates (
  tenant_id text NOT NULL,
  policy_id text NOT NULL,
  channel text NOT NULL,
  subject text NOT NULL DEFAULT '',
  greeting text NOT NULL DEFAULT '',
  body text NOT NULL,
  footer text NOT NULL DEFAULT '',
  updated_at timestamptz NOT NULL,
  PRIMARY KEY (tenant_id, policy_id, channel)
);

-- Per-customer template variables (project, booking number, advisor, ...).
CREATE TABLE customer_variables (
  tenant_id text NOT NULL,
  customer_id text NOT NULL,
  variables jsonb NOT NULL DEFAULT '{}',
  updated_at timestamptz NOT NULL,
  PRIMARY KEY (tenant_id, customer_id)
);

-- One automatic message per task; every try reuses its idempotency key.
CREATE TABLE messages (
  id text PRIMARY KEY,
  tenant_id text NOT NULL,
  task_id text NOT NULL UNIQUE REFERENCES tasks (id),
  visit_id text NOT NULL,
  channel text NOT NULL,
  recipient text NOT NULL,
  subject text NOT NULL DEFAULT '',
  body text NOT NULL,
  idempotency_key text NOT NULL UNIQUE,
  status text NOT NULL CHECK (status IN ('sending', 'sent', 'delivered', 'failed')),
  tries int NOT NULL DEFAULT 0,
  provider text NOT NULL DEFAULT '',
  provider_message_id text NOT NULL DEFAULT '',
  error text NOT NULL DEFAULT '',
  created_at timestamptz NOT NULL,
  updated_at timestamptz NOT NULL
);
CREATE INDEX messages_provider ON messages (provider, provider_message_id) WHERE provider_message_id <> '';

-- The local (development) sender's record of what it "sent".
CREATE TABLE local_sent_messages (
  idempotency_key text PRIMARY KEY,
  channel text NOT NULL,
  recipient text NOT NULL,
  subject text NOT NULL DEFAULT '',
  body text NOT NULL,
  sent_at timestamptz NOT NULL
);
