// Package task holds dispatch's domain: the tasks that due visits become,
// the agents who claim them, and the rules that check, place and complete
// both (roles, retries, holding a lease, deadlines, automatic sends). It
// does no I/O. Contact windows, quiet hours, holidays and time zones are
// pkg/contact's: a task places its attempts with the calendar it carries.
//
// The contract's enums (typesv1.Channel, Severity, Disposition) are used as
// the domain's own values; messages are converted at the edge.
package task

import (
	"fmt"
	"slices"
	"strings"
	"time"

	typesv1 "github.com/huifang/huifang/proto/huifang/types/v1"

	"github.com/huifang/huifang/pkg/contact"
	"github.com/huifang/huifang/pkg/invalid"
)

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
	Customer Customer
	// CustomerVersion is the version of Customer as dispatch kept it
	// (CustomerUpdated); 0: the snapshot of the visit, before dispatch kept
	// any.
	CustomerVersion int64
	// Calendar is the tenant's contact calendar the visit came with
	// (VisitDue.contact_calendar); the zero calendar allows any time, the
	// customer's own windows still hold.
	Calendar contact.Calendar
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
	// AvailableAt is when the task may next be worked: the due time placed
	// in the contact calendar, a retry, a call-back.
	AvailableAt    time.Time
	Status         string
	AgentID        string
	LeaseExpiresAt time.Time
	// LeaseToken is the fencing token of the task's latest claim: every
	// claim (an agent's, a leader's reassignment, the sender's) makes it one
	// more. A holder carries the token its claim answered, and each of its
	// writes is checked against the task's under the row lock (Fenced), so a
	// holder whose lease ran out and whose task was claimed again changes
	// nothing.
	LeaseToken int64
	// ClaimRequestID is the request id of the agent's claim that last took
	// the task (ClaimNextTask.request_id; empty when it brought none): a
	// retry of that claim is answered with this task while the claim still
	// holds it (Answers). A leader's reassignment and the sender's claim,
	// new claims that carry none, clear it.
	ClaimRequestID  string
	Attempts        int
	LastDisposition typesv1.Disposition
	CreatedAt       time.Time
}

// CustomerID returns the id of the task's customer.
func (t Task) CustomerID() string { return t.Customer.ID }

// Active reports whether the task still waits for work.
func (t Task) Active() bool {
	return t.Status == StatusOpen || t.Status == StatusClaimed || t.Status == StatusSending
}

// RequiredRank is the rank an agent needs for the task (RoleRank of its
// required role; 0 when it names none or a role that ranks apart).
func (t Task) RequiredRank() int { return RoleRank(t.RequiredRole) }

// IsAutomatic reports whether dispatch sends visits of channel c itself.
func IsAutomatic(c typesv1.Channel) bool {
	return c == typesv1.Channel_CHANNEL_SMS || c == typesv1.Channel_CHANNEL_EMAIL
}

// IsVoice reports whether visits of channel c talk to the customer (a call
// or an on-site visit): those keep to the contact windows and, when the
// tenant says so, off holidays; every channel keeps to quiet hours.
func IsVoice(c typesv1.Channel) bool {
	return c == typesv1.Channel_CHANNEL_PHONE || c == typesv1.Channel_CHANNEL_ONSITE
}

// Place returns the first moment at or after at when t may be worked: the
// task's calendar with the customer's own windows and time zone
// (pkg/contact).
func (t Task) Place(at time.Time) time.Time {
	next, _ := t.Calendar.Place(at, IsVoice(t.Channel), t.Customer.Contact(), false)
	return next
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
}

// TierRank ranks a tier: its index in Tiers, or len(Tiers) when absent.
// The claim orders by the rank stored with the task; this is the only
// place that computes it.
func (r Rules) TierRank(tier string) int {
	if i := slices.Index(r.Tiers, strings.TrimSpace(tier)); i >= 0 {
		return i
	}
	return len(r.Tiers)
}

// Due is a visit that fell due (VisitDue), as a new task is made from it.
type Due struct {
	Tenant   string
	VisitID  string
	Channel  typesv1.Channel
	Severity typesv1.Severity
	// DueAt is when the visit is due; zero: now.
	DueAt time.Time
	// Deadline is the visit's own deadline; zero: the rules' default.
	Deadline        time.Time
	Customer        Customer
	Calendar        contact.Calendar
	Group           string
	OrgUnit         string
	ServiceType     string
	PolicyID        string
	ProductCategory string
	// What the agent's screen shows of the service besides (issue 17):
	// kept beside the task (store.TaskDetails), not used for routing.
	ServiceID   string
	CompletedAt time.Time
	ComplaintID string
	Late        bool
}

// New turns a due visit into a new open task with id, created at now. A
// visit without a visit id, or with a channel or severity Huifang does not
// know, is refused. Without a due time the visit is due now; it is first
// available at the due time placed in the contact calendar.
func New(d Due, id string, now time.Time, rules Rules) (Task, error) {
	var bad invalid.List
	visitID := strings.TrimSpace(d.VisitID)
	if visitID == "" {
		bad.Add("visit_id", "is required")
	}
	if _, known := typesv1.Channel_name[int32(d.Channel)]; !known {
		bad.Add("channel", fmt.Sprintf("must be a known channel, not %d", d.Channel))
	}
	if _, known := typesv1.Severity_name[int32(d.Severity)]; !known {
		bad.Add("severity", fmt.Sprintf("must be a known severity, not %d", d.Severity))
	}
	if err := bad.Err(); err != nil {
		return Task{}, err
	}
	t := Task{
		ID:              id,
		Tenant:          d.Tenant,
		VisitID:         visitID,
		Calendar:        d.Calendar,
		Channel:         d.Channel,
		Group:           strings.TrimSpace(d.Group),
		OrgUnit:         strings.TrimSpace(d.OrgUnit),
		ServiceType:     strings.TrimSpace(d.ServiceType),
		PolicyID:        strings.TrimSpace(d.PolicyID),
		ProductCategory: strings.TrimSpace(d.ProductCategory),
		Severity:        d.Severity,
		Automatic:       IsAutomatic(d.Channel),
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
	rules.SetCustomer(&t, d.Customer)
	if !d.DueAt.IsZero() {
		t.DueAt = d.DueAt
	}
	if !d.Deadline.IsZero() {
		t.Deadline = d.Deadline
	} else if rules.DefaultDeadline > 0 {
		t.Deadline = t.DueAt.Add(rules.DefaultDeadline)
	}
	t.AvailableAt = t.Place(t.DueAt)
	return t, nil
}

// SetCustomer gives t the customer snapshot c and what routing derives
// from it: the tier's rank, the primary and backup owners (owner_ids[0] and
// [1]) and the language. The contact windows and time zone are read from
// the snapshot when an attempt is placed.
func (r Rules) SetCustomer(t *Task, c Customer) {
	t.Customer = c
	t.TierRank = r.TierRank(c.Tier)
	t.Language = strings.TrimSpace(c.Preferences.Language)
	t.PrimaryOwner, t.BackupOwner = "", ""
	if len(c.OwnerIDs) > 0 {
		t.PrimaryOwner = strings.TrimSpace(c.OwnerIDs[0])
	}
	if len(c.OwnerIDs) > 1 {
		t.BackupOwner = strings.TrimSpace(c.OwnerIDs[1])
	}
}

// Reroutes reports whether a customer's new snapshot changes, in its
// active tasks, more than the snapshot they show (which they read from the
// newest version kept): what SetCustomer derives for routing (the tier's
// rank, the owners, the language), the contact preferences Replace places
// an open task by, or the channels opted out of. Any opt-out counts, not
// only a new one: WithdrawOptedOut withdraws a task on such a channel
// whenever a snapshot is applied, whatever the one before said.
func (r Rules) Reroutes(old, new Customer) bool {
	var a, b Task
	r.SetCustomer(&a, old)
	r.SetCustomer(&b, new)
	ca, cb := old.Contact(), new.Contact()
	return a.TierRank != b.TierRank || a.Language != b.Language || a.PrimaryOwner != b.PrimaryOwner || a.BackupOwner != b.BackupOwner ||
		!slices.Equal(ca.Windows, cb.Windows) || ca.TimeZone != cb.TimeZone || len(new.Preferences.OptedOut) > 0
}

// Replace moves an open task that would next be worked at a moment its
// (new) contact preferences do not allow to the next moment they do, and
// reports whether it moved it. The moment checked is AvailableAt, or now
// when that has passed; a task at an allowed moment keeps its AvailableAt
// (so the routing stages, measured from it, do not restart). Claimed and
// closed tasks are left alone.
func (t *Task) Replace(now time.Time) bool {
	if t.Status != StatusOpen {
		return false
	}
	at := t.AvailableAt
	if at.Before(now) {
		at = now
	}
	next := t.Place(at)
	if !next.After(at) {
		return false
	}
	t.AvailableAt = next
	return true
}

// CheckCustomerUpdate checks a customer update (CustomerUpdated): it names
// a customer (customer.id) and carries the archive's version (1 or more).
func CheckCustomerUpdate(c Customer, version int64) error {
	var bad invalid.List
	if strings.TrimSpace(c.ID) == "" {
		bad.Add("customer.id", "is required")
	}
	if version < 1 {
		bad.Add("version", fmt.Sprintf("must be at least 1, not %d", version))
	}
	return bad.Err()
}

// Newer reports whether version of a customer replaces the kept one
// (found: whether one is kept): versions only go up in intake, so a late or
// repeated one changes nothing.
func Newer(version, kept int64, found bool) bool { return !found || version > kept }

// WithdrawOptedOut cancels t when it is an open or claimed task on channel
// c, other than the task except (the customer opted out of c): its agent
// loses it. It reports whether it changed t.
func (t *Task) WithdrawOptedOut(c typesv1.Channel, except string) bool {
	if t.ID == except || t.Channel != c || (t.Status != StatusOpen && t.Status != StatusClaimed) {
		return false
	}
	t.Status, t.AgentID, t.LeaseExpiresAt = StatusCancelled, "", time.Time{}
	return true
}

// Cancel closes an active task as cancelled (its visit was cancelled) and
// reports whether it did; a closed task stays as it is.
func (t *Task) Cancel() bool {
	if !t.Active() {
		return false
	}
	t.Status, t.AgentID, t.LeaseExpiresAt = StatusCancelled, "", time.Time{}
	return true
}

// CheckStatus checks a status filter: empty (any) or one of Statuses.
func CheckStatus(status string) error {
	if status == "" || slices.Contains(Statuses, status) {
		return nil
	}
	return invalid.New("status", fmt.Sprintf("must be one of %s, not %q", strings.Join(Statuses, ", "), status))
}

// Deadline stages of the SLA clock.
const (
	StageNear = "near"
	StagePast = "past"
)

// Stage returns the SLA stage of a deadline at now: "past" when it is at or
// before now, else "near".
func Stage(deadline, now time.Time) string {
	if !deadline.After(now) {
		return StagePast
	}
	return StageNear
}
