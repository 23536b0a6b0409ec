package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	typesv1 "github.com/huifang/huifang/proto/huifang/types/v1"

	"github.com/huifang/huifang/pkg/enum"
	"github.com/huifang/huifang/pkg/postgres"
	"github.com/huifang/huifang/services/scheduler/internal/contact"
	"github.com/huifang/huifang/services/scheduler/internal/policy"
	"github.com/huifang/huifang/services/scheduler/internal/visit"
)

const visitCols = `id, tenant_id, service_id, customer_id, customer, policy_id, policy_version, step, occurrence, channel, group_name,
  due_at, deadline, coalesce(nominal_at, due_at), status, reason, sample_draw, sample_rate, decisions, org_unit, service_type,
  service_completed_at, product_category, complaint_id, severity, service, stop_types, stop_on_answer, holiday_step,
  customer_chosen, fired_at, updated_at, failed_at`

// scanVisit reads a visit. Its JSON columns (the decisions, the service it
// keeps) are decoded as far as they can be: what cannot be is left out and
// said in damage, and the visit is still read, so that a damaged visit can
// be listed, explained, retried or cancelled rather than break every read
// that meets it. err is the driver's.
func scanVisit(r pgx.Row) (v visit.Visit, damage, err error) {
	var (
		decisions, service           []byte
		firedAt, updatedAt, failedAt *time.Time
	)
	err = r.Scan(&v.ID, &v.Tenant, &v.ServiceID, &v.CustomerID, &v.Customer, &v.PolicyID, &v.PolicyVersion, &v.Step, &v.Occurrence,
		&v.Channel, &v.Group, &v.DueAt, &v.Deadline, &v.Nominal, &v.Status, &v.Reason, &v.Draw, &v.SampleRate, &decisions,
		&v.OrgUnit, &v.ServiceType, &v.ServiceCompletedAt, &v.ProductCategory, &v.ComplaintID, &v.Severity, &service,
		&v.StopTypes, &v.StopOnAnswer, &v.HolidayStep, &v.CustomerChosen, &firedAt, &updatedAt, &failedAt)
	if err != nil {
		return v, nil, err
	}
	v.DueAt, v.Deadline, v.Nominal, v.ServiceCompletedAt = v.DueAt.UTC(), v.Deadline.UTC(), v.Nominal.UTC(), v.ServiceCompletedAt.UTC()
	v.FiredAt, v.UpdatedAt, v.FailedAt = utc(firedAt), utc(updatedAt), utc(failedAt)
	var damages []error
	if len(decisions) > 0 {
		if err := json.Unmarshal(decisions, &v.Decisions); err != nil {
			v.Decisions = nil
			damages = append(damages, fmt.Errorf("its stored decisions cannot be decoded: %w", err))
		}
	}
	if len(service) > 0 {
		v.Service = &policy.Service{}
		if err := json.Unmarshal(service, v.Service); err != nil {
			v.Service = nil
			damages = append(damages, fmt.Errorf("the service it keeps cannot be decoded: %w", err))
		}
	}
	if len(damages) > 0 {
		damage = fmt.Errorf("%w: visit %s: %w", ErrDamaged, v.ID, errors.Join(damages...))
	}
	return v, damage, nil
}

// utc is a nullable time in UTC (zero when null).
func utc(t *time.Time) time.Time {
	if t == nil {
		return time.Time{}
	}
	return t.UTC()
}

// collectVisits reads visits, damaged ones as far as they can be read (scanVisit).
func collectVisits(rows pgx.Rows, op string) ([]visit.Visit, error) {
	vs, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (visit.Visit, error) {
		v, _, err := scanVisit(r)
		return v, err
	})
	return vs, translate(op, err)
}

// InsertVisit stores a new visit; planning is idempotent per (service,
// policy, step, occurrence), so it tells whether the visit was new.
func InsertVisit(ctx context.Context, q postgres.Querier, v visit.Visit) (bool, error) {
	decisions, err := json.Marshal(v.Decisions)
	if err != nil {
		return false, fmt.Errorf("store: decisions: %w", err)
	}
	var service []byte
	if v.Service != nil {
		if service, err = json.Marshal(v.Service); err != nil {
			return false, fmt.Errorf("store: service: %w", err)
		}
	}
	stopTypes := v.StopTypes
	if stopTypes == nil {
		stopTypes = []string{}
	}
	tag, err := q.Exec(ctx, `INSERT INTO planned_visits (id, tenant_id, service_id, customer_id, customer, policy_id, policy_version, step, occurrence,
  channel, group_name, due_at, deadline, nominal_at, status, reason, sample_draw, sample_rate, decisions, org_unit, service_type,
  service_completed_at, service, stop_types, stop_on_answer, holiday_step, complaint_id, severity, product_category)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, $21, $22, $23, $24, $25, $26, $27, $28, $29)
ON CONFLICT (tenant_id, service_id, policy_id, step, occurrence) DO NOTHING`,
		v.ID, v.Tenant, v.ServiceID, v.CustomerID, v.Customer, v.PolicyID, v.PolicyVersion, v.Step, v.Occurrence,
		v.Channel, v.Group, v.DueAt, v.Deadline, v.Nominal, v.Status, v.Reason, v.Draw, v.SampleRate, decisions,
		v.OrgUnit, v.ServiceType, v.ServiceCompletedAt, service, stopTypes, v.StopOnAnswer, v.HolidayStep, v.ComplaintID, v.Severity, v.ProductCategory)
	if err != nil {
		return false, translate("insert visit", err)
	}
	return tag.RowsAffected() == 1, nil
}

// SaveVisits writes what may change on visits (status, due time, the
// policy's time (a later odometer reading moves it), deadline, reason,
// decisions, the customer's choice, when it fired, changed and failed), in
// one statement.
func SaveVisits(ctx context.Context, q postgres.Querier, vs []visit.Visit) error {
	if len(vs) == 0 {
		return nil
	}
	n := len(vs)
	var (
		tenants, ids, statuses, reasons, decisions = make([]string, n), make([]string, n), make([]string, n), make([]string, n), make([]string, n)
		dues, deadlines, nominals                  = make([]time.Time, n), make([]time.Time, n), make([]time.Time, n)
		chosen                                     = make([]bool, n)
		fired, updated, failed                     = make([]*time.Time, n), make([]*time.Time, n), make([]*time.Time, n)
	)
	for i, v := range vs {
		ds := v.Decisions
		if ds == nil {
			ds = []policy.Decision{}
		}
		b, err := json.Marshal(ds)
		if err != nil {
			return fmt.Errorf("store: decisions of %s: %w", v.ID, err)
		}
		tenants[i], ids[i], statuses[i], reasons[i], decisions[i] = v.Tenant, v.ID, v.Status, v.Reason, string(b)
		dues[i], deadlines[i], chosen[i] = v.DueAt, v.Deadline, v.CustomerChosen
		nominals[i] = v.Nominal
		if nominals[i].IsZero() {
			nominals[i] = v.DueAt
		}
		fired[i], updated[i], failed[i] = nullTime(v.FiredAt), nullTime(v.UpdatedAt), nullTime(v.FailedAt)
	}
	_, err := q.Exec(ctx, `UPDATE planned_visits v SET status = u.status, due_at = u.due_at, deadline = u.deadline, reason = u.reason,
  decisions = u.decisions::jsonb, customer_chosen = u.customer_chosen, fired_at = u.fired_at, updated_at = u.updated_at, failed_at = u.failed_at,
  nominal_at = u.nominal_at
FROM unnest($1::text[], $2::text[], $3::text[], $4::timestamptz[], $5::timestamptz[], $6::text[], $7::text[], $8::bool[], $9::timestamptz[], $10::timestamptz[], $11::timestamptz[], $12::timestamptz[])
  AS u(tenant_id, id, status, due_at, deadline, reason, decisions, customer_chosen, fired_at, updated_at, failed_at, nominal_at)
WHERE v.tenant_id = u.tenant_id AND v.id = u.id`, tenants, ids, statuses, dues, deadlines, reasons, decisions, chosen, fired, updated, failed, nominals)
	return translate("save visits", err)
}

// GetVisit returns one of the tenant's visits.
func GetVisit(ctx context.Context, q postgres.Querier, tenant, id string) (visit.Visit, error) {
	rows, err := q.Query(ctx, `SELECT `+visitCols+` FROM planned_visits WHERE tenant_id = $1 AND id = $2`, tenant, id)
	if err != nil {
		return visit.Visit{}, translate("get visit", err)
	}
	vs, err := collectVisits(rows, "get visit")
	if err != nil {
		return visit.Visit{}, err
	}
	if len(vs) == 0 {
		return visit.Visit{}, ErrNotFound
	}
	return vs[0], nil
}

// UpdateVisit changes one of the tenant's visits by closure within tx: the
// row is locked, fn decides (an error leaves the visit as it was) and the
// visit is saved. It returns the visit as fn left it.
func UpdateVisit(ctx context.Context, tx pgx.Tx, tenant, id string, fn func(v *visit.Visit) error) (visit.Visit, error) {
	rows, err := tx.Query(ctx, `SELECT `+visitCols+` FROM planned_visits WHERE tenant_id = $1 AND id = $2 FOR UPDATE`, tenant, id)
	if err != nil {
		return visit.Visit{}, translate("lock visit", err)
	}
	vs, err := collectVisits(rows, "lock visit")
	if err != nil {
		return visit.Visit{}, err
	}
	if len(vs) == 0 {
		return visit.Visit{}, ErrNotFound
	}
	v := vs[0]
	if err := fn(&v); err != nil {
		return v, err
	}
	return v, SaveVisits(ctx, tx, []visit.Visit{v})
}

// LockPending returns the customer's planned visits, locked until tx ends
// (stop conditions and opt-outs end some of them; once-per-customer
// policies look at them).
func LockPending(ctx context.Context, tx pgx.Tx, tenant, customer string) ([]visit.Visit, error) {
	rows, err := tx.Query(ctx, `SELECT `+visitCols+` FROM planned_visits
WHERE tenant_id = $1 AND customer_id = $2 AND status = 'planned' ORDER BY id FOR UPDATE`, tenant, customer)
	if err != nil {
		return nil, translate("pending visits", err)
	}
	return collectVisits(rows, "pending visits")
}

// LockSeries returns the planned visits of a series (a service's visits of
// one policy), locked until tx ends.
func LockSeries(ctx context.Context, tx pgx.Tx, tenant, serviceID, policyID string) ([]visit.Visit, error) {
	rows, err := tx.Query(ctx, `SELECT `+visitCols+` FROM planned_visits
WHERE tenant_id = $1 AND service_id = $2 AND policy_id = $3 AND status = 'planned' ORDER BY id FOR UPDATE`, tenant, serviceID, policyID)
	if err != nil {
		return nil, translate("series", err)
	}
	return collectVisits(rows, "series")
}

// Claimed is a visit the claim locked. Damage, when set, says what of its
// stored JSON cannot be decoded (ErrDamaged): such a visit cannot fire.
type Claimed struct {
	visit.Visit
	Damage error
}

// ClaimDue claims up to limit planned visits due at or before now, soonest
// first (visits due alike in no particular order: ordering the ties too would
// sort every visit of a crowded moment, a window's opening say, each round),
// locked until tx ends: FOR UPDATE SKIP LOCKED, so replicas firing
// at the same time never claim the same visit. The scan reads the partial
// index on pending visits only. A damaged visit is claimed like the others,
// with its damage, so that one bad row cannot fail the claim of the batch.
func ClaimDue(ctx context.Context, tx pgx.Tx, now time.Time, limit int) ([]Claimed, error) {
	rows, err := tx.Query(ctx, `SELECT `+visitCols+` FROM planned_visits WHERE status = 'planned' AND due_at <= $1
ORDER BY due_at LIMIT $2 FOR UPDATE SKIP LOCKED`, now, limit)
	if err != nil {
		return nil, translate("claim due visits", err)
	}
	return collectClaimed(rows, "claim due visits")
}

// ClaimDueByID claims, like ClaimDue, those of the visits ids still planned
// and due at or before now (visits planned due at once, fired in the
// transaction that planned them).
func ClaimDueByID(ctx context.Context, tx pgx.Tx, ids []string, now time.Time) ([]Claimed, error) {
	rows, err := tx.Query(ctx, `SELECT `+visitCols+` FROM planned_visits WHERE id = ANY($1) AND status = 'planned' AND due_at <= $2
ORDER BY due_at, id FOR UPDATE SKIP LOCKED`, ids, now)
	if err != nil {
		return nil, translate("claim visits due at once", err)
	}
	return collectClaimed(rows, "claim visits due at once")
}

// collectClaimed reads claimed visit rows, each with its damage.
func collectClaimed(rows pgx.Rows, op string) ([]Claimed, error) {
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (Claimed, error) {
		v, damage, err := scanVisit(r)
		return Claimed{Visit: v, Damage: damage}, err
	})
	return out, translate(op, err)
}

// ContactHistory returns the contacts (visits that fell due) of the
// customers since a time: the ledger frequency caps read.
func ContactHistory(ctx context.Context, q postgres.Querier, keys []CustomerKey, since time.Time) (map[CustomerKey][]contact.Contact, error) {
	out := map[CustomerKey][]contact.Contact{}
	if len(keys) == 0 {
		return out, nil
	}
	ts, cs := make([]string, len(keys)), make([]string, len(keys))
	for i, k := range keys {
		ts[i], cs[i] = k.Tenant, k.Customer
	}
	rows, err := q.Query(ctx, `SELECT v.tenant_id, v.customer_id, v.channel, v.fired_at FROM planned_visits v
JOIN unnest($1::text[], $2::text[]) AS k(t, c) ON v.tenant_id = k.t AND v.customer_id = k.c
WHERE v.status = 'due' AND v.fired_at > $3`, ts, cs, since)
	if err != nil {
		return nil, translate("contact history", err)
	}
	var k CustomerKey
	var c contact.Contact
	_, err = pgx.ForEachRow(rows, []any{&k.Tenant, &k.Customer, &c.Channel, &c.At}, func() error {
		out[k] = append(out[k], c)
		return nil
	})
	if err != nil {
		return nil, translate("contact history", err)
	}
	return out, nil
}

// PendingOf returns the planned visits of the customers due up to until,
// soonest first: what a forecast of the caps reads (not locked).
func PendingOf(ctx context.Context, q postgres.Querier, keys []CustomerKey, until time.Time) ([]visit.Visit, error) {
	if len(keys) == 0 {
		return nil, nil
	}
	ts, cs := make([]string, len(keys)), make([]string, len(keys))
	for i, k := range keys {
		ts[i], cs[i] = k.Tenant, k.Customer
	}
	rows, err := q.Query(ctx, `SELECT `+visitCols+` FROM planned_visits v
JOIN unnest($1::text[], $2::text[]) AS k(t, c) ON v.tenant_id = k.t AND v.customer_id = k.c
WHERE v.status = 'planned' AND v.due_at <= $3 ORDER BY v.due_at, v.id`, ts, cs, until)
	if err != nil {
		return nil, translate("pending visits", err)
	}
	return collectVisits(rows, "pending visits")
}

// LastOccurrence is the highest occurrence of a service's visits of a
// policy, -1 when it has none.
func LastOccurrence(ctx context.Context, q postgres.Querier, tenant, serviceID, policyID string) (int, error) {
	var last int
	err := q.QueryRow(ctx, `SELECT coalesce(max(occurrence), -1) FROM planned_visits WHERE tenant_id = $1 AND service_id = $2 AND policy_id = $3`,
		tenant, serviceID, policyID).Scan(&last)
	return last, translate("last occurrence", err)
}

// ComplaintSeverity is the highest severity recorded on a complaint's visits (0 when none).
func ComplaintSeverity(ctx context.Context, q postgres.Querier, tenant, complaintID string) (int32, error) {
	var severity int32
	err := q.QueryRow(ctx, `SELECT coalesce(max(severity), 0) FROM planned_visits WHERE tenant_id = $1 AND complaint_id = $2`,
		tenant, complaintID).Scan(&severity)
	return severity, translate("complaint severity", err)
}

// FollowedService is the service a visit followed as far as the scheduler
// kept it: what the visit's own columns say, completed by the visit's copy
// of the service (recurring steps) or else the service recorded when it
// completed.
func FollowedService(ctx context.Context, q postgres.Querier, v visit.Visit) (policy.Service, error) {
	s := policy.Service{Tenant: v.Tenant, ID: v.ServiceID, Type: v.ServiceType, OrgUnit: v.OrgUnit, CompletedAt: v.ServiceCompletedAt,
		CustomerID: v.CustomerID, ProductCategory: v.ProductCategory, Severity: enum.Name(typesv1.Severity(v.Severity))}
	var own, recorded []byte
	err := q.QueryRow(ctx, `SELECT v.service, s.spec FROM planned_visits v
LEFT JOIN services s ON s.tenant_id = v.tenant_id AND s.service_id = v.service_id
WHERE v.tenant_id = $1 AND v.id = $2`, v.Tenant, v.ID).Scan(&own, &recorded)
	if err != nil {
		return s, translate("followed service", err)
	}
	return followed(v, own, recorded)
}

// FollowedRecorded is FollowedService for a visit without a copy of its
// service whose service, recorded as spec, is not written yet (a batch
// writes its services just before its commit).
func FollowedRecorded(v visit.Visit, spec []byte) (policy.Service, error) {
	return followed(v, nil, spec)
}

// followed is the service v followed: v's own columns, completed by its
// copy of the service (own) or else the service recorded.
func followed(v visit.Visit, own, recorded []byte) (policy.Service, error) {
	s := policy.Service{Tenant: v.Tenant, ID: v.ServiceID, Type: v.ServiceType, OrgUnit: v.OrgUnit, CompletedAt: v.ServiceCompletedAt,
		CustomerID: v.CustomerID, ProductCategory: v.ProductCategory, Severity: enum.Name(typesv1.Severity(v.Severity))}
	for _, b := range [][]byte{own, recorded} {
		if len(b) > 0 {
			if err := json.Unmarshal(b, &s); err != nil {
				return s, fmt.Errorf("store: service of visit %s: %w", v.ID, err)
			}
			break
		}
	}
	if s.CustomerID == "" {
		s.CustomerID = v.CustomerID
	}
	return s, nil
}

// VisitFilter selects planned visits; empty fields match any.
type VisitFilter struct {
	Tenant, ServiceID, Status, CustomerID, PolicyID, Group, OrgUnit string
	Channel                                                         int32
	DueFrom, DueTo                                                  time.Time
	AfterDue                                                        time.Time
	AfterID                                                         string
	Limit                                                           int
}

// ListVisits lists planned visits soonest due first.
func ListVisits(ctx context.Context, q postgres.Querier, f VisitFilter) ([]visit.Visit, error) {
	rows, err := q.Query(ctx, `SELECT `+visitCols+`
FROM planned_visits
WHERE tenant_id = $1 AND ($2 = '' OR service_id = $2) AND ($3 = '' OR status = $3)
  AND ($5 = '' OR (due_at, id) > ($4, $5))
  AND ($7 = '' OR customer_id = $7) AND ($8 = '' OR policy_id = $8) AND ($9 = '' OR group_name = $9)
  AND ($10 = '' OR org_unit = $10) AND ($11 = 0 OR channel = $11)
  AND ($12::timestamptz IS NULL OR due_at >= $12) AND ($13::timestamptz IS NULL OR due_at < $13)
ORDER BY due_at, id LIMIT $6`, f.Tenant, f.ServiceID, f.Status, f.AfterDue, f.AfterID, f.Limit,
		f.CustomerID, f.PolicyID, f.Group, f.OrgUnit, f.Channel, nullTime(f.DueFrom), nullTime(f.DueTo))
	if err != nil {
		return nil, translate("list visits", err)
	}
	return collectVisits(rows, "list visits")
}

// OldestDue is the due time of the oldest planned visit due at or before
// now (ok false when none waits). It reads the left edge of the partial
// index on pending visits, so it costs the same whatever the backlog.
func OldestDue(ctx context.Context, q postgres.Querier, now time.Time) (time.Time, bool, error) {
	var oldest *time.Time
	if err := q.QueryRow(ctx, `SELECT min(due_at) FROM planned_visits WHERE status = 'planned' AND due_at <= $1`, now).Scan(&oldest); err != nil {
		return time.Time{}, false, translate("due lag", err)
	}
	if oldest == nil {
		return time.Time{}, false, nil
	}
	return *oldest, true, nil
}

// FailedVisits counts the visits whose firing failed and that wait for an
// operator (the partial index on failed visits).
func FailedVisits(ctx context.Context, q postgres.Querier) (int, error) {
	var n int
	err := q.QueryRow(ctx, `SELECT count(*) FROM planned_visits WHERE status = 'failed'`).Scan(&n)
	return n, translate("failed visits", err)
}

// ForgetContacts drops the masked contacts of an erased customer from the
// snapshots of its visits, fired or not.
func ForgetContacts(ctx context.Context, tx pgx.Tx, tenant, customerID string) error {
	_, err := tx.Exec(ctx, `UPDATE planned_visits SET customer = customer - 'nameMasked' - 'phoneMasked' - 'emailMasked' - 'name' - 'phone' - 'email'
WHERE tenant_id = $1 AND customer_id = $2 AND customer IS NOT NULL`, tenant, customerID)
	if err != nil {
		return fmt.Errorf("store: forget the contacts of customer %s: %w", customerID, err)
	}
	return nil
}
