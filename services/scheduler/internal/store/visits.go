package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/types/known/timestamppb"

	eventsv1 "github.com/huifang/huifang/proto/huifang/events/v1"
	typesv1 "github.com/huifang/huifang/proto/huifang/types/v1"

	"github.com/huifang/huifang/pkg/outbox"
	"github.com/huifang/huifang/pkg/stream"
	"github.com/huifang/huifang/services/scheduler/internal/contact"
	"github.com/huifang/huifang/services/scheduler/internal/engine"
	"github.com/huifang/huifang/services/scheduler/internal/policy"
)

// Visit statuses.
const (
	StatusPlanned    = "planned"
	StatusDue        = "due"
	StatusSuppressed = "suppressed"
	StatusCancelled  = "cancelled"
)

// FollowUpPolicyID is the policy id of visits requested by FollowUpRequested.
const FollowUpPolicyID = "followup"

var severityNames = map[typesv1.Severity]string{
	typesv1.Severity_SEVERITY_GENERAL: "general", typesv1.Severity_SEVERITY_URGENT: "urgent", typesv1.Severity_SEVERITY_MAJOR: "major",
}

// ServiceOf turns a ServiceCompleted into what the planner reads.
func ServiceOf(ev *eventsv1.ServiceCompleted) policy.Service {
	s := policy.Service{
		Tenant: ev.GetTenantId(), ID: ev.GetServiceId(), Type: ev.GetServiceType(), OrgUnit: ev.GetOrgUnit(),
		CompletedAt: ev.GetCompletedAt().AsTime(), CustomerID: ev.GetCustomer().GetId(), Tier: ev.GetCustomer().GetTier(),
		ProductCategory: ev.GetProduct().GetCategory(), Severity: severityNames[ev.GetComplaint().GetSeverity()],
		Attributes: ev.GetAttributes(),
	}
	if w := ev.GetProduct().GetWarrantyUntil(); w != nil {
		s.WarrantyUntil = w.AsTime()
	}
	return s
}

// visitRow is a visit to insert.
type visitRow struct {
	v           policy.Visit
	svc         policy.Service
	customer    []byte
	pol         *policy.Policy
	status      string
	complaintID string
	severity    int32
}

func insertVisit(ctx context.Context, tx pgx.Tx, r visitRow) (string, bool, error) {
	id := outbox.NewEventID()
	decisions, err := json.Marshal(r.v.Decisions)
	if err != nil {
		return "", false, fmt.Errorf("decisions: %w", err)
	}
	var svcJSON []byte
	stopTypes := []string{}
	stopOnAnswer, holiday := false, false
	if r.pol != nil {
		if r.v.Step < len(r.pol.Steps) && r.pol.Steps[r.v.Step].Recurring() {
			if svcJSON, err = json.Marshal(r.svc); err != nil {
				return "", false, fmt.Errorf("service: %w", err)
			}
			holiday = r.pol.Steps[r.v.Step].CalendarStep()
		}
		if r.pol.Stop.ServiceTypes != nil {
			stopTypes = r.pol.Stop.ServiceTypes
		}
		stopOnAnswer = r.pol.Stop.Answered
	}
	tag, err := tx.Exec(ctx, `INSERT INTO planned_visits (id, tenant_id, service_id, customer_id, customer, policy_id, policy_version, step, occurrence,
  channel, group_name, due_at, deadline, nominal_at, status, reason, sample_draw, sample_rate, decisions, org_unit, service_type,
  service_completed_at, service, stop_types, stop_on_answer, holiday_step, complaint_id, severity, product_category)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, $21, $22, $23, $24, $25, $26, $27, $28, $29)
ON CONFLICT (tenant_id, service_id, policy_id, step, occurrence) DO NOTHING`,
		id, r.svc.Tenant, r.svc.ID, r.svc.CustomerID, r.customer, r.v.PolicyID, r.v.PolicyVersion, r.v.Step, r.v.Occurrence,
		r.v.Channel, r.v.Group, r.v.DueAt, r.v.Deadline, r.v.Nominal, r.status, r.v.Reason, r.v.Draw, r.v.SampleRate, decisions,
		r.svc.OrgUnit, r.svc.Type, r.svc.CompletedAt, svcJSON, stopTypes, stopOnAnswer, holiday, r.complaintID, r.severity, r.svc.ProductCategory)
	if err != nil {
		return "", false, fmt.Errorf("insert visit: %w", err)
	}
	if tag.RowsAffected() == 0 {
		return id, false, nil
	}
	if r.status != StatusPlanned {
		return id, true, nil
	}
	_, err = outbox.Add(ctx, tx, outbox.Message{Subject: stream.SubjectVisitPlanned, Payload: &eventsv1.VisitPlanned{
		TenantId: r.svc.Tenant, VisitId: id, ServiceId: r.svc.ID, PolicyId: r.v.PolicyID, PolicyVersion: int32(r.v.PolicyVersion),
		Step: int32(r.v.Step), Channel: typesv1.Channel(r.v.Channel), DueAt: timestamppb.New(r.v.DueAt), Deadline: timestamppb.New(r.v.Deadline),
		OrgUnit: r.svc.OrgUnit, ServiceType: r.svc.Type, CustomerId: r.svc.CustomerID,
	}})
	return id, true, err
}

// PlanService plans the visits of every matching policy for a completed
// service, within tx: it records the service (for SimulatePolicy), applies
// the stop conditions of the customer's pending visits ("the customer came
// in"), and plans each policy's steps placed by the contact policy. Planning is
// idempotent per (service, policy, step, occurrence); every planned visit is
// announced with VisitPlanned through the outbox.
func PlanService(ctx context.Context, tx pgx.Tx, ev *eventsv1.ServiceCompleted) (int, error) {
	svc := ServiceOf(ev)
	spec, err := json.Marshal(svc)
	if err != nil {
		return 0, fmt.Errorf("store: service: %w", err)
	}
	if _, err := tx.Exec(ctx, `INSERT INTO services (tenant_id, service_id, completed_at, spec) VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING`,
		svc.Tenant, svc.ID, svc.CompletedAt, spec); err != nil {
		return 0, fmt.Errorf("store: record service: %w", err)
	}
	if err := UpsertCustomer(ctx, tx, svc.Tenant, ev.GetCustomer(), 0, svc.CompletedAt); err != nil {
		return 0, err
	}
	if svc.CustomerID != "" {
		if err := stopCameIn(ctx, tx, svc); err != nil {
			return 0, err
		}
	}
	customer, err := protojson.Marshal(ev.GetCustomer())
	if err != nil {
		return 0, fmt.Errorf("store: customer: %w", err)
	}
	var none string
	switch {
	case ev.GetComplaint().GetAnonymous():
		none = "seed 000: an anonymous complaint needs no follow-up"
	case ev.GetComplaint().GetWrittenReplyOnly():
		none = "seed 000: only a written reply was requested: no follow-up"
	}
	return planFor(ctx, tx, svc, customer, ev.GetComplaint().GetReference(), int32(ev.GetComplaint().GetSeverity()), none)
}

// planFor plans every matching active policy's visits for the service.
// A non-empty noFollowUp keeps every visit as suppressed with that reason.
func planFor(ctx context.Context, tx pgx.Tx, svc policy.Service, customer []byte, complaintID string, severity int32, noFollowUp string) (int, error) {
	policies, err := ActivePolicies(ctx, tx, svc.Tenant)
	if err != nil {
		return 0, err
	}
	rules, err := contactRules(ctx, tx, []string{svc.Tenant})
	if err != nil {
		return 0, err
	}
	prefs, err := prefsFor(ctx, tx, []custKey{{svc.Tenant, svc.CustomerID}})
	if err != nil {
		return 0, err
	}
	planned := 0
	for _, p := range policies {
		if !p.Matches(svc) {
			continue
		}
		if p.Trigger.OncePerCustomer && svc.CustomerID != "" {
			var enrolled bool
			if err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM planned_visits WHERE tenant_id = $1 AND customer_id = $2 AND policy_id = $3 AND status = 'planned')`,
				svc.Tenant, svc.CustomerID, p.ID).Scan(&enrolled); err != nil {
				return planned, fmt.Errorf("store: enrolled: %w", err)
			}
			if enrolled {
				continue
			}
		}
		for _, v := range engine.Initial(p, svc, rules[svc.Tenant], prefs[custKey{svc.Tenant, svc.CustomerID}]) {
			if noFollowUp != "" && v.Planned {
				v.Planned, v.Reason = false, noFollowUp
				v.Decisions = append(v.Decisions, policy.Decision{Kind: policy.KindStop, Detail: noFollowUp})
			}
			st := StatusPlanned
			if !v.Planned {
				st = StatusSuppressed
			}
			_, inserted, err := insertVisit(ctx, tx, visitRow{v: v, svc: svc, customer: customer, pol: &p, status: st, complaintID: complaintID, severity: severity})
			if err != nil {
				return planned, fmt.Errorf("store: plan visit: %w", err)
			}
			if inserted && v.Planned {
				planned++
			}
		}
	}
	return planned, nil
}

func decisionJSON(kind, detail string, at time.Time) []byte {
	b, _ := json.Marshal([]policy.Decision{{Kind: kind, Detail: detail, At: at}})
	return b
}

// cancelWhere cancels the pending visits the condition selects, records why
// and publishes VisitCancelled for each.
func cancelWhere(ctx context.Context, tx pgx.Tx, kind, reason string, at time.Time, where string, args ...any) (int, error) {
	n := len(args)
	rows, err := tx.Query(ctx, fmt.Sprintf(`UPDATE planned_visits SET status = 'cancelled', reason = $%d, updated_at = $%d, decisions = decisions || $%d
WHERE status = 'planned' AND %s RETURNING id, tenant_id`, n+1, n+2, n+3, where), append(args, reason, at, decisionJSON(kind, reason, at))...)
	if err != nil {
		return 0, fmt.Errorf("store: cancel: %w", err)
	}
	type idt struct{ id, tenant string }
	ids, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (idt, error) {
		var x idt
		return x, r.Scan(&x.id, &x.tenant)
	})
	if err != nil {
		return 0, fmt.Errorf("store: cancel: %w", err)
	}
	for _, x := range ids {
		if err := addCancelled(ctx, tx, x.tenant, x.id, reason, at); err != nil {
			return 0, err
		}
	}
	return len(ids), nil
}

func addCancelled(ctx context.Context, tx pgx.Tx, tenant, id, reason string, at time.Time) error {
	_, err := outbox.Add(ctx, tx, outbox.Message{Subject: stream.SubjectVisitCancelled, Payload: &eventsv1.VisitCancelled{
		TenantId: tenant, VisitId: id, Reason: reason, CancelledAt: timestamppb.New(at),
	}})
	return err
}

// stopCameIn ends the customer's pending visits whose policy stops when the
// customer comes in for a service of this type.
func stopCameIn(ctx context.Context, tx pgx.Tx, svc policy.Service) error {
	_, err := cancelWhere(ctx, tx, policy.KindStop, "stopped: the customer came in ("+svc.Type+" "+svc.ID+")", svc.CompletedAt,
		`tenant_id = $1 AND customer_id = $2 AND $3 = ANY(stop_types) AND service_completed_at < $4`,
		svc.Tenant, svc.CustomerID, svc.Type, svc.CompletedAt)
	return err
}

// StopAnswered ends the rest of the series of an answered visit when its policy says so.
func StopAnswered(ctx context.Context, tx pgx.Tx, tenant, visitID string, at time.Time) (int, error) {
	return cancelWhere(ctx, tx, policy.KindStop, "stopped: the customer answered visit "+visitID, at,
		`(tenant_id, service_id, policy_id) = (SELECT tenant_id, service_id, policy_id FROM planned_visits WHERE tenant_id = $1 AND id = $2 AND stop_on_answer)`,
		tenant, visitID)
}

// OptOut records the opt-out and cancels the customer's pending visits on that channel.
func OptOut(ctx context.Context, tx pgx.Tx, tenant, customer string, channel int32, at time.Time) (int, error) {
	if err := AddOptOut(ctx, tx, tenant, customer, channel, at); err != nil {
		return 0, err
	}
	return cancelWhere(ctx, tx, policy.KindOptOut, "customer opted out of "+policy.ChannelName(channel), at,
		`tenant_id = $1 AND customer_id = $2 AND channel = $3`, tenant, customer, channel)
}

// PlanComplaintResolved plans the confirmation visits of a resolved complaint
// (seed 003: within 48 hours after a resolved problem): every active policy
// triggered by complaint_resolved applies, the built-in one included.
func PlanComplaintResolved(ctx context.Context, tx pgx.Tx, ev *eventsv1.ComplaintResolved) (int, error) {
	at := ev.GetResolvedAt().AsTime()
	svc := policy.Service{
		Tenant: ev.GetTenantId(), ID: "complaint:" + ev.GetComplaintId() + "@" + at.UTC().Format(time.RFC3339Nano), Type: policy.TypeComplaintResolved,
		OrgUnit: ev.GetOrgUnit(), CompletedAt: at, CustomerID: ev.GetCustomerId(), Tier: ev.GetCustomer().GetTier(),
		ProductCategory: ev.GetCategory(), Severity: severityNames[ev.GetSeverity()],
	}
	if svc.CustomerID == "" {
		svc.CustomerID = ev.GetCustomer().GetId()
	}
	if err := UpsertCustomer(ctx, tx, svc.Tenant, ev.GetCustomer(), 0, at); err != nil {
		return 0, err
	}
	customer, err := protojson.Marshal(ev.GetCustomer())
	if err != nil {
		return 0, fmt.Errorf("store: customer: %w", err)
	}
	none := ""
	if ev.GetNoFollowUp() {
		none = "seed 000: an anonymous or written-reply-only complaint needs no follow-up; the written reply is attached to it"
	}
	return planFor(ctx, tx, svc, customer, ev.GetComplaintId(), int32(ev.GetSeverity()), none)
}

// PlanFollowUp plans the visit feedback asked for (a promised reply, another
// round until the customer is satisfied: seed 000, 004), placed by the contact policy.
func PlanFollowUp(ctx context.Context, tx pgx.Tx, ev *eventsv1.FollowUpRequested, now time.Time) (string, error) {
	due := now
	if ev.GetDueAt() != nil {
		due = ev.GetDueAt().AsTime()
	}
	deadline := due.Add(policy.DefaultWindow)
	if ev.GetDeadline() != nil {
		deadline = ev.GetDeadline().AsTime()
	}
	customerID := ev.GetCustomerId()
	if customerID == "" {
		customerID = ev.GetCustomer().GetId()
	}
	serviceID := ev.GetServiceId()
	if serviceID == "" {
		serviceID = "complaint:" + ev.GetComplaintId()
	}
	svc := policy.Service{Tenant: ev.GetTenantId(), ID: serviceID, Type: "followup", OrgUnit: ev.GetOrgUnit(), CompletedAt: now, CustomerID: customerID}
	var occ int
	if err := tx.QueryRow(ctx, `SELECT coalesce(max(occurrence) + 1, 0) FROM planned_visits WHERE tenant_id = $1 AND service_id = $2 AND policy_id = $3`,
		svc.Tenant, svc.ID, FollowUpPolicyID).Scan(&occ); err != nil {
		return "", fmt.Errorf("store: follow-up round: %w", err)
	}
	reason := "follow-up requested by feedback: " + ev.GetReason()
	if ev.GetPreviousVisitId() != "" {
		reason += " (after visit " + ev.GetPreviousVisitId() + ")"
	}
	v := policy.Visit{PolicyID: FollowUpPolicyID, Occurrence: occ, Channel: int32(ev.GetChannel()), Group: ev.GetGroup(),
		Nominal: due, DueAt: due, Deadline: deadline, Planned: true, SampleRate: 1, Reason: reason,
		Decisions: []policy.Decision{{Kind: policy.KindRule, Detail: reason + "; seed 004: go again until the customer is satisfied", At: due}}}
	if v.Channel == 0 {
		v.Channel = policy.ChannelPhone
	}
	// Seed 000 (property): from the second follow-up on a phone call is allowed, unless the
	// complaint is of the third (major) class: then the follow-up is made on site.
	var severity int32
	if ev.GetComplaintId() != "" {
		if err := tx.QueryRow(ctx, `SELECT coalesce(max(severity), 0) FROM planned_visits WHERE tenant_id = $1 AND complaint_id = $2`,
			svc.Tenant, ev.GetComplaintId()).Scan(&severity); err != nil {
			return "", fmt.Errorf("store: complaint severity: %w", err)
		}
		if severity == int32(typesv1.Severity_SEVERITY_MAJOR) && v.Channel == policy.ChannelPhone {
			v.Channel = policy.ChannelOnsite
			v.Decisions = append(v.Decisions, policy.Decision{Kind: policy.KindRule, Detail: "seed 000: a major complaint is followed up on site, not by phone"})
		}
	}
	rules, err := contactRules(ctx, tx, []string{svc.Tenant})
	if err != nil {
		return "", err
	}
	prefs, err := prefsFor(ctx, tx, []custKey{{svc.Tenant, customerID}})
	if err != nil {
		return "", err
	}
	if at, ds := rules[svc.Tenant].Place(due, v.Channel, prefs[custKey{svc.Tenant, customerID}], false); len(ds) > 0 {
		v.DueAt, v.Decisions = at, append(v.Decisions, ds...)
		if v.Deadline.Before(at) {
			v.Deadline = at.Add(deadline.Sub(due))
		}
	}
	if err := UpsertCustomer(ctx, tx, svc.Tenant, ev.GetCustomer(), 0, now); err != nil {
		return "", err
	}
	customer, err := protojson.Marshal(ev.GetCustomer())
	if err != nil {
		return "", fmt.Errorf("store: customer: %w", err)
	}
	id, _, err := insertVisit(ctx, tx, visitRow{v: v, svc: svc, customer: customer, status: StatusPlanned, complaintID: ev.GetComplaintId(), severity: severity})
	return id, err
}

// dueRow is a claimed visit.
type dueRow struct {
	due        *eventsv1.VisitDue
	customerID string
	step, occ  int
	nominal    time.Time
	deadline   time.Time
	channel    int32
	service    []byte
	holiday    bool
	draw, rate float64
	chosen     bool
}

// FireDue claims up to limit visits due at or before now (FOR UPDATE SKIP
// LOCKED, so replicas never fire the same visit) and, in one transaction,
// asks the contact policy about each: it fires (marked due, VisitDue through
// the outbox), moves (a window, quiet hours, a holiday or a cap; the reason is
// kept) or is suppressed (an opt-out, or a cap past the deadline; VisitCancelled).
// A fired or suppressed visit of a recurring step plans the next one. It
// returns how many visits it handled.
func (s *Store) FireDue(ctx context.Context, now time.Time, limit int) (int, error) {
	handled := 0
	err := pgx.BeginFunc(ctx, s.Pool, func(tx pgx.Tx) error {
		rows, err := tx.Query(ctx, `SELECT id, tenant_id, service_id, customer, customer_id, policy_id, policy_version, step, occurrence, channel, group_name,
  due_at, deadline, coalesce(nominal_at, due_at), org_unit, service_type, service_completed_at, service, holiday_step,
  complaint_id, severity, product_category, sample_draw, sample_rate, customer_chosen
FROM planned_visits WHERE status = 'planned' AND due_at <= $1
ORDER BY due_at LIMIT $2 FOR UPDATE SKIP LOCKED`, now, limit)
		if err != nil {
			return fmt.Errorf("select due: %w", err)
		}
		due, err := pgx.CollectRows(rows, scanDue)
		if err != nil {
			return fmt.Errorf("scan due: %w", err)
		}
		if len(due) == 0 {
			return nil
		}
		handled = len(due)
		tenants := map[string]bool{}
		keys := map[custKey]bool{}
		for _, d := range due {
			tenants[d.due.TenantId] = true
			if d.customerID != "" {
				keys[custKey{d.due.TenantId, d.customerID}] = true
			}
		}
		rules, err := contactRules(ctx, tx, mapKeys(tenants))
		if err != nil {
			return err
		}
		prefs, err := prefsFor(ctx, tx, mapKeys(keys))
		if err != nil {
			return err
		}
		history, err := contactHistory(ctx, tx, rules, prefs, now)
		if err != nil {
			return err
		}
		policies := map[string]*policy.Policy{}
		var fired []string
		for _, d := range due {
			k := custKey{d.due.TenantId, d.customerID}
			r := rules[d.due.TenantId]
			out := r.Check(now, contact.Pending{Channel: d.channel, Deadline: d.deadline, HolidayStep: d.holiday, CustomerChosen: d.chosen}, prefs[k], history[k])
			switch out.Action {
			case contact.Move:
				b, _ := json.Marshal(out.Decisions)
				if _, err := tx.Exec(ctx, `UPDATE planned_visits SET due_at = $2, deadline = greatest(deadline, $2), reason = $3, decisions = decisions || $4, updated_at = $5 WHERE id = $1`,
					d.due.VisitId, out.At, out.Reason, b, now); err != nil {
					return fmt.Errorf("move visit: %w", err)
				}
				continue
			case contact.Suppress:
				b, _ := json.Marshal(out.Decisions)
				if _, err := tx.Exec(ctx, `UPDATE planned_visits SET status = 'suppressed', reason = $2, decisions = decisions || $3, updated_at = $4 WHERE id = $1`,
					d.due.VisitId, out.Reason, b, now); err != nil {
					return fmt.Errorf("suppress visit: %w", err)
				}
				if err := addCancelled(ctx, tx, d.due.TenantId, d.due.VisitId, out.Reason, now); err != nil {
					return err
				}
			default:
				fired = append(fired, d.due.VisitId)
				history[k] = append(history[k], contact.Contact{Channel: d.channel, At: now})
				d.due.EventId = outbox.NewEventID()
				if _, err := outbox.Add(ctx, tx, outbox.Message{ID: d.due.EventId, Subject: stream.SubjectVisitDue, Payload: d.due}); err != nil {
					return err
				}
			}
			optedOut := out.Action == contact.Suppress && len(out.Decisions) > 0 && out.Decisions[0].Kind == policy.KindOptOut
			if len(d.service) > 0 && !optedOut {
				if err := planNext(ctx, tx, policies, d, r, prefs[k]); err != nil {
					return err
				}
			}
		}
		if len(fired) > 0 {
			if _, err := tx.Exec(ctx, `UPDATE planned_visits SET status = 'due', fired_at = $2 WHERE id = ANY($1)`, fired, now); err != nil {
				return fmt.Errorf("mark due: %w", err)
			}
		}
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("store: fire due visits: %w", err)
	}
	return handled, nil
}

func scanDue(r pgx.CollectableRow) (dueRow, error) {
	var (
		d                        dueRow
		v                        eventsv1.VisitDue
		customer                 []byte
		version, severity        int32
		dueAt, deadline, service time.Time
	)
	if err := r.Scan(&v.VisitId, &v.TenantId, &v.ServiceId, &customer, &d.customerID, &v.PolicyId, &version, &d.step, &d.occ, &d.channel, &v.Group,
		&dueAt, &deadline, &d.nominal, &v.OrgUnit, &v.ServiceType, &service, &d.service, &d.holiday,
		&v.ComplaintId, &severity, &v.ProductCategory, &d.draw, &d.rate, &d.chosen); err != nil {
		return d, err
	}
	v.Customer = &typesv1.Customer{}
	if len(customer) > 0 {
		if err := protojson.Unmarshal(customer, v.Customer); err != nil {
			return d, fmt.Errorf("customer of visit %s: %w", v.VisitId, err)
		}
	}
	v.PolicyVersion, v.Channel, v.Severity = version, typesv1.Channel(d.channel), typesv1.Severity(severity)
	v.DueAt, v.Deadline, v.ServiceCompletedAt = timestamppb.New(dueAt), timestamppb.New(deadline), timestamppb.New(service)
	d.deadline = deadline
	d.due = &v
	return d, nil
}

func mapKeys[K comparable](m map[K]bool) []K {
	out := make([]K, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	return out
}

// contactHistory loads the contacts that frequency caps look back over,
// only for tenants with caps and customers who dislike calls.
func contactHistory(ctx context.Context, tx pgx.Tx, rules map[string]contact.Rules, prefs map[custKey]contact.Prefs, now time.Time) (map[custKey][]contact.Contact, error) {
	out := map[custKey][]contact.Contact{}
	var ts, cs []string
	var back time.Duration
	for k, p := range prefs {
		r := rules[k.tenant]
		if len(r.Caps) == 0 && !p.DislikesCalls {
			continue
		}
		ts, cs = append(ts, k.tenant), append(cs, k.customer)
		back = max(back, r.MaxPer())
	}
	if len(ts) == 0 {
		return out, nil
	}
	rows, err := tx.Query(ctx, `SELECT v.tenant_id, v.customer_id, v.channel, v.fired_at FROM planned_visits v
JOIN unnest($1::text[], $2::text[]) AS k(t, c) ON v.tenant_id = k.t AND v.customer_id = k.c
WHERE v.status = 'due' AND v.fired_at > $3`, ts, cs, now.Add(-back))
	if err != nil {
		return nil, fmt.Errorf("store: contact history: %w", err)
	}
	var k custKey
	var c contact.Contact
	_, err = pgx.ForEachRow(rows, []any{&k.tenant, &k.customer, &c.Channel, &c.At}, func() error {
		out[k] = append(out[k], c)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("store: contact history: %w", err)
	}
	return out, nil
}

// planNext plans the next visit of a recurring series with the policy version the series came from.
func planNext(ctx context.Context, tx pgx.Tx, cache map[string]*policy.Policy, d dueRow, r contact.Rules, prefs contact.Prefs) error {
	key := fmt.Sprintf("%s@%d", d.due.PolicyId, d.due.PolicyVersion)
	p, ok := cache[key]
	if !ok {
		got, err := getPolicy(ctx, tx, d.due.TenantId, d.due.PolicyId, int(d.due.PolicyVersion))
		if err != nil && !errors.Is(err, ErrNotFound) {
			return err
		}
		if err == nil {
			p = &got
		}
		cache[key] = p
	}
	if p == nil || !p.Active {
		return nil
	}
	var svc policy.Service
	if err := json.Unmarshal(d.service, &svc); err != nil {
		return fmt.Errorf("store: service of visit %s: %w", d.due.VisitId, err)
	}
	prev := policy.Visit{PolicyID: p.ID, PolicyVersion: p.Version, Step: d.step, Occurrence: d.occ, Nominal: d.nominal, Draw: d.draw, SampleRate: d.rate}
	next, ok := engine.Following(*p, prev, svc, r, prefs)
	if !ok {
		return nil
	}
	customer, err := protojson.Marshal(d.due.Customer)
	if err != nil {
		return fmt.Errorf("store: customer: %w", err)
	}
	_, _, err = insertVisit(ctx, tx, visitRow{v: next, svc: svc, customer: customer, pol: p, status: StatusPlanned,
		complaintID: d.due.ComplaintId, severity: int32(d.due.Severity)})
	return err
}

// PlanUnreachable plans the visits of policies triggered by a failed visit
// (service type visit_unreachable; seed 000 auto: "invite again if the first
// invitation failed"). The failed visit becomes a service completed when it
// failed, carrying the service it followed and, as attributes, the failed
// visit's policy name, step, id and service type. The failure is recorded on
// the visit. An unknown visit is refused.
func PlanUnreachable(ctx context.Context, tx pgx.Tx, ev *eventsv1.VisitUnreachable, now time.Time) (int, error) {
	tenant, visitID := ev.GetTenantId(), ev.GetVisitId()
	var (
		serviceID, customerID, policyID, orgUnit, serviceType, category, complaintID string
		step                                                                         int
		severity                                                                     int32
		completed                                                                    time.Time
		customer, svcJSON, recorded                                                  []byte
	)
	err := tx.QueryRow(ctx, `SELECT v.service_id, v.customer_id, v.policy_id, v.step, v.org_unit, v.service_type, v.product_category,
  v.complaint_id, v.severity, v.service_completed_at, v.customer, v.service, s.spec
FROM planned_visits v LEFT JOIN services s ON s.tenant_id = v.tenant_id AND s.service_id = v.service_id
WHERE v.tenant_id = $1 AND v.id = $2`, tenant, visitID).Scan(&serviceID, &customerID, &policyID, &step, &orgUnit, &serviceType, &category,
		&complaintID, &severity, &completed, &customer, &svcJSON, &recorded)
	if errors.Is(err, pgx.ErrNoRows) {
		return 0, fmt.Errorf("%w: visit %s of tenant %s", ErrNotFound, visitID, tenant)
	}
	if err != nil {
		return 0, fmt.Errorf("store: unreachable visit: %w", err)
	}
	orig := policy.Service{Tenant: tenant, ID: serviceID, Type: serviceType, OrgUnit: orgUnit, CompletedAt: completed,
		CustomerID: customerID, ProductCategory: category, Severity: severityNames[typesv1.Severity(severity)]}
	for _, b := range [][]byte{svcJSON, recorded} {
		if len(b) > 0 {
			if err := json.Unmarshal(b, &orig); err != nil {
				return 0, fmt.Errorf("store: service of visit %s: %w", visitID, err)
			}
			break
		}
	}
	if orig.CustomerID == "" {
		orig.CustomerID = customerID
	}
	name := policyID
	if policyID != FollowUpPolicyID {
		if p, err := getPolicy(ctx, tx, tenant, policyID, 0); err == nil {
			name = p.Name
		} else if !errors.Is(err, ErrNotFound) {
			return 0, err
		}
	}
	at := now
	if ev.GetAt() != nil {
		at = ev.GetAt().AsTime()
	}
	why := fmt.Sprintf("unreachable after %d attempts: %s", ev.GetAttempts(), ev.GetReason())
	if _, err := tx.Exec(ctx, `UPDATE planned_visits SET decisions = decisions || $3, updated_at = $4 WHERE tenant_id = $1 AND id = $2`,
		tenant, visitID, decisionJSON(policy.KindUnreachable, why, at), at); err != nil {
		return 0, fmt.Errorf("store: record unreachable: %w", err)
	}
	if customer == nil {
		customer = []byte("{}")
	}
	svc := policy.Unreachable(orig, name, step, visitID, at)
	return planFor(ctx, tx, svc, customer, complaintID, severity, "")
}
