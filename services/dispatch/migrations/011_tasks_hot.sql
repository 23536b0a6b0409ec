-- Issue 15: a CustomerUpdated that changes a customer's snapshot (owners,
-- language, name) rewrites the customer's active tasks; that rewrite is now
-- a HOT update (the new row version in the same page, no index entry
-- written) whenever none of the indexed columns changes. PostgreSQL makes an
-- update HOT only when no column an index reads (its keys, expressions and
-- WHERE) changes value and the page has room, so:
--   - customer_id, generated from the snapshot, is indexed instead of the
--     expression customer->>'id' (an index on an expression of customer made
--     every change of the snapshot write every index);
--   - finished_at, generated from status and updated_at, keys the
--     wallboard's finished tasks instead of updated_at, which every save
--     sets: it is NULL while the task is active and, once it is done,
--     unreachable, opted out or refused, the time it was last saved so (as
--     updated_at was for those rows: the same answers);
--   - a fillfactor of 80 leaves a fifth of every page for the new versions.
-- A rewrite that changes the tier (tier_rank: tasks_queue), moves an open
-- task (available_at: tasks_outgoing) or withdraws it (status) still writes
-- every index.
ALTER TABLE tasks SET (fillfactor = 80);
-- Each ADD of a stored generated column rewrites the table, packed to the
-- fillfactor just set.
ALTER TABLE tasks
  ADD COLUMN customer_id text GENERATED ALWAYS AS (customer->>'id') STORED,
  ADD COLUMN finished_at timestamptz
    GENERATED ALWAYS AS (CASE WHEN status IN ('done', 'unreachable', 'opted_out', 'refused') THEN updated_at END) STORED;

DROP INDEX tasks_customer;
-- A customer's active tasks (refresh, opt-out).
CREATE INDEX tasks_customer ON tasks (tenant_id, customer_id) WHERE status IN ('open', 'claimed', 'sending');
DROP INDEX tasks_finished;
-- The wallboard's tasks that ended since a time.
CREATE INDEX tasks_finished ON tasks (tenant_id, finished_at) WHERE status IN ('done', 'unreachable', 'opted_out', 'refused') AND NOT automatic;
