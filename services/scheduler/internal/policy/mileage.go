package policy

import (
	"fmt"
	"maps"
	"strconv"
	"time"
)

// TypeVehicleDelivery is a new car delivered (seed 000, auto dealer): its
// odometer reads 0 km when the event gives no reading.
const TypeVehicleDelivery = "vehicle_delivery"

// MinReadingGap is how long after the service a visit follows a reading
// must be to give a driving habit: over a shorter time a few kilometres
// would make an absurd rate.
const MinReadingGap = 24 * time.Hour

// Odometer is the service's odometer reading and whether it has one: the
// event's, or 0 km for a new car delivered without one.
func (s Service) Odometer() (int64, bool) {
	if s.OdometerKm > 0 {
		return s.OdometerKm, true
	}
	return 0, s.Type == TypeVehicleDelivery
}

// SameVehicle tells whether o is about the car of s: the same customer and,
// when both name their vehicle, the same one.
func (s Service) SameVehicle(o Service) bool {
	if s.CustomerID == "" || s.CustomerID != o.CustomerID || s.Tenant != o.Tenant {
		return false
	}
	return s.Vehicle == "" || o.Vehicle == "" || s.Vehicle == o.Vehicle
}

// DrivingHabit is the km a day the car of base drove until the reading of
// later (seed 000 auto: "ask the mileage"; issue 16: later readings move
// reminders): (later's reading − base's) over the days between them, and
// how it was found. ok is false when later says nothing new about it: not
// the same car, no reading on either, not at least MinReadingGap later, or
// a reading not above base's.
func DrivingHabit(base, later Service) (kmPerDay float64, how string, ok bool) {
	from, okFrom := base.Odometer()
	if later.ID == base.ID || !base.SameVehicle(later) || !okFrom || later.OdometerKm <= from {
		return 0, "", false
	}
	gap := later.CompletedAt.Sub(base.CompletedAt)
	if gap < MinReadingGap {
		return 0, "", false
	}
	days := gap.Hours() / 24
	kmPerDay = float64(later.OdometerKm-from) / days
	how = fmt.Sprintf("odometer %d km at %s (%s %s) after %d km at %s (%s %s): %s km over %s days = %s km a day",
		later.OdometerKm, later.CompletedAt.UTC().Format(time.RFC3339), later.Type, later.ID,
		from, base.CompletedAt.UTC().Format(time.RFC3339), base.Type, base.ID,
		strconv.FormatInt(later.OdometerKm-from, 10), strconv.FormatFloat(days, 'f', -1, 64), strconv.FormatFloat(kmPerDay, 'f', 1, 64))
	return kmPerDay, how, true
}

// Remileage plans v (the first visit of a step with a mileage anchor,
// planned for base) again with the driving habit the reading of later
// gives (DrivingHabit) instead of base's km_per_day: "3 months or 3,000
// km, whichever first" counted from base with the new rate. The visit is
// not due before the reading (a car already past the mileage is reminded
// at once, late if its deadline has passed). It returns the visit planned
// anew, with a mileage decision saying why and from when to when, and false
// when the reading does not apply or does not move it.
func (p Policy) Remileage(v Visit, base, later Service, cal Calendar) (Visit, bool) {
	if v.Step >= len(p.Steps) || v.Occurrence != 0 {
		return Visit{}, false
	}
	st := p.Steps[v.Step]
	if st.Anchor.MileageKm <= 0 || st.Recurring() {
		return Visit{}, false
	}
	kmd, how, ok := DrivingHabit(base, later)
	if !ok {
		return Visit{}, false
	}
	was := "no km_per_day"
	if k := base.Attributes[AttrKmPerDay]; k != "" {
		was = k + " km a day (km_per_day of " + base.ID + ")"
	}
	s := base
	s.Attributes = maps.Clone(base.Attributes)
	if s.Attributes == nil {
		s.Attributes = map[string]string{}
	}
	s.Attributes[AttrKmPerDay] = strconv.FormatFloat(kmd, 'f', -1, 64)
	vs, err := p.Plan(s, cal, nil)
	if err != nil || v.Step >= len(vs) || !vs[v.Step].Planned {
		return Visit{}, false
	}
	n := vs[v.Step]
	if n.Nominal.Before(later.CompletedAt) {
		n.Nominal, n.OnDay = later.CompletedAt, false
		how += "; the mileage is (nearly) reached: due at the reading"
	}
	n.DueAt = n.Nominal
	if n.Nominal.Equal(v.Nominal) && n.Deadline.Equal(v.Deadline) {
		return Visit{}, false
	}
	dir := "later"
	if n.Nominal.Before(v.Nominal) {
		dir = "earlier"
	}
	detail := fmt.Sprintf("%s (was %s); anchor %d km: due moved %s from %s to %s, deadline %s",
		how, was, st.Anchor.MileageKm, dir, v.Nominal.UTC().Format(time.RFC3339), n.Nominal.UTC().Format(time.RFC3339),
		n.Deadline.UTC().Format(time.RFC3339))
	n.Occurrence, n.Draw, n.SampleRate = v.Occurrence, v.Draw, v.SampleRate
	n.Reason = fmt.Sprintf("policy %s v%d step %d: %s", p.Name, p.Version, v.Step, detail)
	ds := []Decision{{Kind: KindMileage, Detail: detail, At: later.CompletedAt}}
	for _, d := range n.Decisions {
		if d.Kind == KindAnchor {
			d.At = n.Nominal
			ds = append(ds, d)
		}
	}
	n.Decisions = ds
	return n, true
}
