-- The customer archive grows: a version per customer, contacts encrypted at
-- rest (AES-GCM, key id kept for rotation) with keyed hashes for search,
-- preferences, owners, and what the tier rules read.
ALTER TABLE customers
  ADD COLUMN version bigint NOT NULL DEFAULT 1,
  ADD COLUMN phone_enc bytea,
  ADD COLUMN email_enc bytea,
  ADD COLUMN key_id text NOT NULL DEFAULT '',
  ADD COLUMN phone_hash text NOT NULL DEFAULT '',
  ADD COLUMN email_hash text NOT NULL DEFAULT '',
  ADD COLUMN kind text NOT NULL DEFAULT 'individual',
  ADD COLUMN referred_by text NOT NULL DEFAULT '',
  ADD COLUMN org_unit text NOT NULL DEFAULT '',
  ADD COLUMN owner_ids text[] NOT NULL DEFAULT '{}',
  ADD COLUMN preferences jsonb NOT NULL DEFAULT '{}';
CREATE INDEX customers_phone_hash ON customers (tenant_id, phone_hash) WHERE phone_hash <> '';
CREATE INDEX customers_email_hash ON customers (tenant_id, email_hash) WHERE email_hash <> '';
CREATE INDEX customers_referred_by ON customers (tenant_id, referred_by) WHERE referred_by <> '';
CREATE INDEX customers_tier ON customers (tenant_id, tier, id);

ALTER TABLE services
  ADD COLUMN vehicle jsonb,
  ADD COLUMN vin text NOT NULL DEFAULT '',
  ADD COLUMN complaint jsonb,
  ADD COLUMN complaint_ref text NOT NULL DEFAULT '';
-- One complaint raised through several channels is recorded once (seed 000).
CREATE UNIQUE INDEX services_complaint_once ON services (tenant_id, customer_id, complaint_ref) WHERE complaint_ref <> '';

-- Service types a tenant registered beside the built-in ones.
CREATE TABLE service_types (
  tenant_id text NOT NULL,
  name text NOT NULL,
  description text NOT NULL DEFAULT '',
  created_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (tenant_id, name)
);

-- What a replay of a rejected input did.
ALTER TABLE rejected_events
  ADD COLUMN replayed_at timestamptz,
  ADD COLUMN replayed_service_id text NOT NULL DEFAULT '';
