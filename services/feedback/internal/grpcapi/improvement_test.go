package grpcapi_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

	feedbackv1 "github.com/huifang/huifang/proto/huifang/feedback/v1"
	typesv1 "github.com/huifang/huifang/proto/huifang/types/v1"
)

// Seed 003: an improvement plan through the API: field violations, the
// plan on GetComplaint, each measure carried out once, then the plan stays.
func TestImprovementPlanThroughTheAPI(t *testing.T) {
	e := setup(t)
	e.seedVisit(t, "v-1")
	rec, err := e.client.LogVisit(e.ctx, logRequest("v-1", typesv1.Rating_RATING_UNSATISFIED, &typesv1.Problem{Category: "service_quality", Description: "late"}))
	require.NoError(t, err)
	id := rec.Record.ComplaintIds[0]
	found := e.clock.Now()

	_, err = e.client.SetImprovementPlan(e.ctx, &feedbackv1.SetImprovementPlanRequest{ComplaintId: id, Measures: []*feedbackv1.ImprovementMeasure{
		{Text: "a", Owner: "b", DueAt: timestamppb.New(found.Add(31 * 24 * time.Hour))},
		{Owner: "b", DueAt: &timestamppb.Timestamp{Seconds: -1 << 62}},
	}})
	require.ElementsMatch(t, []string{"measures[1].due_at"}, violations(t, err), "an invalid timestamp is refused first")
	_, err = e.client.SetImprovementPlan(e.ctx, &feedbackv1.SetImprovementPlanRequest{ComplaintId: id, Measures: []*feedbackv1.ImprovementMeasure{
		{Text: "a", Owner: "b", DueAt: timestamppb.New(found.Add(31 * 24 * time.Hour))}, {Owner: "b", DueAt: timestamppb.New(found.Add(time.Hour))},
	}})
	require.ElementsMatch(t, []string{"measures[0].due_at", "measures[1].text"}, violations(t, err))

	resp, err := e.client.SetImprovementPlan(e.ctx, &feedbackv1.SetImprovementPlanRequest{ComplaintId: id, Measures: []*feedbackv1.ImprovementMeasure{
		{Text: "fix the schedule", Owner: "dispatch desk", DueAt: timestamppb.New(found.Add(10 * 24 * time.Hour))},
	}})
	require.NoError(t, err)
	m := resp.Plan.Measures[0]
	require.NotEmpty(t, m.Id)
	require.False(t, resp.Plan.CarriedOut)

	_, err = e.client.CompleteImprovementMeasure(e.ctx, &feedbackv1.CompleteImprovementMeasureRequest{ComplaintId: id, MeasureId: m.Id,
		OccurredAt: timestamppb.New(e.clock.Now().Add(time.Hour))})
	require.Equal(t, []string{"occurred_at"}, violations(t, err))
	_, err = e.client.CompleteImprovementMeasure(e.ctx, &feedbackv1.CompleteImprovementMeasureRequest{ComplaintId: id, MeasureId: "nope"})
	require.Equal(t, codes.NotFound, status.Code(err))
	done, err := e.client.CompleteImprovementMeasure(e.ctx, &feedbackv1.CompleteImprovementMeasureRequest{ComplaintId: id, MeasureId: m.Id, Note: "new rota"})
	require.NoError(t, err)
	require.True(t, done.Plan.CarriedOut)
	require.Equal(t, "new rota", done.Plan.Measures[0].Note)
	_, err = e.client.CompleteImprovementMeasure(e.ctx, &feedbackv1.CompleteImprovementMeasureRequest{ComplaintId: id, MeasureId: m.Id})
	require.Equal(t, codes.FailedPrecondition, status.Code(err))
	_, err = e.client.SetImprovementPlan(e.ctx, &feedbackv1.SetImprovementPlanRequest{ComplaintId: id, Measures: resp.Plan.Measures})
	require.Equal(t, codes.FailedPrecondition, status.Code(err))

	got, err := e.client.GetComplaint(e.ctx, &feedbackv1.GetComplaintRequest{Id: id})
	require.NoError(t, err)
	require.True(t, got.ImprovementPlan.CarriedOut)
	require.Equal(t, "fix the schedule", got.ImprovementPlan.Measures[0].Text)
	require.Contains(t, e.subjects(t), "improvement.plan_set")
	require.Contains(t, e.subjects(t), "improvement.measure_completed")
}
