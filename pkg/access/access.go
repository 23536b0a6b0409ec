// Package access holds the permission table of every Huifang service: for
// each RPC, who may call it and how its request is scoped to the caller
// (auth.Rule). Each service's guard enforces its own table; the tests call
// every RPC as every role, in and out of scope, from these tables, and
// docs/security.md is generated from them (make generate).
package access

import (
	"google.golang.org/protobuf/reflect/protoreflect"

	analyticsv1 "github.com/huifang/huifang/proto/huifang/analytics/v1"
	auditv1 "github.com/huifang/huifang/proto/huifang/audit/v1"
	dispatchv1 "github.com/huifang/huifang/proto/huifang/dispatch/v1"
	feedbackv1 "github.com/huifang/huifang/proto/huifang/feedback/v1"
	intakev1 "github.com/huifang/huifang/proto/huifang/intake/v1"
	privacyv1 "github.com/huifang/huifang/proto/huifang/privacy/v1"
	schedulerv1 "github.com/huifang/huifang/proto/huifang/scheduler/v1"

	"github.com/huifang/huifang/pkg/auth"
)

// Short names for the roles, so that each table reads as one line per RPC.
const (
	agent    = auth.Agent
	leader   = auth.Leader
	director = auth.Director
	owner    = auth.DepartmentOwner
	qa       = auth.QAReviewer
	integr   = auth.Integrator
	auditor  = auth.Auditor
	admin    = auth.TenantAdmin
	operator = auth.PlatformOperator
	svc      = auth.Service
)

func roles(r ...auth.Role) []auth.Role { return r }

// Service is one gRPC service with its permission table: a Huifang
// service's own API, or one that every service serves (Shared).
type Service struct {
	Name       string
	Descriptor protoreflect.ServiceDescriptor
	Table      auth.Table
	// Shared is true for an API every service serves over its own data
	// (the audit log): its rules are in every service's table (For).
	Shared bool
}

// Services returns every service's own API with its table, in pipeline
// order, then the APIs every service serves.
func Services() []Service {
	return []Service{
		{Name: "intake", Descriptor: intakev1.File_huifang_intake_v1_intake_proto.Services().Get(0), Table: Intake()},
		{Name: "scheduler", Descriptor: schedulerv1.File_huifang_scheduler_v1_scheduler_proto.Services().Get(0), Table: Scheduler()},
		{Name: "dispatch", Descriptor: dispatchv1.File_huifang_dispatch_v1_dispatch_proto.Services().Get(0), Table: Dispatch()},
		{Name: "feedback", Descriptor: feedbackv1.File_huifang_feedback_v1_feedback_proto.Services().Get(0), Table: Feedback()},
		{Name: "analytics", Descriptor: analyticsv1.File_huifang_analytics_v1_analytics_proto.Services().Get(0), Table: Analytics()},
		{Name: "audit", Descriptor: auditv1.File_huifang_audit_v1_audit_proto.Services().Get(0), Table: Audit(), Shared: true},
		{Name: "customer data", Descriptor: privacyv1.File_huifang_privacy_v1_privacy_proto.Services().Get(0), Table: CustomerData(), Shared: true},
	}
}

// For returns the table the named service enforces: its own rules and
// those of the APIs every service serves (the audit log). A name it does
// not know gets only the latter (its own calls are refused).
func For(service string) auth.Table {
	var tables []auth.Table
	for _, s := range Services() {
		if s.Shared || (s.Name == service) {
			tables = append(tables, s.Table)
		}
	}
	return auth.Merge(tables...)
}
