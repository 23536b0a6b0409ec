package grpcapi_test

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	schedulerv1 "github.com/huifang/huifang/proto/huifang/scheduler/v1"

	"github.com/huifang/huifang/pkg/auth"
	"github.com/huifang/huifang/pkg/grpcserver"
	"github.com/huifang/huifang/pkg/issuer"
	"github.com/huifang/huifang/pkg/servicetest"
)

// Issue 16 (seeds 000 and 004: a follow-up plan is approved by the
// leadership, the center's director, before it runs), through the guard
// with real tokens: the caller of each step comes from its token; an
// admin's direct write is refused once the tenant asks for approval; the
// admin proposes, the director approves (the admin may not), an agent reads
// nothing, another tenant finds nothing.
func TestPolicyApprovalWithTokens(t *testing.T) {
	_, srv := setup(t)
	guard, is := servicetest.Guard(t, "scheduler")
	as := func(subject, tenant string, roles ...auth.Role) context.Context {
		rs := make([]string, len(roles))
		for i, r := range roles {
			rs[i] = string(r)
		}
		tok, err := is.Mint(issuer.Token{Subject: subject, Claims: auth.Claims{Tenant: tenant, Roles: rs, AgentID: subject}})
		require.NoError(t, err)
		return metadata.NewIncomingContext(context.Background(), metadata.Pairs("authorization", "Bearer "+tok))
	}
	admin, director := as("admin-1", "acme", auth.TenantAdmin), as("d-1", "acme", auth.Director)
	call := func(ctx context.Context, method string, req proto.Message, h func(context.Context, any) (any, error)) (any, error) {
		resp, err := guard.Unary(ctx, req, &grpc.UnaryServerInfo{FullMethod: method}, h)
		return resp, grpcserver.Status(ctx, servicetest.Logger(), err)
	}
	setApproval := func(ctx context.Context, on bool) error {
		_, err := call(ctx, schedulerv1.SchedulerService_SetPolicyApproval_FullMethodName, &schedulerv1.SetPolicyApprovalRequest{Required: on},
			func(ctx context.Context, req any) (any, error) {
				return srv.SetPolicyApproval(ctx, req.(*schedulerv1.SetPolicyApprovalRequest))
			})
		return err
	}
	propose := func(ctx context.Context, js string) (*schedulerv1.PolicyChange, error) {
		req := &schedulerv1.ProposePolicyChangeRequest{}
		require.NoError(t, protojson.Unmarshal([]byte(js), req))
		resp, err := call(ctx, schedulerv1.SchedulerService_ProposePolicyChange_FullMethodName, req,
			func(ctx context.Context, req any) (any, error) {
				return srv.ProposePolicyChange(ctx, req.(*schedulerv1.ProposePolicyChangeRequest))
			})
		if err != nil {
			return nil, err
		}
		return resp.(*schedulerv1.ProposePolicyChangeResponse).GetChange(), nil
	}
	approve := func(ctx context.Context, id string) (*schedulerv1.PolicyChange, error) {
		resp, err := call(ctx, schedulerv1.SchedulerService_ApprovePolicyChange_FullMethodName, &schedulerv1.ApprovePolicyChangeRequest{ChangeId: id},
			func(ctx context.Context, req any) (any, error) {
				return srv.ApprovePolicyChange(ctx, req.(*schedulerv1.ApprovePolicyChangeRequest))
			})
		if err != nil {
			return nil, err
		}
		return resp.(*schedulerv1.ApprovePolicyChangeResponse).GetChange(), nil
	}
	list := func(ctx context.Context, req *schedulerv1.ListPolicyChangesRequest) (*schedulerv1.ListPolicyChangesResponse, error) {
		resp, err := call(ctx, schedulerv1.SchedulerService_ListPolicyChanges_FullMethodName, req,
			func(ctx context.Context, req any) (any, error) {
				return srv.ListPolicyChanges(ctx, req.(*schedulerv1.ListPolicyChangesRequest))
			})
		if err != nil {
			return nil, err
		}
		return resp.(*schedulerv1.ListPolicyChangesResponse), nil
	}
	violations := func(err error) []string {
		st := status.Convert(err)
		require.Equal(t, codes.InvalidArgument, st.Code(), "%v", err)
		var fields []string
		for _, d := range st.Details() {
			for _, v := range d.(*errdetails.BadRequest).GetFieldViolations() {
				fields = append(fields, v.GetField())
			}
		}
		return fields
	}

	require.NoError(t, setApproval(admin, true))
	require.Equal(t, codes.PermissionDenied, status.Code(setApproval(admin, false)), "the admin does not lift its own check")
	require.Equal(t, codes.PermissionDenied, status.Code(setApproval(as("a-1", "acme", auth.Agent), true)))

	// The admin's direct write: FailedPrecondition saying to propose.
	create := &schedulerv1.CreatePolicyRequest{}
	require.NoError(t, protojson.Unmarshal([]byte(`{"policy":{"name":"repairs","trigger":{"service_types":["repair"]},"steps":[{"offset":"86400s","channel":"CHANNEL_PHONE"}]}}`), create))
	_, err := call(admin, schedulerv1.SchedulerService_CreatePolicy_FullMethodName, create,
		func(ctx context.Context, req any) (any, error) {
			return srv.CreatePolicy(ctx, req.(*schedulerv1.CreatePolicyRequest))
		})
	require.Equal(t, codes.FailedPrecondition, status.Code(err))
	require.Contains(t, status.Convert(err).Message(), "propose this change with ProposePolicyChange")

	// Bad input names the fields under the change's own name.
	_, err = propose(admin, `{"create":{"policy":{"name":"x","trigger":{}}}}`)
	require.ElementsMatch(t, []string{"reason", "create.policy.trigger.service_types", "create.policy.steps"}, violations(err))
	_, err = propose(admin, `{"update":{"policy":{"name":"x"}},"reason":"r"}`)
	require.Contains(t, violations(err), "update.policy_id")
	_, err = propose(admin, `{"reason":"r"}`)
	require.Equal(t, []string{"change"}, violations(err))

	p, err := propose(admin, `{"create":{"policy":{"name":"repairs","trigger":{"service_types":["repair"]},"steps":[{"offset":"86400s","channel":"CHANNEL_PHONE"}]}},
	  "reason":"seed 000: repairs within a month","synthetic":{"services_per_day":4,"days":2,"service_types":["repair"]}}`)
	require.NoError(t, err)
	require.Equal(t, "acme", p.GetTenantId())
	require.Equal(t, "admin-1", p.GetProposedBy(), "the proposer is the token's subject")
	require.Equal(t, "proposed", p.GetState())
	require.Equal(t, int32(8), p.GetDryRuns()[0].GetResult().GetVisits())
	require.Equal(t, "repairs", p.GetCreate().GetPolicy().GetName())

	// Who may decide: not the admin (its role), not the proposer (four eyes), the director.
	_, err = approve(admin, p.GetId())
	require.Equal(t, codes.PermissionDenied, status.Code(err))
	both := as("admin-1", "acme", auth.TenantAdmin, auth.Director)
	_, err = approve(both, p.GetId())
	require.Equal(t, codes.PermissionDenied, status.Code(err))
	require.Contains(t, status.Convert(err).Message(), "four eyes")
	_, err = approve(as("d-9", "globex", auth.Director), p.GetId())
	require.Equal(t, codes.NotFound, status.Code(err), "another tenant's director finds nothing")
	_, err = approve(director, "nope")
	require.Equal(t, codes.NotFound, status.Code(err))
	done, err := approve(director, p.GetId())
	require.NoError(t, err)
	require.Equal(t, "approved", done.GetState())
	require.Equal(t, "d-1", done.GetDecidedBy())
	require.Equal(t, []string{"director"}, done.GetDecidedByRoles())
	require.Len(t, done.GetApplied(), 1)
	again, err := approve(director, p.GetId())
	require.NoError(t, err)
	require.True(t, proto.Equal(done, again), "a retry answers the approval as it is")

	_, err = call(director, schedulerv1.SchedulerService_RejectPolicyChange_FullMethodName, &schedulerv1.RejectPolicyChangeRequest{ChangeId: p.GetId()},
		func(ctx context.Context, req any) (any, error) {
			return srv.RejectPolicyChange(ctx, req.(*schedulerv1.RejectPolicyChangeRequest))
		})
	require.Equal(t, []string{"reason"}, violations(err))
	_, err = call(director, schedulerv1.SchedulerService_RejectPolicyChange_FullMethodName, &schedulerv1.RejectPolicyChangeRequest{ChangeId: p.GetId(), Reason: "late"},
		func(ctx context.Context, req any) (any, error) {
			return srv.RejectPolicyChange(ctx, req.(*schedulerv1.RejectPolicyChangeRequest))
		})
	require.Equal(t, codes.FailedPrecondition, status.Code(err), "an approved change is not rejected")

	// The history, for the director and the auditor; not for an agent.
	h, err := list(as("au-1", "acme", auth.Auditor), &schedulerv1.ListPolicyChangesRequest{State: "approved"})
	require.NoError(t, err)
	require.Len(t, h.GetChanges(), 1)
	require.Equal(t, "admin-1", h.GetChanges()[0].GetProposedBy())
	require.Equal(t, "d-1", h.GetChanges()[0].GetDecidedBy())
	require.NotNil(t, h.GetChanges()[0].GetDecidedAt())
	_, err = list(as("a-1", "acme", auth.Agent), &schedulerv1.ListPolicyChangesRequest{})
	require.Equal(t, codes.PermissionDenied, status.Code(err))
	_, err = list(director, &schedulerv1.ListPolicyChangesRequest{State: "pending"})
	require.Equal(t, []string{"state"}, violations(err))
	h, err = list(as("d-9", "globex", auth.Director), &schedulerv1.ListPolicyChangesRequest{})
	require.NoError(t, err)
	require.Empty(t, h.GetChanges())

	// The director lifts the setting.
	require.NoError(t, setApproval(director, false))
}
