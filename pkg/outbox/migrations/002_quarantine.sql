-- Rows NATS refuses for good (larger than the server takes, say) are set
-- aside with the reason, so that the rows behind them go on.
ALTER TABLE outbox ADD COLUMN quarantined_at timestamptz, ADD COLUMN quarantine_reason text;
DROP INDEX outbox_unpublished;
CREATE INDEX outbox_unpublished ON outbox (seq) WHERE published_at IS NULL AND quarantined_at IS NULL;
CREATE INDEX outbox_quarantined ON outbox (seq) WHERE quarantined_at IS NOT NULL;
