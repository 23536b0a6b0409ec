-- The tier (class) upstream systems send for a customer (customer.tier of
-- their events and imports, seed 002: the sales centre grades its
-- customers), kept beside the tier in effect (tier), which the tier rules
-- decide from it and the figures (docs/policies.md, "How tiers arrive").
ALTER TABLE customers ADD COLUMN upstream_tier text NOT NULL DEFAULT '';
