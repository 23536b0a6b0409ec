-- SearchCustomers: the keyed search hashes of a customer's name and phone
-- (privacy.Cipher.SearchHashes: HMAC-SHA256 under HASH_KEY of the phone's
-- last 4 and more digits, of the normalized full name and of its parts),
-- written with every save, recomputed by RehashContacts, dropped by an
-- erasure. Never a clear value.
ALTER TABLE customers ADD COLUMN search_hashes text[] NOT NULL DEFAULT '{}';
CREATE INDEX customers_search_hashes ON customers USING gin (search_hashes);
-- The customers stored before: their search hashes are made by the re-hash
-- at start (RehashStale), which takes the rows whose hash_key_id is not the
-- current HASH_KEY's; their phone and email hashes stay valid meanwhile.
UPDATE customers SET hash_key_id = '' WHERE hash_key_id <> '';

-- SearchCustomers by a car: the VIN and the plate (upper case, without
-- spaces, dashes and dots) of the services reported with one.
CREATE INDEX services_vin ON services (tenant_id, vin) WHERE vin <> '';
CREATE INDEX services_plate ON services (tenant_id, (upper(regexp_replace(vehicle->>'plate', '[[:space:].·-]', '', 'g'))))
  WHERE vehicle ? 'plate';

-- The contact ledger (GetCustomerTimeline): one entry per event of the
-- customer's history, whichever service published it (consumer
-- intake-ledger), keyed by the event id (a redelivery changes nothing). No
-- free text and no contact: ids, kinds, times, channels, statuses, scores.
-- An event that does not name its customer (VisitAssigned, VisitCancelled,
-- a complaint's acknowledgement, reopening, closing) is kept with
-- customer_id '' and attached once ledger_links says whose its visit or
-- complaint is (at once when known, or when the link arrives later; reads
-- resolve what is still unattached).
CREATE TABLE ledger_entries (
  tenant_id text NOT NULL,
  id text NOT NULL,
  customer_id text NOT NULL DEFAULT '',
  kind text NOT NULL,
  at timestamptz NOT NULL,
  service_id text NOT NULL DEFAULT '',
  visit_id text NOT NULL DEFAULT '',
  task_id text NOT NULL DEFAULT '',
  complaint_id text NOT NULL DEFAULT '',
  record_id text NOT NULL DEFAULT '',
  appointment_id text NOT NULL DEFAULT '',
  message_id text NOT NULL DEFAULT '',
  service_type text NOT NULL DEFAULT '',
  channel text NOT NULL DEFAULT '',
  disposition text NOT NULL DEFAULT '',
  status text NOT NULL DEFAULT '',
  agent_id text NOT NULL DEFAULT '',
  severity text NOT NULL DEFAULT '',
  score int,
  due_at timestamptz,
  starts_at timestamptz,
  ends_at timestamptz,
  attempt int NOT NULL DEFAULT 0,
  PRIMARY KEY (tenant_id, id)
);
CREATE INDEX ledger_entries_customer ON ledger_entries (tenant_id, customer_id, at, id) WHERE customer_id <> '';
CREATE INDEX ledger_entries_unattached_visit ON ledger_entries (tenant_id, visit_id) WHERE customer_id = '' AND visit_id <> '';
CREATE INDEX ledger_entries_unattached_complaint ON ledger_entries (tenant_id, complaint_id) WHERE customer_id = '' AND complaint_id <> '';

-- Whose a visit or a complaint is, learned from the events that say it
-- (VisitPlanned, VisitDue, ComplaintEscalated, …).
CREATE TABLE ledger_links (
  tenant_id text NOT NULL,
  kind text NOT NULL, -- 'visit' or 'complaint'
  ref text NOT NULL,
  customer_id text NOT NULL,
  PRIMARY KEY (tenant_id, kind, ref)
);
CREATE INDEX ledger_links_customer ON ledger_links (tenant_id, customer_id, kind);
