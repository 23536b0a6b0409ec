package grpcapi

import (
	"context"
	"slices"
	"strings"
	"time"

	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	schedulerv1 "github.com/huifang/huifang/proto/huifang/scheduler/v1"

	"github.com/huifang/huifang/pkg/invalid"
	"github.com/huifang/huifang/pkg/page"
	"github.com/huifang/huifang/services/scheduler/internal/app"
	"github.com/huifang/huifang/services/scheduler/internal/change"
	"github.com/huifang/huifang/services/scheduler/internal/store"
)

// SetPolicyApproval turns the tenant's "policy changes need approval" on or off.
func (s *Server) SetPolicyApproval(ctx context.Context, req *schedulerv1.SetPolicyApprovalRequest) (*schedulerv1.SetPolicyApprovalResponse, error) {
	var bad invalid.List
	t := tenantOf(&bad, "tenant_id", req.GetTenantId())
	if err := bad.Err(); err != nil {
		return nil, err
	}
	a, err := s.App.SetPolicyApproval(ctx, t, req.GetRequired())
	if err != nil {
		return nil, statusOf(err)
	}
	return &schedulerv1.SetPolicyApprovalResponse{Approval: approvalToProto(a)}, nil
}

// GetPolicyApproval returns the tenant's setting.
func (s *Server) GetPolicyApproval(ctx context.Context, req *schedulerv1.GetPolicyApprovalRequest) (*schedulerv1.GetPolicyApprovalResponse, error) {
	var bad invalid.List
	t := tenantOf(&bad, "tenant_id", req.GetTenantId())
	if err := bad.Err(); err != nil {
		return nil, err
	}
	a, err := s.App.PolicyApproval(ctx, t)
	if err != nil {
		return nil, statusOf(err)
	}
	return &schedulerv1.GetPolicyApprovalResponse{Approval: approvalToProto(a)}, nil
}

func approvalToProto(a store.Approval) *schedulerv1.PolicyApproval {
	out := &schedulerv1.PolicyApproval{TenantId: a.Tenant, Required: a.Required, UpdatedBy: a.UpdatedBy}
	if !a.UpdatedAt.IsZero() {
		out.UpdatedAt = timestamppb.New(a.UpdatedAt)
	}
	return out
}

// ProposePolicyChange stores a change as a proposal by the caller, with its dry run.
func (s *Server) ProposePolicyChange(ctx context.Context, req *schedulerv1.ProposePolicyChangeRequest) (*schedulerv1.ProposePolicyChangeResponse, error) {
	var bad invalid.List
	in := app.Proposal{Tenant: tenantOf(&bad, "tenant_id", req.GetTenantId()), Reason: req.GetReason()}
	// field is the oneof's name: the app's violations of the change are
	// named under it (create.policy.name).
	var field, inner string
	switch c := req.GetChange().(type) {
	case *schedulerv1.ProposePolicyChangeRequest_Create:
		field, inner = "create", c.Create.GetPolicy().GetTenantId()
		in.Change = change.Change{Kind: change.Create}
		if c.Create.GetPolicy() != nil {
			p := fromProto(c.Create.GetPolicy())
			in.Change.Policy = &p
		}
	case *schedulerv1.ProposePolicyChangeRequest_Update:
		field, inner = "update", c.Update.GetTenantId()
		in.Change = change.Change{Kind: change.Update, PolicyID: c.Update.GetPolicyId()}
		if c.Update.GetPolicy() != nil {
			p := fromProto(c.Update.GetPolicy())
			in.Change.Policy = &p
		}
	case *schedulerv1.ProposePolicyChangeRequest_Activate:
		field, inner = "activate", c.Activate.GetTenantId()
		in.Change = change.Change{Kind: change.Activate, PolicyID: c.Activate.GetPolicyId()}
	case *schedulerv1.ProposePolicyChangeRequest_Deactivate:
		field, inner = "deactivate", c.Deactivate.GetTenantId()
		in.Change = change.Change{Kind: change.Deactivate, PolicyID: c.Deactivate.GetPolicyId()}
	case *schedulerv1.ProposePolicyChangeRequest_LoadPack:
		field, inner = "load_pack", c.LoadPack.GetTenantId()
		in.Change = change.Change{Kind: change.LoadPack, Pack: c.LoadPack.GetPack(), Inactive: c.LoadPack.GetInactive()}
	}
	if inner != "" && strings.TrimSpace(inner) != in.Tenant {
		f := field + ".tenant_id"
		if field == "create" {
			f = "create.policy.tenant_id"
		}
		bad.Add(f, "must be empty or the proposal's tenant_id")
	}
	if err := bad.Err(); err != nil {
		return nil, err
	}
	if req.GetFrom() != nil {
		in.Load.From = req.GetFrom().AsTime()
	}
	if req.GetTo() != nil {
		in.Load.To = req.GetTo().AsTime()
	}
	if syn := req.GetSynthetic(); syn != nil {
		in.Load.Synthetic = &change.Synthetic{ServicesPerDay: int(syn.GetServicesPerDay()), Days: int(syn.GetDays()),
			ServiceTypes: syn.GetServiceTypes(), Tiers: syn.GetTiers(), Severities: syn.GetSeverities(), OrgUnits: syn.GetOrgUnits()}
	}
	if req.GetHorizon() != nil {
		h := req.GetHorizon().AsDuration()
		in.Load.Horizon = &h
	}
	p, err := s.App.ProposePolicyChange(ctx, in)
	if err != nil {
		return nil, statusOf(under(err, field))
	}
	return &schedulerv1.ProposePolicyChangeResponse{Change: changeToProto(p)}, nil
}

// under names the violations of a proposal's change under the oneof field
// that carried it (policy.name → create.policy.name); the request's own
// fields (tenant_id, reason, from, to, synthetic, horizon) keep their names.
func under(err error, field string) error {
	bad, ok := invalid.As(err)
	if !ok || field == "" {
		return err
	}
	var l invalid.List
	for _, v := range bad.Violations {
		f := v.Field
		if strings.HasPrefix(f, "policy") || f == "pack" {
			f = field + "." + f
		}
		l.Add(f, v.Rule)
	}
	return l.Err()
}

// GetPolicyChange returns one proposal and what became of it.
func (s *Server) GetPolicyChange(ctx context.Context, req *schedulerv1.GetPolicyChangeRequest) (*schedulerv1.GetPolicyChangeResponse, error) {
	var bad invalid.List
	t := tenantOf(&bad, "tenant_id", req.GetTenantId())
	if err := bad.Err(); err != nil {
		return nil, err
	}
	p, err := s.App.GetPolicyChange(ctx, t, req.GetChangeId())
	if err != nil {
		return nil, statusOf(err)
	}
	return &schedulerv1.GetPolicyChangeResponse{Change: changeToProto(p)}, nil
}

type changeCursor struct {
	At time.Time `json:"t"`
	ID string    `json:"i"`
}

// ListPolicyChanges lists the tenant's proposals, newest first.
func (s *Server) ListPolicyChanges(ctx context.Context, req *schedulerv1.ListPolicyChangesRequest) (*schedulerv1.ListPolicyChangesResponse, error) {
	size, err := page.Size(req.GetPageSize())
	if err != nil {
		return nil, err
	}
	var bad invalid.List
	t := tenantOf(&bad, "tenant_id", req.GetTenantId())
	if req.GetState() != "" && !slices.Contains(change.States, req.GetState()) {
		bad.Add("state", "must be proposed, approved or rejected (or empty for any)")
	}
	if err := bad.Err(); err != nil {
		return nil, err
	}
	var cur changeCursor
	if err := page.Cursor(req.GetPageToken(), &cur); err != nil {
		return nil, err
	}
	ps, err := s.App.ListPolicyChanges(ctx, store.ChangeQuery{Tenant: t, State: req.GetState(), AfterAt: cur.At, AfterID: cur.ID, Limit: size + 1})
	if err != nil {
		return nil, statusOf(err)
	}
	resp := &schedulerv1.ListPolicyChangesResponse{}
	ps, resp.NextPageToken = page.Trim(ps, size, func(last change.Proposal) any { return changeCursor{At: last.ProposedAt, ID: last.ID} })
	for _, p := range ps {
		resp.Changes = append(resp.Changes, changeToProto(p))
	}
	return resp, nil
}

// ApprovePolicyChange applies a proposal by a director other than its proposer.
func (s *Server) ApprovePolicyChange(ctx context.Context, req *schedulerv1.ApprovePolicyChangeRequest) (*schedulerv1.ApprovePolicyChangeResponse, error) {
	p, err := s.decide(ctx, req.GetTenantId(), req.GetChangeId(), true, req.GetNote())
	if err != nil {
		return nil, err
	}
	return &schedulerv1.ApprovePolicyChangeResponse{Change: p}, nil
}

// RejectPolicyChange closes a proposal without applying it.
func (s *Server) RejectPolicyChange(ctx context.Context, req *schedulerv1.RejectPolicyChangeRequest) (*schedulerv1.RejectPolicyChangeResponse, error) {
	p, err := s.decide(ctx, req.GetTenantId(), req.GetChangeId(), false, req.GetReason())
	if err != nil {
		return nil, err
	}
	return &schedulerv1.RejectPolicyChangeResponse{Change: p}, nil
}

func (s *Server) decide(ctx context.Context, tenantID, id string, approve bool, note string) (*schedulerv1.PolicyChange, error) {
	var bad invalid.List
	t := tenantOf(&bad, "tenant_id", tenantID)
	if err := bad.Err(); err != nil {
		return nil, err
	}
	p, err := s.App.DecidePolicyChange(ctx, t, id, approve, note)
	if err != nil {
		return nil, statusOf(err)
	}
	return changeToProto(p), nil
}

func versionsToProto(vs []change.Version) []*schedulerv1.PolicyVersion {
	var out []*schedulerv1.PolicyVersion
	for _, v := range vs {
		out = append(out, &schedulerv1.PolicyVersion{PolicyId: v.PolicyID, Name: v.Name, Version: int32(v.Version), Active: v.Active})
	}
	return out
}

func changeToProto(p change.Proposal) *schedulerv1.PolicyChange {
	out := &schedulerv1.PolicyChange{
		Id: p.ID, TenantId: p.Tenant, Reason: p.Reason, State: p.State,
		ProposedBy: p.ProposedBy.Subject, ProposedByRoles: p.ProposedBy.Roles, ProposedAt: timestamppb.New(p.ProposedAt),
		DecidedBy: p.DecidedBy.Subject, DecidedByRoles: p.DecidedBy.Roles, DecisionNote: p.Note,
		BasedOn: versionsToProto(p.BasedOn), Applied: versionsToProto(p.Applied),
	}
	if !p.DecidedAt.IsZero() {
		out.DecidedAt = timestamppb.New(p.DecidedAt)
	}
	c := p.Change
	var pol *schedulerv1.Policy
	if c.Policy != nil {
		pol = toProto(*c.Policy)
	}
	switch c.Kind {
	case change.Create:
		if pol != nil {
			pol.TenantId = p.Tenant
		}
		out.Change = &schedulerv1.PolicyChange_Create{Create: &schedulerv1.CreatePolicyRequest{Policy: pol}}
	case change.Update:
		out.Change = &schedulerv1.PolicyChange_Update{Update: &schedulerv1.UpdatePolicyRequest{TenantId: p.Tenant, PolicyId: c.PolicyID, Policy: pol}}
	case change.Activate:
		out.Change = &schedulerv1.PolicyChange_Activate{Activate: &schedulerv1.ActivatePolicyRequest{TenantId: p.Tenant, PolicyId: c.PolicyID}}
	case change.Deactivate:
		out.Change = &schedulerv1.PolicyChange_Deactivate{Deactivate: &schedulerv1.DeactivatePolicyRequest{TenantId: p.Tenant, PolicyId: c.PolicyID}}
	case change.LoadPack:
		out.Change = &schedulerv1.PolicyChange_LoadPack{LoadPack: &schedulerv1.LoadPolicyPackRequest{TenantId: p.Tenant, Pack: c.Pack, Inactive: c.Inactive}}
	}
	l := p.Load
	if !l.From.IsZero() {
		out.DryRunFrom = timestamppb.New(l.From)
	}
	if !l.To.IsZero() {
		out.DryRunTo = timestamppb.New(l.To)
	}
	if syn := l.Synthetic; syn != nil {
		out.DryRunSynthetic = &schedulerv1.SyntheticLoad{ServicesPerDay: int32(syn.ServicesPerDay), Days: int32(syn.Days),
			ServiceTypes: syn.ServiceTypes, Tiers: syn.Tiers, Severities: syn.Severities, OrgUnits: syn.OrgUnits}
	}
	if l.Horizon != nil {
		out.DryRunHorizon = durationpb.New(*l.Horizon)
	}
	for _, r := range p.DryRuns {
		out.DryRuns = append(out.DryRuns, &schedulerv1.PolicyDryRun{PolicyId: r.PolicyID, PolicyName: r.Name, Result: countsToProto(r.Counts)})
	}
	return out
}

func countsToProto(c change.Counts) *schedulerv1.SimulatePolicyResponse {
	resp := &schedulerv1.SimulatePolicyResponse{
		Services: int32(c.Services), Visits: int32(c.Visits), Suppressed: int32(c.Suppressed),
		PerChannel: map[string]int32{}, PerGroup: map[string]int32{}, PeakDayVisits: int32(c.PeakDayVisits),
	}
	for k, n := range c.PerChannel {
		resp.PerChannel[k] = int32(n)
	}
	for k, n := range c.PerGroup {
		resp.PerGroup[k] = int32(n)
	}
	for _, d := range c.PerDay {
		resp.PerDay = append(resp.PerDay, &schedulerv1.DayCount{Date: d.Date, Visits: int32(d.Visits)})
	}
	return resp
}
