package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	typesv1 "github.com/huifang/huifang/proto/huifang/types/v1"

	"github.com/jackc/pgx/v5"

	"github.com/huifang/huifang/pkg/postgres"
	"github.com/huifang/huifang/services/scheduler/internal/contact"
)

// ContactRules returns the contact policies of the tenants (a tenant
// without one is missing from the map: the zero Rules apply).
func ContactRules(ctx context.Context, q postgres.Querier, tenants []string) (map[string]contact.Rules, error) {
	rows, err := q.Query(ctx, `SELECT tenant_id, spec FROM contact_policies WHERE tenant_id = ANY($1)`, tenants)
	if err != nil {
		return nil, translate("contact policies", err)
	}
	out := map[string]contact.Rules{}
	var tenant string
	var spec []byte
	_, err = pgx.ForEachRow(rows, []any{&tenant, &spec}, func() error {
		var r contact.Rules
		if err := json.Unmarshal(spec, &r); err != nil {
			return fmt.Errorf("contact policy of %s: %w", tenant, err)
		}
		out[tenant] = r
		return nil
	})
	if err != nil {
		return nil, translate("contact policies", err)
	}
	return out, nil
}

// SaveContactRules replaces the tenant's contact policy.
func SaveContactRules(ctx context.Context, q postgres.Querier, tenant string, r contact.Rules, now time.Time) error {
	spec, err := json.Marshal(r)
	if err != nil {
		return fmt.Errorf("store: contact policy: %w", err)
	}
	_, err = q.Exec(ctx, `INSERT INTO contact_policies (tenant_id, spec, updated_at) VALUES ($1, $2, $3)
ON CONFLICT (tenant_id) DO UPDATE SET spec = EXCLUDED.spec, updated_at = EXCLUDED.updated_at`, tenant, spec, now)
	return translate("set contact policy", err)
}

// CustomerKey names a customer of a tenant.
type CustomerKey struct{ Tenant, Customer string }

const customerCols = `version, prefs, opted_out, tier, updated_at`

func scanCustomer(row pgx.Row, c *contact.Customer) error {
	var prefs []byte
	if err := row.Scan(&c.Version, &prefs, &c.OptedOut, &c.Tier, &c.UpdatedAt); err != nil {
		return err
	}
	if err := json.Unmarshal(prefs, &c.Prefs); err != nil {
		return fmt.Errorf("prefs: %w", err)
	}
	return nil
}

// Customers loads what the scheduler knows of the customers (those it
// never heard of are missing from the map).
func Customers(ctx context.Context, q postgres.Querier, keys []CustomerKey) (map[CustomerKey]contact.Customer, error) {
	out := map[CustomerKey]contact.Customer{}
	if len(keys) == 0 {
		return out, nil
	}
	ts, cs := make([]string, len(keys)), make([]string, len(keys))
	for i, k := range keys {
		ts[i], cs[i] = k.Tenant, k.Customer
	}
	rows, err := q.Query(ctx, `SELECT c.tenant_id, c.customer_id, `+customerCols+` FROM customers c
JOIN unnest($1::text[], $2::text[]) AS k(t, c) ON c.tenant_id = k.t AND c.customer_id = k.c`, ts, cs)
	if err != nil {
		return nil, translate("customers", err)
	}
	defer rows.Close()
	for rows.Next() {
		var k CustomerKey
		var c contact.Customer
		var prefs []byte
		if err := rows.Scan(&k.Tenant, &k.Customer, &c.Version, &prefs, &c.OptedOut, &c.Tier, &c.UpdatedAt); err != nil {
			return nil, translate("customers", err)
		}
		if err := json.Unmarshal(prefs, &c.Prefs); err != nil {
			return nil, fmt.Errorf("store: prefs of %s: %w", k.Customer, err)
		}
		out[k] = c
	}
	return out, translate("customers", rows.Err())
}

// UpdateCustomerIfChanged is UpdateCustomer for a change that usually
// changes nothing (the snapshot a completed service carries, of a customer
// whose newer version the scheduler keeps already): fn first decides on a
// copy read without a lock, and the row is locked, read again and changed
// only when fn would change it. So planning does not queue on the row of a
// customer whose CustomerUpdated another consumer applies at that moment.
// A customer found that holds (when not nil) says holds the change already
// is left as it is too: not written again only to move when it changed.
func UpdateCustomerIfChanged(ctx context.Context, tx pgx.Tx, tenant, id, source string, holds func(c contact.Customer) bool, fn func(c *contact.Customer) bool) (contact.Customer, error) {
	var seen contact.Customer
	err := scanCustomer(tx.QueryRow(ctx, `SELECT `+customerCols+` FROM customers WHERE tenant_id = $1 AND customer_id = $2`, tenant, id), &seen)
	switch {
	case err == nil:
		if holds != nil && holds(seen) {
			return seen, nil
		}
		probe := seen
		probe.OptedOut = slices.Clone(seen.OptedOut)
		if !fn(&probe) {
			return seen, nil
		}
	case !errors.Is(err, pgx.ErrNoRows):
		return seen, translate("read customer", err)
	}
	return UpdateCustomer(ctx, tx, tenant, id, source, fn)
}

// UpdateCustomer changes a customer by closure within tx: the customer's
// row is locked (created empty, version 0, when the scheduler never heard of
// the customer), fn decides and says whether it changed anything, and the
// change is saved. It returns the customer as fn left it.
func UpdateCustomer(ctx context.Context, tx pgx.Tx, tenant, id, source string, fn func(c *contact.Customer) bool) (contact.Customer, error) {
	lock := func() (contact.Customer, error) {
		var c contact.Customer
		err := scanCustomer(tx.QueryRow(ctx, `SELECT `+customerCols+` FROM customers WHERE tenant_id = $1 AND customer_id = $2 FOR UPDATE`, tenant, id), &c)
		return c, err
	}
	c, err := lock()
	if errors.Is(err, pgx.ErrNoRows) {
		if _, err := tx.Exec(ctx, `INSERT INTO customers (tenant_id, customer_id) VALUES ($1, $2) ON CONFLICT DO NOTHING`, tenant, id); err != nil {
			return c, translate("new customer", err)
		}
		c, err = lock()
	}
	if err != nil {
		return c, translate("lock customer", err)
	}
	before := c.Effective().OptedOut
	if !fn(&c) {
		return c, nil
	}
	if err := recordOptOuts(ctx, tx, tenant, id, source, before, c); err != nil {
		return c, err
	}
	prefs, err := json.Marshal(c.Prefs)
	if err != nil {
		return c, fmt.Errorf("store: prefs: %w", err)
	}
	opted := c.OptedOut
	if opted == nil {
		opted = []int32{}
	}
	_, err = tx.Exec(ctx, `UPDATE customers SET version = $3, prefs = $4, opted_out = $5, tier = $6, updated_at = coalesce($7, now())
WHERE tenant_id = $1 AND customer_id = $2`, tenant, id, c.Version, prefs, opted, c.Tier, nullTime(c.UpdatedAt))
	return c, translate("save customer", err)
}

func nullTime(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	return &t
}

// recordOptOuts records each channel c opts out of now that it did not
// before (opt_outs), with the change's source and time; a channel's first
// opt-out is the one kept.
func recordOptOuts(ctx context.Context, tx pgx.Tx, tenant, id, source string, before []int32, c contact.Customer) error {
	at := c.UpdatedAt
	if at.IsZero() {
		at = time.Now()
	}
	for _, ch := range c.Effective().OptedOut {
		if slices.Contains(before, ch) {
			continue
		}
		if _, err := tx.Exec(ctx, `INSERT INTO opt_outs (tenant_id, customer_id, channel, source, opted_out_at) VALUES ($1, $2, $3, $4, $5)
ON CONFLICT DO NOTHING`, tenant, id, typesv1.Channel(ch).String(), source, at); err != nil {
			return translate("record opt-out", err)
		}
	}
	return nil
}
