-- Purging handled ids by age needs only a coarse index. handled_at grows
-- with the table's insertion order, so a BRIN index (one summary per range
-- of blocks) finds the old ones, and a handled message no longer costs an
-- entry in a second b-tree (nor its WAL).
DROP INDEX IF EXISTS inbox_handled_at;
CREATE INDEX inbox_handled_at ON inbox USING brin (handled_at);
