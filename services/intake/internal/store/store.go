// Package store keeps intake's customer archive and service records in Postgres.
package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	eventsv1 "github.com/huifang/huifang/proto/huifang/events/v1"
	typesv1 "github.com/huifang/huifang/proto/huifang/types/v1"

	"github.com/huifang/huifang/pkg/outbox"
	"github.com/huifang/huifang/pkg/stream"
)

// ErrNotFound is returned when a customer does not exist.
var ErrNotFound = errors.New("not found")

// Result is what ingesting one event did.
type Result struct {
	ServiceID  string
	CustomerID string
	// Duplicate is true when the event was seen before and nothing changed.
	Duplicate bool
}

// Store is intake's storage.
type Store struct {
	Pool *pgxpool.Pool
}

// Ingest stores a validated event within tx: the customer (created, or
// updated unless the stored data is newer), the service record, and the
// ServiceCompleted event in the outbox. A resend of the same
// (tenant, source_system, source_event_id) changes nothing.
func Ingest(ctx context.Context, tx pgx.Tx, ev *eventsv1.ServiceCompleted) (Result, error) {
	var res Result
	err := tx.QueryRow(ctx, `SELECT id, customer_id FROM services WHERE tenant_id = $1 AND source_system = $2 AND source_event_id = $3`,
		ev.TenantId, ev.SourceSystem, ev.SourceEventId).Scan(&res.ServiceID, &res.CustomerID)
	switch {
	case err == nil:
		res.Duplicate = true
		return res, nil
	case !errors.Is(err, pgx.ErrNoRows):
		return res, fmt.Errorf("store: look up service: %w", err)
	}
	c := ev.Customer
	completed := ev.CompletedAt.AsTime()
	var tier string
	err = tx.QueryRow(ctx, `INSERT INTO customers (id, tenant_id, external_id, name, phone, email, source_updated_at)
VALUES ($1, $2, $3, $4, $5, $6, $7)
ON CONFLICT (tenant_id, external_id) DO UPDATE SET
  name = CASE WHEN EXCLUDED.source_updated_at >= customers.source_updated_at AND EXCLUDED.name <> '' THEN EXCLUDED.name ELSE customers.name END,
  phone = CASE WHEN EXCLUDED.source_updated_at >= customers.source_updated_at AND EXCLUDED.phone <> '' THEN EXCLUDED.phone ELSE customers.phone END,
  email = CASE WHEN EXCLUDED.source_updated_at >= customers.source_updated_at AND EXCLUDED.email <> '' THEN EXCLUDED.email ELSE customers.email END,
  source_updated_at = GREATEST(customers.source_updated_at, EXCLUDED.source_updated_at),
  updated_at = now()
RETURNING id, name, phone, email, tier`,
		outbox.NewEventID(), ev.TenantId, c.ExternalId, c.Name, c.Phone, c.Email, completed).
		Scan(&res.CustomerID, &c.Name, &c.Phone, &c.Email, &tier)
	if err != nil {
		return res, fmt.Errorf("store: upsert customer: %w", err)
	}
	c.Id = res.CustomerID
	c.Tier = tier
	var product []byte
	if ev.Product != nil {
		if product, err = protojson.Marshal(ev.Product); err != nil {
			return res, fmt.Errorf("store: product: %w", err)
		}
	}
	res.ServiceID = outbox.NewEventID()
	if _, err := tx.Exec(ctx, `INSERT INTO services (id, tenant_id, source_system, source_event_id, service_type, completed_at, customer_id, org_unit, staff_id, amount_minor, product)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)`,
		res.ServiceID, ev.TenantId, ev.SourceSystem, ev.SourceEventId, ev.ServiceType, completed, res.CustomerID,
		ev.OrgUnit, ev.StaffId, ev.AmountMinor, nullJSON(product)); err != nil {
		return res, fmt.Errorf("store: insert service: %w", err)
	}
	out := proto.CloneOf(ev)
	out.ServiceId = res.ServiceID
	out.EventId = outbox.NewEventID()
	if _, err := outbox.Add(ctx, tx, outbox.Message{ID: out.EventId, Subject: stream.SubjectServiceCompleted, Payload: out}); err != nil {
		return res, err
	}
	return res, nil
}

func nullJSON(b []byte) any {
	if b == nil {
		return nil
	}
	return json.RawMessage(b)
}

// GetCustomer finds a customer by Huifang id or by external id.
func (s *Store) GetCustomer(ctx context.Context, tenant, id, externalID string) (*typesv1.Customer, error) {
	c := &typesv1.Customer{}
	err := s.Pool.QueryRow(ctx, `SELECT id, external_id, name, phone, email, tier FROM customers
WHERE tenant_id = $1 AND (($2 <> '' AND id = $2) OR ($3 <> '' AND external_id = $3))`, tenant, id, externalID).
		Scan(&c.Id, &c.ExternalId, &c.Name, &c.Phone, &c.Email, &c.Tier)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("store: get customer: %w", err)
	}
	return c, nil
}

// Rejected is one row of rejected_events.
type Rejected struct {
	ID, Tenant, Source, Field, Reason, ContentType string
	Payload                                        []byte
	ReceivedAt                                     time.Time
}

// ListRejected lists rejected inputs newest first, after the cursor (received_at, id).
func (s *Store) ListRejected(ctx context.Context, tenant string, limit int, afterTime time.Time, afterID string) ([]Rejected, error) {
	rows, err := s.Pool.Query(ctx, `SELECT id, tenant_id, source, field, reason, content_type, payload, received_at
FROM rejected_events WHERE tenant_id = $1 AND ($3 = '' OR (received_at, id) < ($2, $3))
ORDER BY received_at DESC, id DESC LIMIT $4`, tenant, afterTime, afterID, limit)
	if err != nil {
		return nil, fmt.Errorf("store: list rejected: %w", err)
	}
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (Rejected, error) {
		var x Rejected
		err := r.Scan(&x.ID, &x.Tenant, &x.Source, &x.Field, &x.Reason, &x.ContentType, &x.Payload, &x.ReceivedAt)
		return x, err
	})
}

// Timestamp converts for the API.
func Timestamp(t time.Time) *timestamppb.Timestamp { return timestamppb.New(t) }
