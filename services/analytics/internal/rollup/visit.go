package rollup

import (
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	eventsv1 "github.com/huifang/huifang/proto/huifang/events/v1"
	typesv1 "github.com/huifang/huifang/proto/huifang/types/v1"

	"github.com/huifang/huifang/pkg/invalid"
	"github.com/huifang/huifang/pkg/tenant"
)

// Standard48h is seed 003's limit: follow up within 48 hours after a service.
const Standard48h = 48 * time.Hour

// Visit is what analytics knows of one visit: the union of its events.
type Visit struct {
	// Tenant and VisitID are left out of the stored state when empty
	// (the ledger's columns hold them).
	Tenant  string `json:"tenant,omitempty"`
	VisitID string `json:"visit_id,omitempty"`
	Dims
	ServiceID string `json:"service_id,omitempty"`
	// CustomerID is the customer the visit follows up (for customer coverage).
	CustomerID         string    `json:"customer_id,omitempty"`
	DueAt              time.Time `json:"due_at,omitzero"`
	Deadline           time.Time `json:"deadline,omitzero"`
	ServiceCompletedAt time.Time `json:"service_completed_at,omitzero"`
	// LoggedAt is when the first record of the visit says the visit
	// happened (Happened: VisitLogged.occurred_at, else logged_at); the
	// JSON name stays for the visits kept before occurred_at existed.
	LoggedAt    time.Time `json:"logged_at,omitzero"`
	Planned     bool      `json:"planned,omitempty"`
	Due         bool      `json:"due,omitempty"`
	Cancelled   bool      `json:"cancelled,omitempty"`
	Unreachable bool      `json:"unreachable,omitempty"`
	Rated       bool      `json:"rated,omitempty"`
	// Late: the scheduler fired the visit after its deadline (VisitDue.late).
	Late      bool `json:"late,omitempty"`
	Attempted bool `json:"attempted,omitempty"`
	Answered  bool `json:"answered,omitempty"`
	// Seen holds the ids of the events that moved the visit without an
	// inbox row: the consumer's bookkeeping, not the visit's (Apply leaves
	// it alone, no figure reads it).
	Seen Seen `json:"seen,omitzero"`
}

// Seen is the first VisitPlanned and the first VisitDue applied to a
// visit, by event id (empty for one applied before the ids were kept): a
// redelivery of either finds its id here and changes nothing.
type Seen struct {
	Planned string `json:"planned,omitempty"`
	Due     string `json:"due,omitempty"`
}

// Logged reports whether a record of the visit was logged.
func (v Visit) Logged() bool { return !v.LoggedAt.IsZero() }

// Contribution is what the visit adds to the rollups, all on one day: the
// UTC day it fell due, or the day it was logged when no due time is known.
// A visit known only from attempts or a cancellation adds nothing yet.
//
//   - due: planned or due and not cancelled, or logged (a made visit was due)
//   - done: logged; returned: logged with a rated answer
//   - with_deadline, on_time: due with a policy deadline; logged by it and
//     not fired after it (a visit fired late is never on time, issue 16)
//   - late: due with a policy deadline and fired after it (VisitDue.late)
//   - in_time: logged by the deadline or logged without one
//   - with_base, within_48h: due with a known service time; logged within 48 h of it (seed 003)
//   - unreachable: unreachable and never logged
//   - attempted, contacted: any attempt; an answered attempt
func (v Visit) Contribution() []Delta { return v.AppendContribution(nil) }

// AppendContribution appends the visit's Contribution to out.
func (v Visit) AppendContribution(out []Delta) []Delta {
	day, ok := v.countDay()
	if !ok {
		return out
	}
	logged := v.Logged()
	add := func(metric string) {
		out = append(out, Delta{Key: Key{Tenant: v.Tenant, Metric: metric, Day: day, Dims: v.Dims}, N: 1})
	}
	add(MetricDue)
	if logged {
		add(MetricDone)
		if v.Rated {
			add(MetricReturned)
		}
	}
	if logged && (v.Deadline.IsZero() || !v.LoggedAt.After(v.Deadline)) {
		add(MetricInTime)
	}
	if !v.Deadline.IsZero() {
		add(MetricWithDeadline)
		if logged && !v.LoggedAt.After(v.Deadline) && !v.Late {
			add(MetricOnTime)
		}
		if v.Late {
			add(MetricLate)
		}
	}
	if !v.ServiceCompletedAt.IsZero() {
		add(MetricWithBase)
		if logged && v.LoggedAt.Sub(v.ServiceCompletedAt) <= Standard48h {
			add(MetricWithin48h)
		}
	}
	if v.Unreachable && !logged {
		add(MetricUnreachable)
	}
	if v.Attempted {
		add(MetricAttempted)
		if v.Answered {
			add(MetricContacted)
		}
	}
	return out
}

// countDay returns the UTC day (midnight) the visit counts on, and false
// when it adds nothing: the rule Contribution starts with (eligible, and a
// due or logged time known), without building its deltas.
func (v Visit) countDay() (time.Time, bool) {
	if !v.Logged() && (v.Cancelled || !(v.Planned || v.Due)) {
		return time.Time{}, false
	}
	day := v.DueAt
	if day.IsZero() {
		day = v.LoggedAt
	}
	if day.IsZero() {
		return time.Time{}, false
	}
	return Day(day), true
}

// VisitEvent is one event about a visit, decoded.
type VisitEvent interface {
	GetTenantId() string
	GetVisitId() string
}

// VisitRef returns the tenant and visit id an event is about, refusing it
// without a visit id.
func VisitRef(ev VisitEvent) (tenantID, visitID string, err error) {
	if ev.GetVisitId() == "" {
		return "", "", invalid.New("visit_id", "is required")
	}
	return tenant.Of(ev), ev.GetVisitId(), nil
}

func ts(t *timestamppb.Timestamp) time.Time {
	if t == nil || t.CheckValid() != nil {
		return time.Time{}
	}
	return t.AsTime().UTC()
}

func channel(c typesv1.Channel) string {
	if c == typesv1.Channel_CHANNEL_UNSPECIFIED {
		return ""
	}
	return c.String()
}

func setTime(dst *time.Time, t *timestamppb.Timestamp) {
	if tt := ts(t); !tt.IsZero() {
		*dst = tt
	}
}

// Apply returns v changed by ev, one of the visit events. Dimensions an
// event carries overwrite the known ones; flags only switch on, so a
// redelivered or late event leaves the visit as it is.
func Apply(v Visit, ev VisitEvent) Visit {
	switch e := ev.(type) {
	case *eventsv1.VisitPlanned:
		v.Planned = true
		set(&v.OrgUnit, e.GetOrgUnit())
		set(&v.PolicyID, e.GetPolicyId())
		set(&v.ServiceType, e.GetServiceType())
		set(&v.Channel, channel(e.GetChannel()))
		set(&v.ServiceID, e.GetServiceId())
		set(&v.CustomerID, e.GetCustomerId())
		setTime(&v.DueAt, e.GetDueAt())
		setTime(&v.Deadline, e.GetDeadline())
	case *eventsv1.VisitDue:
		v.Due = true
		v.Late = v.Late || e.GetLate()
		set(&v.CustomerID, e.GetCustomer().GetId())
		set(&v.OrgUnit, e.GetOrgUnit())
		set(&v.PolicyID, e.GetPolicyId())
		set(&v.ServiceType, e.GetServiceType())
		set(&v.Channel, channel(e.GetChannel()))
		set(&v.ServiceID, e.GetServiceId())
		setTime(&v.DueAt, e.GetDueAt())
		setTime(&v.Deadline, e.GetDeadline())
		setTime(&v.ServiceCompletedAt, e.GetServiceCompletedAt())
	case *eventsv1.VisitCancelled:
		v.Cancelled = true
	case *eventsv1.VisitAssigned:
		set(&v.AgentID, e.GetAgentId())
	case *eventsv1.VisitAttempted:
		v.Attempted = true
		if e.GetDisposition() == typesv1.Disposition_DISPOSITION_ANSWERED || e.GetDisposition() == typesv1.Disposition_DISPOSITION_DELIVERED {
			v.Answered = true
		}
		set(&v.AgentID, e.GetAgentId())
		set(&v.OrgUnit, e.GetOrgUnit())
		set(&v.CustomerID, e.GetCustomerId())
		set(&v.Channel, channel(e.GetChannel()))
		setTime(&v.Deadline, e.GetDeadline())
	case *eventsv1.VisitUnreachable:
		v.Unreachable = true
		set(&v.OrgUnit, e.GetOrgUnit())
		set(&v.CustomerID, e.GetCustomerId())
	case *eventsv1.VisitLogged:
		if at := Happened(e); !at.IsZero() && (v.LoggedAt.IsZero() || at.Before(v.LoggedAt)) {
			v.LoggedAt = at
		}
		for _, a := range e.GetAnswers() {
			if a.GetRating() != typesv1.Rating_RATING_UNSPECIFIED {
				v.Rated = true
			}
		}
		set(&v.OrgUnit, e.GetOrgUnit())
		set(&v.PolicyID, e.GetPolicyId())
		set(&v.ServiceType, e.GetServiceType())
		set(&v.ProductCategory, e.GetProductCategory())
		set(&v.Channel, channel(e.GetChannel()))
		set(&v.AgentID, e.GetAgentId())
		set(&v.ServiceID, e.GetServiceId())
		set(&v.CustomerID, e.GetCustomerId())
		setTime(&v.DueAt, e.GetDueAt())
		setTime(&v.Deadline, e.GetDeadline())
		setTime(&v.ServiceCompletedAt, e.GetServiceCompletedAt())
	}
	return v
}

// Timestamp returns t in UTC, or the zero time when t is unset or invalid.
func Timestamp(t *timestamppb.Timestamp) time.Time { return ts(t) }
