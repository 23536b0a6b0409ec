-- A customer's place in the customer buckets in one row per tenant,
-- customer and calendar year instead of one per bucket (four per service:
-- month and year, its org unit and all units): `customer_years` holds per
-- (month, org unit) cell of the year how many of the customer's eligible
-- services count there and how many of those were followed up, as
-- parallel arrays in (month, org unit) order; the counts of the all-units
-- and year buckets are sums of cells, derived in the statement that moves
-- them (store.ApplyMembers). A returning customer's service is one update
-- of one row. `customer_coverage` stays as it is.
CREATE TABLE customer_years (
  tenant_id text NOT NULL,
  customer_id text NOT NULL,
  year date NOT NULL,
  months smallint[] NOT NULL,
  org_units text[] NOT NULL,
  services int[] NOT NULL,
  covered int[] NOT NULL,
  PRIMARY KEY (tenant_id, customer_id, year)
);

-- The month and org-unit members are the cells; the other three kinds of
-- bucket follow from them.
INSERT INTO customer_years (tenant_id, customer_id, year, months, org_units, services, covered)
SELECT tenant_id, customer_id, date_trunc('year', period)::date,
  array_agg(extract(month FROM period)::smallint ORDER BY period, org_unit), array_agg(org_unit ORDER BY period, org_unit),
  array_agg(services::int ORDER BY period, org_unit), array_agg(covered::int ORDER BY period, org_unit)
FROM customer_members WHERE span = 'month' AND NOT all_units
GROUP BY tenant_id, customer_id, date_trunc('year', period);

DROP TABLE customer_members;

-- The members per bucket as the table of migration 006 held them, derived
-- from the cells, for reading (nothing writes or needs it).
CREATE VIEW customer_members AS
SELECT tenant_id,
  CASE WHEN grouping(cell.month) = 0 THEN 'month' ELSE 'year' END AS span,
  CASE WHEN grouping(cell.month) = 0 THEN (year + make_interval(months => cell.month - 1))::date ELSE year END AS period,
  grouping(cell.org_unit) = 1 AS all_units,
  CASE WHEN grouping(cell.org_unit) = 0 THEN cell.org_unit ELSE '' END AS org_unit,
  customer_id, sum(cell.services) AS services, sum(cell.covered) AS covered
FROM customer_years, unnest(months, org_units, services, covered) AS cell(month, org_unit, services, covered)
GROUP BY tenant_id, customer_id, year, GROUPING SETS ((cell.month, cell.org_unit), (cell.month), (cell.org_unit), ());
