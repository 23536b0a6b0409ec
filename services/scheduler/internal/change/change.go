// Package change holds proposed changes to a tenant's policies and the rules
// of their approval (seeds 000 and 004: a follow-up plan is approved by the
// company's leadership, the follow-up center's director, before it runs): a
// change is proposed by one person with its dry run, then approved by
// another (four eyes) and applied once, or rejected with a reason; a change
// proposed against a policy version that has changed since is not approved.
// Pure rules: no storage, no wire types.
package change

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/huifang/huifang/services/scheduler/internal/policy"
	"github.com/huifang/huifang/services/scheduler/packs"
)

// Kinds of change: what the direct call would have done.
const (
	Create     = "create"
	Update     = "update"
	Activate   = "activate"
	Deactivate = "deactivate"
	LoadPack   = "load_pack"
)

// States of a proposal.
const (
	Proposed = "proposed"
	Approved = "approved"
	Rejected = "rejected"
)

// States lists the states, in the order a proposal goes through them.
var States = []string{Proposed, Approved, Rejected}

// Refusals of the approval rules.
var (
	// ErrOwnProposal: the proposer cannot approve their own change (four eyes).
	ErrOwnProposal = errors.New("the proposer of a change cannot approve it: another person approves (four eyes)")
	// ErrDecided: the proposal was decided the other way already.
	ErrDecided = errors.New("the change is already decided")
	// ErrStale: a policy the change was proposed against has changed since.
	ErrStale = errors.New("a policy the change was proposed against has changed since")
)

// Change is what a proposal would do, as the direct call would have done it.
type Change struct {
	Kind string `json:"kind"`
	// PolicyID names the policy of an update, activation or deactivation.
	PolicyID string `json:"policy_id,omitempty"`
	// Policy is the content of a new policy or of the next version.
	Policy *policy.Policy `json:"policy,omitempty"`
	// Pack and Inactive are LoadPolicyPack's.
	Pack     string `json:"pack,omitempty"`
	Inactive bool   `json:"inactive,omitempty"`
	// Snapshot is the pack as it was proposed and simulated: the approval
	// loads it, even when an upgrade of the scheduler ships the pack changed.
	Snapshot *packs.Pack `json:"snapshot,omitempty"`
}

// Version names a version of a policy and its state: one the change was
// proposed against (Version 0: no policy of that name yet), or one it left.
type Version struct {
	PolicyID string `json:"policy_id,omitempty"`
	Name     string `json:"name"`
	Version  int    `json:"version"`
	Active   bool   `json:"active"`
}

// Key names the policy of v: its id, or its name for one that did not exist.
func (v Version) Key() string {
	if v.PolicyID != "" {
		return v.PolicyID
	}
	return "name:" + v.Name
}

// Person is who proposed or decided: the subject of their verified token and its roles.
type Person struct {
	Subject string   `json:"subject"`
	Roles   []string `json:"roles"`
}

// Load is the load a dry run replayed: the tenant's services in [From, To),
// or a synthetic one.
type Load struct {
	From      time.Time      `json:"from,omitzero"`
	To        time.Time      `json:"to,omitzero"`
	Synthetic *Synthetic     `json:"synthetic,omitempty"`
	Horizon   *time.Duration `json:"horizon,omitempty"`
}

// Synthetic is a made-up load (SimulatePolicy's).
type Synthetic struct {
	ServicesPerDay int      `json:"services_per_day"`
	Days           int      `json:"days"`
	ServiceTypes   []string `json:"service_types,omitempty"`
	Tiers          []string `json:"tiers,omitempty"`
	Severities     []string `json:"severities,omitempty"`
	OrgUnits       []string `json:"org_units,omitempty"`
}

// Counts is what a simulation of one policy answered.
type Counts struct {
	Services      int            `json:"services"`
	Visits        int            `json:"visits"`
	Suppressed    int            `json:"suppressed"`
	PerDay        []DayCount     `json:"per_day,omitempty"`
	PerChannel    map[string]int `json:"per_channel,omitempty"`
	PerGroup      map[string]int `json:"per_group,omitempty"`
	PeakDayVisits int            `json:"peak_day_visits"`
}

// DayCount is the number of visits due on a day (UTC).
type DayCount struct {
	Date   string `json:"date"`
	Visits int    `json:"visits"`
}

// Run is the dry run of one policy the change touches.
type Run struct {
	PolicyID string `json:"policy_id,omitempty"`
	Name     string `json:"name"`
	Counts   Counts `json:"counts"`
}

// Proposal is a proposed change and what became of it.
type Proposal struct {
	ID     string `json:"id"`
	Tenant string `json:"tenant_id"`
	Change Change `json:"change"`
	Reason string `json:"reason"`
	State  string `json:"state"`
	// BasedOn are the policies the change was proposed against, as they were.
	BasedOn    []Version `json:"based_on,omitempty"`
	Load       Load      `json:"load"`
	DryRuns    []Run     `json:"dry_runs,omitempty"`
	ProposedBy Person    `json:"proposed_by"`
	ProposedAt time.Time `json:"proposed_at"`
	DecidedBy  Person    `json:"decided_by,omitzero"`
	DecidedAt  time.Time `json:"decided_at,omitzero"`
	// Note is a rejection's reason, or the approver's note.
	Note string `json:"note,omitempty"`
	// Applied are the policies as the approved change left them.
	Applied []Version `json:"applied,omitempty"`
}

// Decision is an approval or a rejection of a proposal.
type Decision struct {
	Approve bool
	By      Person
	At      time.Time
	Note    string
}

// Decide returns the proposal decided as d says, and whether that changed
// it: an approval or rejection repeated (a retry) changes nothing and is
// answered with the proposal as it is; the other decision on a decided
// proposal is ErrDecided; the proposer does not approve their own change
// (ErrOwnProposal), though they may reject (withdraw) it. The caller applies
// an approved change in the same transaction.
func (p Proposal) Decide(d Decision) (Proposal, bool, error) {
	want := Rejected
	if d.Approve {
		want = Approved
	}
	switch {
	case p.State == want:
		return p, false, nil
	case p.State != Proposed:
		return p, false, fmt.Errorf("change %s was %s by %s at %s: %w", p.ID, p.State, p.DecidedBy.Subject, p.DecidedAt.Format(time.RFC3339), ErrDecided)
	case d.Approve && d.By.Subject == p.ProposedBy.Subject:
		return p, false, fmt.Errorf("change %s was proposed by %s: %w", p.ID, p.ProposedBy.Subject, ErrOwnProposal)
	}
	p.State, p.DecidedBy, p.DecidedAt, p.Note = want, d.By, d.At, d.Note
	return p, true, nil
}

// Stale refuses an approval when a policy the change was proposed against
// is no longer as it was: now maps the Key of each of BasedOn to the
// version that stands today (0: none). The error names the policy and both versions.
func (p Proposal) Stale(now map[string]int) error {
	var changed []string
	for _, b := range p.BasedOn {
		if v := now[b.Key()]; v != b.Version {
			what := fmt.Sprintf("policy %s", b.Name)
			if b.PolicyID != "" {
				what += " (" + b.PolicyID + ")"
			}
			switch {
			case b.Version == 0:
				changed = append(changed, fmt.Sprintf("%s was created since (version %d)", what, v))
			default:
				changed = append(changed, fmt.Sprintf("%s was at version %d when proposed and is at version %d now", what, b.Version, v))
			}
		}
	}
	if len(changed) == 0 {
		return nil
	}
	return fmt.Errorf("change %s: %s; reject it and propose the change again against the current version: %w", p.ID, strings.Join(changed, "; "), ErrStale)
}
