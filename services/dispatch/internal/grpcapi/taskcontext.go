package grpcapi

import (
	"context"
	"strings"

	dispatchv1 "github.com/huifang/huifang/proto/huifang/dispatch/v1"

	"github.com/huifang/huifang/pkg/tenant"
)

// GetTaskContext answers everything an agent's screen needs for one task.
func (s *Server) GetTaskContext(ctx context.Context, req *dispatchv1.GetTaskContextRequest) (*dispatchv1.GetTaskContextResponse, error) {
	taskID := strings.TrimSpace(req.GetTaskId()) // not blank, lease_token not negative: dispatch.proto's rules
	c, err := s.App.GetTaskContext(ctx, tenant.Or(req.GetTenantId()), taskID, req.GetLeaseToken())
	if err != nil {
		return nil, statusOf(err)
	}
	t := c.Task
	resp := &dispatchv1.GetTaskContextResponse{
		Task: taskProto(t),
		Service: &dispatchv1.ServiceDetails{ServiceId: c.Details.ServiceID, ServiceType: t.ServiceType, CompletedAt: timestamp(c.Details.CompletedAt),
			Product: t.ProductCategory, OrgUnit: t.OrgUnit, Severity: t.Severity, ComplaintId: c.Details.ComplaintID, Late: c.Details.Late,
			PolicyId: t.PolicyID},
		Questionnaire:       c.Questionnaire,
		QuestionnaireStatus: c.QuestionnaireStatus,
		Script:              &dispatchv1.Script{Greeting: c.Script.Greeting, Body: c.Script.Body, Closing: c.Script.Closing, Source: c.ScriptSource},
	}
	for _, a := range c.Attempts {
		resp.Attempts = append(resp.Attempts, attemptProto(t, a))
	}
	if c.Appointment != nil {
		resp.Appointment = appointmentProto(*c.Appointment)
	}
	return resp, nil
}
