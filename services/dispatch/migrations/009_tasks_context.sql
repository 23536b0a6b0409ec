-- Issue 17: what an agent's screen needs beyond the task, and appointments.

-- The service details a VisitDue carried that routing does not use, shown
-- with the task (GetTaskContext). One row per task made after this
-- migration; older tasks have none (their details show what the task has).
CREATE TABLE task_details (
  task_id text PRIMARY KEY REFERENCES tasks (id),
  tenant_id text NOT NULL,
  service_id text NOT NULL DEFAULT '',
  service_completed_at timestamptz,
  complaint_id text NOT NULL DEFAULT '',
  late boolean NOT NULL DEFAULT false
);

-- Templates of other kinds than a visit's message: the reminder SMS of an
-- appointment and the call script, per service type ('*': any).
CREATE TABLE kind_templates (
  tenant_id text NOT NULL,
  kind text NOT NULL CHECK (kind IN ('reminder', 'script')),
  service_type text NOT NULL,
  subject text NOT NULL DEFAULT '',
  greeting text NOT NULL DEFAULT '',
  body text NOT NULL,
  footer text NOT NULL DEFAULT '',
  updated_at timestamptz NOT NULL,
  PRIMARY KEY (tenant_id, kind, service_type)
);

-- On-site visits agreed with the customer in advance (seed 000), with the
-- reminder SMS each carries. address_note is free text (personal data):
-- erased with the customer.
CREATE TABLE appointments (
  id text PRIMARY KEY,
  tenant_id text NOT NULL,
  task_id text NOT NULL REFERENCES tasks (id),
  visit_id text NOT NULL,
  customer_id text NOT NULL DEFAULT '',
  agent_id text NOT NULL,
  group_name text NOT NULL DEFAULT '',
  org_unit text NOT NULL DEFAULT '',
  starts_at timestamptz NOT NULL,
  ends_at timestamptz NOT NULL CHECK (ends_at > starts_at),
  time_zone text NOT NULL DEFAULT '',
  address_note text NOT NULL DEFAULT '',
  status text NOT NULL CHECK (status IN ('booked', 'cancelled')),
  cancel_reason text NOT NULL DEFAULT '',
  version int NOT NULL DEFAULT 1,
  remind_at timestamptz,
  reminder_status text NOT NULL DEFAULT 'none'
    CHECK (reminder_status IN ('none', 'scheduled', 'sending', 'sent', 'failed', 'cancelled')),
  -- The sender's claim of the reminder: its tries fence a stale sender.
  reminder_tries int NOT NULL DEFAULT 0,
  reminder_lease_until timestamptz,
  reminder_message_id text NOT NULL DEFAULT '',
  created_at timestamptz NOT NULL,
  updated_at timestamptz NOT NULL
);
-- One booked appointment per task.
CREATE UNIQUE INDEX appointments_booked ON appointments (task_id) WHERE status = 'booked';
-- An agent's day, and the overlap check.
CREATE INDEX appointments_agent ON appointments (tenant_id, agent_id, starts_at);
CREATE INDEX appointments_start ON appointments (tenant_id, starts_at, id);
-- The sender's queue of reminders.
CREATE INDEX appointments_reminders ON appointments (remind_at) WHERE reminder_status IN ('scheduled', 'sending');
CREATE INDEX appointments_customer ON appointments (tenant_id, customer_id);

-- A task has one visit message and, when it has appointments, a reminder
-- per booking or move: the message of a visit is the one without an
-- appointment.
ALTER TABLE messages ADD COLUMN appointment_id text NOT NULL DEFAULT '';
ALTER TABLE messages DROP CONSTRAINT messages_task_id_key;
CREATE UNIQUE INDEX messages_visit ON messages (task_id) WHERE appointment_id = '';
CREATE INDEX messages_task ON messages (task_id);
