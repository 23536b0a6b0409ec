package access

import (
	"github.com/huifang/huifang/pkg/auth"
	schedulerv1 "github.com/huifang/huifang/proto/huifang/scheduler/v1"
)

// Scheduler is the scheduler's permission table. A platform operator may
// write policies for every tenant (tenant_id "*"); no one else may.
func Scheduler() auth.Table {
	write := func(perm string) auth.Rule {
		return auth.Rule{Permission: perm, Roles: roles(admin, operator), AllTenants: true}
	}
	read := func(perm string) auth.Rule {
		return auth.Rule{Permission: perm, Roles: roles(leader, director, admin, operator), AllTenants: true}
	}
	visits := "a leader acts on the visits of the org units its token names (org_unit is required to list)"
	changes := "the proposer and the decider are the callers of their tokens, never a request field"
	return auth.Table{
		schedulerv1.SchedulerService_CreatePolicy_FullMethodName:           write("policies.write"),
		schedulerv1.SchedulerService_UpdatePolicy_FullMethodName:           write("policies.write"),
		schedulerv1.SchedulerService_ActivatePolicy_FullMethodName:         write("policies.write"),
		schedulerv1.SchedulerService_DeactivatePolicy_FullMethodName:       write("policies.write"),
		schedulerv1.SchedulerService_LoadPolicyPack_FullMethodName:         write("packs.load"),
		schedulerv1.SchedulerService_SimulatePolicy_FullMethodName:         write("policies.simulate"),
		schedulerv1.SchedulerService_GetPolicy_FullMethodName:              read("policies.read"),
		schedulerv1.SchedulerService_ListPolicies_FullMethodName:           read("policies.read"),
		schedulerv1.SchedulerService_ListPolicyPacks_FullMethodName:        read("packs.read"),
		schedulerv1.SchedulerService_ListPlannedVisits_FullMethodName:      {Permission: "visits.read", Roles: roles(leader, director), Scope: visits},
		schedulerv1.SchedulerService_ExplainVisit_FullMethodName:           {Permission: "visits.explain", Roles: roles(agent, leader, director, admin), Scope: "an agent or a leader asks about the visits of the org units its token names"},
		schedulerv1.SchedulerService_ReschedulePlannedVisit_FullMethodName: {Permission: "visits.write", Roles: roles(leader, director), Scope: visits},
		schedulerv1.SchedulerService_CancelPlannedVisit_FullMethodName:     {Permission: "visits.write", Roles: roles(leader, director), Scope: visits},
		schedulerv1.SchedulerService_SetContactPolicy_FullMethodName:       {Permission: "contact-policy.write", Roles: roles(admin)},
		schedulerv1.SchedulerService_GetContactPolicy_FullMethodName:       {Permission: "contact-policy.read", Roles: roles(agent, leader, director, admin)},
		// Plans approved before they run (issue 16; seeds 000 and 004: the
		// director approves). An admin turns approval on; only a director or
		// a platform operator turns it off again.
		schedulerv1.SchedulerService_SetPolicyApproval_FullMethodName: {Permission: "policy-approval.write", Roles: roles(director, admin, operator),
			Scope: "the caller's tenant; turning approval off: a director or a platform operator only"},
		schedulerv1.SchedulerService_GetPolicyApproval_FullMethodName:   {Permission: "policy-approval.read", Roles: roles(leader, director, admin, operator)},
		schedulerv1.SchedulerService_ProposePolicyChange_FullMethodName: {Permission: "policy-changes.propose", Roles: roles(director, admin, operator), Scope: changes},
		schedulerv1.SchedulerService_GetPolicyChange_FullMethodName:     {Permission: "policy-changes.read", Roles: roles(director, admin, operator, auditor)},
		schedulerv1.SchedulerService_ListPolicyChanges_FullMethodName:   {Permission: "policy-changes.read", Roles: roles(director, admin, operator, auditor)},
		schedulerv1.SchedulerService_ApprovePolicyChange_FullMethodName: {Permission: "policy-changes.decide", Roles: roles(director),
			Scope: changes + "; a director other than the proposer (four eyes), applied once"},
		schedulerv1.SchedulerService_RejectPolicyChange_FullMethodName: {Permission: "policy-changes.decide", Roles: roles(director), Scope: changes},
		// Ad-hoc follow-ups (issue 17): an agent or a leader asks for a one-off visit.
		schedulerv1.SchedulerService_ScheduleFollowUp_FullMethodName: {Permission: "visits.schedule", Roles: roles(agent, leader, director),
			Scope: "an agent or a leader names an org unit of its token (org_unit)"},
	}
}
