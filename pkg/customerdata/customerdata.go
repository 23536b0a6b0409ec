// Package customerdata serves huifang.privacy.v1.CustomerDataService: the
// rows a service holds about one customer, table by table, for the person's
// right of access (intake's ExportCustomerData gathers every service's part
// into one document). Every table of the service's schema with a
// customer_id column is read, so a table added later is exported without
// anyone remembering to; rows linked to the customer another way are read by
// the queries the service names (Source.Related).
package customerdata

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	privacyv1 "github.com/huifang/huifang/proto/huifang/privacy/v1"

	"github.com/huifang/huifang/pkg/audit"
	"github.com/huifang/huifang/pkg/auth"
	"github.com/huifang/huifang/pkg/invalid"
	"github.com/huifang/huifang/pkg/tenant"
)

// Action is the audit log's action for an export.
const Action = "customer.export"

// Gatherer is the one service that may ask the others for their part: it
// gathers the whole export (IntakeService.ExportCustomerData).
const Gatherer = "intake"

// Source says what a service exports about a customer.
type Source struct {
	// Service names the service ("scheduler", ...).
	Service string
	Pool    *pgxpool.Pool
	// Related are rows linked to the customer other than by a customer_id
	// column: table name → a query taking $1 the tenant and $2 the
	// customer id. The audit log's entries about the customer are always
	// read (AuditQuery).
	Related map[string]string
	// Skip are tables never exported (key material).
	Skip []string
	// Omit are columns never exported, as "table.column": ciphertexts and
	// keyed hashes, which say nothing to the person (intake adds the clear
	// values through Extra).
	Omit []string
	// Extra adds sections of the service's own making, read within the same
	// snapshot (intake: the archive with the clear contacts).
	Extra func(ctx context.Context, tx pgx.Tx, tenant, customer string) (map[string]any, error)
}

// AuditQuery reads the audit log's entries about a customer: who revealed,
// changed, exported or erased what, and when.
const AuditQuery = `SELECT seq, actor, actor_roles, action, target_kind, target_id, detail::json AS detail, occurred_at
FROM audit_log WHERE tenant_id = $1 AND target_kind = 'customer' AND target_id = $2 ORDER BY seq`

// ErrUnscoped is a table with a customer_id but no tenant_id: a customer
// id alone must not select rows across tenants; the service names a
// Related query for it.
var ErrUnscoped = errors.New("customerdata: table holds customer_id without tenant_id")

// Export reads every row the service holds about customer, in one
// repeatable-read snapshot: one key per table (an array of rows, column to
// value), plus the Extra sections. Tables without a row are left out.
func (s Source) Export(ctx context.Context, tenantID, customer string) (map[string]any, error) {
	out := map[string]any{}
	err := pgx.BeginTxFunc(ctx, s.Pool, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly}, func(tx pgx.Tx) error {
		tables, err := customerTables(ctx, tx)
		if err != nil {
			return err
		}
		queries := map[string]string{"audit_log": AuditQuery}
		for _, t := range tables {
			if _, named := s.Related[t.name]; named || slices.Contains(s.Skip, t.name) {
				continue
			}
			if !t.tenant {
				return fmt.Errorf("%w: %s", ErrUnscoped, t.name)
			}
			queries[t.name] = fmt.Sprintf("SELECT * FROM %s WHERE tenant_id = $1 AND customer_id = $2", pgx.Identifier{t.name}.Sanitize())
		}
		for name, q := range s.Related {
			queries[name] = q
		}
		names := make([]string, 0, len(queries))
		for n := range queries {
			names = append(names, n)
		}
		slices.Sort(names)
		for _, name := range names {
			rows, err := s.rows(ctx, tx, name, queries[name], tenantID, customer)
			if err != nil {
				return err
			}
			if len(rows) > 0 {
				out[name] = rows
			}
		}
		if s.Extra != nil {
			extra, err := s.Extra(ctx, tx, tenantID, customer)
			if err != nil {
				return err
			}
			for k, v := range extra {
				out[k] = v
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("customerdata: export from %s: %w", s.Service, err)
	}
	return out, nil
}

type table struct {
	name   string
	tenant bool
}

// customerTables lists the tables of the current schema that have a
// customer_id column, and whether each has a tenant_id.
func customerTables(ctx context.Context, tx pgx.Tx) ([]table, error) {
	rows, err := tx.Query(ctx, `SELECT c.table_name, EXISTS (SELECT 1 FROM information_schema.columns t
  WHERE t.table_schema = c.table_schema AND t.table_name = c.table_name AND t.column_name = 'tenant_id')
FROM information_schema.columns c JOIN information_schema.tables tb ON tb.table_schema = c.table_schema AND tb.table_name = c.table_name
WHERE c.table_schema = current_schema() AND c.column_name = 'customer_id' AND tb.table_type = 'BASE TABLE'
ORDER BY c.table_name`)
	if err != nil {
		return nil, fmt.Errorf("tables: %w", err)
	}
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (table, error) {
		var t table
		return t, r.Scan(&t.name, &t.tenant)
	})
}

// rows reads one table's rows as JSON-ready maps, without the omitted columns.
func (s Source) rows(ctx context.Context, tx pgx.Tx, name, query, tenantID, customer string) ([]any, error) {
	rows, err := tx.Query(ctx, query, tenantID, customer)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	maps, err := pgx.CollectRows(rows, pgx.RowToMap)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	out := make([]any, 0, len(maps))
	for _, m := range maps {
		for col := range m {
			if slices.Contains(s.Omit, name+"."+col) {
				delete(m, col)
			}
		}
		out = append(out, m)
	}
	return out, nil
}

// Struct turns an export (maps of database values) into a protobuf Struct
// through their JSON form: times become RFC 3339 strings, bytes base64.
func Struct(v map[string]any) (*structpb.Struct, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return nil, fmt.Errorf("customerdata: encode: %w", err)
	}
	s := &structpb.Struct{}
	if err := protojson.Unmarshal(b, s); err != nil {
		return nil, fmt.Errorf("customerdata: encode: %w", err)
	}
	return s, nil
}

// Request is an export asked for: whose, why, and for a service caller
// (intake gathering the export) on whose behalf.
type Request struct {
	Tenant, CustomerID, Reason, OnBehalfOf string
}

// Check names the fields a request breaks.
func (r Request) Check(ctx context.Context) error {
	var l invalid.List
	if r.CustomerID == "" {
		l.Add("customer_id", "is required")
	}
	if !audit.ValidPurpose(r.Reason) {
		l.Add("reason", audit.PurposeRule)
	}
	p, ok := auth.From(ctx)
	service := ok && p.Has(auth.Service)
	if service && p.ServiceName != Gatherer {
		return auth.Deny("", "only the service "+Gatherer+" gathers an export")
	}
	if service && strings.TrimSpace(r.OnBehalfOf) == "" {
		l.Add("on_behalf_of", "is required for a service caller: the person the export is for")
	}
	return l.Err()
}

// Record writes the export to the service's audit log (Action): who, on
// whose behalf, whose, why, and how many rows of which tables.
func Record(ctx context.Context, pool *pgxpool.Pool, service string, r Request, data map[string]any, at time.Time) error {
	counts := map[string]int{}
	for k, v := range data {
		if rows, ok := v.([]any); ok {
			counts[k] = len(rows)
		}
	}
	detail := audit.Detail{"reason": strings.TrimSpace(r.Reason), "rows": counts}
	if p, ok := auth.From(ctx); ok && p.Has(auth.Service) {
		detail["on_behalf_of"] = strings.TrimSpace(r.OnBehalfOf)
	}
	return pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		return audit.Append(ctx, tx, audit.Entry{Tenant: r.Tenant, Actor: audit.By(ctx, service), Action: Action,
			Target: audit.Target{Kind: "customer", ID: r.CustomerID}, Detail: detail, At: at})
	})
}

// Server serves CustomerDataService over a Source. The guard has bound the
// request's tenant to the caller (a service caller names it).
type Server struct {
	privacyv1.UnimplementedCustomerDataServiceServer
	Source Source
	// Now is the clock; nil: time.Now.
	Now func() time.Time
}

// ExportCustomerData returns the rows the service holds about a customer
// and writes the export to the audit log; nothing is returned unless the
// entry is written.
func (s *Server) ExportCustomerData(ctx context.Context, req *privacyv1.ExportCustomerDataRequest) (*privacyv1.ExportCustomerDataResponse, error) {
	r := Request{Tenant: tenant.Or(req.GetTenantId()), CustomerID: req.GetCustomerId(), Reason: req.GetReason(), OnBehalfOf: req.GetOnBehalfOf()}
	if err := r.Check(ctx); err != nil {
		return nil, err
	}
	data, err := s.Source.Export(ctx, r.Tenant, r.CustomerID)
	if err != nil {
		return nil, err
	}
	now := time.Now()
	if s.Now != nil {
		now = s.Now()
	}
	if err := Record(ctx, s.Source.Pool, s.Source.Service, r, data, now); err != nil {
		return nil, err
	}
	doc, err := Struct(data)
	if err != nil {
		return nil, err
	}
	return &privacyv1.ExportCustomerDataResponse{Service: s.Source.Service, Data: doc, ExportedAt: timestamppb.New(now)}, nil
}
