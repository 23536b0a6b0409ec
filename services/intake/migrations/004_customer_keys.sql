-- Envelope encryption of the customer archive: every customer has a data
-- key (DEK) of its own, stored only wrapped by its tenant's key-encryption
-- key (kek_id: the ENCRYPTION_KEYS id it was derived from). Name, phone and
-- email are sealed under it (name_enc, phone_enc, email_enc) with the DEK's
-- version in dek_version; 0 is a row not yet re-sealed (clear name, contacts
-- under the old ring key key_id or in clear), which the background re-seal
-- moves under a DEK, clearing name, phone and email. Deleting a row of
-- customer_keys makes the customer's fields unreadable for good
-- (crypto-shredding).
CREATE TABLE customer_keys (
  tenant_id text NOT NULL,
  customer_id text NOT NULL REFERENCES customers (id) ON DELETE CASCADE,
  version bigint NOT NULL,
  kek_id text NOT NULL,
  wrapped bytea NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now(),
  rewrapped_at timestamptz,
  PRIMARY KEY (tenant_id, customer_id)
);
-- The keys still wrapped under an older KEK (rotation).
CREATE INDEX customer_keys_kek ON customer_keys (kek_id);

ALTER TABLE customers
  ADD COLUMN name_enc bytea,
  ADD COLUMN dek_version bigint NOT NULL DEFAULT 0;
-- The rows still to re-seal.
CREATE INDEX customers_unsealed ON customers (id) WHERE dek_version = 0;
