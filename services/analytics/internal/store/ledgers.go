package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/huifang/huifang/pkg/postgres"
	"github.com/huifang/huifang/services/analytics/internal/rollup"
)

// UpdateVisit runs fn on the ledger entry of a visit (a new entry when it
// has none), locked for the rest of tx, and saves what fn leaves; an error
// of fn saves nothing and is returned.
func UpdateVisit(ctx context.Context, tx pgx.Tx, tenant, visitID string, fn func(v *rollup.Visit) error) error {
	v := rollup.Visit{Tenant: tenant, VisitID: visitID}
	if err := lock(ctx, tx, "visit", tenant, visitID); err != nil {
		return err
	}
	if err := load(ctx, tx, `SELECT state FROM visits WHERE tenant_id = $1 AND visit_id = $2 FOR UPDATE`, &v, tenant, visitID); err != nil {
		return fmt.Errorf("store: load visit %s: %w", visitID, err)
	}
	if err := fn(&v); err != nil {
		return err
	}
	return saveVisit(ctx, tx, v)
}

func saveVisit(ctx context.Context, tx pgx.Tx, v rollup.Visit) error {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("store: encode visit: %w", err)
	}
	if _, err := tx.Exec(ctx, `INSERT INTO visits (tenant_id, visit_id, state) VALUES ($1, $2, $3)
ON CONFLICT (tenant_id, visit_id) DO UPDATE SET state = EXCLUDED.state`, v.Tenant, v.VisitID, b); err != nil {
		return fmt.Errorf("store: save visit %s: %w", v.VisitID, translate(err))
	}
	return nil
}

// UpdateComplaint runs fn on the ledger entry of a complaint (a new entry
// when it has none), locked for the rest of tx, and saves what fn leaves.
func UpdateComplaint(ctx context.Context, tx pgx.Tx, tenant, id string, fn func(c *rollup.Complaint) error) error {
	c := rollup.Complaint{Tenant: tenant, ComplaintID: id}
	if err := lock(ctx, tx, "complaint", tenant, id); err != nil {
		return err
	}
	if err := load(ctx, tx, `SELECT state FROM complaints WHERE tenant_id = $1 AND complaint_id = $2 FOR UPDATE`, &c, tenant, id); err != nil {
		return fmt.Errorf("store: load complaint %s: %w", id, err)
	}
	if err := fn(&c); err != nil {
		return err
	}
	return saveComplaint(ctx, tx, c)
}

func saveComplaint(ctx context.Context, tx pgx.Tx, c rollup.Complaint) error {
	b, err := json.Marshal(c)
	if err != nil {
		return fmt.Errorf("store: encode complaint: %w", err)
	}
	var deadline *time.Time
	if !c.Deadline.IsZero() {
		deadline = &c.Deadline
	}
	if _, err := tx.Exec(ctx, `INSERT INTO complaints (tenant_id, complaint_id, state, open, deadline) VALUES ($1, $2, $3, $4, $5)
ON CONFLICT (tenant_id, complaint_id) DO UPDATE SET state = EXCLUDED.state, open = EXCLUDED.open, deadline = EXCLUDED.deadline`,
		c.Tenant, c.ComplaintID, b, c.Open(), deadline); err != nil {
		return fmt.Errorf("store: save complaint %s: %w", c.ComplaintID, translate(err))
	}
	return nil
}

// lock takes a transaction-scoped advisory lock on one ledger entry, so two
// replicas handling events of a visit (or complaint, or customer) not yet
// stored do not both start from an empty entry: FOR UPDATE locks only rows
// that exist. The key names the schema the entry is in, so a rebuild filling
// shadow tables never waits for the consumer writing the live ones. A
// collision of the hash only makes two entries wait for each other.
func lock(ctx context.Context, tx pgx.Tx, kind, tenant, id string) error {
	// Held back in a pipeline, the lock goes with the read that follows it.
	if err := postgres.Defer(ctx, tx, `SELECT pg_advisory_xact_lock(hashtextextended(current_schema() || '/' || $1, 0))`, "huifang.analytics."+kind+"/"+tenant+"/"+id); err != nil {
		return fmt.Errorf("store: lock %s %s: %w", kind, id, translate(err))
	}
	return nil
}

// load reads one JSON state into dst; dst is left as it is when the row does not exist.
func load(ctx context.Context, tx pgx.Tx, sql string, dst any, args ...any) error {
	var b []byte
	err := translate(tx.QueryRow(ctx, sql, args...).Scan(&b))
	if errors.Is(err, ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	return json.Unmarshal(b, dst)
}

// UpdateServiceCoverage runs fn on the coverage entry of a service (a new
// entry when it has none), locked for the rest of tx, and saves what fn
// leaves: an entry without eligible visits is removed.
func UpdateServiceCoverage(ctx context.Context, tx pgx.Tx, tenant, serviceID string, fn func(c *rollup.ServiceCoverage) error) error {
	c := rollup.ServiceCoverage{Tenant: tenant, ServiceID: serviceID}
	if err := lock(ctx, tx, "service", tenant, serviceID); err != nil {
		return err
	}
	if err := load(ctx, tx, `SELECT state FROM service_coverage WHERE tenant_id = $1 AND service_id = $2 FOR UPDATE`, &c, tenant, serviceID); err != nil {
		return fmt.Errorf("store: load service coverage %s: %w", serviceID, err)
	}
	if err := fn(&c); err != nil {
		return err
	}
	return saveServiceCoverage(ctx, tx, c)
}

func saveServiceCoverage(ctx context.Context, tx pgx.Tx, c rollup.ServiceCoverage) error {
	if len(c.Visits) == 0 {
		if _, err := tx.Exec(ctx, `DELETE FROM service_coverage WHERE tenant_id = $1 AND service_id = $2`, c.Tenant, c.ServiceID); err != nil {
			return fmt.Errorf("store: remove service coverage %s: %w", c.ServiceID, translate(err))
		}
		return nil
	}
	b, err := json.Marshal(c)
	if err != nil {
		return fmt.Errorf("store: encode service coverage: %w", err)
	}
	if _, err := tx.Exec(ctx, `INSERT INTO service_coverage (tenant_id, service_id, state) VALUES ($1, $2, $3)
ON CONFLICT (tenant_id, service_id) DO UPDATE SET state = EXCLUDED.state`, c.Tenant, c.ServiceID, b); err != nil {
		return fmt.Errorf("store: save service coverage %s: %w", c.ServiceID, translate(err))
	}
	return nil
}

// ServiceProduct returns the product category of a service, "" when unknown.
func ServiceProduct(ctx context.Context, db postgres.Querier, tenant, serviceID string) (string, error) {
	if serviceID == "" {
		return "", nil
	}
	var cat string
	err := translate(db.QueryRow(ctx, `SELECT product_category FROM services WHERE tenant_id = $1 AND service_id = $2`, tenant, serviceID).Scan(&cat))
	if errors.Is(err, ErrNotFound) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("store: service product: %w", err)
	}
	return cat, nil
}

// SaveServiceProduct remembers a service's product category.
func SaveServiceProduct(ctx context.Context, db postgres.Querier, tenant, serviceID, productCategory string) error {
	if _, err := db.Exec(ctx, `INSERT INTO services (tenant_id, service_id, product_category) VALUES ($1, $2, $3)
ON CONFLICT (tenant_id, service_id) DO UPDATE SET product_category = EXCLUDED.product_category`, tenant, serviceID, productCategory); err != nil {
		return fmt.Errorf("store: record service: %w", translate(err))
	}
	return nil
}

// UpdateCustomer runs fn on what is known of a customer (their latest
// service; a new customer when nothing is), locked for the rest of tx, and
// saves what fn changed.
func UpdateCustomer(ctx context.Context, tx pgx.Tx, tenant, customerID string, fn func(c *rollup.Customer) error) error {
	if err := lock(ctx, tx, "customer", tenant, customerID); err != nil {
		return err
	}
	c := rollup.Customer{Tenant: tenant, CustomerID: customerID}
	err := translate(tx.QueryRow(ctx, `SELECT last_service_at FROM customers WHERE tenant_id = $1 AND customer_id = $2 FOR UPDATE`, tenant, customerID).Scan(&c.LastServiceAt))
	if err != nil && !errors.Is(err, ErrNotFound) {
		return fmt.Errorf("store: customer: %w", err)
	}
	before := c
	if err := fn(&c); err != nil {
		return err
	}
	if c == before {
		return nil
	}
	if _, err := tx.Exec(ctx, `INSERT INTO customers (tenant_id, customer_id, last_service_at) VALUES ($1, $2, $3)
ON CONFLICT (tenant_id, customer_id) DO UPDATE SET last_service_at = EXCLUDED.last_service_at`, tenant, customerID, c.LastServiceAt); err != nil {
		return fmt.Errorf("store: customer: %w", translate(err))
	}
	return nil
}

// Overdue returns the complaints of tenant (and org unit, when given) that
// were overdue at asOf: escalated before it, deadline passed before it, and
// not resolved by then; oldest deadline first, at most limit. It depends on
// asOf only, so a report for a past month is reproducible.
func Overdue(ctx context.Context, db postgres.Querier, tenant, orgUnit string, asOf time.Time, limit int) ([]rollup.Complaint, error) {
	rows, err := db.Query(ctx, `SELECT state FROM complaints WHERE tenant_id = $1 AND deadline < $2
AND (state->>'escalated_at')::timestamptz < $2
AND (state->>'resolved_at' IS NULL OR (state->>'resolved_at')::timestamptz > $2)
AND (state->>'closed_at' IS NULL OR (state->>'closed_at')::timestamptz > $2)
AND ($3 = '' OR state->>'org_unit' = $3) ORDER BY deadline, complaint_id LIMIT $4`, tenant, asOf, orgUnit, limit)
	if err != nil {
		return nil, fmt.Errorf("store: overdue: %w", translate(err))
	}
	defer rows.Close()
	var out []rollup.Complaint
	for rows.Next() {
		var b []byte
		if err := rows.Scan(&b); err != nil {
			return nil, fmt.Errorf("store: overdue: %w", translate(err))
		}
		var c rollup.Complaint
		if err := json.Unmarshal(b, &c); err != nil {
			return nil, fmt.Errorf("store: overdue: %w", err)
		}
		out = append(out, c)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("store: overdue: %w", translate(err))
	}
	return out, nil
}
