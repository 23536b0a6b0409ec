-- Inbound complaints (issue 17): a complaint the customer raised by phone, letter, web form, e-mail
-- or in person, not in a follow-up. It has no record (record_id NULL) and usually no visit
-- (visit_id ''), and says how it reached the center (received_via) and who entered it (created_by).
ALTER TABLE complaints ALTER COLUMN record_id DROP NOT NULL;
ALTER TABLE complaints
  ADD COLUMN received_via text NOT NULL DEFAULT '',
  ADD COLUMN created_by text NOT NULL DEFAULT '';

-- CreateComplaint is idempotent by the client's request id, unique per tenant: the complaint each
-- request created, or the open complaint of the same problem it was attached to (recorded once,
-- seeds 000, 002). The row is written first, so that a second request with the same id waits for
-- the first and answers its complaint.
CREATE TABLE complaint_requests (
  tenant_id text NOT NULL,
  request_id text NOT NULL,
  complaint_id text NOT NULL,
  attached boolean NOT NULL DEFAULT false,
  created_at timestamptz NOT NULL,
  PRIMARY KEY (tenant_id, request_id)
);
-- times_raised counts a complaint's records and inbound requests.
CREATE INDEX complaint_requests_complaint ON complaint_requests (complaint_id);

-- ListReviews: a tenant's reviews newest first.
CREATE INDEX reviews_tenant_at ON reviews (tenant_id, at DESC, id DESC);
