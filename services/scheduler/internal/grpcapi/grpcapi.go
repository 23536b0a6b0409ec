// Package grpcapi serves huifang.scheduler.v1.SchedulerService.
package grpcapi

import (
	"context"
	"errors"
	"strings"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

	schedulerv1 "github.com/huifang/huifang/proto/huifang/scheduler/v1"

	"github.com/huifang/huifang/pkg/invalid"
	"github.com/huifang/huifang/pkg/outbox"
	"github.com/huifang/huifang/pkg/page"
	"github.com/huifang/huifang/services/scheduler/internal/contact"
	"github.com/huifang/huifang/services/scheduler/internal/policy"
	"github.com/huifang/huifang/services/scheduler/internal/store"
	"github.com/huifang/huifang/services/scheduler/packs"
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

// grpcErr turns the store's domain errors into gRPC codes: the one place this happens.
func grpcErr(err error, what string) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, store.ErrNotFound):
		return status.Errorf(codes.NotFound, "%s not found", what)
	case errors.Is(err, store.ErrNameTaken):
		return status.Errorf(codes.AlreadyExists, "%s: %v", what, err)
	case errors.Is(err, store.ErrBuiltin), errors.Is(err, store.ErrState):
		return status.Errorf(codes.FailedPrecondition, "%s: %v", what, err)
	}
	return err
}

func (s *Server) now() time.Time { return s.Now().UTC().Truncate(time.Microsecond) }

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
	p.CreatedAt = s.now()
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

// UpdatePolicy stores a new version; planned visits keep the version they came from.
func (s *Server) UpdatePolicy(ctx context.Context, req *schedulerv1.UpdatePolicyRequest) (*schedulerv1.UpdatePolicyResponse, error) {
	if req.GetPolicyId() == "" {
		return nil, invalid.New("policy_id", "is required")
	}
	if req.GetPolicy() == nil {
		return nil, invalid.New("policy", "is required")
	}
	next := fromProto(req.GetPolicy())
	if err := policy.Validate(next); err != nil {
		return nil, err
	}
	now := s.now()
	p, err := s.Store.UpdatePolicy(ctx, tenant(req.GetTenantId()), req.GetPolicyId(), func(cur policy.Policy) (policy.Policy, error) {
		next.Pack, next.CreatedAt = cur.Pack, now
		return next, nil
	})
	if err != nil {
		return nil, grpcErr(err, "policy "+req.GetPolicyId())
	}
	return &schedulerv1.UpdatePolicyResponse{Policy: toProto(p)}, nil
}

// GetPolicy returns one version of a policy.
func (s *Server) GetPolicy(ctx context.Context, req *schedulerv1.GetPolicyRequest) (*schedulerv1.GetPolicyResponse, error) {
	if req.GetPolicyId() == "" {
		return nil, invalid.New("policy_id", "is required")
	}
	if req.GetVersion() < 0 {
		return nil, invalid.New("version", "must not be negative (0 = the latest)")
	}
	p, err := s.Store.GetPolicy(ctx, tenant(req.GetTenantId()), req.GetPolicyId(), int(req.GetVersion()))
	if err != nil {
		return nil, grpcErr(err, "policy "+req.GetPolicyId())
	}
	return &schedulerv1.GetPolicyResponse{Policy: toProto(p)}, nil
}

// ActivatePolicy turns a policy on.
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

func (s *Server) setActive(ctx context.Context, t, id string, active bool) (*schedulerv1.Policy, error) {
	if id == "" {
		return nil, invalid.New("policy_id", "is required")
	}
	p, err := s.Store.SetActive(ctx, tenant(t), id, active)
	if err != nil {
		return nil, grpcErr(err, "policy "+id)
	}
	return toProto(p), nil
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
	ps, resp.NextPageToken = page.Trim(ps, size, func(last policy.Policy) any { return last.ID })
	for _, p := range ps {
		resp.Policies = append(resp.Policies, toProto(p))
	}
	return resp, nil
}

// ListPolicyPacks lists the shipped packs.
func (s *Server) ListPolicyPacks(ctx context.Context, _ *schedulerv1.ListPolicyPacksRequest) (*schedulerv1.ListPolicyPacksResponse, error) {
	all, err := packs.All()
	if err != nil {
		return nil, err
	}
	resp := &schedulerv1.ListPolicyPacksResponse{}
	for _, p := range all {
		pp := &schedulerv1.PolicyPack{Name: p.Name, Title: p.Title, Seed: p.Seed, Description: p.Description}
		for _, pol := range p.Policies {
			pol.Active = p.LoadsActive(pol.Name)
			pp.Policies = append(pp.Policies, toProto(pol))
		}
		resp.Packs = append(resp.Packs, pp)
	}
	return resp, nil
}

// LoadPolicyPack creates the pack's policies for the tenant; a policy of the
// same name gets a new version instead.
func (s *Server) LoadPolicyPack(ctx context.Context, req *schedulerv1.LoadPolicyPackRequest) (*schedulerv1.LoadPolicyPackResponse, error) {
	pk, ok, err := packs.Get(req.GetPack())
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, invalid.New("pack", "must be one of the packs ListPolicyPacks lists")
	}
	t := tenant(req.GetTenantId())
	now := s.now()
	resp := &schedulerv1.LoadPolicyPackResponse{}
	for _, p := range pk.Policies {
		id, err := s.Store.PolicyIDByName(ctx, t, p.Name)
		if err != nil {
			return nil, err
		}
		p.CreatedAt = now
		if id != "" {
			p, err = s.Store.UpdatePolicy(ctx, t, id, func(policy.Policy) (policy.Policy, error) { return p, nil })
			if err == nil && req.GetInactive() {
				p, err = s.Store.SetActive(ctx, t, id, false)
			}
			if err != nil {
				return nil, grpcErr(err, "policy "+p.Name)
			}
		} else {
			p.ID, p.Tenant, p.Version, p.Active = outbox.NewEventID(), t, 1, !req.GetInactive() && pk.LoadsActive(p.Name)
			if err := s.Store.CreatePolicy(ctx, p); err != nil {
				return nil, grpcErr(err, "policy "+p.Name)
			}
		}
		resp.Policies = append(resp.Policies, toProto(p))
	}
	return resp, nil
}

type visitCursor struct {
	Due time.Time `json:"d"`
	ID  string    `json:"i"`
}

var statuses = []string{"", store.StatusPlanned, store.StatusDue, store.StatusSuppressed, store.StatusCancelled}

// ListPlannedVisits lists planned visits, soonest due first.
func (s *Server) ListPlannedVisits(ctx context.Context, req *schedulerv1.ListPlannedVisitsRequest) (*schedulerv1.ListPlannedVisitsResponse, error) {
	size, err := page.Size(req.GetPageSize())
	if err != nil {
		return nil, err
	}
	var l invalid.List
	ok := false
	for _, st := range statuses {
		ok = ok || st == req.GetStatus()
	}
	if !ok {
		l.Add("status", "must be planned, due, suppressed or cancelled")
	}
	if req.GetDueFrom() != nil && req.GetDueTo() != nil && !req.GetDueTo().AsTime().After(req.GetDueFrom().AsTime()) {
		l.Add("due_to", "must be after due_from")
	}
	if err := l.Err(); err != nil {
		return nil, err
	}
	var cur visitCursor
	if err := page.Cursor(req.GetPageToken(), &cur); err != nil {
		return nil, err
	}
	f := store.VisitFilter{
		Tenant: tenant(req.GetTenantId()), ServiceID: req.GetServiceId(), Status: req.GetStatus(),
		CustomerID: req.GetCustomerId(), PolicyID: req.GetPolicyId(), Group: req.GetGroup(), OrgUnit: req.GetOrgUnit(),
		Channel: int32(req.GetChannel()), AfterDue: cur.Due, AfterID: cur.ID, Limit: size + 1,
	}
	if req.GetDueFrom() != nil {
		f.DueFrom = req.GetDueFrom().AsTime()
	}
	if req.GetDueTo() != nil {
		f.DueTo = req.GetDueTo().AsTime()
	}
	vs, err := s.Store.ListVisits(ctx, f)
	if err != nil {
		return nil, err
	}
	resp := &schedulerv1.ListPlannedVisitsResponse{}
	vs, resp.NextPageToken = page.Trim(vs, size, func(last store.Visit) any { return visitCursor{Due: last.DueAt, ID: last.ID} })
	for _, v := range vs {
		resp.Visits = append(resp.Visits, visitToProto(v))
	}
	return resp, nil
}

// ExplainVisit returns the visit, the policy version that planned it and every decision about it.
func (s *Server) ExplainVisit(ctx context.Context, req *schedulerv1.ExplainVisitRequest) (*schedulerv1.ExplainVisitResponse, error) {
	if req.GetVisitId() == "" {
		return nil, invalid.New("visit_id", "is required")
	}
	t := tenant(req.GetTenantId())
	v, err := s.Store.GetVisit(ctx, t, req.GetVisitId())
	if err != nil {
		return nil, grpcErr(err, "visit "+req.GetVisitId())
	}
	resp := &schedulerv1.ExplainVisitResponse{Visit: visitToProto(v), SampleDraw: v.Draw, SampleRate: v.Rate}
	if v.PolicyID != store.FollowUpPolicyID {
		p, err := s.Store.GetPolicy(ctx, t, v.PolicyID, int(v.PolicyVersion))
		if err != nil && !errors.Is(err, store.ErrNotFound) {
			return nil, err
		}
		if err == nil {
			resp.Policy, resp.SourceRule = toProto(p), p.SourceRule
		}
	}
	for _, d := range v.Decisions {
		pd := &schedulerv1.Decision{Kind: d.Kind, Detail: d.Detail}
		if !d.At.IsZero() {
			pd.At = timestamppb.New(d.At)
		}
		resp.Decisions = append(resp.Decisions, pd)
	}
	return resp, nil
}

// ReschedulePlannedVisit moves a planned visit to the time the customer asked for.
func (s *Server) ReschedulePlannedVisit(ctx context.Context, req *schedulerv1.ReschedulePlannedVisitRequest) (*schedulerv1.ReschedulePlannedVisitResponse, error) {
	var l invalid.List
	if req.GetVisitId() == "" {
		l.Add("visit_id", "is required")
	}
	now := s.now()
	if req.GetDueAt() == nil {
		l.Add("due_at", "is required")
	} else if req.GetDueAt().AsTime().Before(now.Add(-time.Minute)) {
		l.Add("due_at", "must not be in the past")
	}
	if strings.TrimSpace(req.GetReason()) == "" {
		l.Add("reason", "is required: say why the customer asked for another time")
	}
	if err := l.Err(); err != nil {
		return nil, err
	}
	v, err := s.Store.Reschedule(ctx, tenant(req.GetTenantId()), req.GetVisitId(), req.GetDueAt().AsTime(), req.GetReason(), now)
	if err != nil {
		return nil, grpcErr(err, "visit "+req.GetVisitId())
	}
	return &schedulerv1.ReschedulePlannedVisitResponse{Visit: visitToProto(v)}, nil
}

// CancelPlannedVisit cancels a planned or due visit and publishes VisitCancelled.
func (s *Server) CancelPlannedVisit(ctx context.Context, req *schedulerv1.CancelPlannedVisitRequest) (*schedulerv1.CancelPlannedVisitResponse, error) {
	var l invalid.List
	if req.GetVisitId() == "" {
		l.Add("visit_id", "is required")
	}
	if strings.TrimSpace(req.GetReason()) == "" {
		l.Add("reason", "is required")
	}
	if err := l.Err(); err != nil {
		return nil, err
	}
	v, err := s.Store.Cancel(ctx, tenant(req.GetTenantId()), req.GetVisitId(), req.GetReason(), s.now())
	if err != nil {
		return nil, grpcErr(err, "visit "+req.GetVisitId())
	}
	return &schedulerv1.CancelPlannedVisitResponse{Visit: visitToProto(v)}, nil
}

// SetContactPolicy replaces the tenant's contact policy.
func (s *Server) SetContactPolicy(ctx context.Context, req *schedulerv1.SetContactPolicyRequest) (*schedulerv1.SetContactPolicyResponse, error) {
	r := rulesFromProto(req.GetContactPolicy())
	switch req.GetPreset() {
	case "":
	case "002":
		if len(r.Windows) == 0 {
			r.Windows = contact.Preset002().Windows
		}
	default:
		return nil, invalid.New("preset", "must be empty or 002")
	}
	if err := r.Validate(); err != nil {
		return nil, err
	}
	if err := s.Store.SetContactRules(ctx, tenant(req.GetTenantId()), r, s.now()); err != nil {
		return nil, err
	}
	return &schedulerv1.SetContactPolicyResponse{ContactPolicy: rulesToProto(r)}, nil
}

// GetContactPolicy returns the tenant's contact policy.
func (s *Server) GetContactPolicy(ctx context.Context, req *schedulerv1.GetContactPolicyRequest) (*schedulerv1.GetContactPolicyResponse, error) {
	r, err := s.Store.ContactRules(ctx, tenant(req.GetTenantId()))
	if err != nil {
		return nil, err
	}
	return &schedulerv1.GetContactPolicyResponse{ContactPolicy: rulesToProto(r)}, nil
}
