-- Issue #16: plans approved before they run (seeds 000 and 004). A tenant's
-- settings: whether its policy changes need approval (off by default, so a
-- tenant that never set it works as before). While it is on, the direct
-- policy writes are refused and changes go through policy_changes.
CREATE TABLE tenant_settings (
  tenant_id text PRIMARY KEY,
  policy_approval boolean NOT NULL DEFAULT false,
  -- The subject of the token that last set it.
  updated_by text NOT NULL,
  updated_at timestamptz NOT NULL
);

-- A proposed change to a tenant's policies and what became of it: the
-- proposal (the change, its reason, the versions it was proposed against,
-- its dry run, the decision and the versions it left) is the JSON of
-- spec; who proposed and decided, when, and the state are columns too, for
-- the history's filters and for anyone reading the table.
CREATE TABLE policy_changes (
  id text PRIMARY KEY,
  tenant_id text NOT NULL,
  state text NOT NULL CHECK (state IN ('proposed', 'approved', 'rejected')),
  proposed_by text NOT NULL,
  proposed_at timestamptz NOT NULL,
  decided_by text,
  decided_at timestamptz,
  spec jsonb NOT NULL
);

-- ListPolicyChanges: a tenant's proposals newest first, by state or all.
CREATE INDEX policy_changes_history ON policy_changes (tenant_id, proposed_at DESC, id DESC);
CREATE INDEX policy_changes_by_state ON policy_changes (tenant_id, state, proposed_at DESC, id DESC);
