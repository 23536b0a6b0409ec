package grpcapi_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	eventsv1 "github.com/huifang/huifang/proto/huifang/events/v1"
	schedulerv1 "github.com/huifang/huifang/proto/huifang/scheduler/v1"
	typesv1 "github.com/huifang/huifang/proto/huifang/types/v1"

	"github.com/huifang/huifang/pkg/auth"
	"github.com/huifang/huifang/pkg/grpcserver"
	"github.com/huifang/huifang/pkg/servicetest"
	"github.com/huifang/huifang/services/scheduler/internal/app"
)

// adHocFields returns the fields a refusal names, as a caller sees them.
func adHocFields(t *testing.T, ctx context.Context, err error) []string {
	t.Helper()
	st := status.Convert(grpcserver.Status(ctx, servicetest.Logger(), err))
	require.Equal(t, codes.InvalidArgument, st.Code(), "%v", err)
	var out []string
	for _, d := range st.Details() {
		if br, ok := d.(*errdetails.BadRequest); ok {
			for _, v := range br.FieldViolations {
				out = append(out, v.Field)
			}
		}
	}
	return out
}

func adHoc(requestID string) *schedulerv1.ScheduleFollowUpRequest {
	return &schedulerv1.ScheduleFollowUpRequest{RequestId: requestID, CustomerId: "c-adhoc", OrgUnit: "branch-north",
		Reason: "customer asked to be called back about the refund"}
}

func TestScheduleFollowUpPlansAndFiresLikeOtherVisits(t *testing.T) {
	ctx, srv := setup(t)
	srv.App.DueNow = func() {}
	events := func(subject string) []*eventsv1.VisitDue {
		rows, err := srv.App.DB.Query(ctx, `SELECT payload FROM outbox WHERE subject = $1 ORDER BY seq`, subject)
		require.NoError(t, err)
		defer rows.Close()
		var out []*eventsv1.VisitDue
		for rows.Next() {
			var b []byte
			require.NoError(t, rows.Scan(&b))
			ev := &eventsv1.VisitDue{}
			require.NoError(t, proto.Unmarshal(b, ev))
			out = append(out, ev)
		}
		return out
	}

	// Now: planned and fired at once, through the same firing (VisitDue).
	resp, err := srv.ScheduleFollowUp(ctx, adHoc("cb-1"))
	require.NoError(t, err)
	require.True(t, resp.Created)
	v := resp.Visit
	require.Equal(t, "followup", v.PolicyId)
	require.Equal(t, "due", v.Status)
	require.Equal(t, typesv1.Channel_CHANNEL_PHONE, v.Channel, "the phone when unspecified")
	require.Equal(t, now.Add(48*time.Hour), v.Deadline.AsTime(), "seed 003: 48 hours")
	require.Contains(t, v.Reason, "customer asked to be called back")
	due := events("huifang.events.visit.due")
	require.Len(t, due, 1)
	require.Equal(t, v.Id, due[0].VisitId)
	require.Equal(t, "c-adhoc", due[0].Customer.GetId())
	require.Equal(t, "branch-north", due[0].OrgUnit)
	require.Len(t, events("huifang.events.visit.planned"), 1)

	// The same request again, even at once: the same visit, nothing new.
	var wg sync.WaitGroup
	answers := make([]*schedulerv1.ScheduleFollowUpResponse, 3)
	errs := make([]error, 3)
	for i := range answers {
		wg.Go(func() { answers[i], errs[i] = srv.ScheduleFollowUp(ctx, adHoc("cb-1")) })
	}
	wg.Wait()
	for i, again := range answers {
		require.NoError(t, errs[i])
		require.False(t, again.Created)
		require.Equal(t, v.Id, again.Visit.Id)
	}
	require.Len(t, events("huifang.events.visit.due"), 1)

	// Later, by e-mail, about a service: planned until it falls due; visible and explained.
	later := adHoc("cb-2")
	later.ServiceId, later.Channel, later.Group = "s-9", typesv1.Channel_CHANNEL_EMAIL, "north-callers"
	later.DueAt = timestamppb.New(now.Add(24 * time.Hour))
	resp, err = srv.ScheduleFollowUp(ctx, later)
	require.NoError(t, err)
	require.Equal(t, []string{"planned", "s-9", "north-callers"}, []string{resp.Visit.Status, resp.Visit.ServiceId, resp.Visit.Group})
	list, err := srv.ListPlannedVisits(ctx, &schedulerv1.ListPlannedVisitsRequest{CustomerId: "c-adhoc", Status: "planned"})
	require.NoError(t, err)
	require.Len(t, list.Visits, 1)
	require.Equal(t, resp.Visit.Id, list.Visits[0].Id)
	ex, err := srv.ExplainVisit(ctx, &schedulerv1.ExplainVisitRequest{VisitId: resp.Visit.Id})
	require.NoError(t, err)
	require.Contains(t, ex.Decisions[0].Detail, "ad-hoc follow-up asked for by")

	// Cancelled with the existing call: it never fires.
	c, err := srv.CancelPlannedVisit(ctx, &schedulerv1.CancelPlannedVisitRequest{VisitId: resp.Visit.Id, Reason: "customer called in"})
	require.NoError(t, err)
	require.Equal(t, "cancelled", c.Visit.Status)

	// The customer's opt-out applies when it falls due, as for a policy's visits.
	_, err = srv.App.OptOut(ctx, app.OptOut{Tenant: "default", CustomerID: "c-adhoc", Channel: int32(typesv1.Channel_CHANNEL_SMS), At: now})
	require.NoError(t, err)
	sms := adHoc("cb-3")
	sms.Channel = typesv1.Channel_CHANNEL_SMS
	resp, err = srv.ScheduleFollowUp(ctx, sms)
	require.NoError(t, err)
	require.Equal(t, "suppressed", resp.Visit.Status, "opted out of SMS: %s", resp.Visit.Reason)
	require.Len(t, events("huifang.events.visit.due"), 1)
}

func TestScheduleFollowUpRefusals(t *testing.T) {
	ctx, srv := setup(t)
	fields := func(err error) []string { return adHocFields(t, ctx, err) }
	_, err := srv.ScheduleFollowUp(ctx, &schedulerv1.ScheduleFollowUpRequest{})
	require.Equal(t, []string{"request_id", "customer_id", "org_unit", "reason"}, fields(err))
	bad := adHoc("no spaces")
	bad.Channel = typesv1.Channel(42)
	bad.DueAt = timestamppb.New(now.Add(-time.Hour))
	bad.Deadline = timestamppb.New(now.Add(-2 * time.Hour))
	_, err = srv.ScheduleFollowUp(ctx, bad)
	require.Equal(t, []string{"request_id", "channel", "due_at", "deadline"}, fields(err))
	var n int
	require.NoError(t, srv.App.DB.QueryRow(ctx, `SELECT count(*) FROM planned_visits`).Scan(&n))
	require.Zero(t, n, "a refused request plans nothing")

	// A leader or an agent names an org unit of its token.
	agent := auth.With(ctx, auth.Principal{Subject: "s-a1", Tenant: "default", Roles: []auth.Role{auth.Agent}, AgentID: "a-1", OrgUnits: []string{"branch-south"}})
	_, err = srv.ScheduleFollowUp(agent, adHoc("cb-9"))
	require.Equal(t, codes.PermissionDenied, code(ctx, err))
	ok := adHoc("cb-9")
	ok.OrgUnit = "branch-south"
	resp, err := srv.ScheduleFollowUp(agent, ok)
	require.NoError(t, err)
	ex, err := srv.ExplainVisit(ctx, &schedulerv1.ExplainVisitRequest{VisitId: resp.Visit.Id})
	require.NoError(t, err)
	require.Contains(t, ex.Decisions[0].Detail, "asked for by a-1")
}
