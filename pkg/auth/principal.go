// Package auth holds who is calling and what they may do: the principal a
// verified OIDC token names (tenant, subject, roles, agent id, org units,
// source system), the verification of those tokens against the issuer's
// keys, and the permission tables each service enforces with one gRPC
// interceptor. The caller always comes from the token, never from a request
// field: a request's tenant_id, agent_id or leader_id must agree with the
// principal or the call is refused.
package auth

import (
	"context"
	"slices"
)

// Role is what a principal may do, within its tenant and org units.
type Role string

// The roles of a Huifang deployment.
const (
	// Agent works follow-up tasks: those assigned to them or claimable by
	// their groups, and those tasks' customers.
	Agent Role = "agent"
	// Leader supervises the agents of the org units they lead (and their
	// subtrees): reassigns, signs off records, reads their figures.
	Leader Role = "leader"
	// Director sees and acts on the whole tenant as a leader does.
	Director Role = "director"
	// DepartmentOwner handles the complaints routed to their departments.
	DepartmentOwner Role = "department_owner"
	// QAReviewer samples and reviews finished visits.
	QAReviewer Role = "qa_reviewer"
	// Integrator is an upstream system: it may only ingest, and only for
	// its own source_system.
	Integrator Role = "integrator"
	// Auditor reads the audit log.
	Auditor Role = "auditor"
	// TenantAdmin configures the tenant: policies, packs, targets, agents,
	// org tree, questionnaires, templates.
	TenantAdmin Role = "tenant_admin"
	// PlatformOperator does cross-tenant maintenance (rebuild, rehash,
	// policies for every tenant); it reads no customer's data.
	PlatformOperator Role = "platform_operator"
	// Service is another Huifang service calling on its own account (a
	// client-credentials token naming the service): dispatch asks intake
	// for a contact at the moment it sends or an agent dials. It acts for
	// every tenant, and only where a table names it.
	Service Role = "service"
)

// AllRoles lists every role, in the order the docs show them.
func AllRoles() []Role {
	return []Role{Agent, Leader, Director, DepartmentOwner, QAReviewer, Integrator, Auditor, TenantAdmin, PlatformOperator, Service}
}

// Known tells whether r is one of AllRoles.
func Known(r Role) bool { return slices.Contains(AllRoles(), r) }

// AllTenants is the tenant of a platform operator's and a service's token and the tenant_id
// of a policy that applies to every tenant.
const AllTenants = "*"

// Principal is the verified caller of a request.
type Principal struct {
	// Subject is the token's sub: who the caller is at the identity provider.
	Subject string
	// Tenant is the one tenant the caller acts in; AllTenants for a platform
	// operator.
	Tenant string
	Roles  []Role
	// AgentID is the caller's agent in dispatch (agents, leaders,
	// directors); empty for others.
	AgentID string
	// OrgUnits are the org units a leader leads (each with its subtree) and
	// an agent belongs to.
	OrgUnits []string
	// Departments are the departments a department owner answers for.
	Departments []string
	// SourceSystem is the upstream system an integrator speaks for.
	SourceSystem string
	// ServiceName is the Huifang service a service token speaks for
	// ("dispatch").
	ServiceName string
}

// Actor is who the principal acts as in request fields that name a person
// (agent_id, leader_id, by): its agent id, or its subject when it has none.
func (p Principal) Actor() string {
	if p.AgentID != "" {
		return p.AgentID
	}
	return p.Subject
}

// Has tells whether the principal holds role r.
func (p Principal) Has(r Role) bool { return slices.Contains(p.Roles, r) }

// HasAny tells whether the principal holds one of roles.
func (p Principal) HasAny(roles ...Role) bool {
	for _, r := range roles {
		if p.Has(r) {
			return true
		}
	}
	return false
}

type principalKey struct{}

// With returns ctx carrying p.
func With(ctx context.Context, p Principal) context.Context {
	return context.WithValue(ctx, principalKey{}, p)
}

// From returns the principal ctx carries and whether it carries one.
func From(ctx context.Context) (Principal, bool) {
	p, ok := ctx.Value(principalKey{}).(Principal)
	return p, ok
}
