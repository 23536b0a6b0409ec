package policy

import (
	"fmt"
	"math"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// plan plans the service with a fresh quota in memory.
func plan(t *testing.T, p Policy, s Service, cal Calendar) []Visit {
	t.Helper()
	vs, err := p.Plan(s, cal, MemoryQuota{})
	require.NoError(t, err)
	return vs
}

// Seed 000 (property), lines 69, 71 and 73: "回访率达50%" (closed complaints),
// 30% (repairs), 10% (community events) are minimums: after every eligible
// service the stratum has sampled exactly ceil(rate × eligible), never less.
func TestQuotaMeetsTheRateAtEveryPoint(t *testing.T) {
	for _, rate := range []float64{0.5, 0.3, 0.1, 0.9, 1.0 / 3, 0.07, 1} {
		t.Run(fmt.Sprint(rate), func(t *testing.T) {
			var tl Tally
			for n := int64(1); n <= 1000; n++ {
				tl, _ = tl.Take(rate)
				want := int64(math.Ceil(rate*float64(n) - 1e-9))
				require.Equal(t, n, tl.Eligible)
				require.Equal(t, want, tl.Sampled, "after %d eligible at %g", n, rate)
			}
		})
	}
	require.Equal(t, int64(51), Required(0.5, 101), "50% of 101 is at least 51")
	require.Equal(t, int64(3), Required(0.3, 10), "0.3 × 10 is 3, not 4 (floating point's 3.0000000000000004)")
	require.Equal(t, int64(1), Required(1.0/3, 3))
	require.Equal(t, int64(1), Required(0.1, 1), "the first service is sampled in")
}

// Seed 000 (property), line 69: a rate raised within a month is caught up
// (every service sampled in until the month meets it); a lowered one samples
// no more than it needs.
func TestQuotaFollowsARateChangedWithinThePeriod(t *testing.T) {
	var tl Tally
	for range 10 {
		tl, _ = tl.Take(0.1)
	}
	require.Equal(t, Tally{Eligible: 10, Sampled: 1}, tl)
	var in bool
	for range 3 {
		tl, in = tl.Take(0.5)
		require.True(t, in, "catching up with 50%")
	}
	require.Equal(t, Tally{Eligible: 13, Sampled: 4}, tl)
	for range 5 {
		tl, in = tl.Take(0.5)
		require.True(t, in, "catching up with 50%")
	}
	require.Equal(t, Tally{Eligible: 18, Sampled: 9}, tl, "caught up: ceil(0.5 × 18)")
	tl, in = tl.Take(0.5)
	require.True(t, in, "the 19th: ceil(9.5) = 10")
	tl, in = tl.Take(0.5)
	require.False(t, in, "the 20th: ceil(10) = 10")
	require.Equal(t, Tally{Eligible: 20, Sampled: 10}, tl)
	tl, in = tl.Take(0.1)
	require.False(t, in)
	require.Equal(t, int64(10), tl.Sampled)
}

// Seed 000 (property), line 69: closed complaints "三天内进行回访,回访率达50%":
// the quota counts per org unit and calendar month (in the tenant's zone),
// and a month starts afresh.
func TestPlanSamplesByQuotaPerOrgUnitAndMonth(t *testing.T) {
	p := Policy{ID: "cp", Name: "closed", Version: 1, Active: true, Tenant: "t",
		Steps: []Step{{Within: Duration(3 * 24 * time.Hour), Channel: ChannelPhone, SampleRate: 0.5}}}
	q := MemoryQuota{}
	in := map[string]int{}
	march := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
	for i := range 101 {
		for _, unit := range []string{"north", "south"} {
			vs, err := p.Plan(Service{Tenant: "t", ID: fmt.Sprintf("%s-%d", unit, i), OrgUnit: unit, CompletedAt: march.Add(time.Duration(i) * time.Hour)}, NoHolidays{}, q)
			require.NoError(t, err)
			if vs[0].Planned {
				in[unit]++
			}
			require.Equal(t, KindSample, vs[0].Decisions[len(vs[0].Decisions)-1].Kind)
		}
	}
	require.Equal(t, map[string]int{"north": 51, "south": 51}, in, "50% of 101 is 51 in each org unit")
	require.Equal(t, Tally{Eligible: 101, Sampled: 51}, q[Stratum{Tenant: "t", PolicyID: "cp", OrgUnit: "north", Period: "2026-03"}])

	vs, err := p.Plan(Service{Tenant: "t", ID: "april", OrgUnit: "north", CompletedAt: time.Date(2026, 4, 1, 0, 0, 0, 0, time.UTC)}, NoHolidays{}, q)
	require.NoError(t, err)
	require.True(t, vs[0].Planned, "April's quota starts afresh")
	require.Contains(t, vs[0].Decisions[len(vs[0].Decisions)-1].Detail, "eligible service 1 of org unit north, 2026-04: quota ceil(0.5 × 1) = 1, 1 sampled with this one: sampled in")

	shanghai, err := time.LoadLocation("Asia/Shanghai")
	require.NoError(t, err)
	require.Equal(t, "2026-04", PeriodOf(time.Date(2026, 3, 31, 17, 0, 0, 0, time.UTC), shanghai), "01:00 on 1 April in Shanghai")
	require.Equal(t, "2026-03", PeriodOf(time.Date(2026, 3, 31, 17, 0, 0, 0, time.UTC), nil))
}

// A step sampling everyone counts nothing; a nil quota (a complaint that
// needs no follow-up) counts nothing either.
func TestFullRateAndNilQuotaCountNothing(t *testing.T) {
	q := MemoryQuota{}
	all := Policy{ID: "all", Active: true, Steps: []Step{{Channel: ChannelPhone, SampleRate: 1}}}
	vs, err := all.Plan(Service{ID: "s", CompletedAt: completed}, NoHolidays{}, q)
	require.NoError(t, err)
	require.True(t, vs[0].Planned)
	half := Policy{ID: "half", Active: true, Steps: []Step{{Channel: ChannelPhone, SampleRate: 0.5}}}
	vs, err = half.Plan(Service{ID: "s", CompletedAt: completed}, NoHolidays{}, nil)
	require.NoError(t, err)
	require.True(t, vs[0].Planned)
	require.Empty(t, q)
}
