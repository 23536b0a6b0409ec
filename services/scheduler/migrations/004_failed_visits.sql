-- A visit whose firing failed for a reason of its own (a stored snapshot or service that cannot
-- be read, a policy that cannot be loaded, an event that cannot be built): status 'failed', the
-- error in reason, a 'fire_failed' decision, and the time here. The claim reads status 'planned'
-- only, so a failed visit no longer blocks the head of the due queue; an operator retries it
-- (ReschedulePlannedVisit puts it back to planned) or cancels it.
ALTER TABLE planned_visits ADD COLUMN failed_at timestamptz;
-- The failed visits waiting for an operator (huifang_scheduler_failed_visits).
CREATE INDEX planned_visits_failed ON planned_visits (tenant_id, failed_at) WHERE status = 'failed';
