package task

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/huifang/huifang/pkg/invalid"
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
// tasks that ask for a department owner.
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

// Satisfies reports whether an agent of role may take a task that needs required.
func Satisfies(role, required string) bool {
	if required == "" || role == required {
		return true
	}
	return RoleRank(required) > 0 && RoleRank(role) >= RoleRank(required)
}

// Skills are what an agent can handle; an empty list matches anything.
type Skills struct {
	Languages    []string
	ProductLines []string
	Regions      []string
}

// Shift is when an agent works: weekdays (ISO, 1 = Monday; empty = every
// day), minutes after midnight (Start == End: all day; End < Start crosses
// midnight), in a time zone.
type Shift struct {
	Weekdays []int
	Start    int
	End      int
	TimeZone string
}

// On reports whether at falls in the shift.
func (s Shift) On(at time.Time) bool {
	local := at.In(Location(s.TimeZone))
	wd := int(local.Weekday())
	if wd == 0 {
		wd = 7
	}
	if len(s.Weekdays) > 0 && !slices.Contains(s.Weekdays, wd) {
		return false
	}
	m := local.Hour()*60 + local.Minute()
	switch {
	case s.Start == s.End:
		return true
	case s.Start < s.End:
		return m >= s.Start && m < s.End
	default:
		return m >= s.Start || m < s.End
	}
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
}

// NormalizeAgent trims a, fills its defaults (tenant, groups, role) and
// checks it. Fields are named as in UpsertAgentRequest ("agent.id").
func NormalizeAgent(a *Agent) error {
	a.Tenant = Tenant(a.Tenant)
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
	u.Tenant = Tenant(u.Tenant)
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
