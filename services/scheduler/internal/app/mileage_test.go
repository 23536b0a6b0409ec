package app_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/huifang/huifang/pkg/stream"
	"github.com/huifang/huifang/services/scheduler/internal/app"
	"github.com/huifang/huifang/services/scheduler/internal/policy"
)

// Seed 000 (auto): 首保 3个月或3000公里, 以先到为准 (ask the mileage); issue 16:
// a later odometer reading moves the pending reminders, which are saved
// (due, policy time, deadline, a mileage decision) and announced again;
// one the customer chose a time for stays.
//
// Hand computation: delivered t0 (28 November 10:00) without km_per_day:
// 3 months, 28 February; SMS 14 February, call 21 February. A repair 20
// days later reads 1,600 km: 80 km a day, 3,000 km after 37.5 days (4
// January 22:00): SMS 21 December 22:00, call 28 December 22:00, each
// timely for a week.
func TestMileageMovesPendingReminders(t *testing.T) {
	b := setup(t)
	week := policy.Duration(7 * day)
	anchor := policy.Anchor{Months: 3, MileageKm: 3000}
	_, err := b.a.CreatePolicy(b.ctx, "default", policy.Policy{Name: "auto-first-maintenance",
		Trigger: policy.Trigger{ServiceTypes: []string{"vehicle_delivery"}}, Stop: policy.Stop{ServiceTypes: []string{"maintenance"}},
		Steps: []policy.Step{
			{Anchor: anchor, Offset: -2 * week, Window: week, Channel: policy.ChannelSMS, SampleRate: 1, Group: "crm"},
			{Anchor: anchor, Offset: -week, Window: week, Channel: policy.ChannelPhone, SampleRate: 1, Group: "crm"},
		}})
	require.NoError(t, err)
	delivery := completed(t, "v1", "vehicle_delivery", t0)
	delivery.Service.Vehicle = "LSVAM4187C2184847"
	require.Equal(t, 2, plan(t, b, delivery))
	at := func(y int, m time.Month, d, h int) time.Time { return time.Date(y, m, d, h, 0, 0, 0, time.UTC) }
	byStep := func() map[int]time.Time {
		out := map[int]time.Time{}
		for _, v := range visits(t, b, app.VisitQuery{ServiceID: "v1", Status: "planned"}) {
			out[v.Step] = v.DueAt
		}
		return out
	}
	require.Equal(t, map[int]time.Time{0: at(2027, 2, 14, 10), 1: at(2027, 2, 21, 10)}, byStep())
	planned := outboxCount(t, b, stream.SubjectVisitPlanned)

	// The same customer's other car does not move them; a repair of this car does.
	other := completed(t, "r0", "repair", t0.Add(10*day))
	other.Service.CustomerID, other.Service.Vehicle, other.Service.OdometerKm = "cust-v1", "LSVAM4187C2184848", 9000
	plan(t, b, other)
	require.Equal(t, planned, outboxCount(t, b, stream.SubjectVisitPlanned))
	repair := completed(t, "r1", "repair", t0.Add(20*day))
	repair.Service.CustomerID, repair.Service.Vehicle, repair.Service.OdometerKm = "cust-v1", "LSVAM4187C2184847", 1600
	plan(t, b, repair)
	require.Equal(t, map[int]time.Time{0: at(2026, 12, 21, 22), 1: at(2026, 12, 28, 22)}, byStep())
	require.Equal(t, planned+2, outboxCount(t, b, stream.SubjectVisitPlanned), "each moved visit is announced again")
	for _, v := range visits(t, b, app.VisitQuery{ServiceID: "v1"}) {
		require.Equal(t, v.DueAt, v.Nominal, "the policy's time is kept")
		require.Equal(t, v.DueAt.Add(7*day), v.Deadline)
		last := v.Decisions[len(v.Decisions)-1]
		if last.Kind == policy.KindAnchor {
			last = v.Decisions[len(v.Decisions)-2]
		}
		require.Equal(t, policy.KindMileage, last.Kind)
		require.Contains(t, last.Detail, "odometer 1600 km")
		require.Contains(t, last.Detail, "80.0 km a day")
		require.Contains(t, v.Reason, "due moved earlier")
		require.NotContains(t, last.Detail, "LSVAM", "no vehicle identifier in the explanation")
	}

	// The customer chose a time for the call: a later, slower reading moves
	// the SMS later (1,600 km in 40 days, 40 km a day: 3,000 km after 75
	// days, 11 February 10:00; SMS 28 January) but not the call.
	call := visits(t, b, app.VisitQuery{ServiceID: "v1", Status: "planned"})
	for _, v := range call {
		if v.Step == 1 {
			_, err := b.a.Reschedule(b.ctx, "default", v.ID, at(2026, 12, 30, 15), "after work")
			require.NoError(t, err)
		}
	}
	slower := completed(t, "r2", "repair", t0.Add(40*day))
	slower.Service.CustomerID, slower.Service.Vehicle, slower.Service.OdometerKm = "cust-v1", "LSVAM4187C2184847", 1600
	b.clock.set(t0.Add(40 * day))
	plan(t, b, slower)
	require.Equal(t, map[int]time.Time{0: at(2027, 1, 28, 10), 1: at(2026, 12, 30, 15)}, byStep())

	// The maintenance stops them as before.
	maint := completed(t, "m1", "maintenance", t0.Add(50*day))
	maint.Service.CustomerID, maint.Service.OdometerKm = "cust-v1", 2500
	plan(t, b, maint)
	require.Empty(t, byStep())
}
