package grpcapi_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/types/known/timestamppb"

	eventsv1 "github.com/huifang/huifang/proto/huifang/events/v1"
	feedbackv1 "github.com/huifang/huifang/proto/huifang/feedback/v1"
	typesv1 "github.com/huifang/huifang/proto/huifang/types/v1"

	"github.com/huifang/huifang/pkg/stream"
	"github.com/huifang/huifang/services/feedback/internal/visit"
)

// Issue 16, "What must work" 2: upstream systems and agents can state when
// something happened (event time on the calls that record facts, bounded
// and validated). LogVisit's occurred_at is the record's time for its
// complaints and for VisitLogged; the record still says when it was logged.
func TestLogVisitTakesTheTimeTheVisitHappened(t *testing.T) {
	t.Parallel()
	e := setup(t)
	e.seedVisit(t, "v-1") // due 1 March 09:00; the clock says 2 March 10:00
	occurred := time.Date(2025, 3, 1, 15, 0, 0, 0, time.UTC)

	req := logRequest("v-1", typesv1.Rating_RATING_UNSATISFIED,
		&typesv1.Problem{Category: "service_quality", Description: "the technician was two hours late"})
	req.OccurredAt = timestamppb.New(occurred)
	resp, err := e.client.LogVisit(e.ctx, req)
	require.NoError(t, err)
	rec := resp.Record
	require.Equal(t, occurred, rec.OccurredAt.AsTime())
	require.Equal(t, e.clock.Now(), rec.LoggedAt.AsTime(), "the record still says when it was logged")
	got, err := e.client.GetVisitRecord(e.ctx, &feedbackv1.GetVisitRecordRequest{Id: rec.Id})
	require.NoError(t, err)
	require.Equal(t, occurred, got.Record.OccurredAt.AsTime(), "kept")
	require.Equal(t, occurred, got.Current.OccurredAt.AsTime())

	logged := &eventsv1.VisitLogged{}
	e.last(t, stream.SubjectVisitLogged, logged)
	require.Equal(t, occurred, logged.OccurredAt.AsTime())
	require.Equal(t, e.clock.Now(), logged.LoggedAt.AsTime())

	// The complaint was raised when the customer said it, and its 7 days run from then.
	c, err := e.client.GetComplaint(e.ctx, &feedbackv1.GetComplaintRequest{Id: rec.ComplaintIds[0]})
	require.NoError(t, err)
	require.Equal(t, occurred, c.Complaint.CreatedAt.AsTime())
	require.Equal(t, occurred.Add(7*24*time.Hour), c.Complaint.Deadline.AsTime())
	require.Equal(t, "opened", c.History[0].Kind)
	require.Equal(t, occurred, c.History[0].At.AsTime())
	escalated := &eventsv1.ComplaintEscalated{}
	e.last(t, stream.SubjectComplaintEscalated, escalated)
	require.Equal(t, occurred, escalated.EscalatedAt.AsTime())
	require.Equal(t, occurred.Add(7*24*time.Hour), escalated.Deadline.AsTime())

	// The same customer raises it again in a visit of an hour later: the step says when.
	e.seedVisitWith(t, visit.Visit{TenantID: "default", VisitID: "v-again", CustomerID: "cust-v-1", DueAt: due,
		Channel: typesv1.Channel_CHANNEL_PHONE, OrgUnit: "branch-north"})
	again := logRequest("v-again", typesv1.Rating_RATING_UNSATISFIED,
		&typesv1.Problem{Category: "service_quality", Description: "The technician was two hours late!"})
	again.OccurredAt = timestamppb.New(occurred.Add(time.Hour))
	_, err = e.client.LogVisit(e.ctx, again)
	require.NoError(t, err)
	c, err = e.client.GetComplaint(e.ctx, &feedbackv1.GetComplaintRequest{Id: rec.ComplaintIds[0]})
	require.NoError(t, err)
	require.Equal(t, "raised_again", c.History[1].Kind)
	require.Equal(t, occurred.Add(time.Hour), c.History[1].At.AsTime())
}

func TestLogVisitRefusesAnEventTimeOutOfBounds(t *testing.T) {
	t.Parallel()
	e := setup(t)
	e.seedVisit(t, "v-1")
	now := e.clock.Now()
	for _, tt := range []struct {
		name string
		at   *timestamppb.Timestamp
		ok   bool
	}{
		{"more than the clock skew ahead", timestamppb.New(now.Add(5*time.Minute + time.Second)), false},
		{"before the visit fell due", timestamppb.New(due.Add(-time.Second)), false},
		{"not a timestamp", &timestamppb.Timestamp{Seconds: 1, Nanos: -1}, false},
		{"the clock skew ahead", timestamppb.New(now.Add(5 * time.Minute)), true}, // last: it stores the record
	} {
		name := tt.name
		req := logRequest("v-1", typesv1.Rating_RATING_SATISFIED)
		req.OccurredAt = tt.at
		_, err := e.client.LogVisit(e.ctx, req)
		if tt.ok {
			require.NoError(t, err, name)
			continue
		}
		require.Equal(t, []string{"occurred_at"}, violations(t, err), name)
		require.Zero(t, e.count(t, "visit_records"), "%s: nothing stored", name)
		require.Zero(t, e.count(t, "outbox"), "%s: nothing published", name)
	}
	require.Equal(t, 1, e.count(t, "visit_records"))
}

// ResolveComplaint's occurred_at is the time of the resolved step and of
// ComplaintResolved.resolved_at (the scheduler plans the confirmation from
// it); it is bounded by the clock skew and the complaint's last step, and
// a confirmation visit cannot have happened before the resolution.
func TestResolveComplaintTakesTheTimeItWasResolved(t *testing.T) {
	t.Parallel()
	e := setup(t)
	e.seedVisit(t, "v-1")
	resp, err := e.client.LogVisit(e.ctx, logRequest("v-1", typesv1.Rating_RATING_UNSATISFIED,
		&typesv1.Problem{Category: "service_quality", Description: "the technician was two hours late"}))
	require.NoError(t, err)
	id := resp.Record.ComplaintIds[0]
	acknowledged := e.clock.Now() // 2 March 10:00
	_, err = e.client.AcknowledgeComplaint(e.ctx, &feedbackv1.AcknowledgeComplaintRequest{ComplaintId: id, By: "after-sales-1"})
	require.NoError(t, err)
	e.clock.Advance(3 * 24 * time.Hour) // 5 March 10:00

	resolve := func(at time.Time) error {
		_, err := e.client.ResolveComplaint(e.ctx, &feedbackv1.ResolveComplaintRequest{ComplaintId: id, By: "after-sales-1",
			RootCause: "dispatch overbooked the technician", Action: "capped bookings per technician", OccurredAt: timestamppb.New(at)})
		return err
	}
	require.Equal(t, []string{"occurred_at"}, violations(t, resolve(acknowledged.Add(-time.Minute))), "before the acknowledgement")
	require.Equal(t, []string{"occurred_at"}, violations(t, resolve(e.clock.Now().Add(6*time.Minute))), "in the future")
	require.Equal(t, []string{"visit.logged", "complaint.escalated", "complaint.acknowledged"}, e.subjects(t), "nothing published")

	resolvedAt := time.Date(2025, 3, 3, 12, 0, 0, 0, time.UTC)
	require.NoError(t, resolve(resolvedAt))
	resolved := &eventsv1.ComplaintResolved{}
	e.last(t, stream.SubjectComplaintResolved, resolved)
	require.Equal(t, resolvedAt, resolved.ResolvedAt.AsTime())
	c, err := e.client.GetComplaint(e.ctx, &feedbackv1.GetComplaintRequest{Id: id})
	require.NoError(t, err)
	require.Equal(t, "resolved", c.History[2].Kind)
	require.Equal(t, resolvedAt, c.History[2].At.AsTime())

	// The confirmation visit happened after the resolution, never before it.
	e.seedVisitWith(t, visit.Visit{TenantID: "default", VisitID: "v-confirm", CustomerID: "cust-v-1",
		Channel: typesv1.Channel_CHANNEL_PHONE, ComplaintID: id, OrgUnit: "branch-north"})
	confirm := logRequest("v-confirm", typesv1.Rating_RATING_SATISFIED)
	confirm.OccurredAt = timestamppb.New(resolvedAt.Add(-time.Hour))
	_, err = e.client.LogVisit(e.ctx, confirm)
	require.Equal(t, []string{"occurred_at"}, violations(t, err))
	confirmed := time.Date(2025, 3, 4, 9, 0, 0, 0, time.UTC)
	confirm.OccurredAt = timestamppb.New(confirmed)
	_, err = e.client.LogVisit(e.ctx, confirm)
	require.NoError(t, err)
	closed := &eventsv1.ComplaintClosed{}
	e.last(t, stream.SubjectComplaintClosed, closed)
	require.Equal(t, "satisfied", closed.Outcome)
	require.Equal(t, confirmed, closed.At.AsTime(), "closed when the customer confirmed")
}

// A complaint that needs no follow-up is closed by its written reply at
// the time the resolution happened.
func TestWrittenReplyClosesAtTheTimeOfTheResolution(t *testing.T) {
	t.Parallel()
	e := setup(t)
	e.seedVisit(t, "v-1")
	resp, err := e.client.LogVisit(e.ctx, logRequest("v-1", typesv1.Rating_RATING_UNSATISFIED,
		&typesv1.Problem{Category: "service_quality", Description: "the lift is broken", Anonymous: true}))
	require.NoError(t, err)
	e.clock.Advance(48 * time.Hour)
	at := e.clock.Now().Add(-24 * time.Hour)
	_, err = e.client.ResolveComplaint(e.ctx, &feedbackv1.ResolveComplaintRequest{ComplaintId: resp.Record.ComplaintIds[0], By: "mgr",
		RootCause: "worn cable", Action: "replaced", WrittenReply: "Dear residents, the lift is repaired.", OccurredAt: timestamppb.New(at)})
	require.NoError(t, err)
	resolved := &eventsv1.ComplaintResolved{}
	e.last(t, stream.SubjectComplaintResolved, resolved)
	require.Equal(t, at, resolved.ResolvedAt.AsTime())
	require.True(t, resolved.NoFollowUp)
	closed := &eventsv1.ComplaintClosed{}
	e.last(t, stream.SubjectComplaintClosed, closed)
	require.Equal(t, at, closed.At.AsTime())
}
