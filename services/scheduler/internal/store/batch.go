package store

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	typesv1 "github.com/huifang/huifang/proto/huifang/types/v1"

	"github.com/huifang/huifang/pkg/postgres"
	"github.com/huifang/huifang/services/scheduler/internal/contact"
	"github.com/huifang/huifang/services/scheduler/internal/policy"
	"github.com/huifang/huifang/services/scheduler/internal/visit"
)

// Known is what planning reads of a customer before it plans: the
// customer as the scheduler keeps it (Found false: never heard of), and
// whether it has planned visits.
type Known struct {
	Customer contact.Customer
	Found    bool
	Pending  bool
}

// ServiceKey names a service: its tenant and id.
type ServiceKey = [2]string

// KnownCustomers reads, in one statement and without locking, what the
// scheduler knows of the customers keys name (Known; every key is in the
// map) and which of the services named are recorded, each with the id of
// the event that recorded it ("" when it was recorded before the ids were
// kept, or by no event; a service not recorded is not in that map).
func KnownCustomers(ctx context.Context, q postgres.Querier, keys []CustomerKey, services []ServiceKey) (map[CustomerKey]Known, map[ServiceKey]string, error) {
	out := make(map[CustomerKey]Known, len(keys))
	recorded := map[ServiceKey]string{}
	if len(keys) == 0 && len(services) == 0 {
		return out, recorded, nil
	}
	ts, cs := make([]string, len(keys)), make([]string, len(keys))
	for i, k := range keys {
		ts[i], cs[i] = k.Tenant, k.Customer
	}
	sts, sids := make([]string, len(services)), make([]string, len(services))
	for i, k := range services {
		sts[i], sids[i] = k[0], k[1]
	}
	// The services' rows come after the customers', with the event id
	// (never NULL) in the last column.
	rows, err := q.Query(ctx, `SELECT k.t, k.c, c.customer_id IS NOT NULL, coalesce(c.version, 0), coalesce(c.prefs, '{}'),
  coalesce(c.opted_out, '{}'), coalesce(c.tier, ''), coalesce(c.updated_at, 'epoch'),
  EXISTS (SELECT FROM planned_visits v WHERE v.tenant_id = k.t AND v.customer_id = k.c AND v.status = 'planned'), NULL
FROM (SELECT DISTINCT t, c FROM unnest($1::text[], $2::text[]) AS u(t, c)) k
LEFT JOIN customers c ON c.tenant_id = k.t AND c.customer_id = k.c
UNION ALL
SELECT s.tenant_id, s.service_id, false, 0, '{}', '{}', '', 'epoch', false, coalesce(s.event_id, '')
FROM services s WHERE (s.tenant_id, s.service_id) IN (SELECT * FROM unnest($3::text[], $4::text[]))`, ts, cs, sts, sids)
	if err != nil {
		return nil, nil, translate("known customers", err)
	}
	defer rows.Close()
	for rows.Next() {
		var k CustomerKey
		var kn Known
		var prefs []byte
		var event *string
		c := &kn.Customer
		if err := rows.Scan(&k.Tenant, &k.Customer, &kn.Found, &c.Version, &prefs, &c.OptedOut, &c.Tier, &c.UpdatedAt, &kn.Pending, &event); err != nil {
			return nil, nil, translate("known customers", err)
		}
		switch {
		case event != nil:
			recorded[ServiceKey{k.Tenant, k.Customer}] = *event
			continue
		case !kn.Found:
			kn.Customer = contact.Customer{}
		default:
			if err := json.Unmarshal(prefs, &c.Prefs); err != nil {
				return nil, nil, fmt.Errorf("store: prefs of %s: %w", k.Customer, err)
			}
		}
		out[k] = kn
	}
	return out, recorded, translate("known customers", rows.Err())
}

// RecordServices is RecordService for many services, in one statement,
// each with the id of the event that records it (events[i] of ss[i]; ""
// none), kept only by the record that is the service's first. It returns
// the services it recorded, by tenant and id: those no transaction had
// recorded before (whose visits, if any, were planned by another
// transaction since, which a unique violation then says).
func RecordServices(ctx context.Context, q postgres.Querier, ss []policy.Service, events []string) (map[ServiceKey]bool, error) {
	if len(ss) == 0 {
		return map[ServiceKey]bool{}, nil
	}
	ts, ids, specs := make([]string, len(ss)), make([]string, len(ss)), make([]string, len(ss))
	ats := make([]time.Time, len(ss))
	for i, s := range ss {
		spec, err := json.Marshal(s)
		if err != nil {
			return nil, fmt.Errorf("store: service: %w", err)
		}
		ts[i], ids[i], ats[i], specs[i] = s.Tenant, s.ID, s.CompletedAt, string(spec)
	}
	rows, err := q.Query(ctx, `INSERT INTO services (tenant_id, service_id, completed_at, spec, event_id)
SELECT t, id, at, spec::jsonb, NULLIF(ev, '') FROM unnest($1::text[], $2::text[], $3::timestamptz[], $4::text[], $5::text[])
  WITH ORDINALITY AS u(t, id, at, spec, ev, n)
ORDER BY n ON CONFLICT DO NOTHING
RETURNING tenant_id, service_id`, ts, ids, ats, specs, events)
	if err != nil {
		return nil, translate("record services", err)
	}
	out := make(map[ServiceKey]bool, len(ss))
	var k ServiceKey
	_, err = pgx.ForEachRow(rows, []any{&k[0], &k[1]}, func() error {
		out[k] = true
		return nil
	})
	return out, translate("record services", err)
}

// Snapshot is the snapshot of a customer a completed service carried, to
// store at version 0 (contact.Customer.Update), with the channels it opts
// out of that the scheduler did not know of (recorded with Source).
type Snapshot struct {
	Key      CustomerKey
	Prefs    contact.Prefs
	Tier     string
	At       time.Time
	OptedOut []int32
	Source   string
}

// StoreSnapshots stores the snapshots in one statement, in the order of
// their customers (two transactions storing the same customers lock them
// in the same order): a customer the scheduler never heard of is made; one
// it keeps at version 0 takes the snapshot (the last one of a customer's
// in ss), its opt-outs added to those it has; one that a CustomerUpdated
// made newer meanwhile is left as it is, and none of its snapshots' opt-outs
// is recorded.
func StoreSnapshots(ctx context.Context, q postgres.Querier, ss []Snapshot) error {
	if len(ss) == 0 {
		return nil
	}
	last := make(map[CustomerKey]int, len(ss))
	for i, s := range ss {
		last[s.Key] = i
	}
	keys := make([]CustomerKey, 0, len(last))
	for k := range last {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, func(a, b CustomerKey) int {
		return cmp.Or(cmp.Compare(a.Tenant, b.Tenant), cmp.Compare(a.Customer, b.Customer))
	})
	n := len(keys)
	ts, ids, prefs, opted, tiers := make([]string, n), make([]string, n), make([]string, n), make([]string, n), make([]string, n)
	ats := make([]time.Time, n)
	for i, k := range keys {
		s := ss[last[k]]
		p, err := json.Marshal(s.Prefs)
		if err != nil {
			return fmt.Errorf("store: prefs: %w", err)
		}
		// Every channel its snapshots in ss opt out of, in their order.
		var chans []int32
		for _, o := range ss {
			if o.Key == k {
				for _, ch := range o.Prefs.OptedOut {
					if !slices.Contains(chans, ch) {
						chans = append(chans, ch)
					}
				}
			}
		}
		ts[i], ids[i], prefs[i], tiers[i], ats[i] = k.Tenant, k.Customer, string(p), s.Tier, s.At
		opted[i] = intArray(chans)
	}
	var ots, oids, ochs, osrc []string
	var oats []time.Time
	for _, s := range ss {
		for _, ch := range s.OptedOut {
			ots, oids, ochs = append(ots, s.Key.Tenant), append(oids, s.Key.Customer), append(ochs, typesv1.Channel(ch).String())
			osrc, oats = append(osrc, s.Source), append(oats, s.At)
		}
	}
	_, err := q.Exec(ctx, `WITH stored AS (
  INSERT INTO customers AS c (tenant_id, customer_id, version, prefs, opted_out, tier, updated_at)
  SELECT t, id, 0, prefs::jsonb, opted::int[], tier, at
  FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::timestamptz[]) WITH ORDINALITY AS u(t, id, prefs, opted, tier, at, n)
  ORDER BY n
  ON CONFLICT (tenant_id, customer_id) DO UPDATE SET prefs = EXCLUDED.prefs, tier = EXCLUDED.tier, updated_at = EXCLUDED.updated_at,
    opted_out = c.opted_out || ARRAY(SELECT x FROM unnest(EXCLUDED.opted_out) WITH ORDINALITY AS o(x, n) WHERE x <> ALL(c.opted_out) ORDER BY n)
  WHERE c.version = 0
  RETURNING c.tenant_id, c.customer_id)
INSERT INTO opt_outs (tenant_id, customer_id, channel, source, opted_out_at)
SELECT o.t, o.id, o.ch, o.src, o.at
FROM unnest($7::text[], $8::text[], $9::text[], $10::text[], $11::timestamptz[]) WITH ORDINALITY AS o(t, id, ch, src, at, n)
JOIN stored s ON s.tenant_id = o.t AND s.customer_id = o.id
ORDER BY o.n
ON CONFLICT DO NOTHING`, ts, ids, prefs, opted, tiers, ats, ots, oids, ochs, osrc, oats)
	return translate("store customer snapshots", err)
}

// intArray is chans as a Postgres int[] literal.
func intArray(chans []int32) string {
	parts := make([]string, len(chans))
	for i, ch := range chans {
		parts[i] = strconv.Itoa(int(ch))
	}
	return "{" + strings.Join(parts, ",") + "}"
}

// textArray is ss as a Postgres text[] literal, each element quoted (a
// visit's stop types travel in a text[] parameter of literals, one per
// row, which the server casts with text[]'s own input function: cheaper
// than a JSON array expanded by a subquery per row).
func textArray(ss []string) string {
	if len(ss) == 0 {
		return "{}"
	}
	var b strings.Builder
	b.WriteByte('{')
	for i, s := range ss {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteByte('"')
		for j := 0; j < len(s); j++ {
			if s[j] == '"' || s[j] == '\\' {
				b.WriteByte('\\')
			}
			b.WriteByte(s[j])
		}
		b.WriteByte('"')
	}
	b.WriteByte('}')
	return b.String()
}

// Update is a change of a customer by version (a CustomerUpdated): Apply
// says whether it changed c.
type Update struct {
	Key    CustomerKey
	Source string
	Apply  func(c *contact.Customer) bool
}

// UpdateCustomers is UpdateCustomer for many changes, in four statements
// however many: the customers' rows are made (empty) where missing and
// locked in the order of their keys (two transactions changing the same
// customers lock them in the same order, and planning's StoreSnapshots
// does too), the changes are applied one after the other in their order,
// the opt-outs they add recorded with their sources, and the rows changed
// saved.
func UpdateCustomers(ctx context.Context, tx postgres.Querier, us []Update) error {
	if len(us) == 0 {
		return nil
	}
	seen := map[CustomerKey]bool{}
	var keys []CustomerKey
	for _, u := range us {
		if !seen[u.Key] {
			seen[u.Key] = true
			keys = append(keys, u.Key)
		}
	}
	slices.SortFunc(keys, func(a, b CustomerKey) int {
		return cmp.Or(cmp.Compare(a.Tenant, b.Tenant), cmp.Compare(a.Customer, b.Customer))
	})
	ts, cs := make([]string, len(keys)), make([]string, len(keys))
	for i, k := range keys {
		ts[i], cs[i] = k.Tenant, k.Customer
	}
	if _, err := tx.Exec(ctx, `INSERT INTO customers (tenant_id, customer_id)
SELECT t, c FROM unnest($1::text[], $2::text[]) WITH ORDINALITY AS k(t, c, n) ORDER BY n ON CONFLICT DO NOTHING`, ts, cs); err != nil {
		return translate("new customers", err)
	}
	rows, err := tx.Query(ctx, `SELECT c.tenant_id, c.customer_id, `+customerCols+` FROM customers c
JOIN unnest($1::text[], $2::text[]) WITH ORDINALITY AS k(t, c, n) ON c.tenant_id = k.t AND c.customer_id = k.c
ORDER BY k.n FOR UPDATE OF c`, ts, cs)
	if err != nil {
		return translate("lock customers", err)
	}
	got := map[CustomerKey]*contact.Customer{}
	for rows.Next() {
		var k CustomerKey
		var c contact.Customer
		var prefs []byte
		if err := rows.Scan(&k.Tenant, &k.Customer, &c.Version, &prefs, &c.OptedOut, &c.Tier, &c.UpdatedAt); err != nil {
			rows.Close()
			return translate("lock customers", err)
		}
		if err := json.Unmarshal(prefs, &c.Prefs); err != nil {
			rows.Close()
			return fmt.Errorf("store: prefs of %s: %w", k.Customer, err)
		}
		got[k] = &c
	}
	if err := rows.Err(); err != nil {
		return translate("lock customers", err)
	}
	changed := map[CustomerKey]bool{}
	var ots, oids, ochs, osrc []string
	var oats []time.Time
	for _, u := range us {
		c := got[u.Key]
		if c == nil {
			return fmt.Errorf("store: customer %s of %s not locked", u.Key.Customer, u.Key.Tenant)
		}
		before := c.Effective().OptedOut
		if !u.Apply(c) {
			continue
		}
		changed[u.Key] = true
		at := c.UpdatedAt
		if at.IsZero() {
			at = time.Now()
		}
		for _, ch := range c.Effective().OptedOut {
			if !slices.Contains(before, ch) {
				ots, oids, ochs = append(ots, u.Key.Tenant), append(oids, u.Key.Customer), append(ochs, typesv1.Channel(ch).String())
				osrc, oats = append(osrc, u.Source), append(oats, at)
			}
		}
	}
	if len(ots) > 0 {
		if _, err := tx.Exec(ctx, `INSERT INTO opt_outs (tenant_id, customer_id, channel, source, opted_out_at)
SELECT t, id, ch, src, at FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::timestamptz[]) WITH ORDINALITY AS o(t, id, ch, src, at, n)
ORDER BY n ON CONFLICT DO NOTHING`, ots, oids, ochs, osrc, oats); err != nil {
			return translate("record opt-outs", err)
		}
	}
	var uts, uids, uprefs, uopted, utiers []string
	var uvers []int64
	var uats []*time.Time
	for _, k := range keys {
		if !changed[k] {
			continue
		}
		c := got[k]
		p, err := json.Marshal(c.Prefs)
		if err != nil {
			return fmt.Errorf("store: prefs: %w", err)
		}
		uts, uids, uprefs, uopted, utiers = append(uts, k.Tenant), append(uids, k.Customer), append(uprefs, string(p)), append(uopted, intArray(c.OptedOut)), append(utiers, c.Tier)
		uvers, uats = append(uvers, c.Version), append(uats, nullTime(c.UpdatedAt))
	}
	if len(uts) == 0 {
		return nil
	}
	_, err = tx.Exec(ctx, `UPDATE customers c SET version = u.version, prefs = u.prefs::jsonb, opted_out = u.opted::int[], tier = u.tier,
  updated_at = coalesce(u.at, now())
FROM unnest($1::text[], $2::text[], $3::bigint[], $4::text[], $5::text[], $6::text[], $7::timestamptz[]) AS u(t, id, version, prefs, opted, tier, at)
WHERE c.tenant_id = u.t AND c.customer_id = u.id`, uts, uids, uvers, uprefs, uopted, utiers, uats)
	return translate("save customers", err)
}

// insertVisitsSQL inserts the visits of visitArgs' columns in their order.
const insertVisitsSQL = `INSERT INTO planned_visits (id, tenant_id, service_id, customer_id, customer, policy_id, policy_version, step, occurrence,
  channel, group_name, due_at, deadline, nominal_at, status, reason, sample_draw, sample_rate, decisions, org_unit, service_type,
  service_completed_at, service, stop_types, stop_on_answer, holiday_step, complaint_id, severity, product_category,
  customer_chosen, fired_at, updated_at, failed_at)
SELECT id, tenant_id, service_id, customer_id, customer::jsonb, policy_id, policy_version, step, occurrence,
  channel, group_name, due_at, deadline, nominal_at, status, reason, sample_draw, sample_rate, decisions::jsonb, org_unit, service_type,
  service_completed_at, service::jsonb, stop_types::text[], stop_on_answer, holiday_step,
  complaint_id, severity, product_category, customer_chosen, fired_at, updated_at, failed_at
FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::int[], $8::int[], $9::int[],
  $10::int[], $11::text[], $12::timestamptz[], $13::timestamptz[], $14::timestamptz[], $15::text[], $16::text[], $17::float8[], $18::float8[],
  $19::text[], $20::text[], $21::text[], $22::timestamptz[], $23::text[], $24::text[], $25::bool[], $26::bool[], $27::text[], $28::int[], $29::text[],
  $30::bool[], $31::timestamptz[], $32::timestamptz[], $33::timestamptz[])
  WITH ORDINALITY AS u(id, tenant_id, service_id, customer_id, customer, policy_id, policy_version, step, occurrence,
  channel, group_name, due_at, deadline, nominal_at, status, reason, sample_draw, sample_rate, decisions, org_unit, service_type,
  service_completed_at, service, stop_types, stop_on_answer, holiday_step, complaint_id, severity, product_category,
  customer_chosen, fired_at, updated_at, failed_at, n)
ORDER BY n`

// InsertNewVisits is InsertVisit for many visits that no stored visit
// has the key of (ExistingVisits said so within the transaction, or their
// services were recorded for the first time in it), in one statement, in
// their order. A visit is stored in the state it is in: one fired already
// (due, moved, suppressed or failed in the transaction that planned it)
// with what SaveVisits would have written of it. There is no arbiter (no
// look at each key before its insert, no confirmation written after it):
// the unique index checks each key, and a visit of a key that another
// transaction stored fails the statement, and with it the transaction:
// ErrConflict.
func InsertNewVisits(ctx context.Context, q postgres.Querier, vs []visit.Visit) error {
	if len(vs) == 0 {
		return nil
	}
	args, err := visitArgs(vs)
	if err != nil {
		return err
	}
	_, err = q.Exec(ctx, insertVisitsSQL, args...)
	return translate("insert new visits", err)
}

// visitArgs are the parameters of insertVisitsSQL for vs: a column each.
func visitArgs(vs []visit.Visit) ([]any, error) {
	n := len(vs)
	var (
		ids, tenants, services, customerIDs, policyIDs = make([]string, n), make([]string, n), make([]string, n), make([]string, n), make([]string, n)
		groups, statuses, reasons, decisions, orgUnits = make([]string, n), make([]string, n), make([]string, n), make([]string, n), make([]string, n)
		serviceTypes, stopTypes, complaints, products  = make([]string, n), make([]string, n), make([]string, n), make([]string, n)
		customers, specs                               = make([]*string, n), make([]*string, n)
		versions, steps, occurrences, channels, sevs   = make([]int64, n), make([]int64, n), make([]int64, n), make([]int64, n), make([]int64, n)
		dues, deadlines, nominals, completed           = make([]time.Time, n), make([]time.Time, n), make([]time.Time, n), make([]time.Time, n)
		draws, rates                                   = make([]float64, n), make([]float64, n)
		stopOnAnswer, holiday, chosen                  = make([]bool, n), make([]bool, n), make([]bool, n)
		fired, updated, failed                         = make([]*time.Time, n), make([]*time.Time, n), make([]*time.Time, n)
	)
	for i, v := range vs {
		d, err := json.Marshal(v.Decisions)
		if err != nil {
			return nil, fmt.Errorf("store: decisions: %w", err)
		}
		if v.Service != nil {
			b, err := json.Marshal(v.Service)
			if err != nil {
				return nil, fmt.Errorf("store: service: %w", err)
			}
			s := string(b)
			specs[i] = &s
		}
		if v.Customer != nil {
			s := string(v.Customer)
			customers[i] = &s
		}
		ids[i], tenants[i], services[i], customerIDs[i], policyIDs[i] = v.ID, v.Tenant, v.ServiceID, v.CustomerID, v.PolicyID
		groups[i], statuses[i], reasons[i], decisions[i], orgUnits[i] = v.Group, v.Status, v.Reason, string(d), v.OrgUnit
		serviceTypes[i], stopTypes[i], complaints[i], products[i] = v.ServiceType, textArray(v.StopTypes), v.ComplaintID, v.ProductCategory
		versions[i], steps[i], occurrences[i], channels[i], sevs[i] = int64(v.PolicyVersion), int64(v.Step), int64(v.Occurrence), int64(v.Channel), int64(v.Severity)
		dues[i], deadlines[i], nominals[i], completed[i] = v.DueAt, v.Deadline, v.Nominal, v.ServiceCompletedAt
		draws[i], rates[i], stopOnAnswer[i], holiday[i] = v.Draw, v.SampleRate, v.StopOnAnswer, v.HolidayStep
		chosen[i], fired[i], updated[i], failed[i] = v.CustomerChosen, nullTime(v.FiredAt), nullTime(v.UpdatedAt), nullTime(v.FailedAt)
	}
	return []any{ids, tenants, services, customerIDs, customers, policyIDs, versions, steps, occurrences,
		channels, groups, dues, deadlines, nominals, statuses, reasons, draws, rates, decisions, orgUnits, serviceTypes,
		completed, specs, stopTypes, stopOnAnswer, holiday, complaints, sevs, products, chosen, fired, updated, failed}, nil
}

// ExistingVisits returns the ids of the visits of vs whose service, policy,
// step and occurrence a stored visit has (planned before: InsertVisits
// would not insert them), in one statement.
func ExistingVisits(ctx context.Context, q postgres.Querier, vs []visit.Visit) (map[string]bool, error) {
	out := map[string]bool{}
	if len(vs) == 0 {
		return out, nil
	}
	n := len(vs)
	ids, tenants, services, policies := make([]string, n), make([]string, n), make([]string, n), make([]string, n)
	steps, occurrences := make([]int64, n), make([]int64, n)
	for i, v := range vs {
		ids[i], tenants[i], services[i], policies[i] = v.ID, v.Tenant, v.ServiceID, v.PolicyID
		steps[i], occurrences[i] = int64(v.Step), int64(v.Occurrence)
	}
	rows, err := q.Query(ctx, `SELECT u.id FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::int[], $6::int[])
  AS u(id, tenant_id, service_id, policy_id, step, occurrence)
WHERE EXISTS (SELECT 1 FROM planned_visits v WHERE v.tenant_id = u.tenant_id AND v.service_id = u.service_id AND v.policy_id = u.policy_id
  AND v.step = u.step AND v.occurrence = u.occurrence)`, ids, tenants, services, policies, steps, occurrences)
	if err != nil {
		return nil, translate("visits planned before", err)
	}
	got, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, translate("visits planned before", err)
	}
	for _, id := range got {
		out[id] = true
	}
	return out, nil
}
