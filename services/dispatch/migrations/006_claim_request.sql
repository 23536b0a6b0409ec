-- Issue #12: a claim safe to retry. An agent's ClaimNextTask may carry a
-- request id the desk chose (ClaimNextTaskRequest.request_id); the claim
-- keeps it here. A call that comes again with the same id while the agent
-- still holds the task under that claim, on a live lease and unworked,
-- answers that task (the same lease_token) instead of claiming another: a
-- desk whose answer was lost (dispatch killed after the commit, a dropped
-- connection) gets the task it was given. Every claim sets it: an agent's
-- claim to its id or '', a leader's reassignment and the sender's claim to
-- ''. Additive: existing rows start with ''.
ALTER TABLE tasks ADD COLUMN claim_request text NOT NULL DEFAULT '';
