package grpcapi_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	feedbackv1 "github.com/huifang/huifang/proto/huifang/feedback/v1"
	typesv1 "github.com/huifang/huifang/proto/huifang/types/v1"
	watchv1 "github.com/huifang/huifang/proto/huifang/watch/v1"

	"github.com/huifang/huifang/pkg/grpcserver"
	"github.com/huifang/huifang/pkg/servicetest"
	"github.com/huifang/huifang/pkg/watch"
	"github.com/huifang/huifang/services/feedback/internal/grpcapi"
)

// watchClient serves the API with a hub of watches on the env's NATS.
func (e *env) watchClient(t *testing.T) feedbackv1.FeedbackServiceClient {
	t.Helper()
	srv := grpcserver.New(e.log, "", "")
	feedbackv1.RegisterFeedbackServiceServer(srv.GRPC, &grpcapi.Server{App: e.app,
		Watches: watch.NewHub(e.js, e.log, watch.Limits{Heartbeat: 300 * time.Millisecond})})
	return feedbackv1.NewFeedbackServiceClient(servicetest.Serve(t, srv))
}

func nextComplaint(t *testing.T, s feedbackv1.FeedbackService_WatchComplaintClient) *feedbackv1.WatchComplaintResponse {
	t.Helper()
	for {
		m, err := s.Recv()
		require.NoError(t, err)
		if m.GetKind() != watchv1.Kind_KIND_HEARTBEAT {
			return m
		}
	}
}

// TestWatchComplaint: a complaint's watch sends the complaint first, then
// again when it is acknowledged (the event and its cursor); another
// complaint's progress sends nothing but moves the heartbeat's cursor; a
// watch resumed from the last cursor after the resolution (while no one
// watched) sends the complaint resolved and the event that resolved it;
// an unknown complaint is NotFound before any stream (seeds 000, 002: every
// complaint followed to its end).
func TestWatchComplaint(t *testing.T) {
	t.Parallel()
	e := setup(t)
	client := e.watchClient(t)
	var ids []string
	for _, v := range []string{"v-1", "v-2"} {
		e.seedVisit(t, v)
		resp, err := e.client.LogVisit(e.ctx, logRequest(v, typesv1.Rating_RATING_UNSATISFIED,
			&typesv1.Problem{Category: "service_quality", Description: "the technician was late"}))
		require.NoError(t, err)
		ids = append(ids, resp.GetRecord().GetComplaintIds()[0])
	}
	publish := func() {
		t.Helper()
		_, err := e.relay.RunOnce(e.ctx)
		require.NoError(t, err)
	}
	publish()

	ctx, cancel := context.WithCancel(e.ctx)
	w, err := client.WatchComplaint(ctx, &feedbackv1.WatchComplaintRequest{Id: ids[0]})
	require.NoError(t, err)
	first := nextComplaint(t, w)
	require.Equal(t, watchv1.Kind_KIND_SNAPSHOT, first.GetKind())
	require.Equal(t, "open", first.GetComplaint().GetComplaint().GetStatus())

	_, err = e.client.AcknowledgeComplaint(e.ctx, &feedbackv1.AcknowledgeComplaintRequest{ComplaintId: ids[0], By: "after-sales-1"})
	require.NoError(t, err)
	publish()
	u := nextComplaint(t, w)
	require.Equal(t, watchv1.Kind_KIND_CHANGE, u.GetKind())
	require.Len(t, u.GetEvents(), 1)
	require.Equal(t, "huifang.events.complaint.acknowledged", u.GetEvents()[0].GetSubject())
	require.Equal(t, "acknowledged", u.GetComplaint().GetComplaint().GetStatus())
	require.Equal(t, watch.Cursor(u.GetEvents()[0].GetSequence()), u.GetCursor())

	_, err = e.client.AcknowledgeComplaint(e.ctx, &feedbackv1.AcknowledgeComplaintRequest{ComplaintId: ids[1], By: "after-sales-1"})
	require.NoError(t, err)
	publish()
	for {
		m, err := w.Recv()
		require.NoError(t, err)
		require.Equal(t, watchv1.Kind_KIND_HEARTBEAT, m.GetKind(), "the other complaint's progress sends nothing")
		if m.GetCursor() != u.GetCursor() {
			break // the cursor moved past the other complaint's event
		}
	}
	cancel()

	_, err = e.client.ResolveComplaint(e.ctx, &feedbackv1.ResolveComplaintRequest{ComplaintId: ids[0], By: "after-sales-1",
		RootCause: "overbooked", Action: "capped bookings"})
	require.NoError(t, err)
	publish()
	w, err = client.WatchComplaint(e.ctx, &feedbackv1.WatchComplaintRequest{Id: ids[0], Cursor: u.GetCursor()})
	require.NoError(t, err)
	r := nextComplaint(t, w)
	require.Equal(t, watchv1.Kind_KIND_SNAPSHOT, r.GetKind())
	require.Equal(t, "resolved", r.GetComplaint().GetComplaint().GetStatus())
	var subjects []string
	for _, ev := range r.GetEvents() {
		subjects = append(subjects, ev.GetSubject())
	}
	require.Contains(t, subjects, "huifang.events.complaint.resolved")
	require.NotContains(t, subjects, "huifang.events.complaint.acknowledged", "nothing before the cursor again")

	w, err = client.WatchComplaint(e.ctx, &feedbackv1.WatchComplaintRequest{Id: "no-such-complaint"})
	require.NoError(t, err)
	_, err = w.Recv()
	require.Equal(t, codes.NotFound, status.Code(err), "%v", err)
}
