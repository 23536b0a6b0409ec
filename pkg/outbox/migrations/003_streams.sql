-- The streams the relay publishes to, as it last saw them (their creation
-- time): a stream created anew (a NATS server back with an empty store)
-- lost what it held, and the relay publishes again what it still keeps.
CREATE TABLE outbox_streams (
  stream text PRIMARY KEY,
  created text NOT NULL,
  seen_at timestamptz NOT NULL DEFAULT now()
);
