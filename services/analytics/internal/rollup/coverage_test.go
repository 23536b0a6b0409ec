package rollup_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/types/known/timestamppb"

	eventsv1 "github.com/huifang/huifang/proto/huifang/events/v1"

	"github.com/huifang/huifang/services/analytics/internal/figures"
	"github.com/huifang/huifang/services/analytics/internal/rollup"
)

// services applies visit events in order as the consumer does, keeping the
// visits and the service coverage entries in memory, and returns every
// counter the events added, merged.
func services(evs []rollup.VisitEvent, order []int) []rollup.Delta {
	visits := map[string]rollup.Visit{}
	entries := map[string]rollup.ServiceCoverage{}
	var all []rollup.Delta
	for _, i := range order {
		id := evs[i].GetVisitId()
		before, ok := visits[id]
		if !ok {
			before = rollup.Visit{Tenant: "default", VisitID: id}
		}
		after := rollup.Apply(before, evs[i])
		for _, k := range rollup.CoverageKeys(before, after) {
			old, ok := entries[k]
			if !ok {
				old = rollup.ServiceCoverage{Tenant: "default", ServiceID: k}
			}
			cur := old.Move(before, after)
			all = append(all, rollup.Diff(old.Contribution(), cur.Contribution())...)
			entries[k] = cur
		}
		visits[id] = after
	}
	return rollup.Merge(all)
}

func only(evs ...rollup.VisitEvent) []rollup.VisitEvent { return evs }

func inOrder(n int) []int {
	out := make([]int, n)
	for i := range out {
		out[i] = i
	}
	return out
}

// counters renders deltas as "metric day org_unit n".
func counters(ds []rollup.Delta) []string {
	var out []string
	for _, d := range ds {
		out = append(out, d.Metric+" "+d.Day.Format(time.DateOnly)+" "+d.OrgUnit+" "+string(rune('0'+d.N)))
	}
	return out
}

// Seed 003: coverage ≥ 90 % of served customers: a served service counts
// once, eligible when one of its follow-ups fell due and was not cancelled,
// on the day its first such follow-up fell due; covered when one was made.
func TestServiceCoverage(t *testing.T) {
	ts := timestamppb.New
	day := func(d int) *timestamppb.Timestamp { return ts(time.Date(2025, 3, d, 10, 0, 0, 0, time.UTC)) }
	for _, tc := range []struct {
		name string
		evs  []rollup.VisitEvent
		want []string
	}{
		{"one follow-up due, not made: eligible, not covered", only(
			&eventsv1.VisitDue{VisitId: "v1", ServiceId: "s", DueAt: day(1), OrgUnit: "north"}),
			[]string{"service.eligible 2025-03-01 north 1"}},
		{"two follow-ups, the second made: covered once, on the first's day", only(
			&eventsv1.VisitDue{VisitId: "v1", ServiceId: "s", DueAt: day(1), OrgUnit: "north"},
			&eventsv1.VisitDue{VisitId: "v2", ServiceId: "s", DueAt: day(8), OrgUnit: "north"},
			&eventsv1.VisitLogged{VisitId: "v2", ServiceId: "s", LoggedAt: day(8)}),
			[]string{"service.covered 2025-03-01 north 1", "service.eligible 2025-03-01 north 1"}},
		{"the first follow-up cancelled: the service counts from the second", only(
			&eventsv1.VisitDue{VisitId: "v1", ServiceId: "s", DueAt: day(1), OrgUnit: "north"},
			&eventsv1.VisitCancelled{VisitId: "v1"},
			&eventsv1.VisitPlanned{VisitId: "v2", ServiceId: "s", DueAt: day(3), OrgUnit: "south"}),
			[]string{"service.eligible 2025-03-03 south 1"}},
		{"every follow-up cancelled: not eligible", only(
			&eventsv1.VisitDue{VisitId: "v1", ServiceId: "s", DueAt: day(1)},
			&eventsv1.VisitCancelled{VisitId: "v1"}),
			nil},
		{"two services, one made, one not: 1 of 2", only(
			&eventsv1.VisitDue{VisitId: "v1", ServiceId: "s1", DueAt: day(1)},
			&eventsv1.VisitDue{VisitId: "v2", ServiceId: "s2", DueAt: day(1)},
			&eventsv1.VisitLogged{VisitId: "v1", LoggedAt: day(2)}),
			[]string{"service.covered 2025-03-01  1", "service.eligible 2025-03-01  2"}},
		{"a visit naming no service stands for a service of its own", only(
			&eventsv1.VisitDue{VisitId: "v1", DueAt: day(1)},
			&eventsv1.VisitDue{VisitId: "v2", DueAt: day(1)}),
			[]string{"service.eligible 2025-03-01  2"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			require.Equal(t, tc.want, counters(services(tc.evs, inOrder(len(tc.evs)))))
		})
	}
}

// The service counters do not depend on the order of the visits' events,
// including a service id that arrives after the visit was due (the visit
// moves from a service of its own to its service).
func TestServiceCoverageCommutes(t *testing.T) {
	ts := timestamppb.New
	day := func(d int) *timestamppb.Timestamp { return ts(time.Date(2025, 3, d, 10, 0, 0, 0, time.UTC)) }
	evs := only(
		&eventsv1.VisitDue{VisitId: "va", ServiceId: "s", DueAt: day(1), OrgUnit: "north"},
		&eventsv1.VisitCancelled{VisitId: "va"},
		&eventsv1.VisitPlanned{VisitId: "vb", ServiceId: "s", DueAt: day(2), OrgUnit: "north"},
		&eventsv1.VisitLogged{VisitId: "vb", ServiceId: "s", LoggedAt: day(2)},
		&eventsv1.VisitPlanned{VisitId: "vc", DueAt: day(3), OrgUnit: "south"},
		&eventsv1.VisitDue{VisitId: "vc", ServiceId: "s", DueAt: day(3), OrgUnit: "south"},
	)
	want := []string{"service.covered 2025-03-02 north 1", "service.eligible 2025-03-02 north 1"}
	n := 0
	permute(len(evs), func(order []int) {
		n++
		require.Equal(t, want, counters(services(evs, order)), "order %v", order)
	})
	require.Equal(t, 720, n)
}

// docs/figures.md's worked example: 20 services due for a follow-up in
// March, 17 reached on the first follow-up, 1 only on its second, 2 never:
// 18 / 20 = 90 %, seed 003's target exactly.
func TestServiceCoverageWorkedExample(t *testing.T) {
	day := timestamppb.New(time.Date(2025, 3, 5, 10, 0, 0, 0, time.UTC))
	later := timestamppb.New(time.Date(2025, 3, 12, 10, 0, 0, 0, time.UTC))
	var evs []rollup.VisitEvent
	for i := range 20 {
		s, v := fmt.Sprintf("s%02d", i), fmt.Sprintf("v%02d", i)
		evs = append(evs, &eventsv1.VisitDue{VisitId: v, ServiceId: s, DueAt: day})
		switch {
		case i < 17:
			evs = append(evs, &eventsv1.VisitLogged{VisitId: v, LoggedAt: day})
		case i == 17:
			evs = append(evs, &eventsv1.VisitDue{VisitId: v + "b", ServiceId: s, DueAt: later},
				&eventsv1.VisitLogged{VisitId: v + "b", LoggedAt: later})
		}
	}
	got := services(evs, inOrder(len(evs)))
	sum := map[string]int64{}
	for _, d := range got {
		sum[d.Metric] += d.N
	}
	require.Equal(t, map[string]int64{rollup.MetricServiceEligible: 20, rollup.MetricServiceCovered: 18}, sum)
	r := figures.NewTargets(nil).New(figures.Coverage, "", sum[rollup.MetricServiceCovered], sum[rollup.MetricServiceEligible])
	require.True(t, r.MeetsTarget(), "18 / 20 = 90 %% meets seed 003's 90 %%")
}

// A visit counts in its service's coverage exactly when it adds to the
// counters, on the day its counters fall on (CoverageVisit decides it
// without building the deltas).
func TestCoverageVisitAgreesWithContribution(t *testing.T) {
	due := time.Date(2026, 3, 5, 22, 30, 0, 0, time.FixedZone("CST", 8*3600))
	logged := due.Add(26 * time.Hour)
	for _, v := range []rollup.Visit{
		{},
		{Planned: true},
		{Planned: true, DueAt: due},
		{Due: true, DueAt: due, Deadline: due.Add(time.Hour), ServiceCompletedAt: due.Add(-time.Hour)},
		{Planned: true, DueAt: due, Cancelled: true},
		{Planned: true, DueAt: due, Cancelled: true, LoggedAt: logged},
		{LoggedAt: logged},
		{LoggedAt: logged, Rated: true, Attempted: true, Answered: true},
		{Due: true, LoggedAt: logged},
		{Attempted: true, Unreachable: true},
		{Due: true, DueAt: due, Unreachable: true, Late: true, Deadline: due},
	} {
		v.Tenant, v.VisitID, v.CustomerID, v.OrgUnit = "t", "v", "c", "north"
		cs := v.Contribution()
		sv, ok := v.CoverageVisit()
		require.Equal(t, len(cs) > 0, ok, "%+v", v)
		if !ok {
			continue
		}
		require.Equal(t, rollup.MetricDue, cs[0].Metric, "%+v", v)
		require.True(t, cs[0].Day.Equal(sv.Day), "%+v: %v and %v", v, cs[0].Day, sv.Day)
		require.Equal(t, rollup.Day(sv.Day), sv.Day)
		require.Equal(t, v.Logged(), sv.Done)
		for _, d := range cs {
			require.Equal(t, sv.Day, d.Day, "every counter of %+v on one day", v)
		}
	}
}
