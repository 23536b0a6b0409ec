package rollup_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/types/known/timestamppb"

	eventsv1 "github.com/huifang/huifang/proto/huifang/events/v1"

	"github.com/huifang/huifang/services/analytics/internal/rollup"
)

// Seed 003's 改进落实率: a complaint counts as improved on its escalation
// day when its plan was set and every measure carried out within 30 days.
func TestImprovementCountsPlansCarriedOutWithin30Days(t *testing.T) {
	found := time.Date(2025, 3, 2, 10, 0, 0, 0, time.UTC)
	day := 24 * time.Hour
	plan := func(at time.Duration, n int32) *eventsv1.ImprovementPlanSet {
		return &eventsv1.ImprovementPlanSet{TenantId: "t", ComplaintId: "c", Measures: n, SetAt: timestamppb.New(found.Add(at))}
	}
	done := func(at time.Duration, k, n int32) *eventsv1.ImprovementMeasureCompleted {
		return &eventsv1.ImprovementMeasureCompleted{TenantId: "t", ComplaintId: "c", MeasuresDone: k, Measures: n, CompletedAt: timestamppb.New(found.Add(at))}
	}
	tests := []struct {
		name     string
		events   []rollup.ComplaintEvent
		improved bool
	}{
		{"no plan", nil, false},
		{"on time: set on day 3, both measures by day 30 exactly", []rollup.ComplaintEvent{plan(3*day, 2), done(10*day, 1, 2), done(30*day, 2, 2)}, true},
		{"partial: one of two carried out", []rollup.ComplaintEvent{plan(3*day, 2), done(10*day, 1, 2)}, false},
		{"late measure: the last one on day 31", []rollup.ComplaintEvent{plan(3*day, 2), done(10*day, 1, 2), done(31*day, 2, 2)}, false},
		{"late plan: set on day 31", []rollup.ComplaintEvent{plan(31*day, 1), done(31*day, 1, 1)}, false},
		{"completions arriving out of order", []rollup.ComplaintEvent{plan(3*day, 2), done(20*day, 2, 2), done(5*day, 1, 2)}, true},
		{"remade plan starts over", []rollup.ComplaintEvent{plan(3*day, 1), done(4*day, 1, 1), plan(3*day, 2)}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := rollup.Complaint{Tenant: "t", ComplaintID: "c"}
			c = rollup.ApplyComplaint(c, &eventsv1.ComplaintEscalated{TenantId: "t", ComplaintId: "c", EscalatedAt: timestamppb.New(found), OrgUnit: "u"})
			for _, ev := range tt.events {
				c = rollup.ApplyComplaint(c, ev)
			}
			require.Equal(t, tt.improved, c.Improved())
			var metrics []string
			for _, d := range c.Contribution() {
				require.Equal(t, rollup.Day(found), d.Day, "counted on the day of the problem")
				metrics = append(metrics, d.Metric)
			}
			require.Contains(t, metrics, rollup.MetricComplaint)
			require.Equal(t, tt.improved, contains(metrics, rollup.MetricImproved))
		})
	}
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
