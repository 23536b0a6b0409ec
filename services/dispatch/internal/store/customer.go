package store

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"

	typesv1 "github.com/huifang/huifang/proto/huifang/types/v1"

	"github.com/huifang/huifang/pkg/postgres"
	"github.com/huifang/huifang/services/dispatch/internal/task"
)

// SaveCustomerVersion keeps c as the tenant's version `version` of the
// customer, replacing the one kept.
func SaveCustomerVersion(ctx context.Context, q postgres.Querier, tenant string, c task.Customer, version int64, at time.Time) error {
	snapshot, err := customerJSON(c)
	if err != nil {
		return err
	}
	_, err = q.Exec(ctx, `INSERT INTO customer_versions (tenant_id, customer_id, version, customer, updated_at) VALUES ($1, $2, $3, $4, $5)
ON CONFLICT (tenant_id, customer_id) DO UPDATE SET version = EXCLUDED.version, customer = EXCLUDED.customer, updated_at = EXCLUDED.updated_at`,
		tenant, c.ID, version, snapshot, at)
	return translate(err, "save a version of customer "+c.ID, nil)
}

// sortedKeys are the tenants and ids of keys without repeats, in the
// order every taker of the customers' locks takes them: tenant, then id
// (two transactions never wait on each other crosswise).
func sortedKeys(keys []CustomerKey) (tenants, ids []string) {
	keys = slices.Clone(keys)
	slices.SortFunc(keys, func(a, b CustomerKey) int { return cmp.Or(cmp.Compare(a.Tenant, b.Tenant), cmp.Compare(a.ID, b.ID)) })
	keys = slices.Compact(keys)
	tenants, ids = make([]string, len(keys)), make([]string, len(keys))
	for i, k := range keys {
		tenants[i], ids[i] = k.Tenant, k.ID
	}
	return tenants, ids
}

// KeptCustomer is the version of a customer dispatch keeps, with its
// snapshot.
type KeptCustomer struct {
	Version  int64
	Customer task.Customer
}

// LockCustomerVersions takes the customers' kept versions for the rest of
// tx (one CustomerUpdated of a customer at a time, kept or not yet) and
// returns them with their snapshots, in two statements however many: the
// customers' locks taken in a stable order
// (tenant, then id: two batches never wait on each other crosswise), then
// their kept versions read with their snapshots. A customer of none has no
// entry.
func LockCustomerVersions(ctx context.Context, tx pgx.Tx, keys []CustomerKey) (map[CustomerKey]KeptCustomer, error) {
	out := make(map[CustomerKey]KeptCustomer, len(keys))
	if len(keys) == 0 {
		return out, nil
	}
	tenants, ids := sortedKeys(keys)
	// unnest yields its rows in the arrays' order: the locks are taken in it.
	if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock(hashtext('dispatch.customer_versions:' || k.t || '/' || k.c))
FROM unnest($1::text[], $2::text[]) AS k(t, c)`, tenants, ids); err != nil {
		return nil, translate(err, fmt.Sprintf("lock %d customers", len(keys)), nil)
	}
	// A statement of its own: its snapshot is taken once the locks are held.
	rows, err := tx.Query(ctx, `SELECT v.tenant_id, v.customer_id, v.version, v.customer FROM unnest($1::text[], $2::text[]) AS k(t, c)
JOIN customer_versions v ON v.tenant_id = k.t AND v.customer_id = k.c`, tenants, ids)
	if err != nil {
		return nil, translate(err, fmt.Sprintf("versions of %d customers", len(keys)), nil)
	}
	defer rows.Close()
	for rows.Next() {
		var (
			k   CustomerKey
			v   KeptCustomer
			raw []byte
		)
		if err := rows.Scan(&k.Tenant, &k.ID, &v.Version, &raw); err != nil {
			return nil, translate(err, "version of a customer", nil)
		}
		if v.Customer, err = customerOf(raw); err != nil {
			return nil, translate(err, "version of customer "+k.ID, nil)
		}
		out[k] = v
	}
	return out, translate(rows.Err(), fmt.Sprintf("versions of %d customers", len(keys)), nil)
}

// CustomerVersion is a version of a customer to keep (SaveCustomerVersions).
type CustomerVersion struct {
	Tenant   string
	Customer task.Customer
	Version  int64
}

// SaveCustomerVersions is SaveCustomerVersion for many customers, in one
// statement: of two versions of one customer among them, the last is kept.
func SaveCustomerVersions(ctx context.Context, q postgres.Querier, vs []CustomerVersion, at time.Time) error {
	if len(vs) == 0 {
		return nil
	}
	n := len(vs)
	tenants, ids, snapshots, versions := make([]string, n), make([]string, n), make([]string, n), make([]int64, n)
	for i, v := range vs {
		snapshot, err := customerJSON(v.Customer)
		if err != nil {
			return err
		}
		tenants[i], ids[i], snapshots[i], versions[i] = v.Tenant, v.Customer.ID, string(snapshot), v.Version
	}
	_, err := q.Exec(ctx, `INSERT INTO customer_versions (tenant_id, customer_id, version, customer, updated_at)
SELECT DISTINCT ON (t, c) t, c, v, s::jsonb, $5 FROM unnest($1::text[], $2::text[], $3::bigint[], $4::text[]) WITH ORDINALITY AS u(t, c, v, s, n)
ORDER BY t, c, n DESC
ON CONFLICT (tenant_id, customer_id) DO UPDATE SET version = EXCLUDED.version, customer = EXCLUDED.customer, updated_at = EXCLUDED.updated_at`,
		tenants, ids, versions, snapshots, at)
	return translate(err, fmt.Sprintf("save versions of %d customers", n), nil)
}

// LockActiveTasksOfCustomers is what UpdateActiveTasksOfCustomer locks and
// reads, for many customers in one statement: each customer's active tasks
// (open, claimed, sending), oldest first. The caller saves those it changes
// (SaveTasks).
func LockActiveTasksOfCustomers(ctx context.Context, tx pgx.Tx, keys []CustomerKey) (map[CustomerKey][]task.Task, error) {
	out := make(map[CustomerKey][]task.Task, len(keys))
	if len(keys) == 0 {
		return out, nil
	}
	tenants, ids := sortedKeys(keys)
	rows, err := tx.Query(ctx, `SELECT `+taskColumns+` FROM tasks t
WHERE (tenant_id, customer_id) IN (SELECT * FROM unnest($1::text[], $2::text[])) AND status IN ('open', 'claimed', 'sending')
ORDER BY tenant_id, customer_id, created_at, id FOR UPDATE`, tenants, ids)
	if err != nil {
		return nil, translate(err, fmt.Sprintf("tasks of %d customers", len(keys)), nil)
	}
	tasks, err := pgx.CollectRows(rows, scanTask)
	if err != nil {
		return nil, translate(err, fmt.Sprintf("tasks of %d customers", len(keys)), nil)
	}
	for _, t := range tasks {
		k := CustomerKey{Tenant: t.Tenant, ID: t.Customer.ID}
		out[k] = append(out[k], t)
	}
	return out, nil
}

// ActiveTasksOfCustomers reads, without locking them, the active tasks
// (open, claimed, sending) of the customers, oldest first, with what
// task.Task.Replace reads of them besides the customer (id, channel,
// status, availability, contact calendar) and the routing task.Rules.SetCustomer
// derives from a snapshot (tier rank, owners, language); the other fields
// are left zero. A CustomerUpdated that changes nothing routing reads
// checks with them that its snapshot moves no task and routes each as it
// is routed.
func ActiveTasksOfCustomers(ctx context.Context, q postgres.Querier, keys []CustomerKey) (map[CustomerKey][]task.Task, error) {
	out := make(map[CustomerKey][]task.Task, len(keys))
	if len(keys) == 0 {
		return out, nil
	}
	tenants, ids := sortedKeys(keys)
	rows, err := q.Query(ctx, `SELECT tenant_id, customer_id, id, channel, status, available_at, contact_calendar, tier_rank, primary_owner, backup_owner, language
FROM tasks WHERE (tenant_id, customer_id) IN (SELECT * FROM unnest($1::text[], $2::text[])) AND status IN ('open', 'claimed', 'sending')
ORDER BY tenant_id, customer_id, created_at, id`, tenants, ids)
	if err != nil {
		return nil, translate(err, fmt.Sprintf("active tasks of %d customers", len(keys)), nil)
	}
	defer rows.Close()
	for rows.Next() {
		var (
			k        CustomerKey
			t        task.Task
			channel  string
			calendar []byte
		)
		if err := rows.Scan(&k.Tenant, &k.ID, &t.ID, &channel, &t.Status, &t.AvailableAt, &calendar, &t.TierRank, &t.PrimaryOwner,
			&t.BackupOwner, &t.Language); err != nil {
			return nil, translate(err, "active task of a customer", nil)
		}
		if calendar != nil {
			if err := json.Unmarshal(calendar, &t.Calendar); err != nil {
				return nil, fmt.Errorf("store: contact calendar of task %s: %w", t.ID, err)
			}
		}
		t.Tenant, t.Channel = k.Tenant, typesv1.Channel(typesv1.Channel_value[channel])
		out[k] = append(out[k], t)
	}
	return out, translate(rows.Err(), fmt.Sprintf("active tasks of %d customers", len(keys)), nil)
}
