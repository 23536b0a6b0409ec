-- Issue #14: every opt-out is recorded with its source and time (seed 004,
-- PIPL: a withdrawn consent is kept on record and honoured). One row per
-- channel a customer opted out of, holding the first word of it: where it
-- came from (dispatch: the agent heard it on a visit; intake: the archive's
-- version that carried it, whose change intake's audit log names; an
-- erasure) and when. The person's export shows them (customer_id).
CREATE TABLE opt_outs (
  tenant_id text NOT NULL,
  customer_id text NOT NULL,
  -- The channel's name, e.g. CHANNEL_PHONE.
  channel text NOT NULL,
  source text NOT NULL,
  opted_out_at timestamptz NOT NULL,
  recorded_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (tenant_id, customer_id, channel)
);

-- The opt-outs kept before sources were recorded.
INSERT INTO opt_outs (tenant_id, customer_id, channel, source, opted_out_at)
SELECT c.tenant_id, c.customer_id,
  CASE ch WHEN 1 THEN 'CHANNEL_PHONE' WHEN 2 THEN 'CHANNEL_SMS' WHEN 3 THEN 'CHANNEL_ONSITE' WHEN 4 THEN 'CHANNEL_EMAIL'
    WHEN 5 THEN 'CHANNEL_WEB' ELSE 'CHANNEL_' || ch END,
  'recorded before sources were kept', c.updated_at
FROM customers c, unnest(c.opted_out) AS ch
ON CONFLICT DO NOTHING;
