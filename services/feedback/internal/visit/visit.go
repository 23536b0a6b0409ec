// Package visit holds what feedback knows about a visit that fell due: the
// context a follow-up record is logged against, and the agent it is
// assigned to. It does no I/O.
package visit

import (
	"time"

	typesv1 "github.com/huifang/huifang/proto/huifang/types/v1"
)

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
	// EventID is the id of the VisitDue that stored the visit first
	// (kept with it: a redelivery of that event finds it and changes
	// nothing); empty when none is known.
	EventID string
}

// Key names a visit of a tenant.
type Key struct{ Tenant, Visit string }

// Key names v.
func (v Visit) Key() Key { return Key{v.TenantID, v.VisitID} }

// Assignment is a visit handed to an agent, as VisitAssigned told it: an
// agent claimed the visit's task, or a leader reassigned it.
type Assignment struct {
	TenantID   string
	VisitID    string
	AgentID    string
	AssignedAt time.Time
	EventID    string
}

// Key names the visit a is about.
func (a Assignment) Key() Key { return Key{a.TenantID, a.VisitID} }

// Replaces tells whether a is the visit's assignment now that cur (nil
// for none) is known: the newest assigned_at wins, whatever order the
// events arrive in, so an older assignment heard late (the claim after its
// reassignment) changes nothing; of two at the same time, the later heard wins.
func (a Assignment) Replaces(cur *Assignment) bool {
	return cur == nil || !a.AssignedAt.Before(cur.AssignedAt)
}
