package access

import (
	"github.com/huifang/huifang/pkg/auth"
	intakev1 "github.com/huifang/huifang/proto/huifang/intake/v1"
)

// Intake is the intake service's permission table.
func Intake() auth.Table {
	// An agent reaches a customer through the task it holds (dispatch's
	// Task carries the customer), not through intake's archive.
	const units = "a leader reaches only the customers of the org units it leads (org_units of its token)"
	return auth.Table{
		intakev1.IntakeService_IngestService_FullMethodName:            {Permission: "services.ingest", Roles: roles(integr), Scope: "only the integrator's own source_system"},
		intakev1.IntakeService_IngestServices_FullMethodName:           {Permission: "services.ingest", Roles: roles(integr), Scope: "only the integrator's own source_system"},
		intakev1.IntakeService_GetCustomer_FullMethodName:              {Permission: "customers.read", Roles: roles(leader, director, owner), Scope: units},
		intakev1.IntakeService_ListCustomers_FullMethodName:            {Permission: "customers.list", Roles: roles(director)},
		intakev1.IntakeService_UpdateContactPreferences_FullMethodName: {Permission: "customers.preferences", Roles: roles(leader, director, integr), Scope: "a customer's wishes heard on a call are recorded by the agent's RecordAttempt (opted out, windows); " + units},
		intakev1.IntakeService_SetCustomerOwners_FullMethodName:        {Permission: "customers.owners", Roles: roles(director, admin, integr)},
		intakev1.IntakeService_ImportCustomers_FullMethodName:          {Permission: "customers.import", Roles: roles(admin, integr)},
		intakev1.IntakeService_RegisterServiceType_FullMethodName:      {Permission: "service-types.write", Roles: roles(admin)},
		intakev1.IntakeService_ListServiceTypes_FullMethodName:         {Permission: "service-types.read", Roles: roles(leader, director, admin, integr)},
		intakev1.IntakeService_ListRejectedEvents_FullMethodName:       {Permission: "rejects.read", Roles: roles(admin)},
		intakev1.IntakeService_GetRejectedEvent_FullMethodName:         {Permission: "rejects.read", Roles: roles(admin)},
		intakev1.IntakeService_ReplayRejectedEvent_FullMethodName:      {Permission: "rejects.replay", Roles: roles(admin), Scope: "the replay keeps the rejected input's tenant"},
		intakev1.IntakeService_RehashContacts_FullMethodName:           {Permission: "maintenance.rehash", Roles: roles(operator)},
		intakev1.IntakeService_EraseCustomer_FullMethodName:            {Permission: "customers.erase", Roles: roles(admin), Scope: "with a reason; audited"},
		intakev1.IntakeService_ExportCustomerData_FullMethodName:       {Permission: "customers.export", Roles: roles(admin), Scope: "with a reason; audited in every service"},
		intakev1.IntakeService_RevealContact_FullMethodName: {Permission: "contacts.reveal", Roles: roles(leader, director, svc),
			Scope: "with a purpose, rate-limited per caller, audited; " + units + "; the service dispatch for an agent's task (RevealTaskContact) or an automatic message"},
		intakev1.IntakeService_SearchCustomers_FullMethodName: {Permission: "customers.search", Roles: roles(agent, leader, director),
			Scope: "an agent or a leader finds only the customers of its org units (org_units of its token); rate-limited per caller (SEARCH_RATE), audited; answers masked"},
		intakev1.IntakeService_GetCustomerTimeline_FullMethodName: {Permission: "customers.timeline", Roles: roles(agent, leader, director, owner),
			Scope: "an agent or a leader reads only the customers of its org units; a director and a department owner any, as GetCustomer"},
	}
}
