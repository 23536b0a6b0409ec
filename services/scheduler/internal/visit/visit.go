// Package visit holds the planned visit as the scheduler keeps it, a
// durable timer with everything it needs to fire, and the rules of its
// life: planned, then due (fired), suppressed or cancelled; moved by the
// contact policy or to a time the customer chose; ended by a stop
// condition, an opt-out or by hand; failed when firing it failed for a
// reason of its own, until an operator retries or cancels it. Every change appends the decision that
// explains it. It does no I/O.
package visit

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/huifang/huifang/services/scheduler/internal/contact"
	"github.com/huifang/huifang/services/scheduler/internal/policy"
)

// Statuses.
const (
	StatusPlanned    = "planned"
	StatusDue        = "due"
	StatusSuppressed = "suppressed"
	StatusCancelled  = "cancelled"
	// StatusFailed: firing the visit failed for a reason of its own (Reason
	// says which, FailedAt when); the firing loop no longer claims it.
	StatusFailed = "failed"
)

// Statuses lists every status, for filters.
var Statuses = []string{StatusPlanned, StatusDue, StatusSuppressed, StatusCancelled, StatusFailed}

// ErrState: the visit's status does not allow the change.
var ErrState = errors.New("the visit's status does not allow this")

// Visit is a planned follow-up as the scheduler keeps it. The embedded
// policy.Visit is what the policy planned (policy, step, occurrence,
// channel, group, nominal and due time, deadline, sample draw and rate,
// reason, decisions; its Planned flag only matters to New, Status says the
// rest); the other fields say what it follows and how it may change.
type Visit struct {
	policy.Visit
	ID         string
	Tenant     string
	ServiceID  string
	CustomerID string
	Status     string
	// Customer is the customer snapshot of the event that planned the visit
	// (protobuf JSON), carried on to VisitDue.
	Customer           []byte
	OrgUnit            string
	ServiceType        string
	ServiceCompletedAt time.Time
	ProductCategory    string
	// ComplaintID and Severity: set on a complaint's confirmation and follow-ups.
	ComplaintID string
	Severity    int32
	// Service is the service as the planner saw it, kept on a recurring
	// step's visits to plan the next one (nil otherwise).
	Service *policy.Service
	// The stop conditions of the policy version: service types that end the
	// visit when the customer comes in, and whether an answered visit ends
	// its series.
	StopTypes    []string
	StopOnAnswer bool
	// HolidayStep: the step falls on dates of the tenant's calendar, so the
	// contact policy does not move it off a holiday.
	HolidayStep bool
	// CustomerChosen: the customer asked for DueAt (Reschedule).
	CustomerChosen bool
	FiredAt        time.Time
	UpdatedAt      time.Time
	// FailedAt: when firing the visit last failed (zero if it never did).
	FailedAt time.Time
	// Forecast: for a planned visit, what the caps will do to it when it
	// falls due as the contacts stand now (contact.Rules.Forecast); nil when
	// it fires as planned or nobody asked. Not stored.
	Forecast *contact.Outcome
}

// ForecastWords says what Forecast foresees: "suppressed" or "moved" and
// why, or "" when the visit fires as planned.
func (v Visit) ForecastWords() (what, why string) {
	if v.Forecast == nil {
		return "", ""
	}
	switch v.Forecast.Action {
	case contact.Suppress:
		return "suppressed", "will be suppressed when due: " + v.Forecast.Reason
	case contact.Move:
		return "moved", "will be " + v.Forecast.Reason
	}
	return "", ""
}

// New is the visit a policy (nil for a requested follow-up) planned for a
// service: planned, or kept as suppressed when the policy did not plan it.
func New(id string, v policy.Visit, s policy.Service, p *policy.Policy, customer []byte, complaintID string, severity int32) Visit {
	out := Visit{
		Visit: v, ID: id, Tenant: s.Tenant, ServiceID: s.ID, CustomerID: s.CustomerID, Status: StatusPlanned,
		Customer: customer, OrgUnit: s.OrgUnit, ServiceType: s.Type, ServiceCompletedAt: s.CompletedAt,
		ProductCategory: s.ProductCategory, ComplaintID: complaintID, Severity: severity,
	}
	if !v.Planned {
		out.Status = StatusSuppressed
	}
	if p != nil {
		if v.Step < len(p.Steps) && p.Steps[v.Step].Recurring() {
			svc := s
			out.Service = &svc
			out.HolidayStep = p.Steps[v.Step].CalendarStep()
		}
		out.StopTypes, out.StopOnAnswer = p.Stop.ServiceTypes, p.Stop.Answered
	}
	return out
}

// Pending is what the contact policy's check needs of the visit.
func (v Visit) Pending() contact.Pending {
	return contact.Pending{Channel: v.Channel, Deadline: v.Deadline, HolidayStep: v.HolidayStep, CustomerChosen: v.CustomerChosen}
}

// Due applies the contact policy's verdict when the visit fell due at now:
// it fires (due), moves, or is suppressed, and says why. A visit that fires
// after its deadline keeps the deadline and is late: a late decision says
// by how much, and VisitDue says late (issue 16).
func (v *Visit) Due(out contact.Outcome, now time.Time) {
	out.Apply(&v.Visit)
	switch out.Action {
	case contact.Fire:
		v.Status, v.FiredAt = StatusDue, now
		if v.Late() {
			v.Decisions = append(v.Decisions, policy.LateDecision(now, v.Deadline, "fired at"))
		}
	case contact.Move:
		v.UpdatedAt = now
	case contact.Suppress:
		v.Status, v.UpdatedAt = StatusSuppressed, now
	}
}

// Late tells whether the visit is late for its deadline: it fell due
// after it, or (not fired yet) is due after it.
func (v Visit) Late() bool {
	if !v.FiredAt.IsZero() {
		return !v.Deadline.IsZero() && v.FiredAt.After(v.Deadline)
	}
	return v.Visit.Late()
}

// StopCameIn ends the visit when the customer came in for s and the
// visit's policy version stops then (stop condition service_types: a later
// service of one of its types by the same customer); it tells whether it did.
func (v *Visit) StopCameIn(s policy.Service) bool {
	if !(policy.Stop{ServiceTypes: v.StopTypes}).CameIn(v.ServiceCompletedAt, s) {
		return false
	}
	return v.stop(policy.KindStop, "stopped: the customer came in ("+s.Type+" "+s.ID+")", s.CompletedAt)
}

// StopOptedOut ends the visit when it is on the channel the customer opted
// out of; it tells whether it did.
func (v *Visit) StopOptedOut(channel int32, at time.Time) bool {
	if v.Channel != channel {
		return false
	}
	return v.stop(policy.KindOptOut, "customer opted out of "+policy.ChannelName(channel), at)
}

// StopAnswered ends the visit when the customer answered a visit of its
// series (answered) and the series' policy stops when answered (stop
// condition answered); it tells whether it did.
func (v *Visit) StopAnswered(answered Visit, at time.Time) bool {
	if !answered.StopOnAnswer || v.ServiceID != answered.ServiceID || v.PolicyID != answered.PolicyID || v.Tenant != answered.Tenant {
		return false
	}
	return v.stop(policy.KindStop, "stopped: the customer answered visit "+answered.ID, at)
}

// stop ends a planned visit at at, with the decision of kind (stop or
// opt_out) and the reason; a visit no longer planned is left alone.
func (v *Visit) stop(kind, reason string, at time.Time) bool {
	if v.Status != StatusPlanned {
		return false
	}
	v.Status, v.Reason, v.UpdatedAt = StatusCancelled, reason, at
	v.Decisions = append(v.Decisions, policy.Decision{Kind: kind, Detail: reason, At: at})
	return true
}

// MaxFailure is how much of a firing error a failed visit keeps.
const MaxFailure = 1000

// Fail records that firing the visit at now failed for a reason of its own
// (why: the error): it is failed, no longer fired, until an operator
// retries (Reschedule) or cancels it.
func (v *Visit) Fail(why string, now time.Time) {
	why = "firing failed: " + clean(why)
	v.Status, v.Reason, v.FailedAt, v.UpdatedAt = StatusFailed, why, now, now
	v.Decisions = append(v.Decisions, policy.Decision{Kind: policy.KindFireFailed, Detail: why, At: now})
}

// clean makes an error text fit to store: valid UTF-8 without NUL (which
// Postgres text and jsonb refuse), at most MaxFailure bytes.
func clean(s string) string {
	s = strings.ReplaceAll(strings.ToValidUTF8(s, "\uFFFD"), "\x00", "")
	if len(s) > MaxFailure {
		s = strings.ToValidUTF8(s[:MaxFailure], "") + "…"
	}
	return s
}

// Reschedule moves a planned visit to the time the customer asked for; the
// deadline moves with it, and the contact policy will not move it again.
// A failed visit is retried instead (Retry).
func (v *Visit) Reschedule(at time.Time, reason string, now time.Time) error {
	if v.Status == StatusFailed {
		v.Retry(at, reason, now)
		return nil
	}
	if v.Status != StatusPlanned {
		return fmt.Errorf("%w: it is %s, only a planned or failed visit can be rescheduled", ErrState, v.Status)
	}
	why := "rescheduled to " + at.UTC().Format(time.RFC3339) + ": the customer chose this time (" + reason +
		"); contact windows, quiet hours, holidays and caps will not move it"
	v.Deadline = at.Add(v.Deadline.Sub(v.DueAt))
	v.DueAt, v.Reason, v.UpdatedAt, v.CustomerChosen = at, why, now, true
	v.Decisions = append(v.Decisions, policy.Decision{Kind: policy.KindReschedule, Detail: why, At: now})
	return nil
}

// Remileage moves a planned visit to where a later odometer reading puts
// it (n: engine.Remileage; its decisions say why), at the reading's time
// at: due time, policy time and deadline are n's. A visit the customer
// chose a time for, or no longer planned, is left alone; it tells whether
// it moved.
func (v *Visit) Remileage(n policy.Visit, at time.Time) bool {
	if v.Status != StatusPlanned || v.CustomerChosen {
		return false
	}
	v.Nominal, v.DueAt, v.Deadline, v.Reason, v.UpdatedAt = n.Nominal, n.DueAt, n.Deadline, n.Reason, at
	v.Decisions = append(v.Decisions, n.Decisions...)
	return true
}

// Retry puts a failed visit back to planned at at, by an operator's hand
// (reason: why it may fire now): the deadline moves with it, and the
// contact policy applies again when it falls due (the customer did not
// choose this time). The failure stays in the decisions and FailedAt.
func (v *Visit) Retry(at time.Time, reason string, now time.Time) {
	why := "retried by an operator, due " + at.UTC().Format(time.RFC3339) + ": " + reason
	v.Deadline = at.Add(v.Deadline.Sub(v.DueAt))
	v.Status, v.DueAt, v.Reason, v.UpdatedAt = StatusPlanned, at, why, now
	v.Decisions = append(v.Decisions, policy.Decision{Kind: policy.KindRetry, Detail: why, At: now})
}

// Cancel cancels a planned, due or failed visit by hand.
func (v *Visit) Cancel(reason string, now time.Time) error {
	if v.Status != StatusPlanned && v.Status != StatusDue && v.Status != StatusFailed {
		return fmt.Errorf("%w: it is %s, only a planned, due or failed visit can be cancelled", ErrState, v.Status)
	}
	why := "cancelled: " + reason
	v.Status, v.Reason, v.UpdatedAt = StatusCancelled, why, now
	v.Decisions = append(v.Decisions, policy.Decision{Kind: policy.KindCancel, Detail: why, At: now})
	return nil
}

// Unreachable records that dispatch could not reach the customer (VisitUnreachable).
func (v *Visit) Unreachable(attempts int32, reason string, at time.Time) {
	why := fmt.Sprintf("unreachable after %d attempts: %s", attempts, reason)
	v.UpdatedAt = at
	v.Decisions = append(v.Decisions, policy.Decision{Kind: policy.KindUnreachable, Detail: why, At: at})
}
