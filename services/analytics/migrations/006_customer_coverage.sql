-- Seed 003's coverage of served customers counts distinct customers per
-- calendar month and year. `customer_members` holds, per bucket (tenant,
-- span, period, all units or one org unit) and customer, how many of the
-- customer's eligible services count in the bucket and how many of those
-- were followed up; `customer_coverage` counts the bucket's customers with
-- at least one (eligible) and with at least one followed up (covered), so a
-- query reads one row per bucket. Visits learn their customer, so the
-- rollups are rebuilt from the stream.
CREATE TABLE customer_members (
  tenant_id text NOT NULL,
  span text NOT NULL CHECK (span IN ('month', 'year')),
  period date NOT NULL,
  all_units boolean NOT NULL,
  org_unit text NOT NULL,
  customer_id text NOT NULL,
  services bigint NOT NULL,
  covered bigint NOT NULL,
  PRIMARY KEY (tenant_id, span, period, all_units, org_unit, customer_id)
);

CREATE TABLE customer_coverage (
  tenant_id text NOT NULL,
  span text NOT NULL CHECK (span IN ('month', 'year')),
  period date NOT NULL,
  all_units boolean NOT NULL,
  org_unit text NOT NULL,
  eligible bigint NOT NULL,
  covered bigint NOT NULL,
  PRIMARY KEY (tenant_id, span, period, all_units, org_unit)
);

INSERT INTO rebuild_requests (reason) VALUES ('006: customer coverage')
ON CONFLICT (reason) DO NOTHING;
