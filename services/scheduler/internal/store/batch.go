package store

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/huifang/huifang/pkg/postgres"
	"github.com/huifang/huifang/services/scheduler/internal/contact"
	"github.com/huifang/huifang/services/scheduler/internal/policy"
)

// Known is what planning reads of a customer before it plans: the
// customer as the scheduler keeps it (Found false: never heard of), and
// whether it has planned visits.
type Known struct {
	Customer contact.Customer
	Found    bool
	Pending  bool
}

// KnownCustomers reads, in one statement and without locking, what the
// scheduler knows of the customers keys name (Known); every key is in the
// map.
func KnownCustomers(ctx context.Context, q postgres.Querier, keys []CustomerKey) (map[CustomerKey]Known, error) {
	out := make(map[CustomerKey]Known, len(keys))
	if len(keys) == 0 {
		return out, nil
	}
	ts, cs := make([]string, len(keys)), make([]string, len(keys))
	for i, k := range keys {
		ts[i], cs[i] = k.Tenant, k.Customer
	}
	rows, err := q.Query(ctx, `SELECT k.t, k.c, c.customer_id IS NOT NULL, coalesce(c.version, 0), coalesce(c.prefs, '{}'),
  coalesce(c.opted_out, '{}'), coalesce(c.tier, ''), coalesce(c.updated_at, 'epoch'),
  EXISTS (SELECT FROM planned_visits v WHERE v.tenant_id = k.t AND v.customer_id = k.c AND v.status = 'planned')
FROM (SELECT DISTINCT t, c FROM unnest($1::text[], $2::text[]) AS u(t, c)) k
LEFT JOIN customers c ON c.tenant_id = k.t AND c.customer_id = k.c`, ts, cs)
	if err != nil {
		return nil, translate("known customers", err)
	}
	defer rows.Close()
	for rows.Next() {
		var k CustomerKey
		var kn Known
		var prefs []byte
		c := &kn.Customer
		if err := rows.Scan(&k.Tenant, &k.Customer, &kn.Found, &c.Version, &prefs, &c.OptedOut, &c.Tier, &c.UpdatedAt, &kn.Pending); err != nil {
			return nil, translate("known customers", err)
		}
		if !kn.Found {
			kn.Customer = contact.Customer{}
		} else if err := json.Unmarshal(prefs, &c.Prefs); err != nil {
			return nil, fmt.Errorf("store: prefs of %s: %w", k.Customer, err)
		}
		out[k] = kn
	}
	return out, translate("known customers", rows.Err())
}

// InsertCustomer stores a customer the scheduler never heard of, as c
// says, in one statement; false when its row exists already (another
// transaction made it meanwhile: change it with UpdateCustomer). The
// channels c opts out of are recorded with source (opt_outs).
func InsertCustomer(ctx context.Context, tx pgx.Tx, tenant, id, source string, c contact.Customer) (bool, error) {
	prefs, err := json.Marshal(c.Prefs)
	if err != nil {
		return false, fmt.Errorf("store: prefs: %w", err)
	}
	opted := c.OptedOut
	if opted == nil {
		opted = []int32{}
	}
	tag, err := tx.Exec(ctx, `INSERT INTO customers (tenant_id, customer_id, version, prefs, opted_out, tier, updated_at)
VALUES ($1, $2, $3, $4, $5, $6, coalesce($7, now())) ON CONFLICT DO NOTHING`, tenant, id, c.Version, prefs, opted, c.Tier, nullTime(c.UpdatedAt))
	if err != nil {
		return false, translate("new customer", err)
	}
	if tag.RowsAffected() == 0 {
		return false, nil
	}
	return true, recordOptOuts(ctx, tx, tenant, id, source, nil, c)
}

// RecordServices is RecordService for many services, in one statement.
func RecordServices(ctx context.Context, q postgres.Querier, ss []policy.Service) error {
	if len(ss) == 0 {
		return nil
	}
	ts, ids, specs := make([]string, len(ss)), make([]string, len(ss)), make([]string, len(ss))
	ats := make([]time.Time, len(ss))
	for i, s := range ss {
		spec, err := json.Marshal(s)
		if err != nil {
			return fmt.Errorf("store: service: %w", err)
		}
		ts[i], ids[i], ats[i], specs[i] = s.Tenant, s.ID, s.CompletedAt, string(spec)
	}
	_, err := q.Exec(ctx, `INSERT INTO services (tenant_id, service_id, completed_at, spec)
SELECT t, id, at, spec::jsonb FROM unnest($1::text[], $2::text[], $3::timestamptz[], $4::text[]) WITH ORDINALITY AS u(t, id, at, spec, n)
ORDER BY n ON CONFLICT DO NOTHING`, ts, ids, ats, specs)
	return translate("record services", err)
}
