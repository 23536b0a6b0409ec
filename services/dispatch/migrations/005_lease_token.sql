-- Issue #12: fencing. Every claim of a task (an agent's ClaimNextTask, a
-- lease that ran out taken over by another claim, a leader's ReassignTask, the
-- sender's claim of an SMS/email) makes lease_token one more, in the claim's
-- own statement or transaction. The holder carries the token its claim
-- answered; every write it makes (heartbeat, attempt, release, the outcome of
-- a send) is checked against the row's under the row lock, so a holder whose
-- lease ran out and whose task was claimed again changes nothing. Additive:
-- rows claimed before it start at 0.
ALTER TABLE tasks ADD COLUMN lease_token bigint NOT NULL DEFAULT 0;
