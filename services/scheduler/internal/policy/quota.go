package policy

import (
	"fmt"
	"math"
	"time"
)

// Sampling is a deterministic quota, not a draw: the seeds' rates are
// minimums (seed 000 (property): closed complaints "回访率达50%", repairs
// 30%, community events 10%), so a step with a rate below 1 samples the
// services of its stratum in the order they are planned, and takes the n-th
// eligible one exactly when fewer than ceil(rate × n) were taken before it.
// After every service, taken = ceil(rate × eligible): the rate is met or
// exceeded at every point of the period, by less than one service (a rate
// raised within the period is caught up by sampling every service in until
// it is met again). The
// stratum is the tenant, the policy, the step and the service's org unit;
// the period is the calendar month of the service's completion in the
// tenant's time zone (seed 003 2.1: the dispatcher reports the statistics
// monthly), so each month's rate stands on its own.

// Stratum names the quota a service counts in.
type Stratum struct {
	Tenant   string
	PolicyID string
	Step     int
	OrgUnit  string
	// Period is the calendar month of the service ("2026-03") in the tenant's time zone.
	Period string
}

// String writes the stratum as decisions show it.
func (s Stratum) String() string {
	unit := s.OrgUnit
	if unit == "" {
		unit = "(no org unit)"
	}
	return fmt.Sprintf("org unit %s, %s", unit, s.Period)
}

// PeriodOf is the sampling period of a service completed at t: its calendar
// month in loc.
func PeriodOf(t time.Time, loc *time.Location) string {
	if loc == nil {
		loc = time.UTC
	}
	return t.In(loc).Format("2006-01")
}

// Tally is a stratum's count: services eligible for the step so far, and
// how many of them were sampled in.
type Tally struct {
	Eligible, Sampled int64
}

// Required is the number of services a stratum must have sampled in once n
// are eligible at rate: ceil(rate × n), with rate × n read to 1e-9 so that
// floating point's 0.3 × 10 = 3.0000000000000004 does not add a service
// (the store computes the same in SQL: ceil(rate × n − 1e-9)).
func Required(rate float64, n int64) int64 {
	if n <= 0 {
		return 0
	}
	return int64(math.Ceil(min(rate, 1)*float64(n) - quotaSlack))
}

// quotaSlack is the precision rate × n is read to.
const quotaSlack = 1e-9

// Take counts one more eligible service: it is sampled in when the stratum
// has sampled fewer than Required(rate, eligible) with it counted. The rate
// is the step's current one, so a rate changed within a period is met from
// then on over the whole period (a higher rate samples every service until
// it is caught up).
func (t Tally) Take(rate float64) (Tally, bool) {
	t.Eligible++
	in := t.Sampled < Required(rate, t.Eligible)
	if in {
		t.Sampled++
	}
	return t, in
}

// Sample is a service's place in its stratum's quota.
type Sample struct {
	Stratum Stratum
	// Tally is the stratum's count with this service counted.
	Tally Tally
	In    bool
}

// Detail says in words why the service was sampled in or out.
func (s Sample) Detail(rate float64) string {
	verdict := "sampled in"
	if !s.In {
		verdict = "sampled out: the quota is met"
	}
	return fmt.Sprintf("eligible service %d of %s: quota ceil(%g × %d) = %d, %d sampled with this one: %s",
		s.Tally.Eligible, s.Stratum, rate, s.Tally.Eligible, Required(rate, s.Tally.Eligible), s.Tally.Sampled, verdict)
}

// Quota counts eligible services per stratum: the store's rows in the
// planning transaction, or a map in a simulation.
type Quota interface {
	// Take counts one more eligible service in the stratum at rate and says
	// whether it is sampled in, with the stratum's count after it.
	Take(st Stratum, rate float64) (Sample, error)
}

// MemoryQuota is a Quota in memory, for simulations and tests.
type MemoryQuota map[Stratum]Tally

// Take counts the service in the map.
func (m MemoryQuota) Take(st Stratum, rate float64) (Sample, error) {
	t, in := m[st].Take(rate)
	m[st] = t
	return Sample{Stratum: st, Tally: t, In: in}, nil
}
