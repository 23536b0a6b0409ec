package app_test

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/proto"

	eventsv1 "github.com/huifang/huifang/proto/huifang/events/v1"
	typesv1 "github.com/huifang/huifang/proto/huifang/types/v1"

	"github.com/huifang/huifang/services/analytics/internal/app"
	"github.com/huifang/huifang/services/analytics/internal/rollup"
	"github.com/huifang/huifang/services/analytics/internal/scenario"
)

// Issue 16 (a late visit is reported late, event and figure): a visit the
// scheduler fired after its deadline (VisitDue.late) is counted in the
// timeliness figures as late and never as on time, even when it is made as
// soon as it fell due. Over the scenario's March (5 visits with a deadline,
// 3 made by it) plus v7, fired late and made at once: timeliness 3 / 6,
// late 1 / 6.
func TestAVisitFiredLateIsCountedLate(t *testing.T) {
	b := setup(t)
	b.applyScenario(t)
	ctx := context.Background()
	for _, ev := range []proto.Message{
		&eventsv1.VisitDue{EventId: "d7", Customer: &typesv1.Customer{Id: "cu2"}, VisitId: "v7", ServiceId: "s2", PolicyId: "p-repair",
			Channel: typesv1.Channel_CHANNEL_PHONE, DueAt: at(8), Deadline: at(7), OrgUnit: "north", ServiceType: "repair", Late: true},
		&eventsv1.VisitLogged{EventId: "l7", VisitId: "v7", RecordId: "r7", AgentId: "a1", Channel: typesv1.Channel_CHANNEL_PHONE, LoggedAt: at(8),
			OrgUnit: "north", ServiceType: "repair", PolicyId: "p-repair", ServiceId: "s2", Deadline: at(7)},
	} {
		require.NoError(t, b.app.ApplyEvent(ctx, ev))
	}
	tm, err := b.app.Timeliness(ctx, app.Scope{Tenant: "default", From: scenario.From, To: scenario.To})
	require.NoError(t, err)
	require.Equal(t, [2]int64{3, 6}, [2]int64{tm.PolicyDeadline.Num, tm.PolicyDeadline.Den}, "v1, v5, v6 by their deadline; v7 fired late")
	require.Equal(t, [2]int64{1, 6}, [2]int64{tm.Late.Num, tm.Late.Den}, "v7 fired after its deadline")
	require.Equal(t, "late_rate", tm.Late.Figure)

	south, err := b.app.Timeliness(ctx, app.Scope{Tenant: "default", From: scenario.From, To: scenario.To, Filter: rollup.Dims{OrgUnit: "south"}})
	require.NoError(t, err)
	require.Zero(t, south.Late.Num, "south had no late visit")
}
