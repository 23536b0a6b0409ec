-- The inbox: ids of the events a consumer has handled, written in the same
-- transaction as the handler's effect.
CREATE TABLE inbox (
  consumer text NOT NULL,
  event_id text NOT NULL,
  handled_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (consumer, event_id)
);

-- Messages the service refused, with the raw payload, so they can be listed,
-- fixed and replayed.
CREATE TABLE rejected_events (
  id text PRIMARY KEY,
  tenant_id text NOT NULL DEFAULT 'default',
  source text NOT NULL,
  event_id text NOT NULL DEFAULT '',
  field text NOT NULL DEFAULT '',
  reason text NOT NULL,
  content_type text NOT NULL DEFAULT '',
  payload bytea NOT NULL,
  received_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX rejected_events_tenant_received ON rejected_events (tenant_id, received_at DESC, id DESC);
