-- Bulk imports (issue 15, docs/benchmarks.md): every index entry of a new
-- customer is paid for by an import. customers_tier serves the listing of
-- one tier (Store.Customers with a tier) and the tier refresh (tier <> ''):
-- it holds only the customers that have a tier, most have none.
DROP INDEX customers_tier;
CREATE INDEX customers_tier ON customers (tenant_id, tier, id) WHERE tier <> '';
