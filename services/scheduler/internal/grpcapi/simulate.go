package grpcapi

import (
	"context"

	schedulerv1 "github.com/huifang/huifang/proto/huifang/scheduler/v1"

	"github.com/huifang/huifang/pkg/invalid"
	"github.com/huifang/huifang/services/scheduler/internal/app"
)

// SimulatePolicy runs a policy over the tenant's past services or a synthetic
// load, with the tenant's contact policy, in memory, and counts the visits it
// would create per day, channel and group.
func (s *Server) SimulatePolicy(ctx context.Context, req *schedulerv1.SimulatePolicyRequest) (*schedulerv1.SimulatePolicyResponse, error) {
	var bad invalid.List
	in := app.Simulation{Tenant: tenantOf(&bad, "tenant_id", req.GetTenantId()), PolicyID: req.GetPolicyId()}
	if err := bad.Err(); err != nil {
		return nil, err
	}
	if req.GetPolicy() != nil {
		p := fromProto(req.GetPolicy())
		in.Draft = &p
	}
	if syn := req.GetSynthetic(); syn != nil {
		in.Synthetic = &app.Synthetic{
			ServicesPerDay: int(syn.GetServicesPerDay()), Days: int(syn.GetDays()),
			ServiceTypes: syn.GetServiceTypes(), Tiers: syn.GetTiers(), Severities: syn.GetSeverities(), OrgUnits: syn.GetOrgUnits(),
		}
	}
	if req.GetFrom() != nil {
		in.From = req.GetFrom().AsTime()
	}
	if req.GetTo() != nil {
		in.To = req.GetTo().AsTime()
	}
	if req.GetHorizon() != nil {
		h := req.GetHorizon().AsDuration()
		in.Horizon = &h
	}
	res, err := s.App.Simulate(ctx, in)
	if err != nil {
		return nil, statusOf(err)
	}
	return countsToProto(res.Counts()), nil
}
