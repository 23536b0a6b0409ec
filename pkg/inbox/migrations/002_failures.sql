-- Failures of a message while the database was up (a handler bug, a poison
-- message), counted across redeliveries, replicas and restarts: the message
-- is dead-lettered after the consumer's MaxDeliver of them. Failures while a
-- dependency is away are not counted (they are retried without limit).
CREATE TABLE inbox_failures (
  consumer text NOT NULL,
  event_id text NOT NULL,
  failures int NOT NULL,
  last_error text NOT NULL DEFAULT '',
  updated_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (consumer, event_id)
);
CREATE INDEX inbox_failures_updated_at ON inbox_failures (updated_at);

-- Purging handled ids after the retention window reads them by age.
CREATE INDEX inbox_handled_at ON inbox (handled_at);

-- The stored message a dead letter came from ("<stream>:<sequence>"): its
-- redeliveries are recorded once.
ALTER TABLE rejected_events ADD COLUMN delivery text;
CREATE INDEX rejected_events_delivery ON rejected_events (delivery) WHERE delivery IS NOT NULL;
