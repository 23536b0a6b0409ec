package store

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/huifang/huifang/pkg/postgres"
	"github.com/huifang/huifang/services/analytics/internal/rollup"
)

// The ledgers (one entry per visit, complaint, service coverage, service
// and customer) are read and written set-wise: a consumer's batch locks
// and reads the entries its events touch at once (LockEntries, then
// Visits, Complaints, ServiceCoverages, Services, Customers), the events
// move them in memory, and what they left is written once before the
// commit (SaveVisits, ...), each set in key order: rows are locked in
// that order.

// EntryKey names one ledger entry of a tenant: a visit, complaint,
// service (coverage) or customer by its id.
type EntryKey struct{ Tenant, ID string }

// Compare orders keys: the order entries are locked and written in.
func (k EntryKey) Compare(o EntryKey) int {
	return cmp.Or(strings.Compare(k.Tenant, o.Tenant), strings.Compare(k.ID, o.ID))
}

// Kinds of ledger entries, as LockEntries names them.
const (
	KindVisit     = "visit"
	KindComplaint = "complaint"
	KindService   = "service"
	KindCustomer  = "customer"
)

// Lock names one entry's transaction-scoped advisory lock (LockEntries).
type Lock struct {
	Kind string
	EntryKey
}

// LockEntries takes a transaction-scoped advisory lock on each entry, in
// one statement, in the order of their names, so that two replicas
// handling events of an entry not yet stored do not both start from an
// empty one: FOR UPDATE locks only rows that exist. A lock's name holds the
// schema the entry is in, so a rebuild filling shadow tables never waits
// for the consumer writing the live ones. A collision of the hash only
// makes two entries wait for each other.
func LockEntries(ctx context.Context, tx pgx.Tx, locks []Lock) error {
	if len(locks) == 0 {
		return nil
	}
	names := make([]string, len(locks))
	for i, l := range locks {
		names[i] = "huifang.analytics." + l.Kind + "/" + l.Tenant + "/" + l.ID
	}
	slices.Sort(names)
	names = slices.Compact(names)
	// Held back in a pipeline, the locks go with the read that follows them.
	if err := postgres.Defer(ctx, tx, `SELECT pg_advisory_xact_lock(hashtextextended(current_schema() || '/' || k, 0))
FROM (SELECT k FROM unnest($1::text[]) AS k ORDER BY k) s`, names); err != nil {
		return fmt.Errorf("store: lock %d ledger entries: %w", len(names), translate(err))
	}
	return nil
}

// keyColumns returns the tenants and ids of keys, sorted and without repeats.
func keyColumns(keys []EntryKey) (tenants, ids []string) {
	keys = slices.SortedFunc(slices.Values(keys), EntryKey.Compare)
	keys = slices.Compact(keys)
	tenants, ids = make([]string, len(keys)), make([]string, len(keys))
	for i, k := range keys {
		tenants[i], ids[i] = k.Tenant, k.ID
	}
	return tenants, ids
}

// entries reads the JSON state of table's rows with keys (id column
// idCol), locked for the rest of tx; a key without a row gets blank(key).
func entries[T any](ctx context.Context, tx pgx.Tx, table, idCol string, keys []EntryKey, blank func(EntryKey) T) (map[EntryKey]T, error) {
	out := make(map[EntryKey]T, len(keys))
	if len(keys) == 0 {
		return out, nil
	}
	for _, k := range keys {
		out[k] = blank(k)
	}
	tenants, ids := keyColumns(keys)
	rows, err := tx.Query(ctx, `SELECT t.tenant_id, t.`+idCol+`, t.state FROM `+table+` t
JOIN unnest($1::text[], $2::text[]) AS k(tenant_id, id) ON t.tenant_id = k.tenant_id AND t.`+idCol+` = k.id
ORDER BY t.tenant_id, t.`+idCol+` FOR UPDATE OF t`, tenants, ids)
	if err != nil {
		return nil, fmt.Errorf("store: load %s: %w", table, translate(err))
	}
	var k EntryKey
	var b []byte
	if _, err := pgx.ForEachRow(rows, []any{&k.Tenant, &k.ID, &b}, func() error {
		v := out[k]
		if err := json.Unmarshal(b, &v); err != nil {
			return fmt.Errorf("%s: %w", k.ID, err)
		}
		out[k] = v
		return nil
	}); err != nil {
		return nil, fmt.Errorf("store: load %s: %w", table, translate(err))
	}
	return out, nil
}

// Visits returns the ledger entries of the visits keys name (a new entry
// for one that has none), locked for the rest of tx.
func Visits(ctx context.Context, tx pgx.Tx, keys []EntryKey) (map[EntryKey]rollup.Visit, error) {
	return entries(ctx, tx, "visits", "visit_id", keys, func(k EntryKey) rollup.Visit { return rollup.Visit{Tenant: k.Tenant, VisitID: k.ID} })
}

// Complaints returns the ledger entries of the complaints keys name (a new
// entry for one that has none), locked for the rest of tx.
func Complaints(ctx context.Context, tx pgx.Tx, keys []EntryKey) (map[EntryKey]rollup.Complaint, error) {
	return entries(ctx, tx, "complaints", "complaint_id", keys, func(k EntryKey) rollup.Complaint {
		return rollup.Complaint{Tenant: k.Tenant, ComplaintID: k.ID}
	})
}

// ServiceCoverages returns the coverage entries of the services keys name
// (a new entry for one that has none), locked for the rest of tx.
func ServiceCoverages(ctx context.Context, tx pgx.Tx, keys []EntryKey) (map[EntryKey]rollup.ServiceCoverage, error) {
	return entries(ctx, tx, "service_coverage", "service_id", keys, func(k EntryKey) rollup.ServiceCoverage {
		return rollup.ServiceCoverage{Tenant: k.Tenant, ServiceID: k.ID}
	})
}

// jsonColumn returns the JSON of each value, for a jsonb column.
func jsonColumn[T any](vs []T) ([]string, error) {
	out := make([]string, len(vs))
	for i, v := range vs {
		b, err := json.Marshal(v)
		if err != nil {
			return nil, err
		}
		out[i] = string(b)
	}
	return out, nil
}

// byKey returns vs sorted by their keys, and the tenants and ids of the keys.
func byKey[T any](vs []T, key func(T) EntryKey) (sorted []T, tenants, ids []string) {
	sorted = slices.SortedFunc(slices.Values(vs), func(a, b T) int { return key(a).Compare(key(b)) })
	tenants, ids = make([]string, len(vs)), make([]string, len(vs))
	for i, v := range sorted {
		k := key(v)
		tenants[i], ids[i] = k.Tenant, k.ID
	}
	return sorted, tenants, ids
}

// SaveVisits writes the visits' ledger entries in one statement; each
// visit must come once.
func SaveVisits(ctx context.Context, tx postgres.Querier, vs []rollup.Visit) error {
	if len(vs) == 0 {
		return nil
	}
	return saveStates(ctx, tx, "visits", "visit_id", vs, func(v rollup.Visit) EntryKey { return EntryKey{v.Tenant, v.VisitID} },
		func(v rollup.Visit) rollup.Visit {
			v.Tenant, v.VisitID = "", ""
			return v
		})
}

// saveStates writes the JSON state of vs into table (id column idCol),
// keyed by key, in one statement. The state is stored without its key
// (bare clears it): the row's columns hold it, and entries, which reads the
// states, starts each from its key (a state stored with its key reads the
// same).
func saveStates[T any](ctx context.Context, tx postgres.Querier, table, idCol string, vs []T, key func(T) EntryKey, bare func(T) T) error {
	vs, tenants, ids := byKey(vs, key)
	stored := make([]T, len(vs))
	for i, v := range vs {
		stored[i] = bare(v)
	}
	docs, err := jsonColumn(stored)
	if err != nil {
		return fmt.Errorf("store: encode %s: %w", table, err)
	}
	if _, err := tx.Exec(ctx, `INSERT INTO `+table+` (tenant_id, `+idCol+`, state)
SELECT t, id, s::jsonb FROM unnest($1::text[], $2::text[], $3::text[]) AS k(t, id, s)
ON CONFLICT (tenant_id, `+idCol+`) DO UPDATE SET state = EXCLUDED.state`, tenants, ids, docs); err != nil {
		return fmt.Errorf("store: save %d %s: %w", len(vs), table, translate(err))
	}
	return nil
}

// SaveComplaints writes the complaints' ledger entries in one statement;
// each complaint must come once.
func SaveComplaints(ctx context.Context, tx postgres.Querier, cs []rollup.Complaint) error {
	if len(cs) == 0 {
		return nil
	}
	cs, tenants, ids := byKey(cs, func(c rollup.Complaint) EntryKey { return EntryKey{c.Tenant, c.ComplaintID} })
	n := len(cs)
	open, deadlines := make([]bool, n), make([]*time.Time, n)
	for i, c := range cs {
		open[i] = c.Open()
		if !c.Deadline.IsZero() {
			deadlines[i] = &c.Deadline
		}
	}
	docs, err := jsonColumn(cs)
	if err != nil {
		return fmt.Errorf("store: encode complaints: %w", err)
	}
	if _, err := tx.Exec(ctx, `INSERT INTO complaints (tenant_id, complaint_id, state, open, deadline)
SELECT t, c, s::jsonb, o, d FROM unnest($1::text[], $2::text[], $3::text[], $4::boolean[], $5::timestamptz[]) AS k(t, c, s, o, d)
ON CONFLICT (tenant_id, complaint_id) DO UPDATE SET state = EXCLUDED.state, open = EXCLUDED.open, deadline = EXCLUDED.deadline`,
		tenants, ids, docs, open, deadlines); err != nil {
		return fmt.Errorf("store: save %d complaints: %w", n, translate(err))
	}
	return nil
}

// SaveServiceCoverages writes the services' coverage entries, one
// statement for those with eligible visits and one removing those left
// without; each service must come once.
func SaveServiceCoverages(ctx context.Context, tx postgres.Querier, cs []rollup.ServiceCoverage) error {
	key := func(c rollup.ServiceCoverage) EntryKey { return EntryKey{c.Tenant, c.ServiceID} }
	var keep []rollup.ServiceCoverage
	var gone []EntryKey
	for _, c := range cs {
		if len(c.Visits) == 0 {
			gone = append(gone, key(c))
		} else {
			keep = append(keep, c)
		}
	}
	if len(gone) > 0 {
		tenants, ids := keyColumns(gone)
		if _, err := tx.Exec(ctx, `DELETE FROM service_coverage c USING unnest($1::text[], $2::text[]) AS k(t, s)
WHERE c.tenant_id = k.t AND c.service_id = k.s`, tenants, ids); err != nil {
			return fmt.Errorf("store: remove %d service coverages: %w", len(gone), translate(err))
		}
	}
	if len(keep) == 0 {
		return nil
	}
	return saveStates(ctx, tx, "service_coverage", "service_id", keep, key, func(c rollup.ServiceCoverage) rollup.ServiceCoverage {
		c.Tenant, c.ServiceID = "", ""
		return c
	})
}

// Service is what analytics keeps of a service: its product category
// (seed 001: sales record the product) and, for the churned-customer table
// (seed 000 auto), the car, its plate masked and the staff who served.
type Service struct {
	EntryKey
	// EventID is the id of the ServiceCompleted that stored the service
	// (a redelivery of it changes nothing); empty for a service stored
	// before it was kept, whose event kept an inbox row instead.
	EventID         string
	ProductCategory string
	// VehicleModel, PlateMasked and Advisor are kept as they are stored
	// when all three are empty (the service's event named none of them).
	VehicleModel, PlateMasked, Advisor string
}

// Services returns the services keys name that are stored (their product
// category and the id of the event that stored them only: Services are
// read for them), by key.
func Services(ctx context.Context, db postgres.Querier, keys []EntryKey) (map[EntryKey]Service, error) {
	out := make(map[EntryKey]Service, len(keys))
	if len(keys) == 0 {
		return out, nil
	}
	tenants, ids := keyColumns(keys)
	rows, err := db.Query(ctx, `SELECT s.tenant_id, s.service_id, s.product_category, coalesce(s.event_id, '') FROM services s
JOIN unnest($1::text[], $2::text[]) AS k(t, id) ON s.tenant_id = k.t AND s.service_id = k.id`, tenants, ids)
	if err != nil {
		return nil, fmt.Errorf("store: services: %w", translate(err))
	}
	var s Service
	if _, err := pgx.ForEachRow(rows, []any{&s.Tenant, &s.ID, &s.ProductCategory, &s.EventID}, func() error {
		out[s.EntryKey] = s
		return nil
	}); err != nil {
		return nil, fmt.Errorf("store: services: %w", translate(err))
	}
	return out, nil
}

// SaveServices writes the services in one statement: the product
// category, and the car and advisor unless all three are empty, and the
// id of the event that stored a new one (never changed after); each
// service must come once.
func SaveServices(ctx context.Context, db postgres.Querier, ss []Service) error {
	if len(ss) == 0 {
		return nil
	}
	ss = slices.SortedFunc(slices.Values(ss), func(a, b Service) int { return a.EntryKey.Compare(b.EntryKey) })
	cols := make([][]string, 7)
	for i := range cols {
		cols[i] = make([]string, len(ss))
	}
	for i, s := range ss {
		for j, v := range []string{s.Tenant, s.ID, s.ProductCategory, s.VehicleModel, s.PlateMasked, s.Advisor, s.EventID} {
			cols[j][i] = v
		}
	}
	if _, err := db.Exec(ctx, `INSERT INTO services AS s (tenant_id, service_id, product_category, vehicle_model, plate_masked, advisor, event_id)
SELECT t, id, p, m, pl, a, NULLIF(e, '') FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[]) AS k(t, id, p, m, pl, a, e)
ON CONFLICT (tenant_id, service_id) DO UPDATE SET product_category = EXCLUDED.product_category,
  vehicle_model = CASE WHEN EXCLUDED.vehicle_model || EXCLUDED.plate_masked || EXCLUDED.advisor = '' THEN s.vehicle_model ELSE EXCLUDED.vehicle_model END,
  plate_masked = CASE WHEN EXCLUDED.vehicle_model || EXCLUDED.plate_masked || EXCLUDED.advisor = '' THEN s.plate_masked ELSE EXCLUDED.plate_masked END,
  advisor = CASE WHEN EXCLUDED.vehicle_model || EXCLUDED.plate_masked || EXCLUDED.advisor = '' THEN s.advisor ELSE EXCLUDED.advisor END`,
		cols[0], cols[1], cols[2], cols[3], cols[4], cols[5], cols[6]); err != nil {
		return fmt.Errorf("store: save %d services: %w", len(ss), translate(err))
	}
	return nil
}

// Customers returns what is known of the customers keys name (a new
// customer for one nothing is known of), locked for the rest of tx.
func Customers(ctx context.Context, tx pgx.Tx, keys []EntryKey) (map[EntryKey]rollup.Customer, error) {
	out := make(map[EntryKey]rollup.Customer, len(keys))
	if len(keys) == 0 {
		return out, nil
	}
	for _, k := range keys {
		out[k] = rollup.Customer{Tenant: k.Tenant, CustomerID: k.ID}
	}
	tenants, ids := keyColumns(keys)
	rows, err := tx.Query(ctx, `SELECT c.tenant_id, c.customer_id, c.last_service_at FROM customers c
JOIN unnest($1::text[], $2::text[]) AS k(t, id) ON c.tenant_id = k.t AND c.customer_id = k.id
ORDER BY c.tenant_id, c.customer_id FOR UPDATE OF c`, tenants, ids)
	if err != nil {
		return nil, fmt.Errorf("store: customers: %w", translate(err))
	}
	var c rollup.Customer
	if _, err := pgx.ForEachRow(rows, []any{&c.Tenant, &c.CustomerID, &c.LastServiceAt}, func() error {
		out[EntryKey{c.Tenant, c.CustomerID}] = c
		return nil
	}); err != nil {
		return nil, fmt.Errorf("store: customers: %w", translate(err))
	}
	return out, nil
}

// SaveCustomers writes the customers' latest services in one statement;
// each customer must come once.
func SaveCustomers(ctx context.Context, db postgres.Querier, cs []rollup.Customer) error {
	if len(cs) == 0 {
		return nil
	}
	cs, tenants, ids := byKey(cs, func(c rollup.Customer) EntryKey { return EntryKey{c.Tenant, c.CustomerID} })
	at := make([]time.Time, len(cs))
	for i, c := range cs {
		at[i] = c.LastServiceAt
	}
	if _, err := db.Exec(ctx, `INSERT INTO customers (tenant_id, customer_id, last_service_at)
SELECT * FROM unnest($1::text[], $2::text[], $3::timestamptz[])
ON CONFLICT (tenant_id, customer_id) DO UPDATE SET last_service_at = EXCLUDED.last_service_at`, tenants, ids, at); err != nil {
		return fmt.Errorf("store: save %d customers: %w", len(cs), translate(err))
	}
	return nil
}

// Overdue returns the complaints of tenant (and org unit, when given) that
// were overdue at asOf: escalated before it, deadline passed before it, and
// not resolved by then; oldest deadline first, at most limit. It depends on
// asOf only, so a report for a past month is reproducible.
func Overdue(ctx context.Context, db postgres.Querier, tenant, orgUnit string, asOf time.Time, limit int) ([]rollup.Complaint, error) {
	rows, err := db.Query(ctx, `SELECT state FROM complaints WHERE tenant_id = $1 AND deadline < $2
AND (state->>'escalated_at')::timestamptz < $2
AND (state->>'resolved_at' IS NULL OR (state->>'resolved_at')::timestamptz > $2)
AND (state->>'closed_at' IS NULL OR (state->>'closed_at')::timestamptz > $2)
AND ($3 = '' OR state->>'org_unit' = $3) ORDER BY deadline, complaint_id LIMIT $4`, tenant, asOf, orgUnit, limit)
	if err != nil {
		return nil, fmt.Errorf("store: overdue: %w", translate(err))
	}
	defer rows.Close()
	var out []rollup.Complaint
	for rows.Next() {
		var b []byte
		if err := rows.Scan(&b); err != nil {
			return nil, fmt.Errorf("store: overdue: %w", translate(err))
		}
		var c rollup.Complaint
		if err := json.Unmarshal(b, &c); err != nil {
			return nil, fmt.Errorf("store: overdue: %w", err)
		}
		out = append(out, c)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("store: overdue: %w", translate(err))
	}
	return out, nil
}
