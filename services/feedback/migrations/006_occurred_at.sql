-- Issue 16, event time: LogVisit takes the time the visit happened
-- (occurred_at), which may be earlier than the time it was logged. Records
-- logged before this column existed keep it NULL and read logged_at.
ALTER TABLE visit_records ADD COLUMN occurred_at timestamptz;
