-- Accident claims settled with a service count toward the key-customer rule (seed 000).
ALTER TABLE services ADD COLUMN claim_amount_minor bigint NOT NULL DEFAULT 0;

-- The id of the HASH_KEY the search hashes were made with: after the key
-- changes, the rows with another id are re-hashed (RehashContacts).
ALTER TABLE customers ADD COLUMN hash_key_id text NOT NULL DEFAULT '';
