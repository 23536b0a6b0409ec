package grpcapi_test

import (
	"context"
	"net"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/types/known/timestamppb"

	analyticsv1 "github.com/huifang/huifang/proto/huifang/analytics/v1"

	"github.com/huifang/huifang/pkg/grpcserver"
	"github.com/huifang/huifang/pkg/servicetest"
	"github.com/huifang/huifang/services/analytics/internal/grpcapi"
	"github.com/huifang/huifang/services/analytics/internal/rollup"
	"github.com/huifang/huifang/services/analytics/internal/satisfaction"
	"github.com/huifang/huifang/services/analytics/internal/store"
	"github.com/huifang/huifang/services/analytics/migrations"
)

func march(d int) time.Time { return time.Date(2025, 3, d, 0, 0, 0, 0, time.UTC) }

func inc(tenant string, day time.Time, org, aspect string, s, f, u int64) rollup.Increment {
	return rollup.Increment{
		Bucket: rollup.Bucket{Tenant: tenant, Day: day, OrgUnit: org, Aspect: aspect},
		Counts: satisfaction.Counts{Satisfied: s, FairlySatisfied: f, Unsatisfied: u},
	}
}

// setup stores the buckets below (as app.Start sets up storage) and serves
// AnalyticsService through the shared gRPC server, interceptors included.
func setup(t *testing.T) analyticsv1.AnalyticsServiceClient {
	t.Helper()
	ctx := context.Background()
	pool := servicetest.Pool(t, "analytics", migrations.FS)
	require.NoError(t, pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		return store.Add(ctx, tx, []rollup.Increment{
			inc("default", march(1), "north", "overall", 12, 5, 3),
			inc("default", march(1), "north", "staff_attitude", 6, 2, 2),
			inc("default", march(2), "south", "overall", 1, 0, 4),
			inc("default", march(3), "north", "overall", 0, 0, 1),
			inc("acme", march(1), "north", "overall", 100, 0, 0),
		})
	}))
	// A later event adds to an existing bucket: 3 March, north, overall ends at 2 unsatisfied.
	require.NoError(t, pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		return store.Add(ctx, tx, []rollup.Increment{inc("default", march(3), "north", "overall", 0, 0, 1)})
	}))

	srv := grpcserver.New(servicetest.Logger(), "", "")
	analyticsv1.RegisterAnalyticsServiceServer(srv.GRPC, &grpcapi.Server{Store: &store.Store{Pool: pool}})
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	go func() { _ = srv.GRPC.Serve(lis) }()
	t.Cleanup(srv.GRPC.Stop)
	conn, err := grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	require.NoError(t, err)
	t.Cleanup(func() { _ = conn.Close() })
	return analyticsv1.NewAnalyticsServiceClient(conn)
}

func TestGetSatisfaction(t *testing.T) {
	client := setup(t)
	ts := timestamppb.New
	for _, tc := range []struct {
		name string
		req  *analyticsv1.GetSatisfactionRequest
		want *analyticsv1.GetSatisfactionResponse
	}{
		{
			name: "defaults: tenant default, aspect overall, all time, all org units",
			req:  &analyticsv1.GetSatisfactionRequest{},
			want: &analyticsv1.GetSatisfactionResponse{Aspect: "overall", Returned: 27, Satisfied: 13, FairlySatisfied: 5, Unsatisfied: 9, Rate: 18.0 / 27, Target: 0.85},
		},
		{
			name: "org unit filter",
			req:  &analyticsv1.GetSatisfactionRequest{OrgUnit: "south"},
			want: &analyticsv1.GetSatisfactionResponse{Aspect: "overall", Returned: 5, Satisfied: 1, Unsatisfied: 4, Rate: 0.2, Target: 0.85},
		},
		{
			name: "period is half-open: [1 March, 2 March) is 1 March only; seed 003 example meets 85 %",
			req:  &analyticsv1.GetSatisfactionRequest{From: ts(march(1)), To: ts(march(2))},
			want: &analyticsv1.GetSatisfactionResponse{Aspect: "overall", Returned: 20, Satisfied: 12, FairlySatisfied: 5, Unsatisfied: 3, Rate: 0.85, Target: 0.85, MeetsTarget: true},
		},
		{
			name: "open end: from 2 March",
			req:  &analyticsv1.GetSatisfactionRequest{From: ts(march(2))},
			want: &analyticsv1.GetSatisfactionResponse{Aspect: "overall", Returned: 7, Satisfied: 1, Unsatisfied: 6, Rate: 1.0 / 7, Target: 0.85},
		},
		{
			name: "open start: to 3 March, north only",
			req:  &analyticsv1.GetSatisfactionRequest{To: ts(march(3)), OrgUnit: "north"},
			want: &analyticsv1.GetSatisfactionResponse{Aspect: "overall", Returned: 20, Satisfied: 12, FairlySatisfied: 5, Unsatisfied: 3, Rate: 0.85, Target: 0.85, MeetsTarget: true},
		},
		{
			name: "empty period: from = to",
			req:  &analyticsv1.GetSatisfactionRequest{From: ts(march(1)), To: ts(march(1))},
			want: &analyticsv1.GetSatisfactionResponse{Aspect: "overall", Target: 0.85},
		},
		{
			name: "specific aspect at seed 003's 80 % target",
			req:  &analyticsv1.GetSatisfactionRequest{Aspect: "staff_attitude"},
			want: &analyticsv1.GetSatisfactionResponse{Aspect: "staff_attitude", Returned: 10, Satisfied: 6, FairlySatisfied: 2, Unsatisfied: 2, Rate: 0.8, Target: 0.8, MeetsTarget: true},
		},
		{
			name: "other tenant",
			req:  &analyticsv1.GetSatisfactionRequest{TenantId: "acme"},
			want: &analyticsv1.GetSatisfactionResponse{Aspect: "overall", Returned: 100, Satisfied: 100, Rate: 1, Target: 0.85, MeetsTarget: true},
		},
		{
			name: "aspect nobody rated: nothing returned, rate 0, target not met",
			req:  &analyticsv1.GetSatisfactionRequest{Aspect: "parking"},
			want: &analyticsv1.GetSatisfactionResponse{Aspect: "parking", Target: 0.8},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := client.GetSatisfaction(context.Background(), tc.req)
			require.NoError(t, err)
			require.InDelta(t, tc.want.Rate, got.Rate, 1e-12)
			got.Rate = tc.want.Rate
			require.Equal(t, protojson.Format(tc.want), protojson.Format(got))
		})
	}
}

// The request as a caller types it: grpcurl -d '{"aspect":"overall"}'.
func TestGetSatisfactionOverallJSON(t *testing.T) {
	client := setup(t)
	req := &analyticsv1.GetSatisfactionRequest{}
	require.NoError(t, protojson.Unmarshal([]byte(`{"aspect":"overall"}`), req))
	got, err := client.GetSatisfaction(context.Background(), req)
	require.NoError(t, err)
	require.Equal(t, "overall", got.Aspect)
	require.Equal(t, int64(27), got.Returned)
	require.InDelta(t, 0.85, got.Target, 1e-12)
	require.False(t, got.MeetsTarget)
}

func TestGetSatisfactionInvalid(t *testing.T) {
	client := setup(t)
	ts := timestamppb.New
	for _, tc := range []struct {
		name  string
		req   *analyticsv1.GetSatisfactionRequest
		field string
	}{
		{"aspect in capitals", &analyticsv1.GetSatisfactionRequest{Aspect: "Overall"}, "aspect"},
		{"aspect with a dash", &analyticsv1.GetSatisfactionRequest{Aspect: "staff-attitude"}, "aspect"},
		{"tenant with a space", &analyticsv1.GetSatisfactionRequest{TenantId: "a b"}, "tenant_id"},
		{"from not at midnight UTC", &analyticsv1.GetSatisfactionRequest{From: ts(march(1).Add(time.Hour))}, "from"},
		{"to at midnight in Shanghai, not UTC", &analyticsv1.GetSatisfactionRequest{To: ts(time.Date(2025, 3, 2, 0, 0, 0, 0, time.FixedZone("CST", 8*3600)))}, "to"},
		{"to with nanoseconds", &analyticsv1.GetSatisfactionRequest{To: &timestamppb.Timestamp{Seconds: march(2).Unix(), Nanos: 1}}, "to"},
		{"from not a valid timestamp", &analyticsv1.GetSatisfactionRequest{From: &timestamppb.Timestamp{Nanos: -1}}, "from"},
		{"from after to", &analyticsv1.GetSatisfactionRequest{From: ts(march(3)), To: ts(march(2))}, "from"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := client.GetSatisfaction(context.Background(), tc.req)
			st, ok := status.FromError(err)
			require.True(t, ok)
			require.Equal(t, codes.InvalidArgument, st.Code(), st.Message())
			var fields []string
			for _, d := range st.Details() {
				if br, ok := d.(*errdetails.BadRequest); ok {
					for _, v := range br.GetFieldViolations() {
						fields = append(fields, v.GetField())
					}
				}
			}
			require.Equal(t, []string{tc.field}, fields)
		})
	}
}
