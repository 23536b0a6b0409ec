package rollup

import (
	"time"

	eventsv1 "github.com/huifang/huifang/proto/huifang/events/v1"

	"github.com/huifang/huifang/pkg/invalid"
	"github.com/huifang/huifang/pkg/tenant"
)

// ImprovementWindow is seed 003's: an improvement plan made and carried out
// within 30 days of the problem found.
const ImprovementWindow = 30 * 24 * time.Hour

// Complaint is what analytics knows of one complaint.
type Complaint struct {
	Tenant      string `json:"tenant"`
	ComplaintID string `json:"complaint_id"`
	Dims
	Department  string    `json:"department,omitempty"`
	Severity    string    `json:"severity,omitempty"`
	EscalatedAt time.Time `json:"escalated_at,omitzero"`
	Deadline    time.Time `json:"deadline,omitzero"`
	ResolvedAt  time.Time `json:"resolved_at,omitzero"`
	// AcknowledgedAt is the first time the owning department took the complaint.
	AcknowledgedAt time.Time `json:"acknowledged_at,omitzero"`
	ClosedAt       time.Time `json:"closed_at,omitzero"`
	Outcome        string    `json:"outcome,omitempty"`
	Reopened       int       `json:"reopened,omitempty"`
	// PlanSetAt is when the improvement plan was first set (seed 003);
	// Measures how many measures it has, MeasuresDone how many were carried
	// out, LastDoneAt the latest time one was.
	PlanSetAt    time.Time `json:"plan_set_at,omitzero"`
	Measures     int       `json:"measures,omitempty"`
	MeasuresDone int       `json:"measures_done,omitempty"`
	LastDoneAt   time.Time `json:"last_done_at,omitzero"`
}

// Improved reports seed 003's 改进落实率 for the complaint: its plan was
// set, and every measure carried out, within ImprovementWindow of escalation.
func (c Complaint) Improved() bool {
	in := func(t time.Time) bool { return !t.IsZero() && !t.After(c.EscalatedAt.Add(ImprovementWindow)) }
	return c.Measures > 0 && c.MeasuresDone >= c.Measures && in(c.PlanSetAt) && in(c.LastDoneAt)
}

// Open reports whether the complaint still waits for a resolution.
func (c Complaint) Open() bool { return c.ResolvedAt.IsZero() && c.ClosedAt.IsZero() }

// Contribution is what the complaint adds on the UTC day it was escalated:
// escalated; resolved (total: seconds to resolution); resolved by its
// deadline; improved (seed 003: plan set and carried out within 30 days); closed;
// acknowledged (total: seconds from escalation to the first acknowledgement).
// A reopened complaint counts as resolved only after its next resolution.
func (c Complaint) Contribution() []Delta { return c.AppendContribution(nil) }

// AppendContribution appends the complaint's Contribution to out.
func (c Complaint) AppendContribution(out []Delta) []Delta {
	if c.EscalatedAt.IsZero() {
		return out
	}
	add := func(metric string, total int64) {
		out = append(out, Delta{Key: Key{Tenant: c.Tenant, Metric: metric, Day: Day(c.EscalatedAt), Dims: c.Dims}, N: 1, Total: total})
	}
	add(MetricComplaint, 0)
	if !c.ResolvedAt.IsZero() {
		took := c.ResolvedAt.Sub(c.EscalatedAt)
		add(MetricResolved, int64(max(took, 0)/time.Second))
		if !c.Deadline.IsZero() && !c.ResolvedAt.After(c.Deadline) {
			add(MetricResolvedOnTime, 0)
		}
	}
	if c.Improved() {
		add(MetricImproved, 0)
	}
	if !c.ClosedAt.IsZero() {
		add(MetricComplaintClosed, 0)
	}
	if !c.AcknowledgedAt.IsZero() {
		add(MetricAcknowledged, int64(max(c.AcknowledgedAt.Sub(c.EscalatedAt), 0)/time.Second))
	}
	return out
}

// ComplaintEvent is one event about a complaint.
type ComplaintEvent interface {
	GetTenantId() string
	GetComplaintId() string
}

// ComplaintRef returns the tenant and complaint id, refusing an event without an id.
func ComplaintRef(ev ComplaintEvent) (tenantID, id string, err error) {
	if ev.GetComplaintId() == "" {
		return "", "", invalid.New("complaint_id", "is required")
	}
	return tenant.Of(ev), ev.GetComplaintId(), nil
}

// ApplyComplaint returns c changed by ev. The first escalation fixes the
// day; a re-escalation (level > 0) changes only the deadline.
func ApplyComplaint(c Complaint, ev ComplaintEvent) Complaint {
	switch e := ev.(type) {
	case *eventsv1.ComplaintEscalated:
		if c.EscalatedAt.IsZero() {
			setTime(&c.EscalatedAt, e.GetEscalatedAt())
		}
		set(&c.OrgUnit, e.GetOrgUnit())
		set(&c.Category, e.GetCategory())
		set(&c.ProductCategory, e.GetProductCategory())
		set(&c.AgentID, e.GetOwnerAgentId())
		set(&c.Department, e.GetDepartment())
		set(&c.Severity, e.GetSeverity())
		setTime(&c.Deadline, e.GetDeadline())
	case *eventsv1.ComplaintAcknowledged:
		if at := ts(e.GetAt()); !at.IsZero() && (c.AcknowledgedAt.IsZero() || at.Before(c.AcknowledgedAt)) {
			c.AcknowledgedAt = at
		}
	case *eventsv1.ComplaintResolved:
		setTime(&c.ResolvedAt, e.GetResolvedAt())
		if c.EscalatedAt.IsZero() {
			setTime(&c.EscalatedAt, e.GetEscalatedAt())
		}
		set(&c.OrgUnit, e.GetOrgUnit())
		set(&c.Category, e.GetCategory())
		set(&c.Department, e.GetDepartment())
	case *eventsv1.ComplaintReopened:
		if at := ts(e.GetAt()); !at.IsZero() && !at.Before(c.ResolvedAt) {
			c.ResolvedAt = time.Time{}
			c.Reopened++
		}
	case *eventsv1.ImprovementPlanSet:
		if c.EscalatedAt.IsZero() {
			setTime(&c.EscalatedAt, e.GetEscalatedAt())
		}
		setTime(&c.PlanSetAt, e.GetSetAt())
		c.Measures, c.MeasuresDone, c.LastDoneAt = int(e.GetMeasures()), 0, time.Time{}
	case *eventsv1.ImprovementMeasureCompleted:
		if c.EscalatedAt.IsZero() {
			setTime(&c.EscalatedAt, e.GetEscalatedAt())
		}
		c.Measures = max(c.Measures, int(e.GetMeasures()))
		c.MeasuresDone = max(c.MeasuresDone, int(e.GetMeasuresDone()))
		if at := ts(e.GetCompletedAt()); at.After(c.LastDoneAt) {
			c.LastDoneAt = at
		}
	case *eventsv1.ComplaintClosed:
		setTime(&c.ClosedAt, e.GetAt())
		set(&c.Outcome, e.GetOutcome())
		if c.EscalatedAt.IsZero() {
			setTime(&c.EscalatedAt, e.GetEscalatedAt())
		}
		set(&c.OrgUnit, e.GetOrgUnit())
		set(&c.Category, e.GetCategory())
		if c.ResolvedAt.IsZero() && e.GetOutcome() == "satisfied" {
			// Closed with a satisfied customer: resolved at the latest then.
			setTime(&c.ResolvedAt, e.GetAt())
		}
	}
	return c
}
