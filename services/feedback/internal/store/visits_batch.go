package store

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/huifang/huifang/pkg/postgres"
	"github.com/huifang/huifang/services/feedback/internal/visit"
)

// SaveVisits is SaveVisit for many visits, in one statement however many:
// of two visits in vs with one id, the later is kept, as if they were
// saved one after another. Rows are written in the order of their keys,
// so that batches that share visits lock them in one order. A visit's
// EventID (the first of them that names one) is stored with a new row
// only: a row keeps the id of the VisitDue that stored it.
func SaveVisits(ctx context.Context, q postgres.Querier, vs []visit.Visit) error {
	last := make(map[visit.Key]visit.Visit, len(vs))
	for _, v := range vs {
		if v.EventID == "" {
			v.EventID = last[v.Key()].EventID // the first VisitDue's
		}
		last[v.Key()] = v
	}
	if len(last) == 0 {
		return nil
	}
	keys := sortedKeys(last)
	n := len(keys)
	var (
		tenants, ids, customers, services, policies = make([]string, n), make([]string, n), make([]string, n), make([]string, n), make([]string, n)
		channels, units, types, complaints, events  = make([]string, n), make([]string, n), make([]string, n), make([]string, n), make([]string, n)
		dues, deadlines, completed                  = make([]*time.Time, n), make([]*time.Time, n), make([]*time.Time, n)
	)
	for i, k := range keys {
		v := last[k]
		tenants[i], ids[i], customers[i], services[i], policies[i] = v.TenantID, v.VisitID, v.CustomerID, v.ServiceID, v.PolicyID
		channels[i], units[i], types[i], complaints[i], events[i] = v.Channel.String(), v.OrgUnit, v.ServiceType, v.ComplaintID, v.EventID
		dues[i], deadlines[i], completed[i] = nullTime(v.DueAt), nullTime(v.Deadline), nullTime(v.ServiceCompletedAt)
	}
	_, err := q.Exec(ctx, `INSERT INTO visits (tenant_id, visit_id, customer_id, service_id, policy_id, channel, due_at, deadline, org_unit, service_type, service_completed_at, complaint_id, event_id)
SELECT tenant_id, visit_id, customer_id, service_id, policy_id, channel, due_at, deadline, org_unit, service_type, service_completed_at, complaint_id, NULLIF(event_id, '')
FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::timestamptz[], $8::timestamptz[], $9::text[], $10::text[], $11::timestamptz[], $12::text[], $13::text[])
  WITH ORDINALITY AS v(tenant_id, visit_id, customer_id, service_id, policy_id, channel, due_at, deadline, org_unit, service_type, service_completed_at, complaint_id, event_id, ord)
ORDER BY ord
ON CONFLICT (tenant_id, visit_id) DO UPDATE SET
  customer_id = EXCLUDED.customer_id, service_id = EXCLUDED.service_id, policy_id = EXCLUDED.policy_id,
  channel = EXCLUDED.channel, due_at = EXCLUDED.due_at, deadline = EXCLUDED.deadline, org_unit = EXCLUDED.org_unit,
  service_type = EXCLUDED.service_type, service_completed_at = EXCLUDED.service_completed_at,
  complaint_id = EXCLUDED.complaint_id, updated_at = now()`,
		tenants, ids, customers, services, policies, channels, dues, deadlines, units, types, completed, complaints, events)
	if err != nil {
		return fmt.Errorf("store: save %d visits: %w", n, translate(err))
	}
	return nil
}

// SaveAssignments is UpdateAssignment for many assignments, in one
// statement however many: each visit keeps the newest of the assignment
// it has and those in as (visit.Assignment.Replaces: of two at one time,
// the later heard), as if they were stored one after another; the visit
// need not be known. Two transactions that store the first assignment of
// a visit at once do not both insert: the second waits for the first and
// keeps the newer of the two.
func SaveAssignments(ctx context.Context, q postgres.Querier, as []visit.Assignment) error {
	newest := make(map[visit.Key]visit.Assignment, len(as))
	for _, a := range as {
		k := a.Key()
		if cur, ok := newest[k]; !ok || a.Replaces(&cur) {
			newest[k] = a
		}
	}
	if len(newest) == 0 {
		return nil
	}
	keys := sortedKeys(newest)
	n := len(keys)
	tenants, ids, agents, events, ats := make([]string, n), make([]string, n), make([]string, n), make([]string, n), make([]time.Time, n)
	for i, k := range keys {
		a := newest[k]
		tenants[i], ids[i], agents[i], ats[i], events[i] = a.TenantID, a.VisitID, a.AgentID, a.AssignedAt, a.EventID
	}
	// Replaces, in SQL: the kept assignment gives way unless it is newer.
	_, err := q.Exec(ctx, `INSERT INTO visit_assignments AS cur (tenant_id, visit_id, agent_id, assigned_at, event_id)
SELECT tenant_id, visit_id, agent_id, assigned_at, event_id
FROM unnest($1::text[], $2::text[], $3::text[], $4::timestamptz[], $5::text[]) WITH ORDINALITY AS a(tenant_id, visit_id, agent_id, assigned_at, event_id, ord)
ORDER BY ord
ON CONFLICT (tenant_id, visit_id) DO UPDATE SET
  agent_id = EXCLUDED.agent_id, assigned_at = EXCLUDED.assigned_at, event_id = EXCLUDED.event_id, updated_at = now()
WHERE cur.assigned_at <= EXCLUDED.assigned_at`, tenants, ids, agents, ats, events)
	if err != nil {
		return fmt.Errorf("store: save %d assignments: %w", n, translate(err))
	}
	return nil
}

// sortedKeys returns m's keys in order.
func sortedKeys[V any](m map[visit.Key]V) []visit.Key {
	keys := make([]visit.Key, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	return sortKeys(keys)
}

// sortKeys sorts keys in place and returns them.
func sortKeys(keys []visit.Key) []visit.Key {
	slices.SortFunc(keys, func(a, b visit.Key) int {
		return cmp.Or(cmp.Compare(a.Tenant, b.Tenant), cmp.Compare(a.Visit, b.Visit))
	})
	return keys
}
