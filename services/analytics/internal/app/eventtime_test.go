package app_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	eventsv1 "github.com/huifang/huifang/proto/huifang/events/v1"
	typesv1 "github.com/huifang/huifang/proto/huifang/types/v1"

	"github.com/huifang/huifang/services/analytics/internal/app"
)

// Issue 16, "What must work" 2: upstream systems and agents can state when
// something happened. A visit made on 2 April within its deadline (3
// April) and within 48 h of the service, but reported on 10 April
// (VisitLogged.occurred_at 2 April, logged_at 10 April), counts on 2 April
// and on time: 1 / 1 by the deadline and within 48 h; on 10 April nothing.
// A record without occurred_at still counts by logged_at.
func TestARecordReportedLateCountsOnTheDayItHappened(t *testing.T) {
	b := setup(t)
	ctx := context.Background()
	apr := func(d, h int) *timestamppb.Timestamp {
		return timestamppb.New(time.Date(2025, 4, d, h, 0, 0, 0, time.UTC))
	}
	day := func(d int) app.Scope {
		from := time.Date(2025, 4, d, 0, 0, 0, 0, time.UTC)
		return app.Scope{Tenant: "default", From: from, To: from.AddDate(0, 0, 1)}
	}
	for _, ev := range []proto.Message{
		&eventsv1.VisitDue{EventId: "d1", Customer: &typesv1.Customer{Id: "cu1"}, VisitId: "v1", ServiceId: "s1", PolicyId: "p-repair",
			Channel: typesv1.Channel_CHANNEL_PHONE, DueAt: apr(1, 10), Deadline: apr(3, 10), OrgUnit: "north", ServiceType: "repair",
			ServiceCompletedAt: apr(1, 9)},
		&eventsv1.VisitLogged{EventId: "l1", VisitId: "v1", RecordId: "r1", AgentId: "a1", Channel: typesv1.Channel_CHANNEL_PHONE,
			LoggedAt: apr(10, 9), OccurredAt: apr(2, 15), OrgUnit: "north", ServiceType: "repair", PolicyId: "p-repair", ServiceId: "s1",
			DueAt: apr(1, 10), Deadline: apr(3, 10), ServiceCompletedAt: apr(1, 9),
			Answers: []*typesv1.Answer{{Aspect: "overall", Rating: typesv1.Rating_RATING_SATISFIED}}},
		// Reported without an event time: it happened when it was logged.
		&eventsv1.VisitDue{EventId: "d2", Customer: &typesv1.Customer{Id: "cu2"}, VisitId: "v2", ServiceId: "s2", PolicyId: "p-repair",
			Channel: typesv1.Channel_CHANNEL_PHONE, DueAt: apr(1, 10), Deadline: apr(3, 10), OrgUnit: "north", ServiceType: "repair"},
		&eventsv1.VisitLogged{EventId: "l2", VisitId: "v2", RecordId: "r2", AgentId: "a1", Channel: typesv1.Channel_CHANNEL_PHONE,
			LoggedAt: apr(10, 9), OrgUnit: "north", ServiceType: "repair", PolicyId: "p-repair", ServiceId: "s2",
			DueAt: apr(1, 10), Deadline: apr(3, 10),
			Answers: []*typesv1.Answer{{Aspect: "overall", Rating: typesv1.Rating_RATING_UNSATISFIED}}},
	} {
		require.NoError(t, b.app.ApplyEvent(ctx, ev))
	}

	on2, err := b.app.Satisfaction(ctx, day(2), "overall")
	require.NoError(t, err)
	require.EqualValues(t, 1, on2.Returned, "r1 is counted on 2 April, when the visit happened")
	require.EqualValues(t, 1, on2.Aspect.Satisfied)
	on10, err := b.app.Satisfaction(ctx, day(10), "overall")
	require.NoError(t, err)
	require.EqualValues(t, 1, on10.Returned, "only r2, which gave no event time")
	require.EqualValues(t, 1, on10.Aspect.Unsatisfied)

	// Both visits fell due on 1 April: v1 was made by its deadline and within 48 h
	// of the service; v2 counts as made when it was logged, after its deadline.
	tm, err := b.app.Timeliness(ctx, app.Scope{Tenant: "default", From: day(1).From, To: day(11).From})
	require.NoError(t, err)
	require.Equal(t, [2]int64{1, 2}, [2]int64{tm.PolicyDeadline.Num, tm.PolicyDeadline.Den})
	require.Equal(t, [2]int64{1, 1}, [2]int64{tm.Within48h.Num, tm.Within48h.Den})
}
