-- The audit log (pkg/audit): what was changed or disclosed, by whom, in the
-- same transaction as the action. Per tenant the entries form a hash chain:
-- seq counts 1, 2, 3, ... without gaps and each hash covers the previous
-- hash and the entry, so that a changed, removed or inserted entry breaks
-- the chain (audit.Verify). The detail is kept as the exact JSON text the
-- hash covers.
CREATE TABLE audit_log (
  id bigserial PRIMARY KEY,
  tenant_id text NOT NULL,
  seq bigint NOT NULL CHECK (seq > 0),
  actor text NOT NULL,
  actor_roles text[] NOT NULL DEFAULT '{}',
  action text NOT NULL,
  target_kind text NOT NULL DEFAULT '',
  target_id text NOT NULL DEFAULT '',
  detail text NOT NULL DEFAULT '{}' CHECK (detail::json IS NOT NULL),
  occurred_at timestamptz NOT NULL,
  prev_hash bytea NOT NULL,
  hash bytea NOT NULL,
  UNIQUE (tenant_id, seq)
);
CREATE INDEX audit_log_tenant ON audit_log (tenant_id, id);
CREATE INDEX audit_log_target ON audit_log (tenant_id, target_kind, target_id, id);

-- The head of each tenant's chain: its last seq and hash. Appends lock it,
-- so concurrent appends chain one after the other; Verify compares the
-- chain's end with it, so entries cut from the end are seen too.
CREATE TABLE audit_heads (
  tenant_id text PRIMARY KEY,
  seq bigint NOT NULL,
  hash bytea NOT NULL
);

-- Append-only, enforced by the database: no entry is updated or deleted,
-- the table is not truncated, and a head only moves forward.
CREATE FUNCTION audit_log_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  RAISE EXCEPTION 'the audit log is append-only: % on % refused', TG_OP, TG_TABLE_NAME;
END $$;
CREATE TRIGGER audit_log_append_only BEFORE UPDATE OR DELETE ON audit_log
  FOR EACH ROW EXECUTE FUNCTION audit_log_append_only();
CREATE TRIGGER audit_log_no_truncate BEFORE TRUNCATE ON audit_log
  FOR EACH STATEMENT EXECUTE FUNCTION audit_log_append_only();

CREATE FUNCTION audit_heads_forward() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF TG_OP = 'UPDATE' AND NEW.tenant_id = OLD.tenant_id AND NEW.seq > OLD.seq THEN
    RETURN NEW;
  END IF;
  RAISE EXCEPTION 'an audit head only moves forward: % on % refused', TG_OP, TG_TABLE_NAME;
END $$;
CREATE TRIGGER audit_heads_forward BEFORE UPDATE OR DELETE ON audit_heads
  FOR EACH ROW EXECUTE FUNCTION audit_heads_forward();
CREATE TRIGGER audit_heads_no_truncate BEFORE TRUNCATE ON audit_heads
  FOR EACH STATEMENT EXECUTE FUNCTION audit_log_append_only();
