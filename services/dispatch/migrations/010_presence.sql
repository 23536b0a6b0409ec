-- Issue 17: agents' presence (available, on a break, offline), its history,
-- and the indexes of the supervisors' wallboard.
ALTER TABLE agents
  ADD COLUMN presence text NOT NULL DEFAULT 'available' CHECK (presence IN ('available', 'on_break', 'offline')),
  -- A break's reason code ('' otherwise).
  ADD COLUMN presence_reason text NOT NULL DEFAULT '',
  -- When the agent entered its presence; NULL until it first set one.
  ADD COLUMN presence_since timestamptz;

-- Every change of an agent's presence, append-only: time in state, breaks
-- taken (reports), who set it (the agent, or a leader who set it offline).
CREATE TABLE agent_presence (
  id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  tenant_id text NOT NULL,
  agent_id text NOT NULL,
  presence text NOT NULL,
  reason text NOT NULL DEFAULT '',
  set_by text NOT NULL DEFAULT '',
  at timestamptz NOT NULL
);
CREATE INDEX agent_presence_agent ON agent_presence (tenant_id, agent_id, at);

-- The wallboard: a group's active tasks, and those that ended since a time.
CREATE INDEX tasks_board ON tasks (tenant_id, group_name) WHERE status IN ('open', 'claimed') AND NOT automatic;
CREATE INDEX tasks_finished ON tasks (tenant_id, updated_at) WHERE status IN ('done', 'unreachable', 'opted_out', 'refused') AND NOT automatic;
