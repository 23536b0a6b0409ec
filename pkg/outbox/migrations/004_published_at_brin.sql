-- Purging published rows by age needs only a coarse index: published_at
-- grows with the table's insertion order, so a BRIN index (one summary per
-- range of blocks) finds the old ones, and marking a row published no longer
-- adds an entry to a b-tree (nor its WAL).
DROP INDEX IF EXISTS outbox_published_at;
CREATE INDEX outbox_published_at ON outbox USING brin (published_at);
