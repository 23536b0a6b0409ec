package task

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/huifang/huifang/pkg/invalid"
	"github.com/huifang/huifang/pkg/tenant"
)

// Roles of the follow-up center (seed 004: director, deputy directors,
// groups with a leader and agents; department owners answer for problems).
const (
	RoleAgent           = "agent"
	RoleLeader          = "leader"
	RoleDeputy          = "deputy"
	RoleDirector        = "director"
	RoleDepartmentOwner = "department_owner"
)

// roleAliases maps the words the seeds use to roles: seed 000 sends urgent
// complaints to the supervisor (a leader) and major ones to the manager (a
// deputy director or above).
var roleAliases = map[string]string{
	RoleAgent: RoleAgent, "assistant": RoleAgent,
	RoleLeader: RoleLeader, "supervisor": RoleLeader,
	RoleDeputy: RoleDeputy, "manager": RoleDeputy,
	RoleDirector: RoleDirector, RoleDepartmentOwner: RoleDepartmentOwner,
}

// ParseRole returns the role a name means, and false when it names none.
func ParseRole(name string) (string, bool) {
	r, ok := roleAliases[strings.ToLower(strings.TrimSpace(name))]
	return r, ok
}

// RoleRank ranks the center's hierarchy: a task needing a role goes to
// agents of that rank or above. A department owner ranks 0: it takes only
// tasks that ask for a department owner. The ranks are stored with agents
// (role_rank) and tasks (required_rank); the claim compares them in SQL.
func RoleRank(role string) int {
	switch role {
	case RoleAgent:
		return 1
	case RoleLeader:
		return 2
	case RoleDeputy:
		return 3
	case RoleDirector:
		return 4
	}
	return 0
}

// Skills are what an agent can handle; an empty list matches anything.
type Skills struct {
	Languages    []string
	ProductLines []string
	Regions      []string
}

// Shift is when an agent works: weekdays (ISO, 1 = Monday; empty = every
// day), minutes after midnight (Start == End: all day; End < Start crosses
// midnight), in a time zone. Whether a moment is on shift is decided by the
// claim, in SQL (the on_shift function of the store's migrations), the one
// implementation.
type Shift struct {
	Weekdays []int
	Start    int
	End      int
	TimeZone string
}

// Agent is a call-center agent (关爱专员 / 回访专员, seed 004).
type Agent struct {
	Tenant string
	ID     string
	Name   string
	// Groups the agent works in (seed 004: groups with a leader and agents).
	Groups  []string
	OrgUnit string
	Role    string
	Skills  Skills
	Shift   Shift
	// Capacity is how many tasks the agent may hold; 0 = the service default.
	Capacity int
	// Inactive agents are offered nothing.
	Inactive bool
	// Presence is set by the agent (SetAgentPresence), not by UpsertAgent.
	Presence Presence
}

// NormalizeAgent trims a, fills its defaults (tenant, groups, role) and
// checks it. Fields are named as in UpsertAgentRequest ("agent.id").
func NormalizeAgent(a *Agent) error {
	a.Tenant = tenant.Or(a.Tenant)
	a.ID = strings.TrimSpace(a.ID)
	a.Name = strings.TrimSpace(a.Name)
	a.OrgUnit = strings.TrimSpace(a.OrgUnit)
	var bad invalid.List
	if a.ID == "" {
		bad.Add("agent.id", "is required")
	}
	if a.Name == "" {
		bad.Add("agent.name", "is required")
	}
	a.Groups = cleanList(&bad, "agent.groups", a.Groups)
	if len(a.Groups) == 0 {
		a.Groups = []string{DefaultGroup}
	}
	if a.Role == "" {
		a.Role = RoleAgent
	} else if r, ok := ParseRole(a.Role); ok {
		a.Role = r
	} else {
		bad.Add("agent.role", fmt.Sprintf("must be a known role, not %q", a.Role))
	}
	a.Skills.Languages = cleanList(&bad, "agent.skills.languages", a.Skills.Languages)
	a.Skills.ProductLines = cleanList(&bad, "agent.skills.product_lines", a.Skills.ProductLines)
	a.Skills.Regions = cleanList(&bad, "agent.skills.regions", a.Skills.Regions)
	if a.Shift.Weekdays == nil {
		a.Shift.Weekdays = []int{}
	}
	for i, d := range a.Shift.Weekdays {
		if d < 1 || d > 7 {
			bad.Add(fmt.Sprintf("agent.shift.weekdays[%d]", i), fmt.Sprintf("must be 1 (Monday) to 7 (Sunday), not %d", d))
		}
	}
	if a.Shift.Start < 0 || a.Shift.Start >= 24*60 {
		bad.Add("agent.shift.start_minute", "must be 0–1439")
	}
	if a.Shift.End < 0 || a.Shift.End > 24*60 {
		bad.Add("agent.shift.end_minute", "must be 0–1440")
	}
	a.Shift.TimeZone = strings.TrimSpace(a.Shift.TimeZone)
	if a.Shift.TimeZone != "" {
		if _, err := time.LoadLocation(a.Shift.TimeZone); err != nil {
			bad.Add("agent.shift.time_zone", "must be an IANA time zone")
		}
	}
	if a.Capacity < 0 {
		bad.Add("agent.capacity", "must not be negative")
	}
	return bad.Err()
}

func cleanList(bad *invalid.List, field string, in []string) []string {
	out := make([]string, 0, len(in))
	for i, s := range in {
		s = strings.TrimSpace(s)
		switch {
		case s == "":
			bad.Add(fmt.Sprintf("%s[%d]", field, i), "must not be blank")
		case !slices.Contains(out, s):
			out = append(out, s)
		}
	}
	return out
}

// OrgUnit is a unit of the follow-up center (seed 004: the center, its
// groups).
type OrgUnit struct {
	Tenant   string
	ID       string
	Name     string
	ParentID string
	Kind     string
	LeaderID string
}

// NormalizeOrgUnit trims u and checks it: id and name required, not its
// own parent. The store checks that the parent exists and that the tree
// has no cycle.
func NormalizeOrgUnit(u *OrgUnit) error {
	u.Tenant = tenant.Or(u.Tenant)
	u.ID = strings.TrimSpace(u.ID)
	u.Name = strings.TrimSpace(u.Name)
	u.ParentID = strings.TrimSpace(u.ParentID)
	u.Kind = strings.TrimSpace(u.Kind)
	u.LeaderID = strings.TrimSpace(u.LeaderID)
	var bad invalid.List
	if u.ID == "" {
		bad.Add("unit.id", "is required")
	}
	if u.Name == "" {
		bad.Add("unit.name", "is required")
	}
	if u.ID != "" && u.ParentID == u.ID {
		bad.Add("unit.parent_id", "must not be the unit itself")
	}
	return bad.Err()
}

// Errors of the org tree.
var (
	// ErrParentNotFound: the unit's parent is not a unit of the tenant.
	ErrParentNotFound = errors.New("task: parent org unit not found")
	// ErrCycle: the unit would become its own ancestor.
	ErrCycle = errors.New("task: org unit would be its own ancestor")
)

// CheckParent checks where u goes in the tree: its parent must exist and
// must not be u or a unit below it (ancestors: the parent's ancestors, the
// parent first).
func (u OrgUnit) CheckParent(parentExists bool, ancestors []string) error {
	if u.ParentID == "" {
		return nil
	}
	if !parentExists {
		return ErrParentNotFound
	}
	if slices.Contains(ancestors, u.ID) {
		return ErrCycle
	}
	return nil
}

// Oversees returns the groups a leader oversees: its own groups, then the
// org units it leads and every unit below them (units).
func Oversees(leader Agent, units []string) []string {
	groups := append([]string{}, leader.Groups...)
	for _, u := range units {
		if !slices.Contains(groups, u) {
			groups = append(groups, u)
		}
	}
	return groups
}

// Refusals of a claim (Eligibility.Err).
var (
	ErrInactive   = errors.New("task: the agent is inactive")
	ErrOffShift   = errors.New("task: the agent is off shift")
	ErrAtCapacity = errors.New("task: the agent holds as many tasks as its capacity")
)

// Eligibility is what the claim found about the claiming agent at a moment
// (computed in SQL by the claim's own rules: on_shift, live leases against
// the capacity).
type Eligibility struct {
	Active  bool
	OnShift bool
	// HasRoom: the agent holds fewer tasks than its capacity (or has none).
	HasRoom bool
	// Presence is the agent's (available, on a break, offline).
	Presence Presence
}

// Err returns why the agent may not claim now, in this order: inactive,
// on a break or offline, off shift, at capacity; nil when it may.
func (e Eligibility) Err() error {
	switch {
	case !e.Active:
		return ErrInactive
	case e.Presence.Err() != nil:
		return e.Presence.Err()
	case !e.OnShift:
		return ErrOffShift
	case !e.HasRoom:
		return ErrAtCapacity
	}
	return nil
}
