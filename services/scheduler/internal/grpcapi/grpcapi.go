// Package grpcapi serves huifang.scheduler.v1.SchedulerService: each call
// checks the request's shape, runs one use case of package app and encodes
// its answer; statusOf turns the use cases' errors into gRPC codes.
package grpcapi

import (
	"context"
	"slices"
	"strings"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	schedulerv1 "github.com/huifang/huifang/proto/huifang/scheduler/v1"

	"github.com/huifang/huifang/pkg/invalid"
	"github.com/huifang/huifang/pkg/page"
	"github.com/huifang/huifang/pkg/tenant"
	"github.com/huifang/huifang/services/scheduler/internal/app"
	"github.com/huifang/huifang/services/scheduler/internal/policy"
	"github.com/huifang/huifang/services/scheduler/internal/visit"
)

// Server implements SchedulerService.
type Server struct {
	schedulerv1.UnimplementedSchedulerServiceServer
	App *app.App
}

// tenantOf is the tenant a request names in field: tenant.Default when
// blank, else a well-formed tenant id (a violation in bad otherwise). "*",
// the tenant of the built-in policies, passes as every call has accepted it
// so far; the calls that refuse it (UpdatePolicy, ActivatePolicy,
// DeactivatePolicy) do so in their use case.
func tenantOf(bad *invalid.List, field, id string) string {
	if strings.TrimSpace(id) == policy.AllTenants {
		return policy.AllTenants
	}
	return tenant.Parse(bad, field, id)
}

// CreatePolicy validates and stores a policy; it applies to services completed from then on.
func (s *Server) CreatePolicy(ctx context.Context, req *schedulerv1.CreatePolicyRequest) (*schedulerv1.CreatePolicyResponse, error) {
	in := req.GetPolicy() // required: scheduler.proto's rule
	var bad invalid.List
	t := tenantOf(&bad, "policy.tenant_id", in.GetTenantId())
	if err := bad.Err(); err != nil {
		return nil, err
	}
	p, err := s.App.CreatePolicy(ctx, t, fromProto(in))
	if err != nil {
		return nil, statusOf(err)
	}
	return &schedulerv1.CreatePolicyResponse{Policy: toProto(p)}, nil
}

// UpdatePolicy stores a new version; planned visits keep the version they came from.
func (s *Server) UpdatePolicy(ctx context.Context, req *schedulerv1.UpdatePolicyRequest) (*schedulerv1.UpdatePolicyResponse, error) {
	var bad invalid.List
	t := tenantOf(&bad, "tenant_id", req.GetTenantId())
	if err := bad.Err(); err != nil {
		return nil, err
	}
	p, err := s.App.UpdatePolicy(ctx, t, req.GetPolicyId(), fromProto(req.GetPolicy()))
	if err != nil {
		return nil, statusOf(err)
	}
	return &schedulerv1.UpdatePolicyResponse{Policy: toProto(p)}, nil
}

// GetPolicy returns one version of a policy.
func (s *Server) GetPolicy(ctx context.Context, req *schedulerv1.GetPolicyRequest) (*schedulerv1.GetPolicyResponse, error) {
	var bad invalid.List
	t := tenantOf(&bad, "tenant_id", req.GetTenantId())
	if err := bad.Err(); err != nil {
		return nil, err
	}
	p, err := s.App.GetPolicy(ctx, t, req.GetPolicyId(), int(req.GetVersion()))
	if err != nil {
		return nil, statusOf(err)
	}
	return &schedulerv1.GetPolicyResponse{Policy: toProto(p)}, nil
}

// ActivatePolicy turns a policy on (a built-in for the requesting tenant only).
func (s *Server) ActivatePolicy(ctx context.Context, req *schedulerv1.ActivatePolicyRequest) (*schedulerv1.ActivatePolicyResponse, error) {
	p, err := s.setActive(ctx, req.GetTenantId(), req.GetPolicyId(), true)
	if err != nil {
		return nil, err
	}
	return &schedulerv1.ActivatePolicyResponse{Policy: p}, nil
}

// DeactivatePolicy turns a policy off: no new visits, recurring series stop at their next visit.
func (s *Server) DeactivatePolicy(ctx context.Context, req *schedulerv1.DeactivatePolicyRequest) (*schedulerv1.DeactivatePolicyResponse, error) {
	p, err := s.setActive(ctx, req.GetTenantId(), req.GetPolicyId(), false)
	if err != nil {
		return nil, err
	}
	return &schedulerv1.DeactivatePolicyResponse{Policy: p}, nil
}

func (s *Server) setActive(ctx context.Context, tenantID, id string, active bool) (*schedulerv1.Policy, error) {
	var bad invalid.List
	t := tenantOf(&bad, "tenant_id", tenantID)
	if err := bad.Err(); err != nil {
		return nil, err
	}
	p, err := s.App.SetActive(ctx, t, id, active)
	if err != nil {
		return nil, statusOf(err)
	}
	return toProto(p), nil
}

// ListPolicies lists the tenant's policies and the built-ins.
func (s *Server) ListPolicies(ctx context.Context, req *schedulerv1.ListPoliciesRequest) (*schedulerv1.ListPoliciesResponse, error) {
	var bad invalid.List
	t := tenantOf(&bad, "tenant_id", req.GetTenantId())
	if err := bad.Err(); err != nil {
		return nil, err
	}
	size, err := page.Size(req.GetPageSize())
	if err != nil {
		return nil, err
	}
	var after string
	if err := page.Cursor(req.GetPageToken(), &after); err != nil {
		return nil, err
	}
	ps, err := s.App.ListPolicies(ctx, t, after, size+1)
	if err != nil {
		return nil, statusOf(err)
	}
	resp := &schedulerv1.ListPoliciesResponse{}
	ps, resp.NextPageToken = page.Trim(ps, size, func(last policy.Policy) any { return last.ID })
	for _, p := range ps {
		resp.Policies = append(resp.Policies, toProto(p))
	}
	return resp, nil
}

// ListPolicyPacks lists the shipped packs.
func (s *Server) ListPolicyPacks(context.Context, *schedulerv1.ListPolicyPacksRequest) (*schedulerv1.ListPolicyPacksResponse, error) {
	all, err := s.App.PolicyPacks()
	if err != nil {
		return nil, statusOf(err)
	}
	resp := &schedulerv1.ListPolicyPacksResponse{}
	for _, p := range all {
		pp := &schedulerv1.PolicyPack{Name: p.Name, Title: p.Title, Seed: p.Seed, Description: p.Description}
		for _, pol := range p.Policies {
			pp.Policies = append(pp.Policies, toProto(pol))
		}
		resp.Packs = append(resp.Packs, pp)
	}
	return resp, nil
}

// LoadPolicyPack creates the pack's policies for the tenant; a policy of the
// same name gets a new version instead.
func (s *Server) LoadPolicyPack(ctx context.Context, req *schedulerv1.LoadPolicyPackRequest) (*schedulerv1.LoadPolicyPackResponse, error) {
	var bad invalid.List
	t := tenantOf(&bad, "tenant_id", req.GetTenantId())
	if err := bad.Err(); err != nil {
		return nil, err
	}
	ps, err := s.App.LoadPolicyPack(ctx, t, req.GetPack(), req.GetInactive())
	if err != nil {
		return nil, statusOf(err)
	}
	resp := &schedulerv1.LoadPolicyPackResponse{}
	for _, p := range ps {
		resp.Policies = append(resp.Policies, toProto(p))
	}
	return resp, nil
}

type visitCursor struct {
	Due time.Time `json:"d"`
	ID  string    `json:"i"`
}

// ListPlannedVisits lists planned visits, soonest due first.
func (s *Server) ListPlannedVisits(ctx context.Context, req *schedulerv1.ListPlannedVisitsRequest) (*schedulerv1.ListPlannedVisitsResponse, error) {
	size, err := page.Size(req.GetPageSize())
	if err != nil {
		return nil, err
	}
	var bad invalid.List
	t := tenantOf(&bad, "tenant_id", req.GetTenantId())
	if req.GetStatus() != "" && !slices.Contains(visit.Statuses, req.GetStatus()) {
		bad.Add("status", "must be planned, due, suppressed, cancelled or failed")
	}
	if req.GetDueFrom() != nil && req.GetDueTo() != nil && !req.GetDueTo().AsTime().After(req.GetDueFrom().AsTime()) {
		bad.Add("due_to", "must be after due_from")
	}
	if err := bad.Err(); err != nil {
		return nil, err
	}
	var cur visitCursor
	if err := page.Cursor(req.GetPageToken(), &cur); err != nil {
		return nil, err
	}
	q := app.VisitQuery{
		Tenant: t, ServiceID: req.GetServiceId(), Status: req.GetStatus(),
		CustomerID: req.GetCustomerId(), PolicyID: req.GetPolicyId(), Group: req.GetGroup(), OrgUnit: req.GetOrgUnit(),
		Channel: int32(req.GetChannel()), AfterDue: cur.Due, AfterID: cur.ID, Limit: size + 1,
	}
	if req.GetDueFrom() != nil {
		q.DueFrom = req.GetDueFrom().AsTime()
	}
	if req.GetDueTo() != nil {
		q.DueTo = req.GetDueTo().AsTime()
	}
	vs, err := s.App.ListVisits(ctx, q)
	if err != nil {
		return nil, statusOf(err)
	}
	resp := &schedulerv1.ListPlannedVisitsResponse{}
	vs, resp.NextPageToken = page.Trim(vs, size, func(last visit.Visit) any { return visitCursor{Due: last.DueAt, ID: last.ID} })
	for _, v := range vs {
		resp.Visits = append(resp.Visits, visitToProto(v))
	}
	return resp, nil
}

// ExplainVisit returns the visit, the policy version that planned it and every decision about it.
func (s *Server) ExplainVisit(ctx context.Context, req *schedulerv1.ExplainVisitRequest) (*schedulerv1.ExplainVisitResponse, error) {
	var bad invalid.List
	t := tenantOf(&bad, "tenant_id", req.GetTenantId())
	if err := bad.Err(); err != nil {
		return nil, err
	}
	ex, err := s.App.Explain(ctx, t, req.GetVisitId())
	if err != nil {
		return nil, statusOf(err)
	}
	v := ex.Visit
	resp := &schedulerv1.ExplainVisitResponse{Visit: visitToProto(v), SampleDraw: v.Draw, SampleRate: v.SampleRate}
	if ex.Policy != nil {
		resp.Policy, resp.SourceRule = toProto(*ex.Policy), ex.Policy.SourceRule
	}
	for _, d := range v.Decisions {
		pd := &schedulerv1.Decision{Kind: d.Kind, Detail: d.Detail}
		if !d.At.IsZero() {
			pd.At = timestamppb.New(d.At)
		}
		resp.Decisions = append(resp.Decisions, pd)
	}
	if _, why := v.ForecastWords(); why != "" {
		resp.Decisions = append(resp.Decisions, &schedulerv1.Decision{Kind: policy.KindForecast, Detail: why})
	}
	return resp, nil
}

// ReschedulePlannedVisit moves a planned visit to the time the customer asked
// for, or retries a failed visit (back to planned at due_at; the reason is
// the operator's).
func (s *Server) ReschedulePlannedVisit(ctx context.Context, req *schedulerv1.ReschedulePlannedVisitRequest) (*schedulerv1.ReschedulePlannedVisitResponse, error) {
	var bad invalid.List
	t := tenantOf(&bad, "tenant_id", req.GetTenantId())
	if err := bad.Err(); err != nil {
		return nil, err
	}
	v, err := s.App.Reschedule(ctx, t, req.GetVisitId(), req.GetDueAt().AsTime(), req.GetReason())
	if err != nil {
		return nil, statusOf(err)
	}
	return &schedulerv1.ReschedulePlannedVisitResponse{Visit: visitToProto(v)}, nil
}

// CancelPlannedVisit cancels a planned, due or failed visit and publishes VisitCancelled.
func (s *Server) CancelPlannedVisit(ctx context.Context, req *schedulerv1.CancelPlannedVisitRequest) (*schedulerv1.CancelPlannedVisitResponse, error) {
	var bad invalid.List
	t := tenantOf(&bad, "tenant_id", req.GetTenantId())
	if err := bad.Err(); err != nil {
		return nil, err
	}
	v, err := s.App.Cancel(ctx, t, req.GetVisitId(), req.GetReason())
	if err != nil {
		return nil, statusOf(err)
	}
	return &schedulerv1.CancelPlannedVisitResponse{Visit: visitToProto(v)}, nil
}

// SetContactPolicy replaces the tenant's contact policy.
func (s *Server) SetContactPolicy(ctx context.Context, req *schedulerv1.SetContactPolicyRequest) (*schedulerv1.SetContactPolicyResponse, error) {
	var bad invalid.List
	t := tenantOf(&bad, "tenant_id", req.GetTenantId())
	if err := bad.Err(); err != nil {
		return nil, err
	}
	r, err := s.App.SetContactPolicy(ctx, t, rulesFromProto(req.GetContactPolicy()), req.GetPreset())
	if err != nil {
		return nil, statusOf(err)
	}
	return &schedulerv1.SetContactPolicyResponse{ContactPolicy: rulesToProto(r)}, nil
}

// GetContactPolicy returns the tenant's contact policy.
func (s *Server) GetContactPolicy(ctx context.Context, req *schedulerv1.GetContactPolicyRequest) (*schedulerv1.GetContactPolicyResponse, error) {
	var bad invalid.List
	t := tenantOf(&bad, "tenant_id", req.GetTenantId())
	if err := bad.Err(); err != nil {
		return nil, err
	}
	r, err := s.App.ContactPolicy(ctx, t)
	if err != nil {
		return nil, statusOf(err)
	}
	return &schedulerv1.GetContactPolicyResponse{ContactPolicy: rulesToProto(r)}, nil
}
