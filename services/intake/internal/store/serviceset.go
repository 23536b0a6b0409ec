package store

import (
	"context"
	"fmt"

	eventsv1 "github.com/huifang/huifang/proto/huifang/events/v1"

	"github.com/huifang/huifang/pkg/postgres"
	"github.com/huifang/huifang/services/intake/internal/tier"
)

// SourceKey names an event upstream: (tenant, source system, source event id).
type SourceKey struct{ Tenant, System, EventID string }

// StoredService is a stored service's id and its customer's (empty when
// none is stored), and what says an ingress event was applied before:
// the service was stored by the NATS ingress (ViaIngress), or the ingress
// consumer's inbox holds the event's key (Claimed).
type StoredService struct {
	ServiceID, CustomerID string
	ViaIngress, Claimed   bool
}

// IngressKey is an event of the NATS ingress: its source ids, and its key
// in the ingress consumer's inbox.
type IngressKey struct {
	SourceKey
	Inbox string
}

// ServicesBySource is ServiceBySource for many events in one statement: the
// services stored for those of keys that have one. With a durable (the
// ingress consumer's), it also reads which keys its inbox holds (for the
// events whose service the ingress did not store), and returns those too.
func (s *Store) ServicesBySource(ctx context.Context, q postgres.Querier, durable string, keys []IngressKey) (map[SourceKey]StoredService, error) {
	out := make(map[SourceKey]StoredService, len(keys))
	if len(keys) == 0 {
		return out, nil
	}
	tenants, systems, ids, inbox := make([]string, len(keys)), make([]string, len(keys)), make([]string, len(keys)), make([]string, len(keys))
	for i, k := range keys {
		tenants[i], systems[i], ids[i], inbox[i] = k.Tenant, k.System, k.EventID, k.Inbox
	}
	rows, err := q.Query(ctx, `SELECT k.tenant_id, k.source_system, k.source_event_id, s.id, s.customer_id, coalesce(s.via_ingress, false),
  CASE WHEN $5 = '' OR s.via_ingress THEN false
    ELSE EXISTS (SELECT 1 FROM inbox i WHERE i.consumer = $5 AND i.event_id = k.inbox_id) END AS claimed
FROM unnest($1::text[], $2::text[], $3::text[], $4::text[]) AS k (tenant_id, source_system, source_event_id, inbox_id)
LEFT JOIN services s ON s.tenant_id = k.tenant_id AND s.source_system = k.source_system AND s.source_event_id = k.source_event_id`,
		tenants, systems, ids, inbox, durable)
	if err != nil {
		return nil, wrap("services by source", err)
	}
	defer rows.Close()
	for rows.Next() {
		// One value for Scan's pointers: one allocation a row.
		var r struct {
			k            SourceKey
			v            StoredService
			id, customer *string
		}
		if err := rows.Scan(&r.k.Tenant, &r.k.System, &r.k.EventID, &r.id, &r.customer, &r.v.ViaIngress, &r.v.Claimed); err != nil {
			return nil, wrap("services by source", err)
		}
		if r.id == nil && !r.v.Claimed {
			continue
		}
		if r.id != nil {
			r.v.ServiceID, r.v.CustomerID = *r.id, *r.customer
		}
		out[r.k] = r.v
	}
	return out, wrap("services by source", rows.Err())
}

// NewService is a service to store (AddServices): its id, its customer's
// and the event it came from.
type NewService struct {
	ID, CustomerID string
	Event          *eventsv1.ServiceCompleted
	// ViaIngress says that the NATS ingress stores it (its consumer keeps
	// no inbox row for the event: the service says it was applied).
	ViaIngress bool
}

// AddServices is AddService for many services in one statement, in order.
// ErrConflict when the source ids or the complaint of one are taken (a
// concurrent writer stored the same event): none is stored then.
//
// The statement sets plan_cache_mode to auto for the rest of the
// transaction (set_config, local), so that the foreign key's check of each
// row (customer_id, a lookup by primary key that Postgres runs as a query
// of its own, its plan cached per connection) is planned a few times per
// connection and then reused, where the pools' force_custom_plan planned it
// again for every row: the planning cost ~4x the check itself. The pool's
// mode is back at the commit; call it after the transaction's reads. The
// set_config is a subquery so that it runs once (a one-time filter), not
// once per row.
func (s *Store) AddServices(ctx context.Context, q postgres.Querier, svcs []NewService) error {
	if len(svcs) == 0 {
		return nil
	}
	n := len(svcs)
	var (
		ids, tenants, systems, sourceIDs, types, customers, orgUnits, staff, vins, refs = make([]string, n), make([]string, n),
			make([]string, n), make([]string, n), make([]string, n), make([]string, n), make([]string, n), make([]string, n), make([]string, n), make([]string, n)
		completed                   = make([]any, n)
		via                         = make([]bool, n)
		amounts, claims             = make([]int64, n), make([]int64, n)
		products, vehicles, details = make([]*string, n), make([]*string, n), make([]*string, n)
	)
	text := func(b []byte) *string {
		if b == nil {
			return nil
		}
		t := string(b)
		return &t
	}
	for i, sv := range svcs {
		ev := sv.Event
		product, err := marshal(ev.Product)
		if err != nil {
			return fmt.Errorf("store: service details: %w", err)
		}
		vehicle, err := marshal(ev.Vehicle)
		if err != nil {
			return fmt.Errorf("store: service details: %w", err)
		}
		complaint, err := marshal(ev.Complaint)
		if err != nil {
			return fmt.Errorf("store: service details: %w", err)
		}
		ids[i], tenants[i], systems[i], sourceIDs[i], types[i], customers[i] = sv.ID, ev.TenantId, ev.SourceSystem, ev.SourceEventId, ev.ServiceType, sv.CustomerID
		completed[i], orgUnits[i], staff[i], amounts[i] = ev.CompletedAt.AsTime(), ev.OrgUnit, ev.StaffId, ev.AmountMinor
		products[i], vehicles[i], details[i] = text(product), text(vehicle), text(complaint)
		vins[i], refs[i], claims[i], via[i] = ev.GetVehicle().GetVin(), ev.GetComplaint().GetReference(), ev.ClaimAmountMinor, sv.ViaIngress
	}
	_, err := q.Exec(ctx, `INSERT INTO services (id, tenant_id, source_system, source_event_id, service_type, completed_at, customer_id, org_unit, staff_id,
  amount_minor, product, vehicle, vin, complaint, complaint_ref, claim_amount_minor, via_ingress)
SELECT id, tenant_id, source_system, source_event_id, service_type, completed_at, customer_id, org_unit, staff_id,
  amount_minor, product::jsonb, vehicle::jsonb, vin, complaint::jsonb, complaint_ref, claim_amount_minor, via_ingress
FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::timestamptz[], $7::text[], $8::text[], $9::text[],
  $10::bigint[], $11::text[], $12::text[], $13::text[], $14::text[], $15::text[], $16::bigint[], $17::boolean[])
  WITH ORDINALITY AS v (id, tenant_id, source_system, source_event_id, service_type, completed_at, customer_id, org_unit, staff_id,
    amount_minor, product, vehicle, vin, complaint, complaint_ref, claim_amount_minor, via_ingress, n)
WHERE (SELECT set_config('plan_cache_mode', 'auto', true)) <> ''
ORDER BY n`,
		ids, tenants, systems, sourceIDs, types, completed, customers, orgUnits, staff, amounts, products, vehicles, vins, details, refs, claims, via)
	return wrap("insert services", err)
}

// CarVINs are, by customer, the vehicles (VINs) the tier rules' count of
// cars holds: those of the customers' services in scope of the car service
// types, one statement for all.
func (s *Store) CarVINs(ctx context.Context, q postgres.Querier, scope tier.Scope, customerIDs []string) (map[string][]string, error) {
	out := map[string][]string{}
	if len(customerIDs) == 0 {
		return out, nil
	}
	rows, err := q.Query(ctx, `SELECT DISTINCT customer_id, vin FROM services
WHERE customer_id = ANY($1) AND completed_at > $2 AND vin <> '' AND service_type = ANY($3)`, customerIDs, scope.Since, scope.CarServiceTypes)
	if err != nil {
		return nil, wrap("car vins", err)
	}
	defer rows.Close()
	for rows.Next() {
		var id, vin string
		if err := rows.Scan(&id, &vin); err != nil {
			return nil, wrap("car vins", err)
		}
		out[id] = append(out[id], vin)
	}
	return out, wrap("car vins", rows.Err())
}
