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
	"github.com/huifang/huifang/services/scheduler/internal/grpcapi"
	"github.com/huifang/huifang/services/scheduler/internal/store"
	"github.com/huifang/huifang/services/scheduler/migrations"
)

func setup(t *testing.T) (context.Context, *grpcapi.Server) {
	t.Helper()
	ctx := context.Background()
	st := &store.Store{Pool: servicetest.Pool(t, "scheduler", migrations.FS)}
	require.NoError(t, st.EnsureBuiltins(ctx))
	now := time.Date(2026, 11, 28, 10, 0, 0, 0, time.UTC)
	return ctx, &grpcapi.Server{Store: st, Now: func() time.Time { return now }}
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
