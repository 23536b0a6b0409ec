package engine

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	calendar "github.com/huifang/huifang/pkg/contact"

	"github.com/huifang/huifang/services/scheduler/internal/contact"
	"github.com/huifang/huifang/services/scheduler/internal/policy"
)

// Seed 000 (auto): 首保 3个月或3000公里, 以先到为准 (first maintenance at 3
// months or 3,000 km, whichever first; ask the mileage), SMS 2 weeks and a
// call 1 week before; issue 16: a later reading moves the reminders. A run
// plays them as the scheduler does: the repair's reading moves both
// visits of the delivery, each with a mileage decision.
//
// Hand computation: delivered 10 January 09:00 (no km_per_day: 3 months,
// SMS 27 March, call 3 April). The repair on 30 January reads 1,600 km: 80
// km a day, 3,000 km after 37.5 days, 16 February 21:00; SMS 2 February
// 21:00 (timely to 9 February 21:00), call 9 February 21:00 (to 16 February
// 21:00). A reading of another car of the customer moves nothing.
func TestRunMileageMovesReminders(t *testing.T) {
	d0 := time.Date(2026, 1, 10, 9, 0, 0, 0, time.UTC)
	week := policy.Duration(7 * day)
	anchor := policy.Anchor{Months: 3, MileageKm: 3000}
	p := policy.Policy{ID: "fm", Tenant: "t", Name: "auto-first-maintenance", Version: 1, Active: true,
		Trigger: policy.Trigger{ServiceTypes: []string{"vehicle_delivery"}}, Stop: policy.Stop{ServiceTypes: []string{"maintenance"}},
		Steps: []policy.Step{
			{Anchor: anchor, Offset: -2 * week, Window: week, Channel: policy.ChannelSMS, SampleRate: 1},
			{Anchor: anchor, Offset: -week, Window: week, Channel: policy.ChannelPhone, SampleRate: 1},
		}}
	delivery := &policy.Service{Tenant: "t", ID: "v1", Type: "vehicle_delivery", CustomerID: "c", CompletedAt: d0, Vehicle: "LSVAM4187C2184847"}
	other := &policy.Service{Tenant: "t", ID: "r0", Type: "repair", CustomerID: "c", CompletedAt: d0.Add(10 * day), Vehicle: "LSVAM4187C2184848", OdometerKm: 9000}
	repair := &policy.Service{Tenant: "t", ID: "r1", Type: "repair", CustomerID: "c", CompletedAt: d0.Add(20 * day), Vehicle: "LSVAM4187C2184847", OdometerKm: 1600}
	out := Sim{Policies: []policy.Policy{p}}.Run([]Event{{At: d0, Service: delivery}, {At: other.CompletedAt, Service: other}, {At: repair.CompletedAt, Service: repair}}, d0.Add(90*day))
	at := func(m time.Month, d, h int) time.Time { return time.Date(2026, m, d, h, 0, 0, 0, time.UTC) }
	require.Len(t, out, 2)
	for i, want := range []struct{ due, deadline time.Time }{{at(2, 2, 21), at(2, 9, 21)}, {at(2, 9, 21), at(2, 16, 21)}} {
		require.Equal(t, "due", out[i].Status)
		require.Equal(t, i, out[i].Step)
		require.Equal(t, want.due, out[i].DueAt)
		require.Equal(t, want.deadline, out[i].Deadline)
		var mileage []string
		for _, d := range out[i].Decisions {
			if d.Kind == policy.KindMileage {
				mileage = append(mileage, d.Detail)
			}
		}
		require.Len(t, mileage, 1, "one reading moved it")
		require.Contains(t, mileage[0], "odometer 1600 km")
		require.Contains(t, mileage[0], "80.0 km a day")
		require.Contains(t, mileage[0], "due moved earlier")
	}
}

// A moved visit is placed by the contact policy like any other: moved to
// 21:00, it waits for the evening's quiet hours to end.
func TestRemileagePlaced(t *testing.T) {
	d0 := time.Date(2026, 1, 10, 9, 0, 0, 0, time.UTC)
	p := policy.Policy{ID: "fm", Tenant: "t", Name: "fm", Version: 1, Active: true, Trigger: policy.Trigger{ServiceTypes: []string{"vehicle_delivery"}},
		Steps: []policy.Step{{Anchor: policy.Anchor{Months: 3, MileageKm: 3000}, Offset: policy.Duration(-14 * day), Window: policy.Duration(7 * day), Channel: policy.ChannelSMS, SampleRate: 1}}}
	base := policy.Service{Tenant: "t", ID: "v1", Type: "vehicle_delivery", CustomerID: "c", CompletedAt: d0}
	r := contact.Rules{}
	r.Quiet = &calendar.Window{Start: 21 * 60, End: 8 * 60}
	vs, err := Initial(p, base, r, contact.Prefs{}, nil)
	require.NoError(t, err)
	n, ok := Remileage(p, vs[0], base, policy.Service{Tenant: "t", ID: "r1", Type: "repair", CustomerID: "c", CompletedAt: d0.Add(20 * day), OdometerKm: 1600}, r, contact.Prefs{})
	require.True(t, ok)
	require.Equal(t, time.Date(2026, 2, 2, 21, 0, 0, 0, time.UTC), n.Nominal)
	require.Equal(t, time.Date(2026, 2, 3, 8, 0, 0, 0, time.UTC), n.DueAt, "after the quiet hours")
	require.False(t, n.Late())
}
