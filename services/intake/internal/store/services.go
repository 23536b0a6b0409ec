package store

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/jackc/pgx/v5"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	eventsv1 "github.com/huifang/huifang/proto/huifang/events/v1"

	"github.com/huifang/huifang/pkg/postgres"
	"github.com/huifang/huifang/services/intake/internal/ingest"
)

// ServiceBySource finds the service stored for (tenant, source system,
// source event id) and its customer; ErrNotFound when there is none.
func (s *Store) ServiceBySource(ctx context.Context, q postgres.Querier, tenant, sourceSystem, sourceEventID string) (serviceID, customerID string, err error) {
	err = q.QueryRow(ctx, `SELECT id, customer_id FROM services WHERE tenant_id = $1 AND source_system = $2 AND source_event_id = $3`,
		tenant, sourceSystem, sourceEventID).Scan(&serviceID, &customerID)
	return serviceID, customerID, wrap("service by source", err)
}

// ServiceByComplaint finds the customer's service that carries the
// complaint reference; ErrNotFound when there is none.
func (s *Store) ServiceByComplaint(ctx context.Context, q postgres.Querier, tenant, customerID, ref string) (string, error) {
	var id string
	err := q.QueryRow(ctx, `SELECT id FROM services WHERE tenant_id = $1 AND customer_id = $2 AND complaint_ref = $3`, tenant, customerID, ref).Scan(&id)
	return id, wrap("service by complaint", err)
}

// AddService stores the service of an event as id, for the customer.
// ErrConflict when its source ids, or its complaint for this customer, are
// taken (a concurrent writer stored the same event).
func (s *Store) AddService(ctx context.Context, q postgres.Querier, id, customerID string, ev *eventsv1.ServiceCompleted) error {
	return s.addService(ctx, q, NewService{ID: id, CustomerID: customerID, Event: ev})
}

// AddIngressService is AddService for an event of the NATS ingress: the
// service says so (NewService.ViaIngress).
func (s *Store) AddIngressService(ctx context.Context, q postgres.Querier, id, customerID string, ev *eventsv1.ServiceCompleted) error {
	return s.addService(ctx, q, NewService{ID: id, CustomerID: customerID, Event: ev, ViaIngress: true})
}

func (s *Store) addService(ctx context.Context, q postgres.Querier, sv NewService) error {
	ev := sv.Event
	var product, vehicle, complaint []byte
	var err error
	if product, err = marshal(ev.Product); err == nil {
		if vehicle, err = marshal(ev.Vehicle); err == nil {
			complaint, err = marshal(ev.Complaint)
		}
	}
	if err != nil {
		return fmt.Errorf("store: service details: %w", err)
	}
	_, err = q.Exec(ctx, `INSERT INTO services (id, tenant_id, source_system, source_event_id, service_type, completed_at, customer_id, org_unit, staff_id, amount_minor, product, vehicle, vin, complaint, complaint_ref, claim_amount_minor, via_ingress)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17)`,
		sv.ID, ev.TenantId, ev.SourceSystem, ev.SourceEventId, ev.ServiceType, ev.CompletedAt.AsTime(), sv.CustomerID,
		ev.OrgUnit, ev.StaffId, ev.AmountMinor, nullJSON(product), nullJSON(vehicle), ev.GetVehicle().GetVin(), nullJSON(complaint),
		ev.GetComplaint().GetReference(), ev.ClaimAmountMinor, sv.ViaIngress)
	return wrap("insert service", err)
}

func marshal(m proto.Message) ([]byte, error) {
	if m == nil || !m.ProtoReflect().IsValid() {
		return nil, nil
	}
	return protojson.Marshal(m)
}

func nullJSON(b []byte) any {
	if b == nil {
		return nil
	}
	return json.RawMessage(b)
}

// RegisterType adds a tenant-defined service type; registering it again
// updates its description.
func (s *Store) RegisterType(ctx context.Context, q postgres.Querier, tenant string, t ingest.ServiceType) error {
	_, err := q.Exec(ctx, `INSERT INTO service_types (tenant_id, name, description) VALUES ($1, $2, $3)
ON CONFLICT (tenant_id, name) DO UPDATE SET description = EXCLUDED.description`, tenant, t.Name, t.Description)
	return wrap("register type", err)
}

// ServiceTypes lists the tenant's own service types by name.
func (s *Store) ServiceTypes(ctx context.Context, q postgres.Querier, tenant string) ([]ingest.ServiceType, error) {
	rows, err := q.Query(ctx, `SELECT name, description FROM service_types WHERE tenant_id = $1 ORDER BY name`, tenant)
	if err != nil {
		return nil, wrap("list types", err)
	}
	types, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (ingest.ServiceType, error) {
		var t ingest.ServiceType
		return t, r.Scan(&t.Name, &t.Description)
	})
	return types, wrap("list types", err)
}
