// Package policy holds follow-up policies and the pure rules that turn a
// completed service into planned visits. It does no I/O.
package policy

import (
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"regexp"
	"slices"
	"time"

	"github.com/huifang/huifang/pkg/invalid"
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

// Policy says which services get follow-ups, when and how.
type Policy struct {
	ID         string    `json:"id"`
	Tenant     string    `json:"tenant_id"`
	Name       string    `json:"name"`
	Version    int       `json:"version"`
	Trigger    Trigger   `json:"trigger"`
	Steps      []Step    `json:"steps"`
	Active     bool      `json:"active"`
	Builtin    bool      `json:"builtin"`
	SourceRule string    `json:"source_rule"`
	CreatedAt  time.Time `json:"created_at"`
}

// Trigger selects services.
type Trigger struct {
	ServiceTypes []string `json:"service_types"`
	// OrgUnits, when not empty, limits the policy to these org units.
	OrgUnits []string `json:"org_units,omitempty"`
}

// Step is one follow-up: due Offset after the service, timely until
// Offset+Window.
type Step struct {
	Offset  time.Duration `json:"offset"`
	Window  time.Duration `json:"window"`
	Channel int32         `json:"channel"`
	// SampleRate is the share of services that get the step, in (0, 1].
	SampleRate float64 `json:"sample_rate"`
	Group      string  `json:"group,omitempty"`
}

// Service is what the planner needs to know of a completed service.
type Service struct {
	Tenant      string
	ID          string
	Type        string
	OrgUnit     string
	CompletedAt time.Time
}

// Visit is a planned follow-up.
type Visit struct {
	PolicyID      string
	PolicyVersion int
	Step          int
	Channel       int32
	Group         string
	DueAt         time.Time
	Deadline      time.Time
	// Sampled is false when the sample draw left the service out.
	Sampled bool
	// Draw is the sample draw in [0, 1); the step applies when Draw < SampleRate.
	Draw   float64
	Reason string
}

// Builtin returns the policies that ship with Huifang.
func Builtin() []Policy {
	return []Policy{{
		ID:      "builtin-appliance-purchase",
		Tenant:  AllTenants,
		Name:    "appliance-purchase",
		Version: 1,
		Trigger: Trigger{ServiceTypes: []string{"purchase"}},
		Steps: []Step{{
			Offset: 24 * time.Hour, Window: 48 * time.Hour,
			Channel: ChannelPhone, SampleRate: 1,
		}},
		Active:     true,
		Builtin:    true,
		SourceRule: "seed 001: a new purchase gets its first follow-up 1–3 days after purchase, by phone",
	}}
}

// Matches tells whether the policy applies to the service.
func (p Policy) Matches(s Service) bool {
	if !p.Active || (p.Tenant != AllTenants && p.Tenant != s.Tenant) {
		return false
	}
	if !slices.Contains(p.Trigger.ServiceTypes, s.Type) {
		return false
	}
	return len(p.Trigger.OrgUnits) == 0 || slices.Contains(p.Trigger.OrgUnits, s.OrgUnit)
}

// Plan returns the visits the policy plans for the service, one per step,
// with the sample draw recorded on each.
func (p Policy) Plan(s Service) []Visit {
	out := make([]Visit, 0, len(p.Steps))
	for i, st := range p.Steps {
		window := st.Window
		if window == 0 {
			window = DefaultWindow
		}
		due := s.CompletedAt.Add(st.Offset)
		v := Visit{
			PolicyID: p.ID, PolicyVersion: p.Version, Step: i, Channel: st.Channel, Group: st.Group,
			DueAt: due, Deadline: due.Add(window),
			Draw: Draw(p.ID, s.ID, i),
		}
		v.Sampled = v.Draw < st.SampleRate
		if v.Sampled {
			v.Reason = fmt.Sprintf("policy %s v%d step %d: due %s after the service", p.Name, p.Version, i, st.Offset)
		} else {
			v.Reason = fmt.Sprintf("policy %s v%d step %d: sample draw %.4f is not below the rate %.4f", p.Name, p.Version, i, v.Draw, st.SampleRate)
		}
		out = append(out, v)
	}
	return out
}

// Draw is the deterministic sample draw in [0, 1) for a service and a step:
// a hash seeded with the policy id, so a rerun draws the same sample.
func Draw(policyID, serviceID string, step int) float64 {
	h := sha256.Sum256([]byte(fmt.Sprintf("%s|%s|%d", policyID, serviceID, step)))
	return float64(binary.BigEndian.Uint64(h[:8])>>11) / float64(uint64(1)<<53)
}

var identRE = regexp.MustCompile(`^[a-z][a-z0-9_]{0,63}$`)

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
	if len(p.Steps) == 0 {
		l.Add("policy.steps", "must have at least one step")
	}
	for i, st := range p.Steps {
		f := fmt.Sprintf("policy.steps[%d]", i)
		if st.Offset < 0 {
			l.Add(f+".offset", "must not be negative")
		}
		if st.Window < 0 {
			l.Add(f+".window", "must not be negative")
		}
		if st.Channel <= ChannelUnspecified || st.Channel > ChannelWeb {
			l.Add(f+".channel", "is required: CHANNEL_PHONE, CHANNEL_SMS, CHANNEL_ONSITE, CHANNEL_EMAIL or CHANNEL_WEB")
		}
		if !(st.SampleRate > 0 && st.SampleRate <= 1) {
			l.Add(f+".sample_rate", "must be above 0 and at most 1")
		}
	}
	return l.Err()
}
