// Package store keeps the scheduler's policies and planned visits in Postgres.
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
	"google.golang.org/protobuf/types/known/timestamppb"

	eventsv1 "github.com/huifang/huifang/proto/huifang/events/v1"
	typesv1 "github.com/huifang/huifang/proto/huifang/types/v1"

	"github.com/huifang/huifang/pkg/outbox"
	"github.com/huifang/huifang/pkg/postgres"
	"github.com/huifang/huifang/pkg/stream"
	"github.com/huifang/huifang/services/scheduler/internal/policy"
)

// ErrNameTaken is returned when the tenant already has a policy of that name.
var ErrNameTaken = errors.New("a policy of that name exists")

// Store is the scheduler's storage.
type Store struct {
	Pool *pgxpool.Pool
}

// EnsureBuiltins writes the built-in policies if they are missing.
func (s *Store) EnsureBuiltins(ctx context.Context) error {
	for _, p := range policy.Builtin() {
		spec, err := json.Marshal(p)
		if err != nil {
			return fmt.Errorf("store: builtin %s: %w", p.Name, err)
		}
		if _, err := s.Pool.Exec(ctx, `INSERT INTO policies (id, version, tenant_id, name, spec, active, builtin)
VALUES ($1, $2, $3, $4, $5, true, true) ON CONFLICT DO NOTHING`, p.ID, p.Version, p.Tenant, p.Name, spec); err != nil {
			return fmt.Errorf("store: builtin %s: %w", p.Name, err)
		}
	}
	return nil
}

// CreatePolicy stores a new policy (version 1).
func (s *Store) CreatePolicy(ctx context.Context, p policy.Policy) error {
	spec, err := json.Marshal(p)
	if err != nil {
		return fmt.Errorf("store: policy: %w", err)
	}
	_, err = s.Pool.Exec(ctx, `INSERT INTO policies (id, version, tenant_id, name, spec, active, builtin, created_at)
VALUES ($1, $2, $3, $4, $5, $6, false, $7)`, p.ID, p.Version, p.Tenant, p.Name, spec, p.Active, p.CreatedAt)
	if postgres.IsUniqueViolation(err) {
		return ErrNameTaken
	}
	if err != nil {
		return fmt.Errorf("store: create policy: %w", err)
	}
	return nil
}

const latestPolicies = `SELECT DISTINCT ON (id) spec, active, created_at FROM policies WHERE tenant_id = ANY($1) ORDER BY id, version DESC`

func scanPolicies(rows pgx.Rows) ([]policy.Policy, error) {
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (policy.Policy, error) {
		var spec []byte
		var p policy.Policy
		var active bool
		var created time.Time
		if err := r.Scan(&spec, &active, &created); err != nil {
			return p, err
		}
		if err := json.Unmarshal(spec, &p); err != nil {
			return p, fmt.Errorf("policy spec: %w", err)
		}
		p.Active, p.CreatedAt = active, created
		return p, nil
	})
}

// ActivePolicies returns the latest version of every active policy that may
// apply to the tenant, built-ins included.
func ActivePolicies(ctx context.Context, tx pgx.Tx, tenant string) ([]policy.Policy, error) {
	rows, err := tx.Query(ctx, `SELECT spec, active, created_at FROM (`+latestPolicies+`) p WHERE active`, []string{tenant, policy.AllTenants})
	if err != nil {
		return nil, fmt.Errorf("store: active policies: %w", err)
	}
	return scanPolicies(rows)
}

// ListPolicies lists the tenant's policies and the built-ins, by id, after the cursor id.
func (s *Store) ListPolicies(ctx context.Context, tenant, afterID string, limit int) ([]policy.Policy, error) {
	rows, err := s.Pool.Query(ctx, `SELECT spec, active, created_at FROM (`+latestPolicies+`) p
WHERE ($2 = '' OR (spec->>'id') > $2) ORDER BY spec->>'id' LIMIT $3`, []string{tenant, policy.AllTenants}, afterID, limit)
	if err != nil {
		return nil, fmt.Errorf("store: list policies: %w", err)
	}
	return scanPolicies(rows)
}

// PlanService plans the visits of every matching policy for a completed
// service, within tx. Planning is idempotent per (service, policy, step);
// every planned visit is announced with VisitPlanned through the outbox.
func PlanService(ctx context.Context, tx pgx.Tx, ev *eventsv1.ServiceCompleted) (int, error) {
	policies, err := ActivePolicies(ctx, tx, ev.TenantId)
	if err != nil {
		return 0, err
	}
	svc := policy.Service{Tenant: ev.TenantId, ID: ev.ServiceId, Type: ev.ServiceType, OrgUnit: ev.OrgUnit, CompletedAt: ev.CompletedAt.AsTime()}
	customer, err := protojson.Marshal(ev.GetCustomer())
	if err != nil {
		return 0, fmt.Errorf("store: customer: %w", err)
	}
	planned := 0
	for _, p := range policies {
		if !p.Matches(svc) {
			continue
		}
		for _, v := range p.Plan(svc) {
			id := outbox.NewEventID()
			st := "planned"
			if !v.Sampled {
				st = "suppressed"
			}
			tag, err := tx.Exec(ctx, `INSERT INTO planned_visits (id, tenant_id, service_id, customer_id, customer, policy_id, policy_version, step, channel, group_name,
  due_at, deadline, status, reason, sample_draw, org_unit, service_type, service_completed_at)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18)
ON CONFLICT (tenant_id, service_id, policy_id, step) DO NOTHING`,
				id, svc.Tenant, svc.ID, ev.GetCustomer().GetId(), customer, v.PolicyID, v.PolicyVersion, v.Step, v.Channel, v.Group,
				v.DueAt, v.Deadline, st, v.Reason, v.Draw, svc.OrgUnit, svc.Type, svc.CompletedAt)
			if err != nil {
				return planned, fmt.Errorf("store: plan visit: %w", err)
			}
			if tag.RowsAffected() == 0 || !v.Sampled {
				continue
			}
			planned++
			if _, err := outbox.Add(ctx, tx, outbox.Message{Subject: stream.SubjectVisitPlanned, Payload: &eventsv1.VisitPlanned{
				TenantId: svc.Tenant, VisitId: id, ServiceId: svc.ID, PolicyId: v.PolicyID, PolicyVersion: int32(v.PolicyVersion),
				Step: int32(v.Step), Channel: typesv1.Channel(v.Channel), DueAt: timestamppb.New(v.DueAt), Deadline: timestamppb.New(v.Deadline),
				OrgUnit: svc.OrgUnit, ServiceType: svc.Type, CustomerId: ev.GetCustomer().GetId(),
			}}); err != nil {
				return planned, err
			}
		}
	}
	return planned, nil
}

// FireDue claims up to limit visits due at or before now (FOR UPDATE SKIP
// LOCKED, so replicas never fire the same visit), marks them due and writes
// VisitDue for each through the outbox, all in one transaction.
func (s *Store) FireDue(ctx context.Context, now time.Time, limit int) (int, error) {
	fired := 0
	err := pgx.BeginFunc(ctx, s.Pool, func(tx pgx.Tx) error {
		rows, err := tx.Query(ctx, `SELECT id, tenant_id, service_id, customer, policy_id, policy_version, channel, group_name,
  due_at, deadline, org_unit, service_type, service_completed_at
FROM planned_visits WHERE status = 'planned' AND due_at <= $1
ORDER BY due_at LIMIT $2 FOR UPDATE SKIP LOCKED`, now, limit)
		if err != nil {
			return fmt.Errorf("select due: %w", err)
		}
		due, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (*eventsv1.VisitDue, error) {
			var (
				v                        eventsv1.VisitDue
				customer                 []byte
				version, channel         int32
				dueAt, deadline, service time.Time
			)
			if err := r.Scan(&v.VisitId, &v.TenantId, &v.ServiceId, &customer, &v.PolicyId, &version, &channel, &v.Group,
				&dueAt, &deadline, &v.OrgUnit, &v.ServiceType, &service); err != nil {
				return nil, err
			}
			v.Customer = &typesv1.Customer{}
			if len(customer) > 0 {
				if err := protojson.Unmarshal(customer, v.Customer); err != nil {
					return nil, fmt.Errorf("customer of visit %s: %w", v.VisitId, err)
				}
			}
			v.PolicyVersion, v.Channel = version, typesv1.Channel(channel)
			v.DueAt, v.Deadline, v.ServiceCompletedAt = timestamppb.New(dueAt), timestamppb.New(deadline), timestamppb.New(service)
			return &v, nil
		})
		if err != nil {
			return fmt.Errorf("scan due: %w", err)
		}
		ids := make([]string, len(due))
		for i, v := range due {
			ids[i] = v.VisitId
			v.EventId = outbox.NewEventID()
			if _, err := outbox.Add(ctx, tx, outbox.Message{ID: v.EventId, Subject: stream.SubjectVisitDue, Payload: v}); err != nil {
				return err
			}
		}
		if _, err := tx.Exec(ctx, `UPDATE planned_visits SET status = 'due', fired_at = $2 WHERE id = ANY($1)`, ids, now); err != nil {
			return fmt.Errorf("mark due: %w", err)
		}
		fired = len(due)
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("store: fire due visits: %w", err)
	}
	return fired, nil
}

// Visit is a row of planned_visits.
type Visit struct {
	ID, Tenant, ServiceID, CustomerID, PolicyID string
	PolicyVersion, Step, Channel                int32
	DueAt, Deadline                             time.Time
	Status, Reason, OrgUnit, ServiceType        string
}

// VisitFilter selects planned visits.
type VisitFilter struct {
	Tenant, ServiceID, Status string
	AfterDue                  time.Time
	AfterID                   string
	Limit                     int
}

// ListVisits lists planned visits soonest due first.
func (s *Store) ListVisits(ctx context.Context, f VisitFilter) ([]Visit, error) {
	rows, err := s.Pool.Query(ctx, `SELECT id, tenant_id, service_id, customer_id, policy_id, policy_version, step, channel,
  due_at, deadline, status, reason, org_unit, service_type
FROM planned_visits
WHERE tenant_id = $1 AND ($2 = '' OR service_id = $2) AND ($3 = '' OR status = $3)
  AND ($5 = '' OR (due_at, id) > ($4, $5))
ORDER BY due_at, id LIMIT $6`, f.Tenant, f.ServiceID, f.Status, f.AfterDue, f.AfterID, f.Limit)
	if err != nil {
		return nil, fmt.Errorf("store: list visits: %w", err)
	}
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (Visit, error) {
		var v Visit
		err := r.Scan(&v.ID, &v.Tenant, &v.ServiceID, &v.CustomerID, &v.PolicyID, &v.PolicyVersion, &v.Step, &v.Channel,
			&v.DueAt, &v.Deadline, &v.Status, &v.Reason, &v.OrgUnit, &v.ServiceType)
		return v, err
	})
}
