// Package task holds dispatch's domain: the tasks that due visits become,
// the agents who claim them, and the rules that check and complete both.
// It does no I/O.
package task

import (
	"fmt"
	"slices"
	"strings"
	"time"

	eventsv1 "github.com/huifang/huifang/proto/huifang/events/v1"
	typesv1 "github.com/huifang/huifang/proto/huifang/types/v1"

	"github.com/huifang/huifang/pkg/invalid"
)

// DefaultTenant is the tenant of inputs that name none.
const DefaultTenant = "default"

// DefaultGroup is the group of an agent registered without groups.
const DefaultGroup = "default"

// Statuses of a task. A claimed task whose lease has expired is claimable
// again; it keeps the status claimed until another agent takes it. Open and
// claimed tasks are active (agents' tasks); sending is the automatic
// channel's claimed; the rest are final (sent waits only for a receipt).
const (
	StatusOpen        = "open"
	StatusClaimed     = "claimed"
	StatusDone        = "done"
	StatusUnreachable = "unreachable"
	StatusOptedOut    = "opted_out"
	StatusRefused     = "refused"
	StatusCancelled   = "cancelled"
	StatusSending     = "sending"
	StatusSent        = "sent"
	StatusDelivered   = "delivered"
	StatusFailed      = "failed"
)

// Statuses lists every status, for filters.
var Statuses = []string{StatusOpen, StatusClaimed, StatusDone, StatusUnreachable, StatusOptedOut, StatusRefused,
	StatusCancelled, StatusSending, StatusSent, StatusDelivered, StatusFailed}

// Task is the work of making one visit.
type Task struct {
	ID       string
	Tenant   string
	VisitID  string
	Customer *typesv1.Customer
	Channel  typesv1.Channel
	// Group is the group that must make the visit; empty means any agent.
	Group string
	// RequiredRole is the role the visit needs (from a group naming a role,
	// or from the severity); empty means any.
	RequiredRole    string
	OrgUnit         string
	ServiceType     string
	PolicyID        string
	ProductCategory string
	Severity        typesv1.Severity
	// TierRank orders customers' tiers: lower first (key customers first).
	TierRank int
	// Owners: the customer's primary and backup owner (seed 002: every
	// customer is known to at least two staff); empty when unknown.
	PrimaryOwner string
	BackupOwner  string
	// Language is the customer's preferred language, matched against skills.
	Language string
	// Automatic tasks (SMS, email) are sent by dispatch, not claimed.
	Automatic bool
	DueAt     time.Time
	// Deadline is the latest time the visit counts as timely; zero when none.
	Deadline time.Time
	// AvailableAt is when the task may next be worked: the due time moved
	// into the contact window, a retry, a call-back.
	AvailableAt     time.Time
	Status          string
	AgentID         string
	LeaseExpiresAt  time.Time
	Attempts        int
	LastDisposition typesv1.Disposition
	CreatedAt       time.Time
}

// CustomerID returns the id of the task's customer.
func (t Task) CustomerID() string { return t.Customer.GetId() }

// Active reports whether the task still waits for work.
func (t Task) Active() bool {
	return t.Status == StatusOpen || t.Status == StatusClaimed || t.Status == StatusSending
}

// Tenant returns t, or DefaultTenant when t is blank.
func Tenant(t string) string {
	if t = strings.TrimSpace(t); t == "" {
		return DefaultTenant
	}
	return t
}

// IsAutomatic reports whether dispatch sends visits of channel c itself.
func IsAutomatic(c typesv1.Channel) bool {
	return c == typesv1.Channel_CHANNEL_SMS || c == typesv1.Channel_CHANNEL_EMAIL
}

// Rules are the tenant-wide routing rules a new task is built with.
type Rules struct {
	// SeverityRoles names the role a severity needs (seed 000: urgent → the
	// department supervisor, major → the company manager).
	SeverityRoles map[typesv1.Severity]string
	// Tiers lists customer tiers in priority order (e.g. "key" first);
	// other tiers come after them.
	Tiers []string
	// DefaultDeadline is the deadline after the due time of a visit the
	// event gives none (seed 003: 48 hours); zero leaves it without one.
	DefaultDeadline time.Duration
	// Windows are the contact windows of customers who have none; empty
	// means any time.
	Windows []Window
}

// TierRank ranks a tier: its index in Tiers, or len(Tiers) when absent.
func (r Rules) TierRank(tier string) int {
	if i := slices.Index(r.Tiers, strings.TrimSpace(tier)); i >= 0 {
		return i
	}
	return len(r.Tiers)
}

// WindowsOf returns the contact windows and time zone of c, or the rules'
// default windows (in the customer's zone, UTC when none).
func (r Rules) WindowsOf(c *typesv1.Customer) ([]Window, *time.Location) {
	loc := Location(c.GetPreferences().GetTimeZone())
	var ws []Window
	for _, w := range c.GetPreferences().GetWindows() {
		ws = append(ws, Window{Start: int(w.GetStartMinute()), End: int(w.GetEndMinute())})
	}
	if len(ws) == 0 {
		ws = r.Windows
	}
	return ws, loc
}

// FromVisitDue turns a VisitDue event into a new open task with id, created
// at now. An event without a visit id, or with a channel Huifang does not
// know, is refused. Without a due time the visit is due now.
func FromVisitDue(ev *eventsv1.VisitDue, id string, now time.Time, rules Rules) (Task, error) {
	var bad invalid.List
	visitID := strings.TrimSpace(ev.GetVisitId())
	if visitID == "" {
		bad.Add("visit_id", "is required")
	}
	if _, known := typesv1.Channel_name[int32(ev.GetChannel())]; !known {
		bad.Add("channel", fmt.Sprintf("must be a known channel, not %d", ev.GetChannel()))
	}
	if _, known := typesv1.Severity_name[int32(ev.GetSeverity())]; !known {
		bad.Add("severity", fmt.Sprintf("must be a known severity, not %d", ev.GetSeverity()))
	}
	if ev.GetDueAt() != nil && !ev.GetDueAt().IsValid() {
		bad.Add("due_at", "must be a valid time")
	}
	if ev.GetDeadline() != nil && !ev.GetDeadline().IsValid() {
		bad.Add("deadline", "must be a valid time")
	}
	if err := bad.Err(); err != nil {
		return Task{}, err
	}
	c := ev.GetCustomer()
	t := Task{
		ID:              id,
		Tenant:          Tenant(ev.GetTenantId()),
		VisitID:         visitID,
		Customer:        c,
		Channel:         ev.GetChannel(),
		Group:           strings.TrimSpace(ev.GetGroup()),
		OrgUnit:         strings.TrimSpace(ev.GetOrgUnit()),
		ServiceType:     strings.TrimSpace(ev.GetServiceType()),
		PolicyID:        strings.TrimSpace(ev.GetPolicyId()),
		ProductCategory: strings.TrimSpace(ev.GetProductCategory()),
		Severity:        ev.GetSeverity(),
		Automatic:       IsAutomatic(ev.GetChannel()),
		DueAt:           now,
		Status:          StatusOpen,
		CreatedAt:       now,
	}
	// A group that names a role (e.g. "manager") asks for the role, not a group.
	if role, ok := ParseRole(t.Group); ok {
		t.RequiredRole, t.Group = role, ""
	} else if role := rules.SeverityRoles[t.Severity]; role != "" {
		t.RequiredRole = role
	}
	rules.SetCustomer(&t, c)
	if ev.GetDueAt() != nil {
		t.DueAt = ev.GetDueAt().AsTime()
	}
	if ev.GetDeadline() != nil {
		t.Deadline = ev.GetDeadline().AsTime()
	} else if rules.DefaultDeadline > 0 {
		t.Deadline = t.DueAt.Add(rules.DefaultDeadline)
	}
	ws, loc := rules.WindowsOf(c)
	t.AvailableAt = NextInWindow(t.DueAt, ws, loc)
	return t, nil
}

// SetCustomer gives t the customer snapshot c and what routing derives
// from it: the tier's rank, the primary and backup owners (owner_ids[0] and
// [1]) and the language. The contact window and time zone are read from
// the snapshot when a retry is timed.
func (r Rules) SetCustomer(t *Task, c *typesv1.Customer) {
	t.Customer = c
	t.TierRank = r.TierRank(c.GetTier())
	t.Language = strings.TrimSpace(c.GetPreferences().GetLanguage())
	t.PrimaryOwner, t.BackupOwner = "", ""
	owners := c.GetOwnerIds()
	if len(owners) > 0 {
		t.PrimaryOwner = strings.TrimSpace(owners[0])
	}
	if len(owners) > 1 {
		t.BackupOwner = strings.TrimSpace(owners[1])
	}
}

// Rewindow moves an open task that would next be worked outside the
// customer's (new) contact window to the window's next start, and reports
// whether it moved it. The moment checked is AvailableAt, or now when that
// has passed; a task inside the window keeps its AvailableAt (so the
// routing stages, measured from it, do not restart). Claimed and closed
// tasks are left alone.
func (r Rules) Rewindow(t *Task, now time.Time) bool {
	if t.Status != StatusOpen {
		return false
	}
	at := t.AvailableAt
	if at.Before(now) {
		at = now
	}
	ws, loc := r.WindowsOf(t.Customer)
	next := NextInWindow(at, ws, loc)
	if !next.After(at) {
		return false
	}
	t.AvailableAt = next
	return true
}

// CheckCustomerUpdated checks a CustomerUpdated event: it names a customer
// (customer.id) and carries the archive's version (1 or more).
func CheckCustomerUpdated(ev *eventsv1.CustomerUpdated) error {
	var bad invalid.List
	if strings.TrimSpace(ev.GetCustomer().GetId()) == "" {
		bad.Add("customer.id", "is required")
	}
	if ev.GetVersion() < 1 {
		bad.Add("version", fmt.Sprintf("must be at least 1, not %d", ev.GetVersion()))
	}
	return bad.Err()
}

// CheckStatus checks a status filter: empty (any) or one of Statuses.
func CheckStatus(status string) error {
	if status == "" || slices.Contains(Statuses, status) {
		return nil
	}
	return invalid.New("status", fmt.Sprintf("must be one of %s, not %q", strings.Join(Statuses, ", "), status))
}
