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
	_, err := q.Exec(ctx, `INSERT INTO ledger_entries (tenant_id, id, customer_id, kind, at, service_id, visit_id, task_id, complaint_id, record_id,
  appointment_id, message_id, service_type, channel, disposition, status, agent_id, severity, score, due_at, starts_at, ends_at, attempt)
VALUES ($1, $2, CASE WHEN $3 <> '' THEN $3 ELSE coalesce(
    (SELECT customer_id FROM ledger_links WHERE tenant_id = $1 AND kind = 'visit' AND ref = $7 AND $7 <> ''),
    (SELECT customer_id FROM ledger_links WHERE tenant_id = $1 AND kind = 'complaint' AND ref = $9 AND $9 <> ''), '') END,
  $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, $21, $22, $23)
ON CONFLICT (tenant_id, id) DO NOTHING`,
		e.Tenant, e.ID, e.CustomerID, e.Kind, e.At, e.ServiceID, e.VisitID, e.TaskID, e.ComplaintID, e.RecordID,
		e.AppointmentID, e.MessageID, e.ServiceType, e.Channel, e.Disposition, e.Status, e.AgentID, e.Severity, e.Score,
		e.DueAt, e.StartsAt, e.EndsAt, e.Attempt)
	return wrap("add ledger entry "+e.ID, err)
}

// LinkLedger records that the visit or complaint ref (kind LinkVisit,
// LinkComplaint) is customer's, and attaches the entries that arrived
// before it said so. The first link of a ref stays.
func (s *Store) LinkLedger(ctx context.Context, q postgres.Querier, tenant, kind, ref, customer string) error {
	if ref == "" || customer == "" {
		return nil
	}
	tag, err := q.Exec(ctx, `INSERT INTO ledger_links (tenant_id, kind, ref, customer_id) VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING`,
		tenant, kind, ref, customer)
	if err != nil || tag.RowsAffected() == 0 {
		return wrap("link ledger "+kind+" "+ref, err)
	}
	column := "visit_id"
	if kind == LinkComplaint {
		column = "complaint_id"
	}
	_, err = q.Exec(ctx, `UPDATE ledger_entries SET customer_id = $3 WHERE tenant_id = $1 AND customer_id = '' AND `+column+` = $2`,
		tenant, ref, customer)
	return wrap("attach ledger entries of "+kind+" "+ref, err)
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
		if e.CustomerID == "" {
			return fmt.Errorf("store: ledger entry %s names no customer", e.ID)
		}
		tenants[i], ids[i], customers[i], kinds[i], at[i] = e.Tenant, e.ID, e.CustomerID, e.Kind, e.At
		services[i], visits[i], tasks[i], complaints[i], records[i], appointments[i], messages[i] = e.ServiceID, e.VisitID, e.TaskID, e.ComplaintID, e.RecordID, e.AppointmentID, e.MessageID
		types[i], channels[i], dispositions[i], statuses[i], agents[i], severities[i] = e.ServiceType, e.Channel, e.Disposition, e.Status, e.AgentID, e.Severity
		scores[i], due[i], starts[i], ends[i], attempts[i] = e.Score, e.DueAt, e.StartsAt, e.EndsAt, e.Attempt
	}
	_, err := q.Exec(ctx, `INSERT INTO ledger_entries (tenant_id, id, customer_id, kind, at, service_id, visit_id, task_id, complaint_id, record_id,
  appointment_id, message_id, service_type, channel, disposition, status, agent_id, severity, score, due_at, starts_at, ends_at, attempt)
SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::timestamptz[], $6::text[], $7::text[], $8::text[], $9::text[], $10::text[],
  $11::text[], $12::text[], $13::text[], $14::text[], $15::text[], $16::text[], $17::text[], $18::text[], $19::int[], $20::timestamptz[],
  $21::timestamptz[], $22::timestamptz[], $23::int[])
ON CONFLICT (tenant_id, id) DO NOTHING`,
		tenants, ids, customers, kinds, at, services, visits, tasks, complaints, records,
		appointments, messages, types, channels, dispositions, statuses, agents, severities, scores, due, starts, ends, attempts)
	return wrap(fmt.Sprintf("add %d ledger entries", n), err)
}
