// Package grpcapi serves huifang.scheduler.v1.SchedulerService.
package grpcapi

import (
	"context"
	"errors"
	"strings"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	schedulerv1 "github.com/huifang/huifang/proto/huifang/scheduler/v1"
	typesv1 "github.com/huifang/huifang/proto/huifang/types/v1"

	"github.com/huifang/huifang/pkg/invalid"
	"github.com/huifang/huifang/pkg/outbox"
	"github.com/huifang/huifang/pkg/page"
	"github.com/huifang/huifang/services/scheduler/internal/policy"
	"github.com/huifang/huifang/services/scheduler/internal/store"
)

// DefaultTenant is the tenant of requests that name none.
const DefaultTenant = "default"

// Server implements SchedulerService.
type Server struct {
	schedulerv1.UnimplementedSchedulerServiceServer
	Store *store.Store
	Now   func() time.Time
}

func tenant(t string) string {
	if t = strings.TrimSpace(t); t == "" {
		return DefaultTenant
	}
	return t
}

// CreatePolicy validates and stores a policy; it applies to services completed from then on.
func (s *Server) CreatePolicy(ctx context.Context, req *schedulerv1.CreatePolicyRequest) (*schedulerv1.CreatePolicyResponse, error) {
	in := req.GetPolicy()
	if in == nil {
		return nil, invalid.New("policy", "is required")
	}
	p := fromProto(in)
	p.ID = outbox.NewEventID()
	p.Tenant = tenant(in.GetTenantId())
	p.Version = 1
	p.Active = true
	p.Builtin = false
	p.CreatedAt = s.Now().UTC().Truncate(time.Microsecond)
	if err := policy.Validate(p); err != nil {
		return nil, err
	}
	if err := s.Store.CreatePolicy(ctx, p); err != nil {
		if errors.Is(err, store.ErrNameTaken) {
			return nil, status.Errorf(codes.AlreadyExists, "tenant %s already has a policy named %q", p.Tenant, p.Name)
		}
		return nil, err
	}
	return &schedulerv1.CreatePolicyResponse{Policy: toProto(p)}, nil
}

// ListPolicies lists the tenant's policies and the built-ins.
func (s *Server) ListPolicies(ctx context.Context, req *schedulerv1.ListPoliciesRequest) (*schedulerv1.ListPoliciesResponse, error) {
	size, err := page.Size(req.GetPageSize())
	if err != nil {
		return nil, err
	}
	var after string
	if err := page.Cursor(req.GetPageToken(), &after); err != nil {
		return nil, err
	}
	ps, err := s.Store.ListPolicies(ctx, tenant(req.GetTenantId()), after, size+1)
	if err != nil {
		return nil, err
	}
	resp := &schedulerv1.ListPoliciesResponse{}
	if len(ps) > size {
		ps = ps[:size]
		resp.NextPageToken = page.Token(ps[size-1].ID)
	}
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
	switch req.GetStatus() {
	case "", "planned", "due", "suppressed", "cancelled":
	default:
		return nil, invalid.New("status", "must be planned, due, suppressed or cancelled")
	}
	var cur visitCursor
	if err := page.Cursor(req.GetPageToken(), &cur); err != nil {
		return nil, err
	}
	vs, err := s.Store.ListVisits(ctx, store.VisitFilter{
		Tenant: tenant(req.GetTenantId()), ServiceID: req.GetServiceId(), Status: req.GetStatus(),
		AfterDue: cur.Due, AfterID: cur.ID, Limit: size + 1,
	})
	if err != nil {
		return nil, err
	}
	resp := &schedulerv1.ListPlannedVisitsResponse{}
	if len(vs) > size {
		vs = vs[:size]
		resp.NextPageToken = page.Token(visitCursor{Due: vs[size-1].DueAt, ID: vs[size-1].ID})
	}
	for _, v := range vs {
		resp.Visits = append(resp.Visits, &schedulerv1.PlannedVisit{
			Id: v.ID, TenantId: v.Tenant, ServiceId: v.ServiceID, CustomerId: v.CustomerID, PolicyId: v.PolicyID,
			PolicyVersion: v.PolicyVersion, Step: v.Step, Channel: typesv1.Channel(v.Channel),
			DueAt: timestamppb.New(v.DueAt), Deadline: timestamppb.New(v.Deadline), Status: v.Status, Reason: v.Reason,
			OrgUnit: v.OrgUnit, ServiceType: v.ServiceType,
		})
	}
	return resp, nil
}

func fromProto(in *schedulerv1.Policy) policy.Policy {
	p := policy.Policy{
		Name:       strings.TrimSpace(in.GetName()),
		SourceRule: in.GetSourceRule(),
		Trigger: policy.Trigger{
			ServiceTypes: in.GetTrigger().GetServiceTypes(),
			OrgUnits:     in.GetTrigger().GetOrgUnits(),
		},
	}
	for _, st := range in.GetSteps() {
		rate := 1.0
		if st.SampleRate != nil {
			rate = st.GetSampleRate()
		}
		p.Steps = append(p.Steps, policy.Step{
			Offset:     st.GetOffset().AsDuration(),
			Window:     st.GetWindow().AsDuration(),
			Channel:    int32(st.GetChannel()),
			SampleRate: rate,
			Group:      st.GetGroup(),
		})
	}
	return p
}

func toProto(p policy.Policy) *schedulerv1.Policy {
	out := &schedulerv1.Policy{
		Id: p.ID, TenantId: p.Tenant, Name: p.Name, Version: int32(p.Version),
		Trigger:    &schedulerv1.Trigger{ServiceTypes: p.Trigger.ServiceTypes, OrgUnits: p.Trigger.OrgUnits},
		Active:     p.Active,
		Builtin:    p.Builtin,
		SourceRule: p.SourceRule,
		CreatedAt:  timestamppb.New(p.CreatedAt),
	}
	for _, st := range p.Steps {
		rate := st.SampleRate
		out.Steps = append(out.Steps, &schedulerv1.Step{
			Offset: durationpb.New(st.Offset), Window: durationpb.New(st.Window),
			Channel: typesv1.Channel(st.Channel), SampleRate: &rate, Group: st.Group,
		})
	}
	return out
}
