-- The same counters per calendar month (day = the 1st of the month), kept in
-- the same transaction as `daily`. A query over a long period reads whole
-- months here and only the partial months at its ends from `daily`, so a
-- year costs 12 rows per counter instead of 365.
CREATE TABLE monthly (LIKE daily INCLUDING DEFAULTS INCLUDING CONSTRAINTS INCLUDING INDEXES);
