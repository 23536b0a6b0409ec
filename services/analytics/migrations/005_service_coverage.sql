-- Seed 003's coverage is per served service, not per visit: one entry per
-- service with its eligible follow-ups (a visit naming no service stands
-- for a service of its own), from which the consumer computes the deltas of
-- `service.eligible` and `service.covered`. Complaints also learn when they
-- were acknowledged.
CREATE TABLE service_coverage (
  tenant_id text NOT NULL,
  service_id text NOT NULL,
  state jsonb NOT NULL,
  PRIMARY KEY (tenant_id, service_id)
);

-- Rebuilds the consumer must run before it consumes again: the leader resets
-- the rollups and replays the stream from its start (so the new counters
-- cover past events too), then deletes the row.
CREATE TABLE rebuild_requests (
  reason text PRIMARY KEY,
  requested_at timestamptz NOT NULL DEFAULT now()
);
INSERT INTO rebuild_requests (reason) VALUES ('005: service coverage and complaint acknowledgement');
