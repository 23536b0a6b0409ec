package store

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/huifang/huifang/pkg/postgres"
)

// LedgerEntry is one entry of a customer's contact ledger: ids, kinds,
// times and statuses of one event, no free text and no contact.
type LedgerEntry struct {
	Tenant, ID string
	// CustomerID is "" while the customer of the entry's visit or
	// complaint is not known.
	CustomerID string
	Kind       string
	At         time.Time

	ServiceID, VisitID, TaskID, ComplaintID, RecordID, AppointmentID, MessageID string

	ServiceType, Channel, Disposition, Status, AgentID, Severity string

	Score                   *int32
	DueAt, StartsAt, EndsAt *time.Time
	Attempt                 int32
}

// Link kinds of ledger_links.
const (
	LinkVisit     = "visit"
	LinkComplaint = "complaint"
)

// AddLedgerEntry inserts e once (a second insert of its id changes
// nothing). An entry without a customer takes the one ledger_links knows
// for its visit or complaint, if any.
func (s *Store) AddLedgerEntry(ctx context.Context, q postgres.Querier, e LedgerEntry) error {
	return s.AddLedger(ctx, q, []LedgerEntry{e}, nil)
}

// LinkLedger records that the visit or complaint ref (kind LinkVisit,
// LinkComplaint) is customer's, and attaches the entries that arrived
// before it said so. The first link of a ref stays.
func (s *Store) LinkLedger(ctx context.Context, q postgres.Querier, tenant, kind, ref, customer string) error {
	return s.AddLedger(ctx, q, nil, []LedgerLink{{Tenant: tenant, Kind: kind, Ref: ref, CustomerID: customer}})
}

// LedgerLink says whose a visit or complaint is: Kind is LinkVisit or
// LinkComplaint, Ref its id. A link with an empty Ref or CustomerID says
// nothing.
type LedgerLink struct{ Tenant, Kind, Ref, CustomerID string }

// AddLedger writes a batch of the ledger in two statements however many
// entries and links it holds, to the effect of LinkLedger of each link and
// AddLedgerEntry of each entry, in whatever order those would run: the
// links first (the first link of a ref, stored before or first among them,
// stays; the entries stored before without a customer that a new link names
// are attached), then the entries, each once (an id stored before, or twice
// among them, changes nothing), an entry without a customer taking the one
// its visit's or complaint's link names, if any.
func (s *Store) AddLedger(ctx context.Context, q postgres.Querier, es []LedgerEntry, links []LedgerLink) error {
	if err := s.linkLedger(ctx, q, links); err != nil {
		return err
	}
	return s.addLedgerEntries(ctx, q, es)
}

// linkLedger is AddLedger's links, in one statement.
func (s *Store) linkLedger(ctx context.Context, q postgres.Querier, links []LedgerLink) error {
	var tenants, kinds, refs, customers []string
	for _, l := range links {
		if l.Ref == "" || l.CustomerID == "" {
			continue
		}
		tenants, kinds, refs, customers = append(tenants, l.Tenant), append(kinds, l.Kind), append(refs, l.Ref), append(customers, l.CustomerID)
	}
	if len(refs) == 0 {
		return nil
	}
	// The first of a ref's links among them (by ordinality) is the one
	// inserted; what it attaches is found through the partial indexes of
	// unattached entries, by visit and by complaint.
	_, err := q.Exec(ctx, `WITH given AS (
  SELECT DISTINCT ON (tenant_id, kind, ref) tenant_id, kind, ref, customer_id
  FROM unnest($1::text[], $2::text[], $3::text[], $4::text[]) WITH ORDINALITY AS g(tenant_id, kind, ref, customer_id, n)
  ORDER BY tenant_id, kind, ref, n
), linked AS (
  INSERT INTO ledger_links (tenant_id, kind, ref, customer_id) SELECT tenant_id, kind, ref, customer_id FROM given
  ON CONFLICT DO NOTHING RETURNING tenant_id, kind, ref, customer_id
), attached AS (
  SELECT e.tenant_id, e.id, l.customer_id FROM linked l
  JOIN ledger_entries e ON e.tenant_id = l.tenant_id AND e.customer_id = '' AND e.visit_id <> '' AND e.visit_id = l.ref
  WHERE l.kind = 'visit'
  UNION ALL
  SELECT e.tenant_id, e.id, l.customer_id FROM linked l
  JOIN ledger_entries e ON e.tenant_id = l.tenant_id AND e.customer_id = '' AND e.complaint_id <> '' AND e.complaint_id = l.ref
  WHERE l.kind = 'complaint'
)
UPDATE ledger_entries e SET customer_id = a.customer_id FROM attached a WHERE e.tenant_id = a.tenant_id AND e.id = a.id`,
		tenants, kinds, refs, customers)
	if len(refs) == 1 {
		return wrap("link ledger "+kinds[0]+" "+refs[0], err)
	}
	return wrap(fmt.Sprintf("link ledger to %d visits and complaints", len(refs)), err)
}

// LedgerQuery narrows a customer's ledger.
type LedgerQuery struct {
	Tenant, CustomerID string
	// Kinds, when not empty, are the only kinds read.
	Kinds []string
	// From and To, when set, bound at (From inclusive, To exclusive).
	From, To *time.Time
	// NewestFirst reads backwards.
	NewestFirst bool
	// AfterAt and AfterID are the cursor: the last entry of the page before
	// (none when AfterID is "").
	AfterAt time.Time
	AfterID string
}

// Ledger reads up to limit entries of a customer's ledger in (at, id)
// order (or its reverse), after the cursor. Entries still unattached whose
// visit or complaint is linked to the customer are read too.
func (s *Store) Ledger(ctx context.Context, q postgres.Querier, lq LedgerQuery, limit int) ([]LedgerEntry, error) {
	kinds := lq.Kinds
	if kinds == nil {
		kinds = []string{}
	}
	order, cmp := "ASC", ">"
	if lq.NewestFirst {
		order, cmp = "DESC", "<"
	}
	rows, err := q.Query(ctx, `SELECT tenant_id, id, $2::text, kind, at, service_id, visit_id, task_id, complaint_id, record_id, appointment_id, message_id,
  service_type, channel, disposition, status, agent_id, severity, score, due_at, starts_at, ends_at, attempt
FROM ledger_entries e
WHERE tenant_id = $1
  AND (customer_id = $2 OR (customer_id = '' AND (
    (visit_id <> '' AND visit_id IN (SELECT ref FROM ledger_links WHERE tenant_id = $1 AND customer_id = $2 AND kind = 'visit'))
    OR (complaint_id <> '' AND complaint_id IN (SELECT ref FROM ledger_links WHERE tenant_id = $1 AND customer_id = $2 AND kind = 'complaint')))))
  AND (cardinality($3::text[]) = 0 OR kind = ANY($3::text[]))
  AND ($4::timestamptz IS NULL OR at >= $4)
  AND ($5::timestamptz IS NULL OR at < $5)
  AND ($7 = '' OR (at, id) `+cmp+` ($6, $7))
ORDER BY at `+order+`, id `+order+` LIMIT $8`,
		lq.Tenant, lq.CustomerID, kinds, lq.From, lq.To, lq.AfterAt, lq.AfterID, limit)
	if err != nil {
		return nil, wrap("read ledger", err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (LedgerEntry, error) {
		var e LedgerEntry
		err := r.Scan(&e.Tenant, &e.ID, &e.CustomerID, &e.Kind, &e.At, &e.ServiceID, &e.VisitID, &e.TaskID, &e.ComplaintID, &e.RecordID,
			&e.AppointmentID, &e.MessageID, &e.ServiceType, &e.Channel, &e.Disposition, &e.Status, &e.AgentID, &e.Severity, &e.Score,
			&e.DueAt, &e.StartsAt, &e.EndsAt, &e.Attempt)
		return e, err
	})
	return out, wrap("read ledger", err)
}

// AddLedgerEntries is AddLedgerEntry for entries that name their customer,
// in one statement however many: each inserted once (an id stored before,
// or twice among them, changes nothing).
func (s *Store) AddLedgerEntries(ctx context.Context, q postgres.Querier, es []LedgerEntry) error {
	for _, e := range es {
		if e.CustomerID == "" {
			return fmt.Errorf("store: ledger entry %s names no customer", e.ID)
		}
	}
	return s.AddLedger(ctx, q, es, nil)
}

// addLedgerEntries is AddLedger's entries, in one statement.
func (s *Store) addLedgerEntries(ctx context.Context, q postgres.Querier, es []LedgerEntry) error {
	if len(es) == 0 {
		return nil
	}
	n := len(es)
	col := func() []string { return make([]string, n) }
	tenants, ids, customers, kinds := col(), col(), col(), col()
	services, visits, tasks, complaints, records, appointments, messages := col(), col(), col(), col(), col(), col(), col()
	types, channels, dispositions, statuses, agents, severities := col(), col(), col(), col(), col(), col()
	at := make([]time.Time, n)
	scores := make([]*int32, n)
	due, starts, ends := make([]*time.Time, n), make([]*time.Time, n), make([]*time.Time, n)
	attempts := make([]int32, n)
	for i, e := range es {
		tenants[i], ids[i], customers[i], kinds[i], at[i] = e.Tenant, e.ID, e.CustomerID, e.Kind, e.At
		services[i], visits[i], tasks[i], complaints[i], records[i], appointments[i], messages[i] = e.ServiceID, e.VisitID, e.TaskID, e.ComplaintID, e.RecordID, e.AppointmentID, e.MessageID
		types[i], channels[i], dispositions[i], statuses[i], agents[i], severities[i] = e.ServiceType, e.Channel, e.Disposition, e.Status, e.AgentID, e.Severity
		scores[i], due[i], starts[i], ends[i], attempts[i] = e.Score, e.DueAt, e.StartsAt, e.EndsAt, e.Attempt
	}
	_, err := q.Exec(ctx, `INSERT INTO ledger_entries (tenant_id, id, customer_id, kind, at, service_id, visit_id, task_id, complaint_id, record_id,
  appointment_id, message_id, service_type, channel, disposition, status, agent_id, severity, score, due_at, starts_at, ends_at, attempt)
SELECT u.tenant_id, u.id, CASE WHEN u.customer_id <> '' THEN u.customer_id ELSE coalesce(
    (SELECT l.customer_id FROM ledger_links l WHERE l.tenant_id = u.tenant_id AND l.kind = 'visit' AND l.ref = u.visit_id AND u.visit_id <> ''),
    (SELECT l.customer_id FROM ledger_links l WHERE l.tenant_id = u.tenant_id AND l.kind = 'complaint' AND l.ref = u.complaint_id AND u.complaint_id <> ''), '') END,
  u.kind, u.at, u.service_id, u.visit_id, u.task_id, u.complaint_id, u.record_id, u.appointment_id, u.message_id, u.service_type, u.channel,
  u.disposition, u.status, u.agent_id, u.severity, u.score, u.due_at, u.starts_at, u.ends_at, u.attempt
FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::timestamptz[], $6::text[], $7::text[], $8::text[], $9::text[], $10::text[],
  $11::text[], $12::text[], $13::text[], $14::text[], $15::text[], $16::text[], $17::text[], $18::text[], $19::int[], $20::timestamptz[],
  $21::timestamptz[], $22::timestamptz[], $23::int[]) AS u(tenant_id, id, customer_id, kind, at, service_id, visit_id, task_id, complaint_id, record_id,
  appointment_id, message_id, service_type, channel, disposition, status, agent_id, severity, score, due_at, starts_at, ends_at, attempt)
ON CONFLICT (tenant_id, id) DO NOTHING`,
		tenants, ids, customers, kinds, at, services, visits, tasks, complaints, records,
		appointments, messages, types, channels, dispositions, statuses, agents, severities, scores, due, starts, ends, attempts)
	if n == 1 {
		return wrap("add ledger entry "+ids[0], err)
	}
	return wrap(fmt.Sprintf("add %d ledger entries", n), err)
}
