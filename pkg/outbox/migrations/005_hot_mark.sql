-- Marking a row published becomes an update in place (HOT): no index reads
-- published_at any more (PostgreSQL 15 updates a row in place only when no
-- indexed column changes, index predicates and BRIN indexes included), so
-- the mark writes no new entry into the primary key and the unique id and
-- its row stays on its page. Every row is updated once in its life (the
-- mark, or its quarantine): half of each page is kept for that new version
-- (fillfactor 50; at 80, half the marks of a round of rows written one
-- after the other found no room and moved the row). A version left behind
-- is reclaimed when its page is next read, without a vacuum.
--
-- The relay finds the unpublished rows through two floors instead of an
-- index of them (package outbox's documentation):
--
-- * xid is the transaction that wrote the row (pg_current_xact_id()), or
--   the last one that made it unpublished again (Restreamed, an operator
--   clearing a quarantine: the trigger below). It never changes otherwise,
--   so it does not stop the mark being HOT.
-- * outbox_relay holds the floors: every row whose xid is below xid_floor
--   and whose seq is not above seq_floor is published or quarantined. The
--   relay raises them once all it read in a round is marked, xid_floor to
--   the oldest transaction still running when it read
--   (pg_snapshot_xmin(pg_current_snapshot())): a transaction still open is
--   never below it, so a transaction that took its seq before others and
--   commits after them is read all the same.
-- * The unpublished rows are then those of (xid >= xid_floor OR seq >
--   seq_floor) not published nor quarantined: a few entries of the index
--   on xid and of the primary key.
--
-- Rows already published or quarantined get xid 0, below the floor; the
-- unpublished ones get this migration's transaction, above it (the floor
-- starts at the oldest transaction running now). A relay of the release
-- before reads the unpublished rows without their index until it stops
-- (a rolling upgrade's few seconds).
ALTER TABLE outbox ADD COLUMN xid xid8 NOT NULL DEFAULT '0';
ALTER TABLE outbox ALTER COLUMN xid SET DEFAULT pg_current_xact_id();
UPDATE outbox SET xid = pg_current_xact_id() WHERE published_at IS NULL AND quarantined_at IS NULL;
CREATE INDEX outbox_xid ON outbox (xid);
DROP INDEX outbox_unpublished;
DROP INDEX outbox_published_at;
ALTER TABLE outbox SET (fillfactor = 50);

CREATE TABLE outbox_relay (
  one boolean PRIMARY KEY DEFAULT true CHECK (one),
  xid_floor xid8 NOT NULL,
  seq_floor bigint NOT NULL
);
INSERT INTO outbox_relay (xid_floor, seq_floor) VALUES (pg_snapshot_xmin(pg_current_snapshot()), 9223372036854775807);

-- The floors for the statements that look for unpublished rows outside the
-- relay (its look when idle, the backlog metric): stable functions, which
-- the planner evaluates when it plans, so that it knows how few rows they
-- leave and reads the indexes.
CREATE FUNCTION outbox_xid_floor() RETURNS xid8 LANGUAGE sql STABLE AS 'SELECT xid_floor FROM outbox_relay';
CREATE FUNCTION outbox_seq_floor() RETURNS bigint LANGUAGE sql STABLE AS 'SELECT seq_floor FROM outbox_relay';

-- A row made unpublished again by any statement (Restreamed sets xid
-- itself) takes that statement's transaction as its xid, above the floor
-- until the relay published it again. An AFTER trigger: a BEFORE one would
-- lock every row the relay marks before updating it.
CREATE FUNCTION outbox_unpublished_again() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  EXECUTE format('UPDATE %I.%I SET xid = pg_current_xact_id() WHERE seq = $1', TG_TABLE_SCHEMA, TG_TABLE_NAME) USING NEW.seq;
  RETURN NULL;
END
$$;
CREATE TRIGGER outbox_unpublished_again AFTER UPDATE OF published_at, quarantined_at ON outbox
FOR EACH ROW WHEN (NEW.published_at IS NULL AND NEW.quarantined_at IS NULL
  AND (OLD.published_at IS NOT NULL OR OLD.quarantined_at IS NOT NULL) AND NEW.xid = OLD.xid)
EXECUTE FUNCTION outbox_unpublished_again();
