-- The consumer's lease: the one replica that consumes holds it (holder),
-- until expires_at (the database's clock), renewing it every third of its
-- duration. Taking a free (holder NULL) or expired lease increments token,
-- so every term has a token of its own; every write of the consumer checks,
-- in its own transaction, that its term's token still holds the lease, so a
-- replica that lost it (paused, partitioned) can no longer write.
CREATE TABLE leases (
  name text PRIMARY KEY,
  holder text,
  token bigint NOT NULL DEFAULT 0,
  expires_at timestamptz NOT NULL DEFAULT '-infinity'
);

-- The stream the figures are built from, as the leader first saw it: a
-- stream created again since (a re-provisioning after its store was lost)
-- no longer holds the events before, so a rebuild from it is refused.
CREATE TABLE stream_origins (
  stream text PRIMARY KEY,
  created timestamptz NOT NULL,
  recorded_at timestamptz NOT NULL DEFAULT now()
);
