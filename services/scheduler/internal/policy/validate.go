package policy

import (
	"fmt"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/huifang/huifang/pkg/invalid"
)

// Severities a complaint may have (seed 000: ordinary, urgent 紧要, major 重点).
var Severities = []string{"general", "urgent", SeverityMajor}

// SeverityMajor is the third class of complaint (seed 000: 重点投诉), followed
// up on site by the company manager.
const SeverityMajor = "major"

var (
	identRE    = regexp.MustCompile(`^[a-z][a-z0-9_]{0,63}$`)
	monthDayRE = regexp.MustCompile(`^(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])$`)
)

// Builtin returns the policies that ship with Huifang (tenant "*").
//
// complaint-resolved-confirmation is Huifang's own workflow (ComplaintResolved
// comes from feedback): it applies to every tenant. appliance-purchase is
// seed 001's purchase call, a starter: a tenant gets it only until it has
// configured its services (Effective), so that loading a pack (appliance's
// own purchase call, real estate's buyers) never doubles a follow-up or
// brings an appliance call to another business. Version 2 made it a starter;
// visits planned from version 1 keep it.
func Builtin() []Policy {
	return []Policy{{
		ID:      BuiltinAppliancePurchase,
		Tenant:  AllTenants,
		Name:    "appliance-purchase",
		Version: 2,
		Trigger: Trigger{ServiceTypes: []string{"purchase"}},
		Steps: []Step{{
			Offset: Duration(24 * time.Hour), Window: Duration(48 * time.Hour),
			Channel: ChannelPhone, SampleRate: 1,
		}},
		Active:     true,
		Builtin:    true,
		Starter:    true,
		SourceRule: "seed 001: a new purchase gets its first follow-up 1–3 days after purchase, by phone",
	}, {
		ID:      BuiltinComplaintResolved,
		Tenant:  AllTenants,
		Name:    "complaint-resolved-confirmation",
		Version: 1,
		Trigger: Trigger{ServiceTypes: []string{TypeComplaintResolved}},
		Steps: []Step{{
			Offset: 0, Window: Duration(48 * time.Hour),
			Channel: ChannelPhone, SampleRate: 1,
		}},
		Active:     true,
		Builtin:    true,
		SourceRule: "seed 003: follow-up within 48 hours after a resolved problem; seed 004: confirm the customer is satisfied; seed 000: a major complaint's on site",
	}}
}

// The ids of the built-in policies.
const (
	BuiltinAppliancePurchase = "builtin-appliance-purchase"
	BuiltinComplaintResolved = "builtin-complaint-resolved"
)

// Effective returns the policies that apply to a tenant out of the latest
// versions of those it sees (its own and the built-ins, with its switches
// applied): a starter built-in that is on steps aside, switched off with
// SupersededBy saying why, once the tenant has an active policy of a pack
// or an active policy of its own triggered by one of the starter's service
// types. A starter the tenant switched on itself (TenantOverride) stays on.
func Effective(ps []Policy) []Policy {
	out := slices.Clone(ps)
	for i, s := range out {
		if !s.Builtin || !s.Starter || !s.Active || s.TenantOverride {
			continue
		}
		if why := supersede(s, ps); why != "" {
			out[i].Active, out[i].SupersededBy = false, why
		}
	}
	return out
}

// supersede says which of the tenant's policies makes starter s step
// aside, "" when none does.
func supersede(s Policy, ps []Policy) string {
	var pack string
	for _, p := range ps {
		if p.Builtin || p.Tenant == AllTenants || !p.Active {
			continue
		}
		for _, t := range p.Trigger.ServiceTypes {
			if slices.Contains(s.Trigger.ServiceTypes, t) {
				return fmt.Sprintf("the tenant's policy %s is triggered by %s", p.Name, t)
			}
		}
		if pack == "" && p.Pack != "" {
			pack = fmt.Sprintf("the tenant loaded the %s pack (policy %s)", p.Pack, p.Name)
		}
	}
	return pack
}

func validAnchor(from string) bool {
	if from == "" || from == AnchorService || from == AnchorWarrantyUntil {
		return true
	}
	return strings.HasPrefix(from, AnchorAttributePrefix) && identRE.MatchString(strings.TrimPrefix(from, AnchorAttributePrefix))
}

// Validate refuses a policy that cannot fire or is malformed, naming each field.
func Validate(p Policy) error {
	var l invalid.List
	if p.Name == "" {
		l.Add("policy.name", "is required")
	} else if len(p.Name) > 100 {
		l.Add("policy.name", "must be at most 100 characters")
	}
	if len(p.Trigger.ServiceTypes) == 0 {
		l.Add("policy.trigger.service_types", "must name at least one service type; a policy with an empty trigger never fires")
	}
	for i, t := range p.Trigger.ServiceTypes {
		if !identRE.MatchString(t) {
			l.Add(fmt.Sprintf("policy.trigger.service_types[%d]", i), "must be a service type such as purchase or repair (lowercase letters, digits, '_')")
		}
	}
	for i, s := range p.Trigger.Severities {
		if !contains(Severities, s) {
			l.Add(fmt.Sprintf("policy.trigger.severities[%d]", i), "must be general, urgent or major")
		}
	}
	for k := range p.Trigger.Attributes {
		if !identRE.MatchString(k) {
			l.Add("policy.trigger.attributes."+k, "must be an attribute name (lowercase letters, digits, '_')")
		}
	}
	for i, t := range p.Stop.ServiceTypes {
		if !identRE.MatchString(t) {
			l.Add(fmt.Sprintf("policy.stop.service_types[%d]", i), "must be a service type (lowercase letters, digits, '_')")
		}
	}
	if p.Stop.After < 0 {
		l.Add("policy.stop.after", "must not be negative")
	}
	if len(p.Steps) == 0 {
		l.Add("policy.steps", "must have at least one step")
	}
	for i, st := range p.Steps {
		validateStep(&l, fmt.Sprintf("policy.steps[%d]", i), st)
	}
	return l.Err()
}

func validateStep(l *invalid.List, f string, st Step) {
	if !validAnchor(st.Anchor.From) {
		l.Add(f+".anchor.from", "must be service, warranty_until or attributes.<name>")
	}
	if st.Anchor.Months < -1200 || st.Anchor.Months > 1200 {
		l.Add(f+".anchor.months", "must be between -1200 and 1200")
	}
	if st.Anchor.Days < -36500 || st.Anchor.Days > 36500 {
		l.Add(f+".anchor.days", "must be between -36500 and 36500")
	}
	if st.Anchor.LaterOf != "" && (st.Anchor.LaterOf == AnchorService || !validAnchor(st.Anchor.LaterOf)) {
		l.Add(f+".anchor.later_of", "must be warranty_until or attributes.<name>")
	}
	if st.Anchor.MileageKm < 0 {
		l.Add(f+".anchor.mileage_km", "must not be negative")
	}
	fromService := st.Anchor.From == "" || st.Anchor.From == AnchorService
	if st.Offset < 0 && fromService && st.Anchor.Months <= 0 && st.Anchor.Days <= 0 && st.Anchor.MileageKm == 0 {
		l.Add(f+".offset", "must not be negative when counted from the service: a visit cannot fall due before the service it follows")
	}
	if st.Window < 0 {
		l.Add(f+".window", "must not be negative")
	}
	switch {
	case st.Within < 0:
		l.Add(f+".within", "must not be negative")
	case st.WithinMonths < 0 || st.WithinMonths > 1200:
		l.Add(f+".within_months", "must be between 0 and 1200")
	case st.Within > 0 && st.WithinMonths > 0:
		l.Add(f+".within_months", "cannot be combined with within: the deadline is one or the other")
	case (st.Within > 0 || st.WithinMonths > 0) && st.Window > 0:
		l.Add(f+".window", "cannot be combined with within or within_months: the deadline is counted from the anchor, not from the due time")
	case (st.Within > 0 || st.WithinMonths > 0) && (st.Recurring() || st.AlignTo != ""):
		l.Add(f+".within", "applies only to a single visit that is not aligned (no every, every_months, seasons, on_holidays, on_milestones or align_to)")
	case st.Within > 0 && st.Within <= st.Offset:
		l.Add(f+".within", "must be later than the offset: the visit falls due before its deadline")
	case st.WithinMonths > 0 && st.Offset.D() >= time.Duration(st.WithinMonths)*28*24*time.Hour:
		l.Add(f+".within_months", "must be later than the offset: the visit falls due before its deadline")
	}
	if st.Channel <= ChannelUnspecified || st.Channel > ChannelWeb {
		l.Add(f+".channel", "is required: CHANNEL_PHONE, CHANNEL_SMS, CHANNEL_ONSITE, CHANNEL_EMAIL or CHANNEL_WEB")
	}
	if !(st.SampleRate > 0 && st.SampleRate <= 1) {
		l.Add(f+".sample_rate", "must be above 0 and at most 1")
	}
	for k := range st.GroupBySeverity {
		if !contains(Severities, k) {
			l.Add(f+".group_by_severity."+k, "must be keyed by general, urgent or major")
		}
	}
	if st.Every < 0 {
		l.Add(f+".every", "must not be negative")
	} else if st.Every > 0 && st.Every.D() < time.Hour {
		l.Add(f+".every", "must be at least 1h")
	}
	switch {
	case st.EveryMonths < 0 || st.EveryMonths > 1200:
		l.Add(f+".every_months", "must be between 0 and 1200")
	case st.EveryMonths > 0 && st.Every > 0:
		l.Add(f+".every_months", "cannot be combined with every: the cadence is one or the other")
	}
	for j, se := range st.Seasons {
		sf := fmt.Sprintf("%s.seasons[%d]", f, j)
		if !monthDayRE.MatchString(se.From) {
			l.Add(sf+".from", "must be a month and day, MM-DD")
		}
		if !monthDayRE.MatchString(se.To) {
			l.Add(sf+".to", "must be a month and day, MM-DD")
		}
		if se.Every.D() < time.Hour {
			l.Add(sf+".every", "must be at least 1h")
		}
	}
	if st.AlignTo != "" && st.AlignTo != "quarter" {
		l.Add(f+".align_to", "must be empty or quarter")
	}
	if st.MaxOccurrences < 0 {
		l.Add(f+".max_occurrences", "must not be negative")
	}
	if st.MaxOccurrences > 0 && !st.Recurring() {
		l.Add(f+".max_occurrences", "applies only to a recurring step (every, every_months, seasons, on_holidays or on_milestones)")
	}
	for j, k := range st.OnMilestones {
		if !identRE.MatchString(k) {
			l.Add(fmt.Sprintf("%s.on_milestones[%d]", f, j), "must be a milestone kind such as launch or construction (lowercase letters, digits, '_')")
		}
	}
	switch {
	case st.Before < 0:
		l.Add(f+".before", "must not be negative")
	case st.Before > 0 && !st.CalendarStep():
		l.Add(f+".before", "applies only to a step on the tenant's calendar (on_holidays or on_milestones)")
	case st.Before.D() > 366*24*time.Hour:
		l.Add(f+".before", "must be at most a year")
	}
	if len(st.OnMilestones) > 0 && (st.OnHolidays || st.Every > 0 || st.EveryMonths > 0 || len(st.Seasons) > 0) {
		l.Add(f+".on_milestones", "cannot be combined with on_holidays, every, every_months or seasons in one step: use a step each")
	}
}

func contains(list []string, v string) bool {
	for _, x := range list {
		if x == v {
			return true
		}
	}
	return false
}
