// Package complaint runs the closed loop of a complaint (seeds 000, 001,
// 002, 003, 004): which complaints a follow-up record opens and which
// department owns each, and how a complaint moves from open through
// acknowledged and resolved to closed, reopening and escalating one level
// whenever the customer is still unsatisfied or a deadline passes. It does
// no I/O.
package complaint

import (
	"fmt"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	eventsv1 "github.com/huifang/huifang/proto/huifang/events/v1"
	feedbackv1 "github.com/huifang/huifang/proto/huifang/feedback/v1"
	typesv1 "github.com/huifang/huifang/proto/huifang/types/v1"

	"github.com/huifang/huifang/services/feedback/internal/record"
	"github.com/huifang/huifang/services/feedback/internal/visit"
)

// Categories with a rule of their own.
const (
	CategoryProductQuality = "product_quality"
	CategoryServiceQuality = "service_quality"
	// CategoryUnsatisfied is the complaint opened for an unsatisfied overall
	// rating that came with no problem (seed 000, auto dealer).
	CategoryUnsatisfied = "unsatisfied"
)

// Departments that own complaints by default.
const (
	DepartmentRnDProduction  = "rnd_production"
	DepartmentAfterSales     = "after_sales"
	DepartmentServiceManager = "service_manager"
)

// Severities (seed 000: ordinary, urgent 紧要, major 重点), lowest first.
const (
	SeverityGeneral = "general"
	SeverityUrgent  = "urgent"
	SeverityMajor   = record.MajorSeverity
)

var severities = []string{SeverityGeneral, SeverityUrgent, SeverityMajor}

// Statuses.
const (
	StatusOpen         = "open"
	StatusAcknowledged = "acknowledged"
	StatusResolved     = "resolved"
	StatusClosed       = "closed"
)

// Outcomes of a closed complaint.
const (
	OutcomeSatisfied       = "satisfied"
	OutcomeClosedByManager = "closed_by_manager"
	// OutcomeWrittenReply: a complaint that needs no follow-up (anonymous,
	// or only a written reply was requested, seed 000) is closed when it is
	// resolved with its written reply.
	OutcomeWrittenReply = "written_reply"
)

// Kinds of history steps.
const (
	StepOpened       = "opened"
	StepAcknowledged = "acknowledged"
	StepResolved     = "resolved"
	StepReopened     = "reopened"
	StepEscalated    = "escalated"
	StepClosed       = "closed"
	StepLetter       = "letter"
	// StepRaisedAgain: the same customer raised the same problem again
	// while the complaint was still open; it is recorded once (seeds 000, 002).
	StepRaisedAgain = "raised_again"
)

// DefaultDeadline is the 48 hours of seed 003's quality standard.
const DefaultDeadline = 48 * time.Hour

// levelOf returns the rank of a severity, -1 when unknown.
func levelOf(severity string) int {
	for i, s := range severities {
		if s == severity {
			return i
		}
	}
	return -1
}

// Raise returns the severity one step above s (major stays major): each
// escalation hands the complaint one rank up, as seed 000 has ordinary
// complaints followed up by an assistant, urgent ones by the supervisor
// and major ones by the company manager.
func Raise(s string) string {
	if i := levelOf(s); i >= 0 && i+1 < len(severities) {
		return severities[i+1]
	}
	return SeverityMajor
}

// SeverityName returns the name of a proto severity, "" for unspecified.
func SeverityName(s typesv1.Severity) string {
	switch s {
	case typesv1.Severity_SEVERITY_GENERAL:
		return SeverityGeneral
	case typesv1.Severity_SEVERITY_URGENT:
		return SeverityUrgent
	case typesv1.Severity_SEVERITY_MAJOR:
		return SeverityMajor
	}
	return ""
}

// SeverityEnum returns the proto severity of a name.
func SeverityEnum(s string) typesv1.Severity {
	switch s {
	case SeverityGeneral:
		return typesv1.Severity_SEVERITY_GENERAL
	case SeverityUrgent:
		return typesv1.Severity_SEVERITY_URGENT
	case SeverityMajor:
		return typesv1.Severity_SEVERITY_MAJOR
	}
	return typesv1.Severity_SEVERITY_UNSPECIFIED
}

// unsatisfiedDescription describes an unsatisfied rating that came without
// comments, so that no complaint is opened without a description.
const unsatisfiedDescription = "the customer rated the service unsatisfied and gave no reason"

// Opened is a new complaint and how long its owner has at each level.
type Opened struct {
	Complaint *feedbackv1.Complaint
	Window    time.Duration
	// Key is the complaint's description, normalized (see Key): with the
	// customer and the category it says whether a problem is one already raised.
	Key string
	// Attached is set when the problem is one the customer raised already
	// and the complaint still open: Complaint.Id is then that complaint's
	// and nothing new is opened.
	Attached bool
}

// Open returns the complaints rec opens, without ids: one per problem, or,
// when the overall rating is unsatisfied, no problem was given and the
// visit confirms no complaint, one of category "unsatisfied" described by
// the comments. Each is routed by rules, open at level 0, owned by the
// agent who took it (seed 002, first-contact ownership) and due within its
// rule's deadline after the record was logged.
func Open(rec *feedbackv1.VisitRecord, v visit.Visit, rules Rules) []Opened {
	type raised struct {
		category, description string
		severity              typesv1.Severity
		anonymous, written    bool
	}
	var list []raised
	seen := map[[2]string]bool{}
	for _, p := range rec.Problems {
		// The same problem twice in one record is recorded once (seeds 000, 002).
		if k := [2]string{p.GetCategory(), Key(p.GetDescription())}; k[1] != "" {
			if seen[k] {
				continue
			}
			seen[k] = true
		}
		list = append(list, raised{p.GetCategory(), p.GetDescription(), p.GetSeverity(), p.GetAnonymous(), p.GetWrittenReplyOnly()})
	}
	if overall, comment := record.Overall(rec); overall == typesv1.Rating_RATING_UNSATISFIED && len(list) == 0 && rec.ConfirmedComplaintId == "" {
		desc := rec.Comments
		if desc == "" {
			desc = comment
		}
		if desc == "" {
			desc = unsatisfiedDescription
		}
		list = append(list, raised{category: CategoryUnsatisfied, description: desc})
	}
	logged := rec.LoggedAt.AsTime()
	out := make([]Opened, 0, len(list))
	for _, r := range list {
		rule := rules.For(r.category)
		severity := rule.Severity
		if s := SeverityName(r.severity); s != "" {
			severity = s
		}
		out = append(out, Opened{Window: rule.Deadline, Key: Key(r.description), Complaint: &feedbackv1.Complaint{
			TenantId:         rec.TenantId,
			VisitId:          rec.VisitId,
			CustomerId:       rec.CustomerId,
			Category:         r.category,
			Description:      r.description,
			Department:       rule.Department,
			Severity:         severity,
			Status:           StatusOpen,
			Deadline:         timestamppb.New(logged.Add(rule.Deadline)),
			CreatedAt:        rec.LoggedAt,
			UpdatedAt:        rec.LoggedAt,
			OwnerAgentId:     rec.AgentId,
			ServiceId:        v.ServiceID,
			OrgUnit:          v.OrgUnit,
			Anonymous:        r.anonymous,
			WrittenReplyOnly: r.written,
			TimesRaised:      1,
		}})
	}
	return out
}

// StateError says that an action does not fit a complaint's status.
type StateError struct {
	ID, Status, Action string
}

func (e *StateError) Error() string {
	return fmt.Sprintf("complaint %s is %s: it cannot be %s", e.ID, e.Status, e.Action)
}

// Acknowledge: the owning department took the complaint.
func Acknowledge(c *feedbackv1.Complaint, now time.Time) error {
	if c.Status != StatusOpen {
		return &StateError{c.Id, c.Status, "acknowledged (only an open complaint is)"}
	}
	c.Status = StatusAcknowledged
	c.UpdatedAt = timestamppb.New(now)
	return nil
}

// Resolve: the department says what caused it and what it did (seed 001:
// the result is fed back to the customer). The customer is then asked to
// confirm, so the complaint is resolved, not closed.
func Resolve(c *feedbackv1.Complaint, rootCause, action string, now time.Time) error {
	if c.Status != StatusOpen && c.Status != StatusAcknowledged {
		return &StateError{c.Id, c.Status, "resolved (only an open or acknowledged complaint is)"}
	}
	c.Status, c.RootCause, c.Action = StatusResolved, rootCause, action
	c.UpdatedAt = timestamppb.New(now)
	return nil
}

// Reopen: the resolution did not satisfy the customer (seed 004: if
// unsatisfied, go again until satisfied). The complaint is open again one
// level up, one severity higher, with a new deadline.
func Reopen(c *feedbackv1.Complaint, window time.Duration, now time.Time) error {
	if c.Status != StatusResolved {
		return &StateError{c.Id, c.Status, "reopened (only a resolved complaint is)"}
	}
	c.Status = StatusOpen
	raise(c, window, now)
	return nil
}

// Escalate: the deadline passed while the complaint was open or
// acknowledged; it goes one level up with a new deadline.
func Escalate(c *feedbackv1.Complaint, window time.Duration, now time.Time) error {
	if c.Status != StatusOpen && c.Status != StatusAcknowledged {
		return &StateError{c.Id, c.Status, "escalated for its deadline (only an open or acknowledged complaint is)"}
	}
	if !c.Deadline.AsTime().Before(now) {
		return &StateError{c.Id, c.Status, "escalated before its deadline " + c.Deadline.AsTime().Format(time.RFC3339)}
	}
	raise(c, window, now)
	return nil
}

func raise(c *feedbackv1.Complaint, window time.Duration, now time.Time) {
	c.Level++
	c.Severity = Raise(c.Severity)
	c.Deadline = timestamppb.New(now.Add(window))
	c.UpdatedAt = timestamppb.New(now)
}

// CloseWithWrittenReply ends the loop of a resolved complaint that needs no
// follow-up (seed 000): the written reply is attached and no confirmation
// visit comes.
func CloseWithWrittenReply(c *feedbackv1.Complaint, now time.Time) error {
	if !NoFollowUp(c) {
		return &StateError{c.Id, c.Status, "closed by its written reply (only an anonymous or written-reply-only complaint is)"}
	}
	if c.Status != StatusResolved {
		return &StateError{c.Id, c.Status, "closed by its written reply (only a resolved complaint is)"}
	}
	reason := "no follow-up: only a written reply was requested (seed 000)"
	if c.Anonymous {
		reason = "no follow-up: anonymous complaint (seed 000)"
	}
	c.Status, c.Outcome, c.CloseReason = StatusClosed, OutcomeWrittenReply, reason
	c.UpdatedAt = timestamppb.New(now)
	return nil
}

// Close ends the loop: the customer is satisfied, or a manager closed it
// with a reason. A closed complaint stays closed.
func Close(c *feedbackv1.Complaint, outcome, reason string, now time.Time) error {
	if c.Status == StatusClosed {
		return &StateError{c.Id, c.Status, "closed again"}
	}
	if outcome == OutcomeSatisfied && c.Status != StatusResolved {
		return &StateError{c.Id, c.Status, "confirmed (only a resolved complaint is)"}
	}
	c.Status, c.Outcome, c.CloseReason = StatusClosed, outcome, reason
	c.UpdatedAt = timestamppb.New(now)
	return nil
}

// Escalated returns the ComplaintEscalated event that hands c, at its
// current level, to its department.
func Escalated(eventID string, c *feedbackv1.Complaint, at time.Time) *eventsv1.ComplaintEscalated {
	return &eventsv1.ComplaintEscalated{
		EventId:      eventID,
		TenantId:     c.TenantId,
		ComplaintId:  c.Id,
		VisitId:      c.VisitId,
		CustomerId:   c.CustomerId,
		Category:     c.Category,
		Description:  c.Description,
		Department:   c.Department,
		Severity:     c.Severity,
		Deadline:     c.Deadline,
		EscalatedAt:  timestamppb.New(at),
		OrgUnit:      c.OrgUnit,
		OwnerAgentId: c.OwnerAgentId,
		Level:        c.Level,
		ServiceId:    c.ServiceId,
	}
}

// Acknowledged returns the ComplaintAcknowledged event.
func Acknowledged(eventID string, c *feedbackv1.Complaint, by string, at time.Time) *eventsv1.ComplaintAcknowledged {
	return &eventsv1.ComplaintAcknowledged{EventId: eventID, TenantId: c.TenantId, ComplaintId: c.Id, By: by, At: timestamppb.New(at)}
}

// NoFollowUp tells whether c needs no follow-up: the complainant left no
// name, or only a written reply was requested (seed 000). Its resolution
// needs the written reply, and closes it.
func NoFollowUp(c *feedbackv1.Complaint) bool { return c.Anonymous || c.WrittenReplyOnly }

// Resolved returns the ComplaintResolved event, on which the scheduler
// plans the visit that confirms the resolution with the customer, unless
// the complaint needs no follow-up (no_follow_up).
func Resolved(eventID string, c *feedbackv1.Complaint, by string, at time.Time) *eventsv1.ComplaintResolved {
	return &eventsv1.ComplaintResolved{
		EventId: eventID, TenantId: c.TenantId, ComplaintId: c.Id, CustomerId: c.CustomerId, VisitId: c.VisitId,
		RootCause: c.RootCause, Action: c.Action, By: by, ResolvedAt: timestamppb.New(at), OrgUnit: c.OrgUnit,
		Category: c.Category, Department: c.Department, Severity: SeverityEnum(c.Severity), EscalatedAt: c.CreatedAt,
		Customer: &typesv1.Customer{Id: c.CustomerId, OrgUnit: c.OrgUnit}, ServiceId: c.ServiceId,
		NoFollowUp: NoFollowUp(c),
	}
}

// Reopened returns the ComplaintReopened event.
func Reopened(eventID string, c *feedbackv1.Complaint, reason string, at time.Time) *eventsv1.ComplaintReopened {
	return &eventsv1.ComplaintReopened{EventId: eventID, TenantId: c.TenantId, ComplaintId: c.Id, Reason: reason,
		Level: c.Level, At: timestamppb.New(at), Department: c.Department}
}

// Closed returns the ComplaintClosed event.
func Closed(eventID string, c *feedbackv1.Complaint, by string, at time.Time) *eventsv1.ComplaintClosed {
	return &eventsv1.ComplaintClosed{EventId: eventID, TenantId: c.TenantId, ComplaintId: c.Id, Outcome: c.Outcome,
		Reason: c.CloseReason, By: by, At: timestamppb.New(at), OrgUnit: c.OrgUnit, Category: c.Category, EscalatedAt: c.CreatedAt}
}
