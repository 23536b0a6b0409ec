package grpcapi

import (
	"context"

	schedulerv1 "github.com/huifang/huifang/proto/huifang/scheduler/v1"

	"github.com/huifang/huifang/pkg/invalid"
	"github.com/huifang/huifang/services/scheduler/internal/app"
)

// ScheduleFollowUp plans an ad-hoc follow-up visit (app.ScheduleFollowUpTx).
func (s *Server) ScheduleFollowUp(ctx context.Context, req *schedulerv1.ScheduleFollowUpRequest) (*schedulerv1.ScheduleFollowUpResponse, error) {
	var bad invalid.List
	t := tenantOf(&bad, "tenant_id", req.GetTenantId())
	in := app.AdHoc{Tenant: t, RequestID: req.GetRequestId(), CustomerID: req.GetCustomerId(), ServiceID: req.GetServiceId(),
		ComplaintID: req.GetComplaintId(), OrgUnit: req.GetOrgUnit(), Channel: int32(req.GetChannel()), Group: req.GetGroup(), Reason: req.GetReason()}
	if req.GetDueAt() != nil {
		if err := req.GetDueAt().CheckValid(); err != nil {
			bad.Add("due_at", "must be a valid timestamp")
		}
		in.Due = req.GetDueAt().AsTime()
	}
	if req.GetDeadline() != nil {
		if err := req.GetDeadline().CheckValid(); err != nil {
			bad.Add("deadline", "must be a valid timestamp")
		}
		in.Deadline = req.GetDeadline().AsTime()
	}
	if err := bad.Err(); err != nil {
		return nil, err
	}
	out, err := s.App.ScheduleFollowUp(ctx, in)
	if err != nil {
		return nil, statusOf(err)
	}
	return &schedulerv1.ScheduleFollowUpResponse{Visit: visitToProto(out.Visit), Created: out.Created}, nil
}
