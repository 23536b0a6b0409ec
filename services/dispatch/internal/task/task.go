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
// again; it keeps the status claimed until another agent takes it.
const (
	StatusOpen    = "open"
	StatusClaimed = "claimed"
)

// Task is the work of making one visit.
type Task struct {
	ID       string
	Tenant   string
	VisitID  string
	Customer *typesv1.Customer
	Channel  typesv1.Channel
	// Group is the group that must make the visit; empty means any agent.
	Group       string
	OrgUnit     string
	ServiceType string
	DueAt       time.Time
	// Deadline is the latest time the visit counts as timely; zero when none.
	Deadline       time.Time
	Status         string
	AgentID        string
	LeaseExpiresAt time.Time
	CreatedAt      time.Time
}

// Agent is a call-center agent (关爱专员 / 回访专员, seed 004).
type Agent struct {
	Tenant string
	ID     string
	Name   string
	// Groups the agent works in (seed 004: groups with a leader and agents).
	Groups  []string
	OrgUnit string
}

// Tenant returns t, or DefaultTenant when t is blank.
func Tenant(t string) string {
	if t = strings.TrimSpace(t); t == "" {
		return DefaultTenant
	}
	return t
}

// FromVisitDue turns a VisitDue event into a new open task with id, created
// at now. An event without a visit id, or with a channel Huifang does not
// know, is refused. Without a due time the visit is due now.
func FromVisitDue(ev *eventsv1.VisitDue, id string, now time.Time) (Task, error) {
	var bad invalid.List
	visitID := strings.TrimSpace(ev.GetVisitId())
	if visitID == "" {
		bad.Add("visit_id", "is required")
	}
	if _, known := typesv1.Channel_name[int32(ev.GetChannel())]; !known {
		bad.Add("channel", fmt.Sprintf("must be a known channel, not %d", ev.GetChannel()))
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
	t := Task{
		ID:          id,
		Tenant:      Tenant(ev.GetTenantId()),
		VisitID:     visitID,
		Customer:    ev.GetCustomer(),
		Channel:     ev.GetChannel(),
		Group:       strings.TrimSpace(ev.GetGroup()),
		OrgUnit:     strings.TrimSpace(ev.GetOrgUnit()),
		ServiceType: strings.TrimSpace(ev.GetServiceType()),
		DueAt:       now,
		Status:      StatusOpen,
		CreatedAt:   now,
	}
	if ev.GetDueAt() != nil {
		t.DueAt = ev.GetDueAt().AsTime()
	}
	if ev.GetDeadline() != nil {
		t.Deadline = ev.GetDeadline().AsTime()
	}
	return t, nil
}

// NormalizeAgent trims a, fills its defaults (tenant, groups) and checks it:
// the id and the name are required, groups are not blank. Fields are named
// as in UpsertAgentRequest ("agent.id").
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
	groups := make([]string, 0, len(a.Groups))
	for i, g := range a.Groups {
		g = strings.TrimSpace(g)
		switch {
		case g == "":
			bad.Add(fmt.Sprintf("agent.groups[%d]", i), "must not be blank")
		case !slices.Contains(groups, g):
			groups = append(groups, g)
		}
	}
	if len(a.Groups) == 0 {
		groups = []string{DefaultGroup}
	}
	a.Groups = groups
	return bad.Err()
}

// CheckStatus checks a status filter: empty (any), open or claimed.
func CheckStatus(status string) error {
	switch status {
	case "", StatusOpen, StatusClaimed:
		return nil
	}
	return invalid.New("status", fmt.Sprintf("must be %q or %q, not %q", StatusOpen, StatusClaimed, status))
}
