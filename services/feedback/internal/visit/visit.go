// Package visit holds what feedback knows about a visit that fell due: the
// context a follow-up record is logged against. It does no I/O.
package visit

import (
	"fmt"
	"strings"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	eventsv1 "github.com/huifang/huifang/proto/huifang/events/v1"
	typesv1 "github.com/huifang/huifang/proto/huifang/types/v1"

	"github.com/huifang/huifang/pkg/invalid"
)

// DefaultTenant is the tenant of events and requests that name none.
const DefaultTenant = "default"

// Visit is a visit that fell due, as VisitDue told it.
type Visit struct {
	TenantID   string
	VisitID    string
	CustomerID string
	ServiceID  string
	PolicyID   string
	// Channel is the planned channel.
	Channel     typesv1.Channel
	DueAt       time.Time
	Deadline    time.Time
	OrgUnit     string
	ServiceType string
	// ServiceCompletedAt is zero when the event did not say.
	ServiceCompletedAt time.Time
	// ComplaintID names the complaint a confirmation visit confirms.
	ComplaintID string
	// AssignedAgentID is the agent dispatch last assigned the visit to
	// (VisitAssigned), empty while no assignment is known.
	AssignedAgentID string
}

// Assignment is a visit handed to an agent, as VisitAssigned told it: an
// agent claimed the visit's task, or a leader reassigned it.
type Assignment struct {
	TenantID   string
	VisitID    string
	AgentID    string
	AssignedAt time.Time
	EventID    string
}

// Tenant returns t, or DefaultTenant when t is blank.
func Tenant(t string) string {
	if t = strings.TrimSpace(t); t == "" {
		return DefaultTenant
	}
	return t
}

// Decode reads a VisitDue in protobuf binary.
func Decode(data []byte) (*eventsv1.VisitDue, error) {
	ev := &eventsv1.VisitDue{}
	if err := proto.Unmarshal(data, ev); err != nil {
		return nil, invalid.New("payload", "must be a huifang.events.v1.VisitDue in protobuf: "+err.Error())
	}
	return ev, nil
}

// FromDue turns a VisitDue into a Visit; an event without a visit id is refused.
func FromDue(ev *eventsv1.VisitDue) (Visit, error) {
	v := Visit{
		TenantID:    Tenant(ev.GetTenantId()),
		VisitID:     strings.TrimSpace(ev.GetVisitId()),
		CustomerID:  ev.GetCustomer().GetId(),
		ServiceID:   ev.GetServiceId(),
		PolicyID:    ev.GetPolicyId(),
		Channel:     ev.GetChannel(),
		OrgUnit:     ev.GetOrgUnit(),
		ServiceType: ev.GetServiceType(),
		ComplaintID: strings.TrimSpace(ev.GetComplaintId()),
	}
	if v.VisitID == "" {
		return Visit{}, invalid.New("visit_id", "is required: the visit the event is about")
	}
	var l invalid.List
	v.DueAt = timeOf(&l, "due_at", ev.GetDueAt())
	v.Deadline = timeOf(&l, "deadline", ev.GetDeadline())
	v.ServiceCompletedAt = timeOf(&l, "service_completed_at", ev.GetServiceCompletedAt())
	if _, known := typesv1.Channel_name[int32(v.Channel)]; !known {
		l.Add("channel", fmt.Sprintf("unknown channel %d", v.Channel))
	}
	if err := l.Err(); err != nil {
		return Visit{}, err
	}
	return v, nil
}

// timeOf returns ts as a time, zero when unset; an invalid ts is a violation of field.
func timeOf(l *invalid.List, field string, ts *timestamppb.Timestamp) time.Time {
	if ts == nil {
		return time.Time{}
	}
	if err := ts.CheckValid(); err != nil {
		l.Add(field, "must be a valid timestamp")
		return time.Time{}
	}
	return ts.AsTime()
}

// DecodeAssigned reads a VisitAssigned in protobuf binary.
func DecodeAssigned(data []byte) (*eventsv1.VisitAssigned, error) {
	ev := &eventsv1.VisitAssigned{}
	if err := proto.Unmarshal(data, ev); err != nil {
		return nil, invalid.New("payload", "must be a huifang.events.v1.VisitAssigned in protobuf: "+err.Error())
	}
	return ev, nil
}

// FromAssigned turns a VisitAssigned into an Assignment. The visit, the
// agent and the time of the assignment are required: the time decides
// which of several assignments (a claim, then a reassignment) is the
// newest, whatever order they arrive in.
func FromAssigned(ev *eventsv1.VisitAssigned, eventID string) (Assignment, error) {
	a := Assignment{
		TenantID: Tenant(ev.GetTenantId()),
		VisitID:  strings.TrimSpace(ev.GetVisitId()),
		AgentID:  strings.TrimSpace(ev.GetAgentId()),
		EventID:  eventID,
	}
	var l invalid.List
	if a.VisitID == "" {
		l.Add("visit_id", "is required: the visit the event is about")
	}
	if a.AgentID == "" {
		l.Add("agent_id", "is required: the agent the visit is assigned to")
	}
	a.AssignedAt = timeOf(&l, "assigned_at", ev.GetAssignedAt())
	if ev.GetAssignedAt() == nil {
		l.Add("assigned_at", "is required: the newest assignment of a visit wins")
	}
	if err := l.Err(); err != nil {
		return Assignment{}, err
	}
	return a, nil
}
