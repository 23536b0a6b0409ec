-- Issue #11: the tenant's contact calendar a visit came with
-- (VisitDue.contact_calendar: windows, quiet hours, time zone, holidays), in
-- pkg/contact's JSON (windows, quiet_hours, time_zone, holidays,
-- avoid_holidays). Retries, call-backs and the re-placement after a
-- CustomerUpdated are placed with it. NULL: none (a visit fired before
-- calendars existed), which allows any time; the customer's own windows
-- still hold.
ALTER TABLE tasks ADD COLUMN contact_calendar jsonb;
