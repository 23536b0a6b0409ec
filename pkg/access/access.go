// Package access holds the permission table of every Huifang service: for
// each RPC, who may call it and how its request is scoped to the caller
// (auth.Rule). Each service's guard enforces its own table; the tests call
// every RPC as every role, in and out of scope, from these tables, and
// docs/security.md is generated from them (make generate).
package access

import (
	"google.golang.org/protobuf/reflect/protoreflect"

	analyticsv1 "github.com/huifang/huifang/proto/huifang/analytics/v1"
	dispatchv1 "github.com/huifang/huifang/proto/huifang/dispatch/v1"
	feedbackv1 "github.com/huifang/huifang/proto/huifang/feedback/v1"
	intakev1 "github.com/huifang/huifang/proto/huifang/intake/v1"
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
	admin    = auth.TenantAdmin
	operator = auth.PlatformOperator
)

func roles(r ...auth.Role) []auth.Role { return r }

// Service is one service's name, gRPC service and permission table.
type Service struct {
	Name       string
	Descriptor protoreflect.ServiceDescriptor
	Table      auth.Table
}

// Services returns every service with its table, in pipeline order.
func Services() []Service {
	return []Service{
		{"intake", intakev1.File_huifang_intake_v1_intake_proto.Services().Get(0), Intake()},
		{"scheduler", schedulerv1.File_huifang_scheduler_v1_scheduler_proto.Services().Get(0), Scheduler()},
		{"dispatch", dispatchv1.File_huifang_dispatch_v1_dispatch_proto.Services().Get(0), Dispatch()},
		{"feedback", feedbackv1.File_huifang_feedback_v1_feedback_proto.Services().Get(0), Feedback()},
		{"analytics", analyticsv1.File_huifang_analytics_v1_analytics_proto.Services().Get(0), Analytics()},
	}
}

// For returns the table of the named service, empty (every call refused)
// for a name it does not know.
func For(service string) auth.Table {
	for _, s := range Services() {
		if s.Name == service {
			return s.Table
		}
	}
	return auth.Table{}
}
