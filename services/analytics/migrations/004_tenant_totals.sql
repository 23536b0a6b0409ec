-- The same counters with every dimension but aspect and problem category
-- summed away, per day and per month. A query without a dimension filter
-- (the tenant's own figures, its trends, its reports) reads these: one row
-- per counter and day instead of one per combination of dimensions.
CREATE TABLE daily_tenant (LIKE daily INCLUDING DEFAULTS INCLUDING CONSTRAINTS INCLUDING INDEXES);
CREATE TABLE monthly_tenant (LIKE daily INCLUDING DEFAULTS INCLUDING CONSTRAINTS INCLUDING INDEXES);
