package grpcapi_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"

	schedulerv1 "github.com/huifang/huifang/proto/huifang/scheduler/v1"

	"github.com/huifang/huifang/pkg/grpcserver"
	"github.com/huifang/huifang/pkg/servicetest"
	"github.com/huifang/huifang/services/scheduler/internal/app"
	"github.com/huifang/huifang/services/scheduler/internal/grpcapi"
	"github.com/huifang/huifang/services/scheduler/migrations"
)

func setup(t *testing.T) (context.Context, *grpcapi.Server) {
	t.Helper()
	ctx := context.Background()
	a := &app.App{DB: servicetest.Pool(t, "scheduler", migrations.FS), Now: func() time.Time { return now }}
	require.NoError(t, a.EnsureBuiltins(ctx))
	return ctx, &grpcapi.Server{App: a}
}

// The CreatePolicy JSON of the contract is accepted as it stands.
func TestCreatePolicyContractJSON(t *testing.T) {
	ctx, srv := setup(t)
	req := &schedulerv1.CreatePolicyRequest{}
	require.NoError(t, protojson.Unmarshal([]byte(`{"policy":{"name":"instant","trigger":{"service_types":["repair"]},"steps":[{"offset":"0s","channel":"CHANNEL_PHONE"}]}}`), req))
	resp, err := srv.CreatePolicy(ctx, req)
	require.NoError(t, err)
	p := resp.Policy
	require.NotEmpty(t, p.Id)
	require.Equal(t, "default", p.TenantId)
	require.Equal(t, int32(1), p.Version)
	require.True(t, p.Active)
	require.Equal(t, 1.0, p.Steps[0].GetSampleRate(), "an unset sample rate means every service")

	_, err = srv.CreatePolicy(ctx, req)
	require.Equal(t, codes.AlreadyExists, status.Code(err))

	list, err := srv.ListPolicies(ctx, &schedulerv1.ListPoliciesRequest{PageSize: 2})
	require.NoError(t, err)
	require.Len(t, list.Policies, 2)
	require.NotEmpty(t, list.NextPageToken)
	next, err := srv.ListPolicies(ctx, &schedulerv1.ListPoliciesRequest{PageSize: 2, PageToken: list.NextPageToken})
	require.NoError(t, err)
	require.Len(t, next.Policies, 1, "the tenant's policy and the two built-ins")
	require.NotContains(t, []string{list.Policies[0].Id, list.Policies[1].Id}, next.Policies[0].Id)
	require.Empty(t, next.NextPageToken)
}

// A policy that cannot fire is refused with field violations and nothing is stored.
func TestCreatePolicyRefusesAPolicyThatCannotFire(t *testing.T) {
	ctx, srv := setup(t)
	req := &schedulerv1.CreatePolicyRequest{}
	require.NoError(t, protojson.Unmarshal([]byte(`{"policy":{"name":"broken","trigger":{},"steps":[{"offset":"-60s","channel":"CHANNEL_SMS","sample_rate":1.5}]}}`), req))
	_, err := srv.CreatePolicy(ctx, req)
	err = grpcserver.Status(ctx, servicetest.Logger(), err)
	st := status.Convert(err)
	require.Equal(t, codes.InvalidArgument, st.Code())
	var fields []string
	for _, d := range st.Details() {
		if br, ok := d.(*errdetails.BadRequest); ok {
			for _, v := range br.FieldViolations {
				fields = append(fields, v.Field)
			}
		}
	}
	require.ElementsMatch(t, []string{"policy.trigger.service_types", "policy.steps[0].offset", "policy.steps[0].sample_rate"}, fields)
	list, err := srv.ListPolicies(ctx, &schedulerv1.ListPoliciesRequest{})
	require.NoError(t, err)
	require.Len(t, list.Policies, 2, "only the built-ins")
}

func TestListPlannedVisitsRefusesAnUnknownStatus(t *testing.T) {
	ctx, srv := setup(t)
	_, err := srv.ListPlannedVisits(ctx, &schedulerv1.ListPlannedVisitsRequest{Status: "done"})
	require.ErrorContains(t, err, "status")
}

// Tenants are read as pkg/tenant says: blank is the default tenant, a
// malformed id is refused naming the field. "*", the built-ins' tenant,
// passes where it always did: it lists the built-ins, but switches none.
func TestTenants(t *testing.T) {
	ctx, srv := setup(t)
	_, err := srv.ListPolicies(ctx, &schedulerv1.ListPoliciesRequest{TenantId: "Not A Tenant"})
	require.Equal(t, codes.InvalidArgument, code(ctx, err))
	require.ErrorContains(t, err, "tenant_id")
	_, err = srv.CreatePolicy(ctx, &schedulerv1.CreatePolicyRequest{Policy: &schedulerv1.Policy{TenantId: "a b", Name: "x"}})
	require.ErrorContains(t, err, "policy.tenant_id")
	list, err := srv.ListPolicies(ctx, &schedulerv1.ListPoliciesRequest{TenantId: " acme "})
	require.NoError(t, err)
	require.Len(t, list.Policies, 2, "a tenant sees the built-ins")

	all, err := srv.ListPolicies(ctx, &schedulerv1.ListPoliciesRequest{TenantId: "*"})
	require.NoError(t, err)
	require.Len(t, all.Policies, 2)
	_, err = srv.GetPolicy(ctx, &schedulerv1.GetPolicyRequest{TenantId: "*", PolicyId: "builtin-appliance-purchase"})
	require.NoError(t, err)
	_, err = srv.DeactivatePolicy(ctx, &schedulerv1.DeactivatePolicyRequest{TenantId: "*", PolicyId: "builtin-appliance-purchase"})
	require.Equal(t, codes.FailedPrecondition, code(ctx, err), "the built-ins' tenant switches nothing")
	_, err = srv.ActivatePolicy(ctx, &schedulerv1.ActivatePolicyRequest{TenantId: "*", PolicyId: "nope"})
	require.Equal(t, codes.FailedPrecondition, code(ctx, err), "whichever policy it names")
}

// Seed 002 (real estate, 第二条(二)1: 提前……告知): a milestone step's before
// is taken over gRPC and given back.
func TestStepBeforeOverGRPC(t *testing.T) {
	ctx, srv := setup(t)
	req := &schedulerv1.CreatePolicyRequest{}
	require.NoError(t, protojson.Unmarshal([]byte(`{"policy":{"name":"vip-notice","trigger":{"service_types":["referral"],"tiers":["VIP"]},"steps":[{"offset":"0s","window":"172800s","channel":"CHANNEL_PHONE","on_milestones":["launch"],"before":"259200s"}]}}`), req))
	resp, err := srv.CreatePolicy(ctx, req)
	require.NoError(t, err)
	got, err := srv.GetPolicy(ctx, &schedulerv1.GetPolicyRequest{PolicyId: resp.GetPolicy().GetId()})
	require.NoError(t, err)
	require.Equal(t, 72*time.Hour, got.GetPolicy().GetSteps()[0].GetBefore().AsDuration())

	require.NoError(t, protojson.Unmarshal([]byte(`{"policy":{"name":"not-on-a-calendar","trigger":{"service_types":["repair"]},"steps":[{"offset":"0s","channel":"CHANNEL_PHONE","before":"259200s"}]}}`), req))
	_, err = srv.CreatePolicy(ctx, req)
	err = grpcserver.Status(ctx, servicetest.Logger(), err)
	require.Equal(t, codes.InvalidArgument, status.Code(err), "%v", err)
	require.Contains(t, err.Error(), "policy.steps[0].before")
}
