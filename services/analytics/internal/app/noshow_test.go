package app_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/types/known/timestamppb"

	eventsv1 "github.com/huifang/huifang/proto/huifang/events/v1"
	typesv1 "github.com/huifang/huifang/proto/huifang/types/v1"

	"github.com/huifang/huifang/services/analytics/internal/app"
)

// Seed 000, auto dealer: for no-shows record the reason. Three no-shows in
// April (two serviced elsewhere, one forgot) and one customer who came:
// the breakdown counts 2 serviced_elsewhere, 1 forgot, most first.
func TestNoShowsAreCountedByReason(t *testing.T) {
	b := setup(t)
	ctx := context.Background()
	at := timestamppb.New(time.Date(2025, 4, 2, 10, 0, 0, 0, time.UTC))
	for i, r := range []typesv1.NoShowReason{
		typesv1.NoShowReason_NO_SHOW_REASON_SERVICED_ELSEWHERE, typesv1.NoShowReason_NO_SHOW_REASON_FORGOT,
		typesv1.NoShowReason_NO_SHOW_REASON_SERVICED_ELSEWHERE, typesv1.NoShowReason_NO_SHOW_REASON_UNSPECIFIED,
	} {
		id := string(rune('a' + i))
		require.NoError(t, b.app.ApplyEvent(ctx, &eventsv1.VisitLogged{EventId: "l" + id, VisitId: "v" + id, RecordId: "r" + id, AgentId: "a1",
			LoggedAt: at, OrgUnit: "north", PolicyId: "auto-first-maintenance", NoShowReason: r}))
	}
	p, err := b.app.Problems(ctx, app.Scope{Tenant: "default", From: time.Date(2025, 4, 1, 0, 0, 0, 0, time.UTC), To: time.Date(2025, 5, 1, 0, 0, 0, 0, time.UTC)})
	require.NoError(t, err)
	require.Equal(t, []app.NoShowCount{{Reason: "serviced_elsewhere", Count: 2}, {Reason: "forgot", Count: 1}}, p.NoShows)
	require.Empty(t, p.Counts, "a no-show is not a problem")
}
