// Package policy holds follow-up policies and the pure rules that turn a
// completed service into planned visits: triggers and their conditions,
// steps anchored on a date with exact deadlines ("within N days", calendar
// months), sampling as a deterministic quota (quota.go), recurring cadences
// with seasons, and stop conditions. It does no I/O.
package policy

import (
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"

	typesv1 "github.com/huifang/huifang/proto/huifang/types/v1"
)

// AllTenants is the tenant of built-in policies, which apply to every tenant.
const AllTenants = "*"

// DefaultWindow is how long a visit may be made after falling due when a step
// names no window: the 48-hour standard of seed 003.
const DefaultWindow = 48 * time.Hour

// Channel numbers follow huifang.types.v1.Channel.
const (
	ChannelUnspecified = 0
	ChannelPhone       = 1
	ChannelSMS         = 2
	ChannelOnsite      = 3
	ChannelEmail       = 4
	ChannelWeb         = 5
)

// ChannelName returns the full enum name of a channel number
// ("CHANNEL_PHONE"), as reasons, policy files and SimulatePolicy write it;
// the number for a channel the contract does not know.
func ChannelName(c int32) string { return typesv1.Channel(c).String() }

// FollowUpID is the policy id of the visits feedback asks for (FollowUpRequested).
const FollowUpID = "followup"

// Refusals of the policy rules.
var (
	// ErrBuiltin: built-in policies apply to every tenant; a tenant switches
	// one on or off for itself but cannot edit it, and the built-ins' own
	// tenant "*" switches nothing.
	ErrBuiltin = errors.New("built-in policies apply to every tenant and cannot be changed by one")
	// ErrForeign: the policy is not the tenant's own (a policy of tenant "*"
	// that is not a built-in), so the tenant cannot switch it.
	ErrForeign = errors.New("the policy is not the tenant's")
)

// Service types the scheduler derives from events other than ServiceCompleted.
const (
	// TypeComplaintResolved is a complaint resolved by its owning department (ComplaintResolved).
	TypeComplaintResolved = "complaint_resolved"
	// TypeVisitUnreachable is a visit dispatch could not make (VisitUnreachable:
	// unreachable or unanswered after its attempts). Policies triggered by it
	// invite the customer again (seed 000 auto: "invite again if the first
	// invitation failed"); the service's attributes name the failed visit.
	TypeVisitUnreachable = "visit_unreachable"
)

// Attributes of a visit_unreachable service, for triggers.
const (
	// AttrFailedPolicy is the name of the policy whose visit failed.
	AttrFailedPolicy = "failed_policy"
	// AttrFailedStep is the step of the failed visit ("0" for the first).
	AttrFailedStep = "failed_step"
	// AttrFailedVisit is the id of the failed visit.
	AttrFailedVisit = "failed_visit_id"
	// AttrFailedServiceType is the type of the service the failed visit followed.
	AttrFailedServiceType = "failed_service_type"
)

// Unreachable is the service a failed visit becomes: the service the visit
// followed (customer, org unit, product, warranty, attributes), completed when
// the visit failed, with the failed_* attributes naming the visit.
func Unreachable(orig Service, policyName string, step int, visitID string, at time.Time) Service {
	s := orig
	s.ID, s.Type, s.CompletedAt = "unreachable:"+visitID, TypeVisitUnreachable, at
	s.Attributes = maps.Clone(orig.Attributes)
	if s.Attributes == nil {
		s.Attributes = map[string]string{}
	}
	s.Attributes[AttrFailedPolicy] = policyName
	s.Attributes[AttrFailedStep] = strconv.Itoa(step)
	s.Attributes[AttrFailedVisit] = visitID
	s.Attributes[AttrFailedServiceType] = orig.Type
	return s
}

// Anchor fields a step may count from.
const (
	AnchorService       = "service"
	AnchorWarrantyUntil = "warranty_until"
	// AnchorAttributePrefix names a date among the service's attributes, e.g. "attributes.insurance_due".
	AnchorAttributePrefix = "attributes."
	// AttrKmPerDay is the service attribute holding the customer's driving habit (km a day).
	AttrKmPerDay = "km_per_day"
)

// Policy says which services get follow-ups, when and how.
type Policy struct {
	ID      string  `json:"id,omitempty"`
	Tenant  string  `json:"tenant_id,omitempty"`
	Name    string  `json:"name"`
	Version int     `json:"version,omitempty"`
	Trigger Trigger `json:"trigger"`
	Steps   []Step  `json:"steps"`
	Stop    Stop    `json:"stop,omitzero"`
	Active  bool    `json:"active,omitempty"`
	Builtin bool    `json:"builtin,omitempty"`
	// Starter marks a built-in that a tenant gets only until it configures
	// the services it covers: it steps aside for a tenant with an active
	// policy of a pack, or an active policy of its own triggered by one of
	// its service types (Effective).
	Starter    bool      `json:"starter,omitempty"`
	SourceRule string    `json:"source_rule,omitempty"`
	Pack       string    `json:"pack,omitempty"`
	CreatedAt  time.Time `json:"created_at,omitzero"`
	// TenantOverride: a built-in policy the tenant switched on or off for
	// itself; Active is then the tenant's effective state. Not part of the spec.
	TenantOverride bool `json:"-"`
	// SupersededBy: a starter built-in that does not apply to the tenant,
	// and why (Effective); Active is then false. Not part of the spec.
	SupersededBy string `json:"-"`
}

// Trigger selects services. Every non-empty condition must hold.
type Trigger struct {
	ServiceTypes []string `json:"service_types"`
	// OrgUnits, when not empty, limits the policy to these org units.
	OrgUnits []string `json:"org_units,omitempty"`
	// Tiers, when not empty, limits the policy to customers of these tiers.
	Tiers []string `json:"tiers,omitempty"`
	// ProductCategories, when not empty, limits the policy to these product categories.
	ProductCategories []string `json:"product_categories,omitempty"`
	// Severities, when not empty, limits the policy to complaints of these
	// severities: general, urgent, major (seed 000).
	Severities []string `json:"severities,omitempty"`
	// Attributes must all equal the service's attributes of the same name.
	Attributes map[string]string `json:"attributes,omitempty"`
	// OncePerCustomer: a customer with pending visits of this policy is not enrolled again.
	OncePerCustomer bool `json:"once_per_customer,omitempty"`
}

// Anchor is the moment a step counts from: the service time, or a date of
// the service, moved by Months and Days; with MileageKm, the earlier of that
// date and the day the customer's driving habit reaches MileageKm.
type Anchor struct {
	From      string `json:"from,omitempty"`
	Months    int    `json:"months,omitempty"`
	Days      int    `json:"days,omitempty"`
	MileageKm int    `json:"mileage_km,omitempty"`
	// LaterOf names another date field (warranty_until or attributes.<name>): the
	// anchor is the later of the date above and that one ("absent 6 months and
	// past warranty", seed 000 auto).
	LaterOf string `json:"later_of,omitempty"`
}

// Season gives a recurring step another cadence between two dates of each
// year (MM-DD, inclusive; From after To wraps over the new year).
type Season struct {
	Name  string   `json:"name"`
	From  string   `json:"from"`
	To    string   `json:"to"`
	Every Duration `json:"every"`
}

// Step is one follow-up, or a recurring series of them.
type Step struct {
	Anchor Anchor `json:"anchor,omitzero"`
	// Offset from the anchor; negative means before a date anchor.
	Offset Duration `json:"offset"`
	// Window: the visit counts as timely until due + Window (0 = 48 h, seed 003).
	Window Duration `json:"window"`
	// Within: "within N days of the anchor" (seed 000 (property): closed
	// complaints within 3 days): the deadline is exactly anchor + Within
	// (N × 24 h), whatever the offset; Window is then not used.
	Within Duration `json:"within,omitempty"`
	// WithinMonths: "within N months of the anchor" (seed 000 (property):
	// repairs within 1 month): the deadline is the same time of the same day
	// N calendar months after the anchor, clamped to the month's last day.
	WithinMonths int     `json:"within_months,omitempty"`
	Channel      Channel `json:"channel"`
	// SampleRate is the share of services that get the step, in (0, 1]: a
	// minimum, met by a quota per org unit and calendar month (quota.go).
	SampleRate float64 `json:"sample_rate"`
	Group      string  `json:"group,omitempty"`
	// GroupBySeverity picks the group by the complaint's severity (seed 000).
	GroupBySeverity map[string]string `json:"group_by_severity,omitempty"`
	// Every repeats the step; Seasons override it between their dates.
	Every Duration `json:"every,omitempty"`
	// EveryMonths repeats the step every N calendar months ("monthly", seed
	// 002 (cement): on-site monthly off season): the same day of the month
	// as the series' first visit, clamped to the month's last day; Seasons
	// override it between their dates.
	EveryMonths int      `json:"every_months,omitempty"`
	Seasons     []Season `json:"seasons,omitempty"`
	// OnHolidays repeats the step on every holiday of the tenant's calendar (seed 002, class D).
	OnHolidays bool `json:"on_holidays,omitempty"`
	// AlignTo "quarter" moves the due time to the start of the next quarter (seed 000 churn lists).
	AlignTo string `json:"align_to,omitempty"`
	// MaxOccurrences ends a recurring step after that many visits (0 = no limit).
	MaxOccurrences int `json:"max_occurrences,omitempty"`
	// OnMilestones repeats the step on each milestone of these kinds in the
	// tenant's project calendar (seed 002: referred VIPs at launch, offers,
	// show-flat opening; buyers at construction milestones).
	OnMilestones []string `json:"on_milestones,omitempty"`
	// Before makes a calendar step's visit fall this long before each
	// holiday or milestone instead of on it (seed 002: referred VIPs are
	// told of a milestone in advance, 提前……告知). A date nearer than
	// Before to the step's start is announced at the start, and that one
	// visit covers every date less than Before ahead of it.
	Before Duration `json:"before,omitempty"`
}

// Recurring tells whether the step plans more than one visit.
func (s Step) Recurring() bool {
	return s.Every > 0 || s.EveryMonths > 0 || len(s.Seasons) > 0 || s.OnHolidays || len(s.OnMilestones) > 0
}

// CalendarStep tells whether the step falls on dates of the tenant's calendar
// (holidays or milestones), so the contact policy does not move it off a holiday.
func (s Step) CalendarStep() bool { return s.OnHolidays || len(s.OnMilestones) > 0 }

// Stop ends a policy's pending visits for a customer.
type Stop struct {
	// ServiceTypes: a later service of one of these types by the customer ("the customer came in").
	ServiceTypes []string `json:"service_types,omitempty"`
	// Answered: a logged visit of the series ends the rest of it.
	Answered bool `json:"answered,omitempty"`
	// After: no recurring visit later than this after the service.
	After Duration `json:"after,omitempty"`
}

// Service is what the planner knows of a completed service (or of a resolved complaint).
type Service struct {
	Tenant          string            `json:"tenant_id"`
	ID              string            `json:"id"`
	Type            string            `json:"type"`
	OrgUnit         string            `json:"org_unit,omitempty"`
	CompletedAt     time.Time         `json:"completed_at"`
	CustomerID      string            `json:"customer_id,omitempty"`
	Tier            string            `json:"tier,omitempty"`
	ProductCategory string            `json:"product_category,omitempty"`
	WarrantyUntil   time.Time         `json:"warranty_until,omitzero"`
	Severity        string            `json:"severity,omitempty"`
	Attributes      map[string]string `json:"attributes,omitempty"`
	// Vehicle names the car serviced (its VIN, else its plate; auto dealer),
	// and OdometerKm is its odometer reading at CompletedAt (0: none read).
	Vehicle    string `json:"vehicle,omitempty"`
	OdometerKm int64  `json:"odometer_km,omitempty"`
}

// Decision is one thing that decided a visit's fate or time, kept for ExplainVisit.
type Decision struct {
	Kind   string    `json:"kind"`
	Detail string    `json:"detail"`
	At     time.Time `json:"at,omitzero"`
}

// Decision kinds.
const (
	KindRule       = "rule"
	KindSample     = "sample"
	KindAnchor     = "anchor"
	KindWindow     = "window"
	KindQuiet      = "quiet_hours"
	KindHoliday    = "holiday"
	KindCap        = "cap"
	KindOptOut     = "opt_out"
	KindDislikes   = "dislikes_calls"
	KindReschedule = "reschedule"
	KindCancel     = "cancel"
	KindStop       = "stop"
	KindMilestone  = "milestone"
	// KindUnreachable: dispatch could not reach the customer (VisitUnreachable).
	KindUnreachable = "unreachable"
	// KindFireFailed: firing the visit failed for a reason of its own (the
	// detail says which); the visit waits for an operator.
	KindFireFailed = "fire_failed"
	// KindRetry: an operator put a failed visit back to planned.
	KindRetry = "retry"
	// KindLate: the visit is placed, or fell due, after its deadline; the
	// deadline stays the policy's and the visit is reported late (issue 16).
	KindLate = "late"
	// KindForecast: what the caps will do to a planned visit when it falls
	// due, as the contacts stand now (not stored: ExplainVisit adds it).
	KindForecast = "forecast"
	// KindMileage: a later odometer reading gave a new driving habit and
	// moved the visit of a mileage anchor (issue 16).
	KindMileage = "mileage"
)

// Visit is a planned follow-up.
type Visit struct {
	PolicyID      string
	PolicyVersion int
	Step          int
	Occurrence    int
	Channel       int32
	Group         string
	// Nominal is when the policy wants the visit; DueAt is Nominal after the contact policy moved it.
	Nominal  time.Time
	DueAt    time.Time
	Deadline time.Time
	// Planned is false when the quota left the service out or the anchor is missing.
	Planned bool
	// OnDay: the visit is due on a day rather than at a time (a holiday, a
	// milestone, the start of a quarter, a date, at midnight in the tenant's
	// zone); the contact policy picks the hour (contact.Rules.DayStart).
	// Only planning reads it; it is not stored.
	OnDay bool
	// Draw is the hash draw in [0, 1) of visits planned before sampling
	// became a quota (issue 16); 0 for later visits, whose sample decision
	// names their place in the quota.
	Draw       float64
	SampleRate float64
	Reason     string
	Decisions  []Decision
}

// Late tells whether the visit is due after its deadline (a contact
// window, quiet hours or a holiday placed it there): it will be late.
func (v Visit) Late() bool { return !v.Deadline.IsZero() && v.DueAt.After(v.Deadline) }

// LateDecision is the decision that says a visit at at is late for its
// deadline, and by how much.
func LateDecision(at, deadline time.Time, what string) Decision {
	return Decision{Kind: KindLate, At: at, Detail: fmt.Sprintf("%s %s, %s after its deadline %s: it is reported late (the deadline stays the policy's)",
		what, at.UTC().Format(time.RFC3339), FormatDuration(at.Sub(deadline).Truncate(time.Second)), deadline.UTC().Format(time.RFC3339))}
}

// Calendar knows the tenant's time zone, holidays and project milestones.
type Calendar interface {
	// Zone is the tenant's time zone (UTC when it has none): dates (a date
	// attribute, a holiday, a milestone, the start of a quarter) start at
	// midnight there, and the sampling period is a calendar month there.
	Zone() *time.Location
	// NextHoliday returns the first holiday starting after t.
	NextHoliday(t time.Time) (time.Time, bool)
	// NextMilestone returns the first milestone of one of the kinds starting
	// after t for the project ("" = milestones of any project), and its description.
	NextMilestone(t time.Time, project string, kinds []string) (time.Time, string, bool)
}

// AttrProject is the service attribute naming the project a milestone belongs to (seed 002).
const AttrProject = "project"

// NoHolidays is a calendar in UTC without holidays or milestones.
type NoHolidays struct{}

// Zone is UTC.
func (NoHolidays) Zone() *time.Location { return time.UTC }

// NextHoliday never finds one.
func (NoHolidays) NextHoliday(time.Time) (time.Time, bool) { return time.Time{}, false }

// NextMilestone never finds one.
func (NoHolidays) NextMilestone(time.Time, string, []string) (time.Time, string, bool) {
	return time.Time{}, "", false
}

// Matches tells whether the policy applies to the service.
func (p Policy) Matches(s Service) bool {
	if !p.Active || (p.Tenant != AllTenants && p.Tenant != s.Tenant) {
		return false
	}
	t := p.Trigger
	if !slices.Contains(t.ServiceTypes, s.Type) {
		return false
	}
	in := func(list []string, v string) bool { return len(list) == 0 || slices.Contains(list, v) }
	if !in(t.OrgUnits, s.OrgUnit) || !in(t.Tiers, s.Tier) || !in(t.ProductCategories, s.ProductCategory) || !in(t.Severities, s.Severity) {
		return false
	}
	for k, v := range t.Attributes {
		if s.Attributes[k] != v {
			return false
		}
	}
	return true
}

// addMonths adds calendar months, keeping the day of month where it exists.
func addMonths(t time.Time, months int) time.Time {
	if months == 0 {
		return t
	}
	y, m, d := t.Date()
	first := time.Date(y, m+time.Month(months), 1, t.Hour(), t.Minute(), t.Second(), t.Nanosecond(), t.Location())
	last := first.AddDate(0, 1, -1).Day()
	return first.AddDate(0, 0, min(d, last)-1)
}

// fieldDate reads a date field of the service: the service time, warranty_until
// or a date attribute (a date without a time starts at midnight in loc, the
// tenant's zone); ok is false (with the reason) when it is missing.
func fieldDate(from string, s Service, loc *time.Location) (time.Time, string, bool) {
	switch {
	case from == "" || from == AnchorService:
		return s.CompletedAt, "the service", true
	case from == AnchorWarrantyUntil:
		if s.WarrantyUntil.IsZero() {
			return time.Time{}, "the service has no warranty_until", false
		}
		return s.WarrantyUntil, "warranty_until", true
	case strings.HasPrefix(from, AnchorAttributePrefix):
		name := strings.TrimPrefix(from, AnchorAttributePrefix)
		v, ok := s.Attributes[name]
		if !ok {
			return time.Time{}, "the service has no attribute " + name, false
		}
		d, err := parseDate(v, loc)
		if err != nil {
			return time.Time{}, "attribute " + name + ": " + err.Error(), false
		}
		return d, name, true
	}
	return time.Time{}, "unknown anchor " + from, false
}

// Time computes the step's anchor for the service in the tenant's zone loc
// (issue 16: a date attribute starts at local midnight, and months and days
// are counted on the local calendar); ok is false (with the reason) when the
// anchor's date is missing. The time is returned in UTC.
func (a Anchor) Time(s Service, loc *time.Location) (time.Time, string, bool) {
	t, desc, ok := a.time(s, loc)
	if !ok || a.LaterOf == "" {
		return t.UTC(), desc, ok
	}
	other, what, ok := fieldDate(a.LaterOf, s, loc)
	if !ok {
		return time.Time{}, what, false
	}
	if other.After(t) {
		return other.UTC(), fmt.Sprintf("%s (%s), later than %s", what, other.In(loc).Format(time.DateOnly), desc), true
	}
	return t.UTC(), fmt.Sprintf("%s, later than %s (%s)", desc, what, other.In(loc).Format(time.DateOnly)), true
}

func (a Anchor) time(s Service, loc *time.Location) (time.Time, string, bool) {
	base, what, ok := fieldDate(a.From, s, loc)
	if !ok {
		return time.Time{}, what, false
	}
	base = base.In(loc)
	t := addMonths(base, a.Months).AddDate(0, 0, a.Days)
	desc := what
	if a.Months != 0 || a.Days != 0 {
		desc = fmt.Sprintf("%s + %d months %d days (%s)", what, a.Months, a.Days, t.Format(time.DateOnly))
	}
	if a.MileageKm > 0 {
		kmd, err := strconv.ParseFloat(s.Attributes[AttrKmPerDay], 64)
		if err == nil && kmd > 0 {
			byKm := base.Add(time.Duration(float64(a.MileageKm) / kmd * float64(24*time.Hour))).Truncate(time.Second)
			if byKm.Before(t) {
				return byKm, fmt.Sprintf("%d km at %.0f km a day (%s), before %s", a.MileageKm, kmd, byKm.Format(time.DateOnly), desc), true
			}
			desc += fmt.Sprintf(", before %d km at %.0f km a day", a.MileageKm, kmd)
		} else {
			desc += ", no km_per_day to project the mileage"
		}
	}
	return t, desc, true
}

// parseDate reads an RFC 3339 time, or a date (midnight in loc).
func parseDate(v string, loc *time.Location) (time.Time, error) {
	if t, err := time.Parse(time.RFC3339, v); err == nil {
		return t, nil
	}
	return time.ParseInLocation(time.DateOnly, v, loc)
}

// channel is the step's channel for the service: every follow-up of a
// major (third-class) complaint is made on site (seed 000: major complaints
// are followed up by the company manager, and from the second follow-up on
// a phone call is allowed only for the other classes), so a phone step
// becomes an on-site visit for one; changed says so.
func (s Step) channel(svc Service) (c Channel, changed bool) {
	if s.Channel == ChannelPhone && svc.Severity == SeverityMajor {
		return ChannelOnsite, true
	}
	return s.Channel, false
}

// MajorOnSite is the decision recorded when a phone step is made on site
// for a major complaint.
const MajorOnSite = "seed 000: a major (third-class) complaint is followed up on site, not by phone"

// group picks the step's group for the service.
func (s Step) group(svc Service) string {
	if g, ok := s.GroupBySeverity[svc.Severity]; ok {
		return g
	}
	return s.Group
}

func (s Step) window() time.Duration {
	if s.Window == 0 {
		return DefaultWindow
	}
	return s.Window.D()
}

// deadline is the first visit's deadline: anchor + Within, or Within
// calendar months (of loc, the tenant's zone) after the anchor, when the
// step says "within"; else due + Window.
func (s Step) deadline(anchor, due time.Time, loc *time.Location) (time.Time, string) {
	switch {
	case s.Within > 0:
		d := anchor.Add(s.Within.D())
		return d, fmt.Sprintf("within %s of the anchor: deadline %s", FormatDuration(s.Within.D()), d.Format(time.RFC3339))
	case s.WithinMonths > 0:
		d := addMonths(anchor.In(loc), s.WithinMonths).UTC()
		return d, fmt.Sprintf("within %d calendar months of the anchor: deadline %s", s.WithinMonths, d.Format(time.RFC3339))
	}
	return due.Add(s.window()), ""
}

// alignQuarter returns the start of the first quarter at or after t:
// midnight of 1 January, April, July or October in loc, the tenant's zone
// (issue 16), in UTC.
func alignQuarter(t time.Time, loc *time.Location) time.Time {
	t = t.In(loc)
	y, m, _ := t.Date()
	q := time.Date(y, ((m-1)/3)*3+1, 1, 0, 0, 0, 0, loc)
	if !q.Equal(t) {
		q = q.AddDate(0, 3, 0)
	}
	return q.UTC()
}

// Plan returns the first visit of every step for the service, with the
// reasons recorded on each. A step with a sample rate below 1 counts the
// service in q (its stratum: tenant, policy, step, org unit and calendar
// month in cal's zone) and plans it only when the quota takes it; a nil q
// counts nothing and samples everything in (the caller plans none of the
// visits: seed 000's complaints that need no follow-up are not eligible).
func (p Policy) Plan(s Service, cal Calendar, q Quota) ([]Visit, error) {
	out := make([]Visit, 0, len(p.Steps))
	for i, st := range p.Steps {
		channel, onsite := st.channel(s)
		v := Visit{
			PolicyID: p.ID, PolicyVersion: p.Version, Step: i, Channel: int32(channel), Group: st.group(s),
			SampleRate: st.SampleRate,
		}
		rule := fmt.Sprintf("policy %s v%d step %d", p.Name, p.Version, i)
		if p.SourceRule != "" {
			rule += " (" + p.SourceRule + ")"
		}
		v.Decisions = append(v.Decisions, Decision{Kind: KindRule, Detail: rule})
		if onsite {
			v.Decisions = append(v.Decisions, Decision{Kind: KindRule, Detail: MajorOnSite})
		}
		anchor, desc, ok := st.Anchor.Time(s, cal.Zone())
		if !ok {
			v.Reason = rule + ": not planned: " + desc
			v.Decisions = append(v.Decisions, Decision{Kind: KindAnchor, Detail: v.Reason})
			v.Nominal, v.DueAt, v.Deadline = s.CompletedAt, s.CompletedAt, s.CompletedAt
			out = append(out, v)
			continue
		}
		due := anchor.Add(st.Offset.D())
		how := fmt.Sprintf("due %s from %s", FormatDuration(st.Offset.D()), desc)
		if st.OnHolidays {
			h, ok := cal.NextHoliday(anchor.Add(st.Offset.D()).Add(-time.Nanosecond))
			if !ok {
				v.Reason = rule + ": not planned: the tenant's holiday calendar has no holiday ahead"
				v.Decisions = append(v.Decisions, Decision{Kind: KindHoliday, Detail: v.Reason})
				v.Nominal, v.DueAt, v.Deadline = s.CompletedAt, s.CompletedAt, s.CompletedAt
				out = append(out, v)
				continue
			}
			due, how = st.ahead(h, due, "the next holiday "+h.Format(time.DateOnly))
		}
		if len(st.OnMilestones) > 0 {
			m, what, ok := cal.NextMilestone(anchor.Add(st.Offset.D()).Add(-time.Nanosecond), s.Attributes[AttrProject], st.OnMilestones)
			if !ok {
				v.Reason = rule + ": not planned: the tenant's project calendar has no milestone (" + strings.Join(st.OnMilestones, ", ") + ") ahead"
				v.Decisions = append(v.Decisions, Decision{Kind: KindMilestone, Detail: v.Reason})
				v.Nominal, v.DueAt, v.Deadline = s.CompletedAt, s.CompletedAt, s.CompletedAt
				out = append(out, v)
				continue
			}
			due, how = st.ahead(m, due, "the next milestone "+what)
		}
		if st.AlignTo == "quarter" {
			due = alignQuarter(due, cal.Zone())
			how += ", listed at the start of the quarter " + due.In(cal.Zone()).Format(time.DateOnly)
		}
		deadline, within := st.deadline(anchor, due, cal.Zone())
		if within != "" {
			how += "; " + within
		}
		v.Nominal, v.DueAt, v.Deadline = due, due, deadline
		v.OnDay = st.onDay(due, cal.Zone())
		v.Decisions = append(v.Decisions, Decision{Kind: KindAnchor, Detail: how, At: due})
		v.Planned, v.Reason = true, rule+": "+how
		if st.SampleRate < 1 && q != nil {
			smp, err := q.Take(Stratum{Tenant: s.Tenant, PolicyID: p.ID, Step: i, OrgUnit: s.OrgUnit, Period: PeriodOf(s.CompletedAt, cal.Zone())}, st.SampleRate)
			if err != nil {
				return nil, err
			}
			detail := smp.Detail(st.SampleRate)
			v.Decisions = append(v.Decisions, Decision{Kind: KindSample, Detail: detail})
			if v.Planned = smp.In; !v.Planned {
				v.Reason = rule + ": " + detail
			}
		}
		out = append(out, v)
	}
	return out, nil
}

// ahead is the visit of a calendar step for the date d (a holiday or a
// milestone, described by what): on d, or Before earlier, but not before
// start (the step's start, or the previous visit): a date nearer than
// Before is announced at start.
func (s Step) ahead(d, start time.Time, what string) (time.Time, string) {
	if s.Before <= 0 {
		return d, "due on " + what
	}
	at := d.Add(-s.Before.D())
	if at.Before(start) {
		return start, fmt.Sprintf("due at once: %s is less than %s ahead", what, FormatDuration(s.Before.D()))
	}
	return at, fmt.Sprintf("due %s before %s", FormatDuration(s.Before.D()), what)
}

// nextAhead finds the date after the visit at prev of a calendar step
// whose visits fall before ahead of their dates: the first date whose
// visit falls after prev, so a date a visit at prev already announced
// (nearer than before to it) is not announced twice.
func nextAhead(prev time.Time, before time.Duration, next func(time.Time) (time.Time, string, bool)) (time.Time, string, bool) {
	t := prev
	for {
		d, what, ok := next(t)
		if !ok || d.Add(-before).After(prev) {
			return d, what, ok
		}
		t = d
	}
}

// onDay tells whether the step's visit due at t is due on a day: it
// counts from a date (a holiday, a milestone, the start of a quarter,
// warranty_until or a date attribute) and t is midnight in loc.
func (s Step) onDay(t time.Time, loc *time.Location) bool {
	l := t.In(loc)
	if l.Hour() != 0 || l.Minute() != 0 || l.Second() != 0 || l.Nanosecond() != 0 {
		return false
	}
	return s.CalendarStep() || s.AlignTo == "quarter" || (s.Anchor.From != "" && s.Anchor.From != AnchorService) || s.Anchor.LaterOf != ""
}

// every is the cadence of a recurring step at t: the season holding t, or Every.
func (s Step) every(t time.Time) (time.Duration, string) {
	md := t.UTC().Format("01-02")
	for _, se := range s.Seasons {
		in := se.From <= md && md <= se.To
		if se.From > se.To {
			in = md >= se.From || md <= se.To
		}
		if in {
			return se.Every.D(), se.Name
		}
	}
	return s.Every.D(), ""
}

// Next returns the occurrence after prev of a recurring step, or false when
// the series ends (not recurring, MaxOccurrences reached, Stop.After passed).
// dislikesCalls doubles the interval of phone steps (seed 002).
func (p Policy) Next(prev Visit, s Service, cal Calendar, dislikesCalls bool) (Visit, bool) {
	if prev.Step >= len(p.Steps) {
		return Visit{}, false
	}
	st := p.Steps[prev.Step]
	if !st.Recurring() || (st.MaxOccurrences > 0 && prev.Occurrence+1 >= st.MaxOccurrences) {
		return Visit{}, false
	}
	var next time.Time
	var how string
	switch {
	case len(st.OnMilestones) > 0:
		m, what, ok := nextAhead(prev.Nominal, st.Before.D(), func(t time.Time) (time.Time, string, bool) {
			return cal.NextMilestone(t, s.Attributes[AttrProject], st.OnMilestones)
		})
		if !ok {
			return Visit{}, false
		}
		next, how = st.ahead(m, prev.Nominal, "the next milestone "+what)
	case st.OnHolidays:
		h, _, ok := nextAhead(prev.Nominal, st.Before.D(), func(t time.Time) (time.Time, string, bool) {
			h, ok := cal.NextHoliday(t)
			return h, "", ok
		})
		if !ok {
			return Visit{}, false
		}
		next, how = st.ahead(h, prev.Nominal, "the next holiday "+h.Format(time.DateOnly))
	default:
		every, season := st.every(prev.Nominal)
		months := 0
		if season == "" && st.EveryMonths > 0 {
			months = st.EveryMonths
		}
		if every <= 0 && months == 0 {
			return Visit{}, false
		}
		if dislikesCalls && st.Channel == ChannelPhone {
			every, months = every*2, months*2
			how = "customer dislikes calls: interval doubled; "
		}
		if months > 0 {
			next = st.nextMonth(prev, s, months, cal.Zone())
			how += fmt.Sprintf("every %d calendar months", months)
		} else {
			next = prev.Nominal.Add(every)
			how += "every " + FormatDuration(every)
		}
		if season != "" {
			how += " (" + season + " season)"
		}
	}
	if p.Stop.After > 0 && next.After(s.CompletedAt.Add(p.Stop.After.D())) {
		return Visit{}, false
	}
	channel, onsite := st.channel(s)
	v := Visit{
		PolicyID: p.ID, PolicyVersion: p.Version, Step: prev.Step, Occurrence: prev.Occurrence + 1,
		Channel: int32(channel), Group: st.group(s), Nominal: next, DueAt: next, Deadline: next.Add(st.window()),
		Planned: true, Draw: prev.Draw, SampleRate: prev.SampleRate, OnDay: st.onDay(next, cal.Zone()),
	}
	v.Reason = fmt.Sprintf("policy %s v%d step %d occurrence %d: %s", p.Name, p.Version, prev.Step, v.Occurrence, how)
	v.Decisions = []Decision{{Kind: KindRule, Detail: v.Reason, At: next}}
	if onsite {
		v.Decisions = append(v.Decisions, Decision{Kind: KindRule, Detail: MajorOnSite, At: next})
	}
	return v, true
}

// nextMonth is the visit months calendar months after prev: the same day
// of the month as the series' first visit (anchor + offset) where the month
// has it, else its last day, so a series begun on 31 January falls on 28
// (or 29) February and 31 March. A series whose earlier visits a season
// moved off that day counts from prev. Months are counted in loc, the
// tenant's zone.
func (s Step) nextMonth(prev Visit, svc Service, months int, loc *time.Location) time.Time {
	next := addMonths(prev.Nominal.In(loc), months)
	anchor, _, ok := s.Anchor.Time(svc, loc)
	if !ok || len(s.Seasons) > 0 {
		return next.UTC()
	}
	first := anchor.In(loc).Add(s.Offset.D())
	diff := (next.Year()-first.Year())*12 + int(next.Month()) - int(first.Month())
	if at := addMonths(first, diff); diff > 0 && at.After(prev.Nominal) && at.Month() == next.Month() {
		return at.UTC()
	}
	return next.UTC()
}

// Clone returns a deep copy, so a version can be edited without touching another.
func (p Policy) Clone() Policy {
	c := p
	c.Trigger.ServiceTypes = slices.Clone(p.Trigger.ServiceTypes)
	c.Trigger.OrgUnits = slices.Clone(p.Trigger.OrgUnits)
	c.Trigger.Tiers = slices.Clone(p.Trigger.Tiers)
	c.Trigger.ProductCategories = slices.Clone(p.Trigger.ProductCategories)
	c.Trigger.Severities = slices.Clone(p.Trigger.Severities)
	c.Trigger.Attributes = maps.Clone(p.Trigger.Attributes)
	c.Stop.ServiceTypes = slices.Clone(p.Stop.ServiceTypes)
	c.Steps = slices.Clone(p.Steps)
	for i := range c.Steps {
		c.Steps[i].Seasons = slices.Clone(p.Steps[i].Seasons)
		c.Steps[i].GroupBySeverity = maps.Clone(p.Steps[i].GroupBySeverity)
		c.Steps[i].OnMilestones = slices.Clone(p.Steps[i].OnMilestones)
	}
	return c
}

// Revise returns next as the version after p: same id, tenant and on/off
// state, version p.Version+1. Visits already planned keep the version they
// came from. A built-in is not revised by a tenant (ErrBuiltin).
func (p Policy) Revise(next Policy) (Policy, error) {
	if p.Builtin || p.Tenant == AllTenants {
		return Policy{}, ErrBuiltin
	}
	next.ID, next.Tenant, next.Version, next.Active, next.Builtin = p.ID, p.Tenant, p.Version+1, p.Active, false
	return next, nil
}

// SwitchedByOverride says how tenant turns p on or off: its own policy is
// switched itself, every version (false); a built-in is switched for the
// tenant only, by an override that leaves every other tenant the built-in
// as it is (true). The built-ins' tenant "*" switches nothing (ErrBuiltin);
// a policy of tenant "*" that is not a built-in is not the tenant's to
// switch (ErrForeign).
func (p Policy) SwitchedByOverride(tenant string) (bool, error) {
	if err := SwitchableBy(tenant); err != nil {
		return false, err
	}
	switch {
	case p.Tenant == tenant:
		return false, nil
	case p.Builtin:
		return true, nil
	}
	return false, ErrForeign
}

// SwitchableBy refuses the tenant of the built-ins: "*" switches no
// policy on or off (ErrBuiltin), whichever policy it names.
func SwitchableBy(tenant string) error {
	if tenant == AllTenants {
		return ErrBuiltin
	}
	return nil
}

// Enrolls tells whether p plans visits for s, given the policies of the
// customer's pending visits: a policy triggered once per customer does not
// enrol a customer who still has a pending visit of it. A service without a
// customer is always enrolled.
func (p Policy) Enrolls(s Service, pendingPolicies []string) bool {
	return !p.Trigger.OncePerCustomer || s.CustomerID == "" || !slices.Contains(pendingPolicies, p.ID)
}

// CameIn tells whether the stop condition ends a pending visit that follows
// a service completed at followedAt, now that the customer came in for s: a
// later service of one of the stop's types by the same customer.
func (st Stop) CameIn(followedAt time.Time, s Service) bool {
	return s.CustomerID != "" && slices.Contains(st.ServiceTypes, s.Type) && followedAt.Before(s.CompletedAt)
}
