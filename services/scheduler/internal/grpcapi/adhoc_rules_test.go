package grpcapi_test

import (
	"maps"
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	schedulerv1 "github.com/huifang/huifang/proto/huifang/scheduler/v1"
	typesv1 "github.com/huifang/huifang/proto/huifang/types/v1"

	"github.com/huifang/huifang/pkg/grpcserver"
	"github.com/huifang/huifang/pkg/issuer"
	"github.com/huifang/huifang/pkg/servicetest"
)

// The rules scheduler.proto declares for ScheduleFollowUp (a request id of
// its form, a customer, an org unit and a reason that are not blank, a
// reason of at most 500 characters, a known channel) refuse a request on a
// server as app.Start builds it (the guard, then the request rules),
// naming each field and rule, before anything is planned.
func TestScheduleFollowUpRules(t *testing.T) {
	ctx, srv := setup(t)
	guard, is := servicetest.Guard(t, "scheduler")
	gs := grpcserver.New(servicetest.Logger(), "127.0.0.1:0", "127.0.0.1:0", grpc.ChainUnaryInterceptor(guard.Unary))
	schedulerv1.RegisterSchedulerServiceServer(gs.GRPC, srv)
	client := schedulerv1.NewSchedulerServiceClient(servicetest.Serve(t, gs))
	staff, err := is.Context(ctx, issuer.Staff("default", "d-1"))
	require.NoError(t, err)
	rules := func(err error) map[string]string {
		st := status.Convert(err)
		require.Equal(t, codes.InvalidArgument, st.Code(), "%v", err)
		out := map[string]string{}
		for _, d := range st.Details() {
			for _, v := range d.(*errdetails.BadRequest).GetFieldViolations() {
				out[v.GetField()] = v.GetDescription()
			}
		}
		return out
	}

	_, err = client.ScheduleFollowUp(staff, &schedulerv1.ScheduleFollowUpRequest{RequestId: " ", Reason: "\t"})
	require.Equal(t, map[string]string{
		"request_id":  "is required: the client's id of this request, so that a retry or a double click plans nothing twice [not_blank]",
		"customer_id": "is required: the customer to follow up [not_blank]",
		"org_unit":    "is required: the org unit (branch) the visit belongs to [not_blank]",
		"reason":      "is required: why the follow-up is made [not_blank]",
	}, rules(err))
	bad := adHoc("no spaces")
	bad.Channel = typesv1.Channel(42)
	bad.Reason = strings.Repeat("因", 501)
	_, err = client.ScheduleFollowUp(staff, bad)
	got := rules(err)
	require.Equal(t, []string{"channel", "reason", "request_id"}, slices.Sorted(maps.Keys(got)))
	require.Equal(t, "must be 1 to 100 of A-Z a-z 0-9 . _ : - [request_id]", got["request_id"])
	require.Contains(t, got["channel"], "[enum.defined_only]")
	require.Contains(t, got["reason"], "[string.max_len]")

	var n int
	require.NoError(t, srv.App.DB.QueryRow(ctx, `SELECT count(*) FROM planned_visits`).Scan(&n))
	require.Zero(t, n, "a refused request plans nothing")

	// A request id with spaces around it is the id trimmed, as the app reads it.
	ok := adHoc(" cb-rules ")
	resp, err := client.ScheduleFollowUp(staff, ok)
	require.NoError(t, err)
	require.True(t, resp.GetCreated())
}
