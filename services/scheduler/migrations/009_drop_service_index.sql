-- Issue 15: planned_visits_service (tenant_id, service_id) is a prefix of
-- the unique planned_visits_series_key (tenant_id, service_id, policy_id,
-- step, occurrence), which serves every lookup of a service's visits as
-- well; each visit planned wrote an entry in both.
DROP INDEX IF EXISTS planned_visits_service;
