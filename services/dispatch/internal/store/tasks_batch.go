package store

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/huifang/huifang/pkg/postgres"
	"github.com/huifang/huifang/services/dispatch/internal/task"
)

// CustomerKey names a customer of a tenant.
type CustomerKey struct{ Tenant, ID string }

// LatestCustomers returns, in one statement, the newest kept version and
// snapshot of each of the customers dispatch has seen a CustomerUpdated
// for (the others are missing from the map).
func LatestCustomers(ctx context.Context, q postgres.Querier, keys []CustomerKey) (map[CustomerKey]KeptCustomer, error) {
	out := make(map[CustomerKey]KeptCustomer, len(keys))
	if len(keys) == 0 {
		return out, nil
	}
	tenants, ids := sortedKeys(keys)
	rows, err := q.Query(ctx, `SELECT v.tenant_id, v.customer_id, v.version, v.customer FROM unnest($1::text[], $2::text[]) AS k(tenant_id, customer_id)
JOIN customer_versions v ON v.tenant_id = k.tenant_id AND v.customer_id = k.customer_id`, tenants, ids)
	if err != nil {
		return nil, translate(err, fmt.Sprintf("latest %d customers", len(keys)), nil)
	}
	defer rows.Close()
	for rows.Next() {
		var k CustomerKey
		var v KeptCustomer
		var raw []byte
		if err := rows.Scan(&k.Tenant, &k.ID, &v.Version, &raw); err != nil {
			return nil, translate(err, "latest customer", nil)
		}
		if v.Customer, err = customerOf(raw); err != nil {
			return nil, translate(err, "latest customer "+k.ID, nil)
		}
		out[k] = v
	}
	return out, translate(rows.Err(), fmt.Sprintf("latest %d customers", len(keys)), nil)
}

// VisitSettled reports whether a VisitDue of the visit has nothing more
// to make: the visit has its task, or was cancelled first (CreateTasks
// makes none then).
func VisitSettled(ctx context.Context, q postgres.Querier, tenant, visitID string) (bool, error) {
	var ok bool
	visitID = strings.TrimSpace(visitID)
	err := q.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM tasks WHERE tenant_id = $1 AND visit_id = $2)
  OR EXISTS (SELECT 1 FROM cancelled_visits WHERE tenant_id = $1 AND visit_id = $2)`, tenant, visitID).Scan(&ok)
	return ok, translate(err, "the task of visit "+visitID, nil)
}

// NewTask is a task to create with the details its VisitDue carried.
type NewTask struct {
	Task    task.Task
	Details TaskDetails
}

// CreateTasks stores new open tasks with their details (task_details), in
// one statement however many: a task whose visit was cancelled
// (cancelled_visits) or already has a task (one task per visit: the
// table's unique key; of two tasks in ts for one visit, the first) is not
// stored, nor are its details. It returns the ids of the tasks it stored.
// It is the only writer of task_details, which keeps a row only for a task
// this statement inserted (no foreign key checks it: migration 012).
func CreateTasks(ctx context.Context, q postgres.Querier, ts []NewTask) (map[string]bool, error) {
	// Of two tasks for one visit, the first: the later ones are not sent.
	type visitKey struct{ tenant, visit string }
	seen := make(map[visitKey]bool, len(ts))
	first := ts[:0:0]
	for _, nt := range ts {
		k := visitKey{nt.Task.Tenant, nt.Task.VisitID}
		if !seen[k] {
			seen[k] = true
			first = append(first, nt)
		}
	}
	ts = first
	if len(ts) == 0 {
		return map[string]bool{}, nil
	}
	n := len(ts)
	var (
		ids, tenants, visits, channels, groups, units   = make([]string, n), make([]string, n), make([]string, n), make([]string, n), make([]string, n), make([]string, n)
		types, statuses, roles, policies, categories    = make([]string, n), make([]string, n), make([]string, n), make([]string, n), make([]string, n)
		primaries, backups, langs, services, complaints = make([]string, n), make([]string, n), make([]string, n), make([]string, n), make([]string, n)
		customers, calendars                            = make([]*string, n), make([]*string, n)
		dues, created, available                        = make([]time.Time, n), make([]time.Time, n), make([]time.Time, n)
		deadlines, completed                            = make([]*time.Time, n), make([]*time.Time, n)
		ranks, severities, tiers                        = make([]int32, n), make([]int32, n), make([]int32, n)
		versions                                        = make([]int64, n)
		automatic, late                                 = make([]bool, n), make([]bool, n)
	)
	for i, nt := range ts {
		t, d := nt.Task, nt.Details
		c, err := customerJSON(t.Customer)
		if err != nil {
			return nil, err
		}
		if c != nil {
			s := string(c)
			customers[i] = &s
		}
		cal, err := calendarJSON(t.Calendar)
		if err != nil {
			return nil, err
		}
		if cal != nil {
			s := string(cal)
			calendars[i] = &s
		}
		available[i] = t.AvailableAt
		if available[i].IsZero() {
			available[i] = t.DueAt
		}
		ids[i], tenants[i], visits[i], channels[i], groups[i], units[i] = t.ID, t.Tenant, t.VisitID, t.Channel.String(), t.Group, t.OrgUnit
		types[i], statuses[i], roles[i], policies[i], categories[i] = t.ServiceType, task.StatusOpen, t.RequiredRole, t.PolicyID, t.ProductCategory
		primaries[i], backups[i], langs[i] = t.PrimaryOwner, t.BackupOwner, t.Language
		dues[i], created[i], deadlines[i] = t.DueAt, t.CreatedAt, nullTime(t.Deadline)
		ranks[i], severities[i], tiers[i], automatic[i] = int32(t.RequiredRank()), int32(t.Severity), int32(t.TierRank), t.Automatic
		services[i], completed[i], complaints[i], late[i], versions[i] = d.ServiceID, nullTime(d.CompletedAt), d.ComplaintID, d.Late, t.CustomerVersion
	}
	rows, err := q.Query(ctx, `WITH u AS (
  SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[], $8::text[], $9::timestamptz[],
    $10::timestamptz[], $11::text[], $12::timestamptz[], $13::text[], $14::int[], $15::text[], $16::text[], $17::int[], $18::int[], $19::text[],
    $20::text[], $21::text[], $22::boolean[], $23::timestamptz[], $24::text[], $25::text[], $26::timestamptz[], $27::text[], $28::boolean[], $29::bigint[])
  AS u(id, tenant_id, visit_id, customer, channel, group_name, org_unit, service_type, due_at,
    deadline, status, created_at, required_role, required_rank, policy_id, product_category, severity, tier_rank, primary_owner,
    backup_owner, language, automatic, available_at, contact_calendar, service_id, service_completed_at, complaint_id, late, customer_version)
), made AS (
  INSERT INTO tasks (id, tenant_id, visit_id, customer, channel, group_name, org_unit, service_type, due_at, deadline, status, created_at,
    required_role, required_rank, policy_id, product_category, severity, tier_rank, primary_owner, backup_owner, language, automatic, available_at,
    updated_at, contact_calendar, customer_version)
  SELECT id, tenant_id, visit_id, customer::jsonb, channel, group_name, org_unit, service_type, due_at, deadline, status, created_at,
    required_role, required_rank, policy_id, product_category, severity, tier_rank, primary_owner, backup_owner, language, automatic, available_at,
    created_at, contact_calendar::jsonb, customer_version
  FROM u WHERE NOT EXISTS (SELECT 1 FROM cancelled_visits c WHERE c.tenant_id = u.tenant_id AND c.visit_id = u.visit_id)
  -- One order for every batch: two with visits in common wait for one another rather than deadlock.
  ORDER BY tenant_id, visit_id
  ON CONFLICT (tenant_id, visit_id) DO NOTHING
  RETURNING id
), details AS (
  INSERT INTO task_details (task_id, tenant_id, service_id, service_completed_at, complaint_id, late)
  -- Only the tasks just made: their ids are new, so no conflict to resolve
  -- (and task_details needs no foreign key: migration 012).
  SELECT u.id, u.tenant_id, u.service_id, u.service_completed_at, u.complaint_id, u.late FROM u JOIN made ON made.id = u.id
)
SELECT id FROM made`,
		ids, tenants, visits, customers, channels, groups, units, types, dues,
		deadlines, statuses, created, roles, ranks, policies, categories, severities, tiers, primaries,
		backups, langs, automatic, available, calendars, services, completed, complaints, late, versions)
	if err != nil {
		return nil, translate(err, fmt.Sprintf("insert %d tasks", n), nil)
	}
	made, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, translate(err, fmt.Sprintf("insert %d tasks", n), nil)
	}
	out := make(map[string]bool, len(made))
	for _, id := range made {
		out[id] = true
	}
	return out, nil
}
