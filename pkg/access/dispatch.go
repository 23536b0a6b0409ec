package access

import (
	"github.com/huifang/huifang/pkg/auth"
	dispatchv1 "github.com/huifang/huifang/proto/huifang/dispatch/v1"
)

// Dispatch is the dispatch service's permission table.
func Dispatch() auth.Table {
	holder := auth.Rule{Roles: roles(agent, leader), Self: map[string][]auth.Role{"agent_id": nil}, Scope: "only the agent that holds the task"}
	work := func(perm string) auth.Rule { r := holder; r.Permission = perm; return r }
	units := "a leader acts within the groups it oversees in dispatch's org tree (its groups, the units it leads and those below)"
	return auth.Table{
		dispatchv1.DispatchService_UpsertOrgUnit_FullMethodName: {Permission: "org.write", Roles: roles(admin)},
		dispatchv1.DispatchService_ListOrgUnits_FullMethodName:  {Permission: "org.read", Roles: roles(agent, leader, director, admin)},
		dispatchv1.DispatchService_UpsertAgent_FullMethodName:   {Permission: "agents.write", Roles: roles(admin)},
		dispatchv1.DispatchService_ListAgents_FullMethodName:    {Permission: "agents.read", Roles: roles(leader, director, admin), Scope: units},
		dispatchv1.DispatchService_ClaimNextTask_FullMethodName: {Permission: "tasks.claim", Roles: roles(agent, leader), Self: map[string][]auth.Role{"agent_id": nil}, Scope: "tasks assigned to the agent or claimable by their groups"},
		dispatchv1.DispatchService_HeartbeatTask_FullMethodName: work("tasks.work"),
		dispatchv1.DispatchService_RecordAttempt_FullMethodName: work("tasks.work"),
		dispatchv1.DispatchService_ReleaseTask_FullMethodName:   work("tasks.work"),
		dispatchv1.DispatchService_ListTasks_FullMethodName: {Permission: "tasks.read", Roles: roles(agent, leader, director),
			Self:  map[string][]auth.Role{"agent_id": roles(leader, director), "leader_id": roles(director)},
			Scope: "an agent lists their own tasks; " + units},
		dispatchv1.DispatchService_ReassignTask_FullMethodName: {Permission: "tasks.reassign", Roles: roles(leader, director),
			Self: map[string][]auth.Role{"leader_id": roles(director)}, Scope: units},
		dispatchv1.DispatchService_ListDeadlineTasks_FullMethodName: {Permission: "tasks.read", Roles: roles(leader, director),
			Self: map[string][]auth.Role{"leader_id": roles(director)}, Scope: units},
		dispatchv1.DispatchService_UpsertTemplate_FullMethodName:        {Permission: "templates.write", Roles: roles(admin)},
		dispatchv1.DispatchService_SetCustomerVariables_FullMethodName:  {Permission: "messages.variables", Roles: roles(admin, integr)},
		dispatchv1.DispatchService_ListMessages_FullMethodName:          {Permission: "messages.read", Roles: roles(agent, leader, director), Scope: "an agent or a leader names a task assigned to it or of a group it oversees"},
		dispatchv1.DispatchService_RecordDeliveryReceipt_FullMethodName: {Permission: "messages.receipt", Roles: roles(integr)},
		dispatchv1.DispatchService_RevealTaskContact_FullMethodName: {Permission: "contacts.reveal", Roles: roles(agent, leader),
			Scope: "only the agent holding the task's claim (its lease_token); written to the audit logs of dispatch and intake"},
		dispatchv1.DispatchService_ListAttempts_FullMethodName: {Permission: "tasks.read", Roles: roles(agent, leader, director),
			Scope: "an agent or a leader names a task assigned to it or of a group it oversees"},
		dispatchv1.DispatchService_GetTaskContext_FullMethodName: {Permission: "tasks.read", Roles: roles(agent, leader, director),
			Scope: "the agent holding the task (its lease_token), or a leader of a group the task belongs to"},
		dispatchv1.DispatchService_BookAppointment_FullMethodName: {Permission: "appointments.write", Roles: roles(agent, leader),
			Scope: "only the agent holding the task's claim (its lease_token)"},
		dispatchv1.DispatchService_MoveAppointment_FullMethodName: {Permission: "appointments.write", Roles: roles(agent, leader, director),
			Scope: "the appointment's agent, or a leader of its group"},
		dispatchv1.DispatchService_CancelAppointment_FullMethodName: {Permission: "appointments.write", Roles: roles(agent, leader, director),
			Scope: "the appointment's agent, or a leader of its group"},
		dispatchv1.DispatchService_ListAppointments_FullMethodName: {Permission: "appointments.read", Roles: roles(agent, leader, director),
			Self: map[string][]auth.Role{"agent_id": roles(leader, director)}, Scope: "an agent lists its own appointments; " + units},
		dispatchv1.DispatchService_SetAgentPresence_FullMethodName: {Permission: "agents.presence", Roles: roles(agent, leader, director),
			Self:  map[string][]auth.Role{"agent_id": roles(leader, director)},
			Scope: "an agent sets its own presence; a leader may set an agent of the groups it oversees offline, a director any agent of the tenant"},
		dispatchv1.DispatchService_GetWallboard_FullMethodName: {Permission: "wallboard.read", Roles: roles(leader, director),
			Self: map[string][]auth.Role{"leader_id": roles(director)}, Scope: units},
		dispatchv1.DispatchService_WatchQueue_FullMethodName: {Permission: "tasks.read", Roles: roles(agent, leader),
			Self: map[string][]auth.Role{"agent_id": nil}, Scope: "an agent watches its own queue; at most WATCH_PER_CALLER watches at once"},
		dispatchv1.DispatchService_WatchWallboard_FullMethodName: {Permission: "wallboard.read", Roles: roles(leader, director),
			Self: map[string][]auth.Role{"leader_id": roles(director)}, Scope: units + "; at most WATCH_PER_CALLER watches at once"},
	}
}
