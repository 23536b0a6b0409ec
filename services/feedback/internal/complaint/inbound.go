package complaint

import (
	"fmt"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/huifang/huifang/pkg/invalid"
	"github.com/huifang/huifang/services/feedback/internal/record"
)

// Ways an inbound complaint reaches the follow-up center (the short names
// of huifang.feedback.v1.ReceivedVia). A complaint found in a follow-up
// has none.
const (
	ViaPhone    = "phone"
	ViaLetter   = "letter"
	ViaWeb      = "web"
	ViaEmail    = "email"
	ViaInPerson = "in_person"
)

// Vias lists the ways an inbound complaint is received.
var Vias = []string{ViaPhone, ViaLetter, ViaWeb, ViaEmail, ViaInPerson}

// Bounds of an inbound complaint.
const (
	// MaxDescription bounds the customer's words kept on an inbound complaint.
	MaxDescription = 4000
	// MaxReceivedAge is how far back an inbound complaint may be dated (a
	// letter read late): its deadline runs from when it was received.
	MaxReceivedAge = 30 * 24 * time.Hour
)

var requestIDRE = regexp.MustCompile(`^[A-Za-z0-9._:-]{1,100}$`)

// CheckRequestID adds a violation on field unless id is a client's
// request id: 1 to 100 of A-Z a-z 0-9 . _ : -.
func CheckRequestID(l *invalid.List, field, id string) {
	switch {
	case id == "":
		l.Add(field, "is required: the client's id of this request, so that a retry or a double click creates nothing twice")
	case !requestIDRE.MatchString(id):
		l.Add(field, "must be 1 to 100 of A-Z a-z 0-9 . _ : -")
	}
}

// InboundDraft is an inbound complaint as the caller gives it: one the
// customer raised by phone, letter, web form, e-mail or in person, not in
// a follow-up (issue 17).
type InboundDraft struct {
	TenantID   string
	RequestID  string
	CustomerID string
	ServiceID  string
	VisitID    string
	OrgUnit    string
	Category   string
	// Severity is general, urgent or major; empty: the category rule's.
	Severity    string
	ReceivedVia string
	Description string
	// ReceivedAt is when the customer complained; zero: now.
	ReceivedAt       time.Time
	Anonymous        bool
	WrittenReplyOnly bool
	// CreatedBy is who entered it (the caller); OwnerAgentID the agent who
	// took it, empty for one an integrator submitted.
	CreatedBy    string
	OwnerAgentID string
}

// Normalize trims the draft's text fields.
func (d *InboundDraft) Normalize() {
	for _, s := range []*string{&d.RequestID, &d.CustomerID, &d.ServiceID, &d.VisitID, &d.OrgUnit, &d.Category, &d.Severity, &d.ReceivedVia, &d.Description} {
		*s = strings.TrimSpace(*s)
	}
}

// Check returns the draft's violations at now: what is required, the forms
// and bounds of each field.
func (d InboundDraft) Check(now time.Time) error {
	var l invalid.List
	CheckRequestID(&l, "request_id", d.RequestID)
	if d.CustomerID == "" {
		l.Add("customer_id", "is required: the customer who complains")
	}
	switch {
	case d.Category == "":
		l.Add("category", "is required: the problem aspect, which decides the owning department")
	case d.Category == "*" || !categoryRE.MatchString(d.Category):
		l.Add("category", "must be lower case letters, digits and _, starting with a letter, at most 64")
	}
	if d.Severity != "" && levelOf(d.Severity) < 0 {
		l.Add("severity", "must be general, urgent or major (or unspecified: the category rule's)")
	}
	if !slices.Contains(Vias, d.ReceivedVia) {
		l.Add("received_via", "is required: one of "+strings.Join(Vias, ", "))
	}
	switch n := len([]rune(d.Description)); {
	case n == 0:
		l.Add("description", "is required: the customer's words")
	case n > MaxDescription:
		l.Add("description", fmt.Sprintf("at most %d characters", MaxDescription))
	}
	record.CheckFuture(&l, "received_at", d.ReceivedAt, now)
	if !d.ReceivedAt.IsZero() && d.ReceivedAt.Before(now.Add(-MaxReceivedAge)) {
		l.Add("received_at", fmt.Sprintf("at most %d days back", int(MaxReceivedAge/(24*time.Hour))))
	}
	return l.Err()
}

// Inbound opens the complaint d describes as id, received at (d.ReceivedAt,
// or now): routed by rules as a complaint found in a follow-up is (the
// owning department, severity and deadline of its category; a severity
// given overrides the rule's), open at level 0, owned by the agent who
// took it (seed 002, first-contact ownership). visitID, serviceID and
// orgUnit are the visit's when the draft names one. It joins the same loop:
// its OpenedStep hands it to the department.
func Inbound(id string, d InboundDraft, rules Rules, now time.Time) Complaint {
	at := d.ReceivedAt.UTC()
	if d.ReceivedAt.IsZero() {
		at = now
	}
	rule := rules.For(d.Category)
	severity := rule.Severity
	if d.Severity != "" {
		severity = d.Severity
	}
	return Complaint{
		ID: id, TenantID: d.TenantID, VisitID: d.VisitID, CustomerID: d.CustomerID, ServiceID: d.ServiceID, OrgUnit: d.OrgUnit,
		Category: d.Category, Description: d.Description, Key: Key(d.Description), Department: rule.Department,
		Severity: severity, Status: StatusOpen, Deadline: at.Add(rule.Deadline), Window: rule.Deadline,
		OwnerAgentID: d.OwnerAgentID, Anonymous: d.Anonymous, WrittenReplyOnly: d.WrittenReplyOnly,
		TimesRaised: 1, CreatedAt: at, UpdatedAt: at,
		ReceivedVia: d.ReceivedVia, CreatedBy: d.CreatedBy, RequestID: d.RequestID,
	}
}

// InboundStep is the first step of an inbound complaint's history: opened
// by who entered it, saying how it was received.
func (c Complaint) InboundStep() Step {
	return Step{Kind: StepOpened, By: c.CreatedBy, At: c.CreatedAt, Level: c.Level,
		Detail: c.Department + "; received by " + strings.ReplaceAll(c.ReceivedVia, "_", " ")}
}

// RaisedAgainStep is the step an inbound request c adds to the history of
// the open complaint of the same problem it is attached to (at level):
// who, how it was received, the words used. Owner, severity, level and
// deadline stay (seeds 000, 002: recorded once; the first owner keeps it).
func (c Complaint) RaisedAgainStep(level int32) Step {
	return Step{Kind: StepRaisedAgain, By: c.CreatedBy, At: c.CreatedAt, Level: level,
		Detail: fmt.Sprintf("inbound request %s, received by %s: %s", c.RequestID, strings.ReplaceAll(c.ReceivedVia, "_", " "), c.Description)}
}
