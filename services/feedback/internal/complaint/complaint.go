// Package complaint runs the closed loop of a complaint (seeds 000, 001,
// 002, 003, 004): which complaints a follow-up record opens and which
// department owns each, and how a complaint moves from open through
// acknowledged and resolved to closed, reopening and escalating one level
// whenever the customer is still unsatisfied or a deadline passes. Each
// move returns the step it adds to the complaint's history; the caller
// stores it and publishes the events the step stands for. It does no I/O.
package complaint

import (
	"fmt"
	"slices"
	"strings"
	"time"

	typesv1 "github.com/huifang/huifang/proto/huifang/types/v1"

	"github.com/huifang/huifang/pkg/enum"
	"github.com/huifang/huifang/pkg/invalid"
	"github.com/huifang/huifang/services/feedback/internal/questionnaire"
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
	// CategoryDeliveryMismatch: a delivery confirmation found the product or
	// the quantity different from the delivery receipt (seed 000, cement
	// logistics: any mismatch is reported to the general manager at once).
	CategoryDeliveryMismatch = "delivery_mismatch"
)

// Departments that own complaints by default.
const (
	DepartmentRnDProduction  = "rnd_production"
	DepartmentAfterSales     = "after_sales"
	DepartmentServiceManager = "service_manager"
	// DepartmentGeneralManager is the general manager (总经理), who hears of
	// every delivery mismatch at once (seed 000, cement logistics).
	DepartmentGeneralManager = "general_manager"
)

// Severities (seed 000: ordinary, urgent 紧要, major 重点), lowest first.
// They are the short names of huifang.types.v1.Severity (enum.Name).
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

// Statuses lists every status, in the order of the loop.
var Statuses = []string{StatusOpen, StatusAcknowledged, StatusResolved, StatusClosed}

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

// SystemActor is who escalates an overdue complaint.
const SystemActor = "system"

// DefaultDeadline is the 48 hours of seed 003's quality standard.
const DefaultDeadline = 48 * time.Hour

// Complaint is one problem a customer raised, followed until they are satisfied.
type Complaint struct {
	ID         string
	TenantID   string
	VisitID    string
	CustomerID string
	ServiceID  string
	OrgUnit    string
	Category   string
	// Description is the customer's words; Key is its normalized form (see
	// Key): with the customer and the category it says whether a problem is
	// one already raised.
	Description string
	Key         string
	Department  string
	Severity    string
	Status      string
	// Level counts the escalations: 0 when opened, + 1 at each reopening
	// and each missed deadline.
	Level    int32
	Deadline time.Time
	// Window is how long the owner has at each level: the category rule's deadline.
	Window time.Duration
	// OwnerAgentID is the agent who took the complaint and owns it to the
	// end (seed 002, first-contact ownership).
	OwnerAgentID string
	RootCause    string
	Action       string
	Outcome      string
	CloseReason  string
	// Anonymous and WrittenReplyOnly mark a complaint that needs no
	// follow-up (seed 000); its written reply is attached.
	Anonymous        bool
	WrittenReplyOnly bool
	WrittenReply     string
	WrittenReplyRef  string
	// OpenLetterIDs are the open letters filed with the complaint.
	OpenLetterIDs []string
	// TimesRaised counts the records that raised the problem.
	TimesRaised int32
	// ReceivedVia says how an inbound complaint reached the center (Vias);
	// empty for one a follow-up found. CreatedBy is who entered an inbound
	// complaint, RequestID the client's id of the request that did.
	ReceivedVia string
	CreatedBy   string
	RequestID   string
	CreatedAt   time.Time
	UpdatedAt   time.Time
}

// Step is one step of a complaint's history.
type Step struct {
	Kind   string
	By     string
	At     time.Time
	Detail string
	// Level is the complaint's level after the step.
	Level int32
}

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

// unsatisfiedDescription describes an unsatisfied rating that came without
// comments, so that no complaint is opened without a description.
const unsatisfiedDescription = "the customer rated the service unsatisfied and gave no reason"

// Opened is a complaint a record raises: a new one, or, when Attached, the
// open complaint of the same problem (Complaint.ID is then that complaint's
// and nothing new is opened).
type Opened struct {
	Complaint Complaint
	Attached  bool
}

// Open returns the complaints rec opens, without ids: one per problem, one
// for a delivery mismatch (deliveryMismatch), or,
// when the overall rating is unsatisfied, no problem was given and the
// visit confirms no complaint, one of category "unsatisfied" described by
// the comments. Each is routed by rules, open at level 0, owned by the
// agent who took it (seed 002, first-contact ownership), opened when the
// visit happened (rec.OccurredAt: the customer raised it then, issue 16)
// and due within its rule's deadline after that.
func Open(rec record.Record, v visit.Visit, rules Rules) []Opened {
	var list []record.Problem
	seen := map[[2]string]bool{}
	for _, p := range rec.Problems {
		// The same problem twice in one record is recorded once (seeds 000, 002).
		if k := [2]string{p.Category, Key(p.Description)}; k[1] != "" {
			if seen[k] {
				continue
			}
			seen[k] = true
		}
		list = append(list, p)
	}
	if p, ok := deliveryMismatch(rec, v, list); ok {
		list = append(list, p)
	}
	if overall, comment := record.Overall(rec.Answers); overall == typesv1.Rating_RATING_UNSATISFIED && len(list) == 0 && rec.ConfirmedComplaintID == "" {
		desc := rec.Comments
		if desc == "" {
			desc = comment
		}
		if desc == "" {
			desc = unsatisfiedDescription
		}
		list = append(list, record.Problem{Category: CategoryUnsatisfied, Description: desc})
	}
	out := make([]Opened, 0, len(list))
	for _, p := range list {
		rule := rules.For(p.Category)
		severity := rule.Severity
		if p.Severity != typesv1.Severity_SEVERITY_UNSPECIFIED {
			severity = enum.Name(p.Severity)
		}
		out = append(out, Opened{Complaint: Complaint{
			TenantID:         rec.TenantID,
			VisitID:          rec.VisitID,
			CustomerID:       rec.CustomerID,
			Category:         p.Category,
			Description:      p.Description,
			Key:              Key(p.Description),
			Department:       rule.Department,
			Severity:         severity,
			Status:           StatusOpen,
			Deadline:         rec.OccurredAt.Add(rule.Deadline),
			Window:           rule.Deadline,
			CreatedAt:        rec.OccurredAt,
			UpdatedAt:        rec.OccurredAt,
			OwnerAgentID:     rec.AgentID,
			ServiceID:        v.ServiceID,
			OrgUnit:          v.OrgUnit,
			Anonymous:        p.Anonymous,
			WrittenReplyOnly: p.WrittenReplyOnly,
			TimesRaised:      1,
		}})
	}
	return out
}

// deliveryMismatch returns the problem a delivery confirmation raises when
// the recipient answered "no" to the product or the quantity (the yes/no
// questions of aspects questionnaire.AspectProductMatches and
// AspectQuantityMatches, as in the seed template seed-000-cement-delivery),
// unless the agent gave a delivery_mismatch problem already: category
// delivery_mismatch, routed by its rule to the general manager (seed 000,
// cement logistics: any mismatch is reported to the general manager at
// once), described by the delivery (the visit's service) and what did not
// match, so that one delivery's mismatch is recorded once and another
// delivery's is a complaint of its own; the recipient's words stay in the
// answers' comments of the record.
func deliveryMismatch(rec record.Record, v visit.Visit, given []record.Problem) (record.Problem, bool) {
	var what []string
	for _, a := range rec.Answers {
		if a.Yes == nil || *a.Yes {
			continue
		}
		switch a.Aspect {
		case questionnaire.AspectProductMatches:
			what = append(what, "product")
		case questionnaire.AspectQuantityMatches:
			what = append(what, "quantity")
		}
	}
	if len(what) == 0 || slices.ContainsFunc(given, func(p record.Problem) bool { return p.Category == CategoryDeliveryMismatch }) {
		return record.Problem{}, false
	}
	delivery := v.ServiceID
	if delivery == "" {
		delivery = "of visit " + rec.VisitID
	}
	desc := fmt.Sprintf("delivery %s: the %s received does not match the delivery receipt", delivery, strings.Join(what, " and the "))
	return record.Problem{Category: CategoryDeliveryMismatch, Description: desc}, true
}

// Matchable tells whether a problem can be one raised already: the
// customer is known and the description has a letter or a digit (seeds
// 000, 002). Only a complaint not closed is matched: after closing, the
// same problem is a new complaint.
func (o Opened) Matchable() bool {
	return o.Complaint.CustomerID != "" && o.Complaint.Key != ""
}

// Attach makes o the problem of the open complaint id: nothing new is
// opened, and that complaint's history gets the step RaisedAgain.
func (o *Opened) Attach(id string) {
	o.Complaint.ID, o.Attached = id, true
}

// OpenedStep is the first step of a new complaint's history.
func (c Complaint) OpenedStep() Step {
	return Step{Kind: StepOpened, By: c.OwnerAgentID, At: c.CreatedAt, Detail: c.Department, Level: c.Level}
}

// RaisedAgain is the step a record that raised the problem of an open
// complaint (at level) adds to that complaint's history: who, which visit
// and record, the words used. Owner, severity, level and deadline stay
// (seed 002: the first owner keeps it).
func RaisedAgain(rec record.Record, description string, level int32) Step {
	return Step{Kind: StepRaisedAgain, By: rec.AgentID, At: rec.OccurredAt, Level: level,
		Detail: fmt.Sprintf("visit %s, record %s: %s", rec.VisitID, rec.ID, description)}
}

// StateError says that an action does not fit a complaint's status.
type StateError struct {
	ID, Status, Action string
}

func (e *StateError) Error() string {
	return fmt.Sprintf("complaint %s is %s: it cannot be %s", e.ID, e.Status, e.Action)
}

// step moves c's update time and returns the step of kind.
func (c *Complaint) step(kind, by, detail string, now time.Time) Step {
	c.UpdatedAt = now
	return Step{Kind: kind, By: by, At: now, Detail: detail, Level: c.Level}
}

// Acknowledge: the owning department took the complaint.
func (c *Complaint) Acknowledge(by string, now time.Time) (Step, error) {
	if c.Status != StatusOpen {
		return Step{}, &StateError{c.ID, c.Status, "acknowledged (only an open complaint is)"}
	}
	c.Status = StatusAcknowledged
	return c.step(StepAcknowledged, by, c.Department, now), nil
}

// Resolution is what the owning department did about a complaint.
type Resolution struct {
	By        string
	RootCause string
	Action    string
	// WrittenReply (the text) and WrittenReplyRef (the stored letter) are
	// attached to the complaint; one is required when it needs no follow-up.
	WrittenReply    string
	WrittenReplyRef string
}

// Resolve: the department says what caused it and what it did (seed 001:
// the result is fed back to the customer). The customer is then asked to
// confirm, so the complaint is resolved, not closed; but a complaint that
// needs no follow-up (seed 000) needs its written reply, which is attached
// to it: CloseWithWrittenReply then ends it.
func (c *Complaint) Resolve(r Resolution, now time.Time) (Step, error) {
	if c.Status != StatusOpen && c.Status != StatusAcknowledged {
		return Step{}, &StateError{c.ID, c.Status, "resolved (only an open or acknowledged complaint is)"}
	}
	if c.NoFollowUp() && r.WrittenReply == "" && r.WrittenReplyRef == "" {
		why := "only a written reply was requested"
		if c.Anonymous {
			why = "it is anonymous"
		}
		return Step{}, invalid.New("written_reply", fmt.Sprintf("complaint %s needs no follow-up because %s, but its written reply is attached to it (seed 000): give written_reply (the text) or written_reply_ref (the stored letter)", c.ID, why))
	}
	c.Status, c.RootCause, c.Action = StatusResolved, r.RootCause, r.Action
	detail := fmt.Sprintf("root cause: %s; action: %s", r.RootCause, r.Action)
	if r.WrittenReply != "" || r.WrittenReplyRef != "" {
		c.WrittenReply, c.WrittenReplyRef = r.WrittenReply, r.WrittenReplyRef
		detail += "; written reply attached"
		if r.WrittenReplyRef != "" {
			detail += ": " + r.WrittenReplyRef
		}
	}
	return c.step(StepResolved, r.By, detail, now), nil
}

// Reopen: the resolution did not satisfy the customer (seed 004: if
// unsatisfied, go again until satisfied). The complaint is open again one
// level up, one severity higher, with a new deadline of its window.
func (c *Complaint) Reopen(by, reason string, now time.Time) (Step, error) {
	if c.Status != StatusResolved {
		return Step{}, &StateError{c.ID, c.Status, "reopened (only a resolved complaint is)"}
	}
	c.Status = StatusOpen
	c.raise(now)
	return c.step(StepReopened, by, reason, now), nil
}

// Overdue tells whether c's deadline passed before now while its
// department had it (open or acknowledged); a resolved complaint waits for
// the customer, not the department.
func (c Complaint) Overdue(now time.Time) bool {
	return (c.Status == StatusOpen || c.Status == StatusAcknowledged) && c.Deadline.Before(now)
}

// Escalate: the deadline passed while the complaint was open or
// acknowledged; it goes one level up with a new deadline, once per missed
// deadline (seed 004: problems are answered within the set time).
func (c *Complaint) Escalate(now time.Time) (Step, error) {
	if c.Status != StatusOpen && c.Status != StatusAcknowledged {
		return Step{}, &StateError{c.ID, c.Status, "escalated for its deadline (only an open or acknowledged complaint is)"}
	}
	if !c.Overdue(now) {
		return Step{}, &StateError{c.ID, c.Status, "escalated before its deadline " + c.Deadline.UTC().Format(time.RFC3339)}
	}
	missed := c.Deadline
	c.raise(now)
	return c.step(StepEscalated, SystemActor, "deadline "+missed.UTC().Format(time.RFC3339)+" passed", now), nil
}

func (c *Complaint) raise(now time.Time) {
	c.Level++
	c.Severity = Raise(c.Severity)
	c.Deadline = now.Add(c.Window)
}

// CloseWithWrittenReply ends the loop of a resolved complaint that needs no
// follow-up (seed 000): the written reply is attached and no confirmation
// visit comes.
func (c *Complaint) CloseWithWrittenReply(by string, now time.Time) (Step, error) {
	if !c.NoFollowUp() {
		return Step{}, &StateError{c.ID, c.Status, "closed by its written reply (only an anonymous or written-reply-only complaint is)"}
	}
	if c.Status != StatusResolved {
		return Step{}, &StateError{c.ID, c.Status, "closed by its written reply (only a resolved complaint is)"}
	}
	reason := "no follow-up: only a written reply was requested (seed 000)"
	if c.Anonymous {
		reason = "no follow-up: anonymous complaint (seed 000)"
	}
	return c.close(OutcomeWrittenReply, reason, by, now), nil
}

// Close ends the loop: the customer is satisfied, or a manager closed it
// with a reason. A closed complaint stays closed.
func (c *Complaint) Close(by, outcome, reason string, now time.Time) (Step, error) {
	if c.Status == StatusClosed {
		return Step{}, &StateError{c.ID, c.Status, "closed again"}
	}
	if outcome == OutcomeSatisfied && c.Status != StatusResolved {
		return Step{}, &StateError{c.ID, c.Status, "confirmed (only a resolved complaint is)"}
	}
	return c.close(outcome, reason, by, now), nil
}

func (c *Complaint) close(outcome, reason, by string, now time.Time) Step {
	c.Status, c.Outcome, c.CloseReason = StatusClosed, outcome, reason
	return c.step(StepClosed, by, outcome+": "+reason, now)
}

// Confirm settles a resolved complaint by the overall rating of the
// confirmation visit rec (seed 004: the agent tells the customer and
// confirms satisfaction; if unsatisfied, go again until satisfied):
// satisfied (or fairly satisfied) closes it; unsatisfied reopens it one
// level up, for the reason the customer gave.
func (c *Complaint) Confirm(rec record.Record, now time.Time) (Step, error) {
	overall, comment := record.Overall(rec.Answers)
	if overall != typesv1.Rating_RATING_UNSATISFIED {
		return c.Close(rec.AgentID, OutcomeSatisfied, "confirmed by the customer in visit "+rec.VisitID, now)
	}
	reason := strings.TrimSpace(rec.Comments)
	if reason == "" {
		reason = comment
	}
	if reason == "" {
		reason = "the customer is not satisfied with the resolution"
	}
	return c.Reopen(rec.AgentID, "confirmation visit "+rec.VisitID+": "+reason, now)
}

// Confirmable tells whether a confirmation visit settles c: only a
// resolved complaint is confirmed. One the request names (named) must be
// resolved (a *StateError otherwise); one named only by the visit
// (VisitDue.complaint_id) is settled only while it is resolved.
func (c Complaint) Confirmable(named bool) (bool, error) {
	switch {
	case c.Status == StatusResolved:
		return true, nil
	case named:
		return false, &StateError{c.ID, c.Status, "confirmed (only a resolved complaint is)"}
	}
	return false, nil
}

// MaxWrittenReply bounds the written reply's text kept on a complaint.
const MaxWrittenReply = 20000

// NoFollowUp tells whether c needs no follow-up: the complainant left no
// name, or only a written reply was requested (seed 000). Its resolution
// needs the written reply, and closes it.
func (c Complaint) NoFollowUp() bool { return c.Anonymous || c.WrittenReplyOnly }
