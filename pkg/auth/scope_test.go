package auth_test

import (
	"errors"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/huifang/huifang/pkg/auth"
	dispatchv1 "github.com/huifang/huifang/proto/huifang/dispatch/v1"
	eventsv1 "github.com/huifang/huifang/proto/huifang/events/v1"
	intakev1 "github.com/huifang/huifang/proto/huifang/intake/v1"
	schedulerv1 "github.com/huifang/huifang/proto/huifang/scheduler/v1"
)

var (
	agentP    = auth.Principal{Subject: "u-1", Tenant: "acme", Roles: []auth.Role{auth.Agent}, AgentID: "a-1"}
	directorP = auth.Principal{Subject: "u-9", Tenant: "acme", Roles: []auth.Role{auth.Director}, AgentID: "d-1"}
	erpP      = auth.Principal{Subject: "erp", Tenant: "acme", Roles: []auth.Role{auth.Integrator}, SourceSystem: "erp-east"}
	operatorP = auth.Principal{Subject: "ops", Tenant: auth.AllTenants, Roles: []auth.Role{auth.PlatformOperator}}
	listTasks = auth.Rule{Permission: "tasks.read", Roles: []auth.Role{auth.Agent, auth.Director},
		Self: map[string][]auth.Role{"agent_id": {auth.Director}}}
)

func denied(t *testing.T, err error, field string) {
	t.Helper()
	var d *auth.Denied
	if !errors.As(err, &d) || !errors.Is(err, auth.ErrPermissionDenied) || d.Field != field {
		t.Fatalf("err %v: want a refusal naming %s", err, field)
	}
}

// TestBindFillsTheCaller: a blank tenant and a blank self field become the
// caller's.
func TestBindFillsTheCaller(t *testing.T) {
	req := &dispatchv1.ListTasksRequest{}
	if err := auth.Bind(agentP, listTasks, req); err != nil {
		t.Fatal(err)
	}
	if req.TenantId != "acme" || req.AgentId != "a-1" {
		t.Fatalf("bound request %v: want tenant acme and agent a-1", req)
	}
	// A director may name any agent (the application checks the scope) and
	// a blank agent stays blank (all agents).
	req = &dispatchv1.ListTasksRequest{}
	if err := auth.Bind(directorP, listTasks, req); err != nil || req.AgentId != "" {
		t.Fatalf("director: err %v, agent %q: want no error and no agent filled", err, req.AgentId)
	}
}

func TestBindRefusesAnotherTenantOrAgent(t *testing.T) {
	req := &dispatchv1.ListTasksRequest{TenantId: "globex", AgentId: "a-1"}
	denied(t, auth.Bind(agentP, listTasks, req), "tenant_id")
	req = &dispatchv1.ListTasksRequest{AgentId: "a-2"}
	denied(t, auth.Bind(agentP, listTasks, req), "agent_id")
	if req.TenantId != "" {
		t.Fatalf("a refused request was changed: tenant %q", req.TenantId)
	}
	denied(t, auth.Bind(directorP, listTasks, &dispatchv1.ListTasksRequest{TenantId: "*"}), "tenant_id")
}

// TestBindNestedTenantsAndSources: every event of a batch is scoped, and an
// integrator ingests only for its own source system.
func TestBindNestedTenantsAndSources(t *testing.T) {
	rule := auth.Rule{Permission: "services.ingest", Roles: []auth.Role{auth.Integrator}}
	req := &intakev1.IngestServicesRequest{Events: []*eventsv1.ServiceCompleted{{}, {TenantId: "acme", SourceSystem: "erp-east"}}}
	if err := auth.Bind(erpP, rule, req); err != nil {
		t.Fatal(err)
	}
	for i, e := range req.Events {
		if e.TenantId != "acme" || e.SourceSystem != "erp-east" {
			t.Fatalf("event %d bound to %q/%q: want acme/erp-east", i, e.TenantId, e.SourceSystem)
		}
	}
	req = &intakev1.IngestServicesRequest{Events: []*eventsv1.ServiceCompleted{{}, {TenantId: "globex"}}}
	denied(t, auth.Bind(erpP, rule, req), "events[1].tenant_id")
	if req.Events[0].TenantId != "" {
		t.Fatal("a refused batch was changed")
	}
	req = &intakev1.IngestServicesRequest{Events: []*eventsv1.ServiceCompleted{{SourceSystem: "erp-west"}}}
	denied(t, auth.Bind(erpP, rule, req), "events[0].source_system")
}

// TestBindEveryTenant: only a platform operator may name "*", and only where
// the rule allows it.
func TestBindEveryTenant(t *testing.T) {
	write := auth.Rule{Permission: "policies.write", Roles: []auth.Role{auth.TenantAdmin, auth.PlatformOperator}, AllTenants: true}
	admin := auth.Principal{Subject: "adm", Tenant: "acme", Roles: []auth.Role{auth.TenantAdmin}}
	req := &schedulerv1.CreatePolicyRequest{Policy: &schedulerv1.Policy{TenantId: "*"}}
	denied(t, auth.Bind(admin, write, req), "policy.tenant_id")
	if err := auth.Bind(operatorP, write, proto.Clone(req)); err != nil {
		t.Fatalf("operator, every tenant: %v", err)
	}
	noStar := write
	noStar.AllTenants = false
	denied(t, auth.Bind(operatorP, noStar, req), "policy.tenant_id")
	if err := auth.Bind(operatorP, noStar, &schedulerv1.CreatePolicyRequest{Policy: &schedulerv1.Policy{TenantId: "globex"}}); err != nil {
		t.Fatalf("operator, one tenant: %v", err)
	}
	if !strings.Contains(auth.Bind(admin, write, req).Error(), "platform operator") {
		t.Fatal("the refusal does not say who may")
	}
}
