package policy

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// firstMaintenance is the auto pack's first-maintenance SMS (seed 000: 首保
// 3个月或3000公里, 以先到为准; SMS 2 weeks before, timely for a week).
func firstMaintenance() Policy {
	return Policy{ID: "fm", Tenant: "t", Name: "auto-first-maintenance", Version: 1, Active: true,
		Trigger: Trigger{ServiceTypes: []string{TypeVehicleDelivery}},
		Steps: []Step{{Anchor: Anchor{Months: 3, MileageKm: 3000}, Offset: Duration(-14 * 24 * time.Hour), Window: Duration(7 * 24 * time.Hour),
			Channel: ChannelSMS, SampleRate: 1}}}
}

func TestDrivingHabit(t *testing.T) {
	d0 := time.Date(2026, 1, 10, 9, 0, 0, 0, time.UTC)
	delivery := Service{Tenant: "t", ID: "v1", Type: TypeVehicleDelivery, CustomerID: "c", CompletedAt: d0, Vehicle: "VIN1"}
	reading := func(km int64, days float64, mut ...func(*Service)) Service {
		s := Service{Tenant: "t", ID: "r1", Type: "repair", CustomerID: "c", CompletedAt: d0.Add(time.Duration(days * float64(24*time.Hour))), Vehicle: "VIN1", OdometerKm: km}
		for _, m := range mut {
			m(&s)
		}
		return s
	}
	for _, c := range []struct {
		name  string
		base  Service
		later Service
		want  float64
		ok    bool
	}{
		{"a new car counts from 0 km", delivery, reading(1600, 20), 80, true},
		{"a maintenance counts from its reading", func() Service { s := delivery; s.Type, s.OdometerKm = "maintenance", 3000; return s }(), reading(4200, 30), 40, true},
		{"a maintenance without a reading gives nothing", func() Service { s := delivery; s.Type = "maintenance"; return s }(), reading(4200, 30), 0, false},
		{"no reading", delivery, reading(0, 20), 0, false},
		{"another car of the customer", delivery, reading(1600, 20, func(s *Service) { s.Vehicle = "VIN2" }), 0, false},
		{"no vehicle named: the customer's car", delivery, reading(1600, 20, func(s *Service) { s.Vehicle = "" }), 80, true},
		{"another customer", delivery, reading(1600, 20, func(s *Service) { s.CustomerID = "d" }), 0, false},
		{"less than a day later", delivery, reading(50, 0.5), 0, false},
		{"a reading below the base's", func() Service { s := delivery; s.Type, s.OdometerKm = "maintenance", 3000; return s }(), reading(2000, 30), 0, false},
		{"the service itself", delivery, func() Service { s := delivery; s.OdometerKm = 10; return s }(), 0, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			got, how, ok := DrivingHabit(c.base, c.later)
			require.Equal(t, c.ok, ok)
			require.InDelta(t, c.want, got, 1e-9)
			if ok {
				require.Contains(t, how, "km a day")
			}
		})
	}
}

// Seed 000 (auto): 首保 3个月或3000公里, 以先到为准 (ask the mileage); issue 16:
// a later reading moves the reminder. Hand computation: delivered 10 January
// 09:00 without km_per_day, so 3 months (10 April) count and the SMS is due
// 27 March 09:00. A repair 20 days later reads 1,600 km: 80 km a day, 3,000
// km after 37.5 days (16 February 21:00), the SMS due 2 February 21:00 and
// timely until 9 February 21:00.
func TestRemileage(t *testing.T) {
	d0 := time.Date(2026, 1, 10, 9, 0, 0, 0, time.UTC)
	p := firstMaintenance()
	delivery := Service{Tenant: "t", ID: "v1", Type: TypeVehicleDelivery, CustomerID: "c", CompletedAt: d0}
	vs, err := p.Plan(delivery, NoHolidays{}, nil)
	require.NoError(t, err)
	v := vs[0]
	require.Equal(t, time.Date(2026, 3, 27, 9, 0, 0, 0, time.UTC), v.DueAt)

	repair := Service{Tenant: "t", ID: "r1", Type: "repair", CustomerID: "c", CompletedAt: d0.Add(20 * 24 * time.Hour), OdometerKm: 1600}
	n, ok := p.Remileage(v, delivery, repair, NoHolidays{})
	require.True(t, ok)
	require.Equal(t, time.Date(2026, 2, 2, 21, 0, 0, 0, time.UTC), n.DueAt)
	require.Equal(t, n.DueAt, n.Nominal)
	require.Equal(t, time.Date(2026, 2, 9, 21, 0, 0, 0, time.UTC), n.Deadline)
	require.Equal(t, KindMileage, n.Decisions[0].Kind)
	require.Contains(t, n.Decisions[0].Detail, "1600 km over 20 days = 80.0 km a day")
	require.Contains(t, n.Decisions[0].Detail, "due moved earlier from 2026-03-27T09:00:00Z to 2026-02-02T21:00:00Z")
	require.Contains(t, n.Decisions[0].Detail, "(was no km_per_day)")

	// The same reading again moves nothing.
	_, ok = p.Remileage(n, delivery, repair, NoHolidays{})
	require.False(t, ok)

	// A slower driver than the delivery said: 20 km a day gives 150 days, so
	// 3 months come first again: moved back later.
	fast := delivery
	fast.Attributes = map[string]string{AttrKmPerDay: "100"}
	vs, err = p.Plan(fast, NoHolidays{}, nil)
	require.NoError(t, err)
	require.Equal(t, d0.Add(16*24*time.Hour), vs[0].DueAt, "3,000 km at 100 km a day: day 30, SMS on day 16")
	slow := repair
	slow.OdometerKm = 400
	n, ok = p.Remileage(vs[0], fast, slow, NoHolidays{})
	require.True(t, ok)
	require.Equal(t, time.Date(2026, 3, 27, 9, 0, 0, 0, time.UTC), n.DueAt)
	require.Contains(t, n.Decisions[0].Detail, "due moved later")
	require.Contains(t, n.Decisions[0].Detail, "(was 100 km a day (km_per_day of v1))")

	// Past the mileage already: 3,200 km on day 20 puts 3,000 km on day
	// 18.75, so the SMS is due at the reading and its deadline (day 11.75) is past.
	far := repair
	far.OdometerKm = 3200
	n, ok = p.Remileage(v, delivery, far, NoHolidays{})
	require.True(t, ok)
	require.Equal(t, far.CompletedAt, n.DueAt)
	require.Equal(t, d0.Add(time.Duration(11.75*float64(24*time.Hour))), n.Deadline)
	require.True(t, n.Late())

	// Steps without a mileage anchor, and later occurrences, are not moved.
	plain := p
	plain.Steps = []Step{{Offset: Duration(24 * time.Hour), Channel: ChannelPhone, SampleRate: 1}}
	vs, err = plain.Plan(delivery, NoHolidays{}, nil)
	require.NoError(t, err)
	_, ok = plain.Remileage(vs[0], delivery, repair, NoHolidays{})
	require.False(t, ok)
}
