package rollup_test

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/types/known/timestamppb"

	eventsv1 "github.com/huifang/huifang/proto/huifang/events/v1"
	typesv1 "github.com/huifang/huifang/proto/huifang/types/v1"

	"github.com/huifang/huifang/services/analytics/internal/figures"
	"github.com/huifang/huifang/services/analytics/internal/rollup"
)

// buckets applies visit events in order as the consumer does (visits,
// service entries, customer members and bucket counters in memory, with
// the rules of store.ApplyMembers) and returns the non-empty buckets as
// "span period unit eligible/covered" (unit "*" for all units).
func buckets(evs []rollup.VisitEvent, order []int) []string {
	visits := map[string]rollup.Visit{}
	entries := map[string]rollup.ServiceCoverage{}
	members := map[rollup.MemberKey][2]int64{}
	counts := map[string][2]int64{}
	for _, i := range order {
		id := evs[i].GetVisitId()
		before, ok := visits[id]
		if !ok {
			before = rollup.Visit{Tenant: "default", VisitID: id}
		}
		after := rollup.Apply(before, evs[i])
		var was, is []rollup.MemberDelta
		for _, k := range rollup.CoverageKeys(before, after) {
			old, ok := entries[k]
			if !ok {
				old = rollup.ServiceCoverage{Tenant: "default", ServiceID: k}
			}
			cur := old.Move(before, after)
			was, is = append(was, old.Members()...), append(is, cur.Members()...)
			entries[k] = cur
		}
		for _, d := range rollup.MemberDiff(was, is) {
			m := members[d.MemberKey]
			n := [2]int64{m[0] + d.Services, m[1] + d.Covered}
			if n == [2]int64{} {
				delete(members, d.MemberKey)
			} else {
				members[d.MemberKey] = n
			}
			unit := d.OrgUnit
			if d.AllUnits {
				unit = "*"
			}
			b := d.Span + " " + d.Period.Format(time.DateOnly) + " " + unit
			c := counts[b]
			c[0] += pos(n[0]) - pos(m[0])
			c[1] += pos(n[1]) - pos(m[1])
			counts[b] = c
		}
		visits[id] = after
	}
	var out []string
	for b, c := range counts {
		if c != [2]int64{} {
			out = append(out, fmt.Sprintf("%s %d/%d", b, c[1], c[0]))
		}
	}
	slices.Sort(out)
	return out
}

func pos(n int64) int64 {
	if n > 0 {
		return 1
	}
	return 0
}

func cust(id string) *typesv1.Customer { return &typesv1.Customer{Id: id} }

// Seed 003: coverage ≥ 90 % of served customers. A customer counts once per
// month (and year) and org unit however many services they had; covered when
// a follow-up of one of those services was made.
func TestCustomerCoverage(t *testing.T) {
	day := func(m time.Month, d int) *timestamppb.Timestamp {
		return timestamppb.New(time.Date(2025, m, d, 10, 0, 0, 0, time.UTC))
	}
	for _, tc := range []struct {
		name string
		evs  []rollup.VisitEvent
		want []string
	}{
		{"two services of one customer, one followed up: 1 of 1 customers", only(
			&eventsv1.VisitDue{VisitId: "v1", ServiceId: "s1", Customer: cust("c"), DueAt: day(3, 1), OrgUnit: "north"},
			&eventsv1.VisitDue{VisitId: "v2", ServiceId: "s2", Customer: cust("c"), DueAt: day(3, 9), OrgUnit: "north"},
			&eventsv1.VisitLogged{VisitId: "v2", LoggedAt: day(3, 9)}),
			[]string{"month 2025-03-01 * 1/1", "month 2025-03-01 north 1/1", "year 2025-01-01 * 1/1", "year 2025-01-01 north 1/1"}},
		{"one customer in two units: once per unit, once in all", only(
			&eventsv1.VisitDue{VisitId: "v1", ServiceId: "s1", Customer: cust("c"), DueAt: day(3, 1), OrgUnit: "north"},
			&eventsv1.VisitPlanned{VisitId: "v2", ServiceId: "s2", CustomerId: "c", DueAt: day(3, 2), OrgUnit: "south"},
			&eventsv1.VisitLogged{VisitId: "v2", LoggedAt: day(3, 2)}),
			[]string{"month 2025-03-01 * 1/1", "month 2025-03-01 north 0/1", "month 2025-03-01 south 1/1", "year 2025-01-01 * 1/1", "year 2025-01-01 north 0/1", "year 2025-01-01 south 1/1"}},
		{"one customer in two months: once in each, once in the year", only(
			&eventsv1.VisitDue{VisitId: "v1", ServiceId: "s1", Customer: cust("c"), DueAt: day(3, 1), OrgUnit: "north"},
			&eventsv1.VisitDue{VisitId: "v2", ServiceId: "s2", Customer: cust("c"), DueAt: day(4, 1), OrgUnit: "north"},
			&eventsv1.VisitLogged{VisitId: "v1", LoggedAt: day(3, 1)}),
			[]string{"month 2025-03-01 * 1/1", "month 2025-03-01 north 1/1", "month 2025-04-01 * 0/1", "month 2025-04-01 north 0/1", "year 2025-01-01 * 1/1", "year 2025-01-01 north 1/1"}},
		{"the only follow-up cancelled: the customer counts nowhere", only(
			&eventsv1.VisitDue{VisitId: "v1", ServiceId: "s1", Customer: cust("c"), DueAt: day(3, 1)},
			&eventsv1.VisitCancelled{VisitId: "v1"}),
			nil},
		{"a service whose follow-ups name no customer stands for a customer of its own", only(
			&eventsv1.VisitDue{VisitId: "v1", ServiceId: "s1", DueAt: day(3, 1)},
			&eventsv1.VisitDue{VisitId: "v2", ServiceId: "s2", DueAt: day(3, 1)}),
			[]string{"month 2025-03-01  0/2", "month 2025-03-01 * 0/2", "year 2025-01-01  0/2", "year 2025-01-01 * 0/2"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			require.Equal(t, tc.want, buckets(tc.evs, inOrder(len(tc.evs))))
		})
	}
}

// The customer buckets do not depend on the order of the events: all 720
// orders of six events about two services of one customer, one of whose
// visits learns its service and its customer only later.
func TestCustomerCoverageCommutes(t *testing.T) {
	day := func(d int) *timestamppb.Timestamp {
		return timestamppb.New(time.Date(2025, 3, d, 10, 0, 0, 0, time.UTC))
	}
	evs := only(
		&eventsv1.VisitDue{VisitId: "va", ServiceId: "s1", Customer: cust("c"), DueAt: day(1), OrgUnit: "north"},
		&eventsv1.VisitCancelled{VisitId: "va"},
		&eventsv1.VisitPlanned{VisitId: "vb", ServiceId: "s1", CustomerId: "c", DueAt: day(2), OrgUnit: "north"},
		&eventsv1.VisitPlanned{VisitId: "vc", DueAt: day(3), OrgUnit: "south"},
		&eventsv1.VisitDue{VisitId: "vc", ServiceId: "s2", Customer: cust("c"), DueAt: day(3), OrgUnit: "south"},
		&eventsv1.VisitLogged{VisitId: "vc", ServiceId: "s2", CustomerId: "c", LoggedAt: day(3)},
	)
	want := []string{"month 2025-03-01 * 1/1", "month 2025-03-01 north 0/1", "month 2025-03-01 south 1/1",
		"year 2025-01-01 * 1/1", "year 2025-01-01 north 0/1", "year 2025-01-01 south 1/1"}
	n := 0
	permute(len(evs), func(order []int) {
		n++
		require.Equal(t, want, buckets(evs, order), "order %v", order)
	})
	require.Equal(t, 720, n)
}

// Seed 003's worked example per customer: 10 customers served and due for a
// follow-up in March, 12 services (two customers twice); 9 customers reached
// (one of them only on their second service), 1 never: 9 / 10 = 90 %,
// meets the target, while per service it is 9 / 12 (75 %).
func TestCustomerCoverageWorkedExample(t *testing.T) {
	d := timestamppb.New(time.Date(2025, 3, 5, 10, 0, 0, 0, time.UTC))
	var evs []rollup.VisitEvent
	for i := range 10 {
		c := fmt.Sprintf("c%02d", i)
		v := "v" + c
		evs = append(evs, &eventsv1.VisitDue{VisitId: v, ServiceId: "s" + c, Customer: cust(c), DueAt: d, OrgUnit: "north"})
		switch {
		case i < 8:
			evs = append(evs, &eventsv1.VisitLogged{VisitId: v, LoggedAt: d})
		case i == 8: // the first service not reached, the second one is
			evs = append(evs, &eventsv1.VisitDue{VisitId: v + "b", ServiceId: "s" + c + "b", Customer: cust(c), DueAt: d, OrgUnit: "north"},
				&eventsv1.VisitLogged{VisitId: v + "b", LoggedAt: d})
		case i == 9: // two services, neither reached
			evs = append(evs, &eventsv1.VisitDue{VisitId: v + "b", ServiceId: "s" + c + "b", Customer: cust(c), DueAt: d, OrgUnit: "north"})
		}
	}
	got := buckets(evs, inOrder(len(evs)))
	require.Contains(t, got, "month 2025-03-01 * 9/10")
	require.Contains(t, got, "month 2025-03-01 north 9/10")
	sum := map[string]int64{}
	for _, d := range services(evs, inOrder(len(evs))) {
		sum[d.Metric] += d.N
	}
	require.Equal(t, map[string]int64{rollup.MetricServiceEligible: 12, rollup.MetricServiceCovered: 9}, sum, "per service: 9 of 12")
	r := figures.NewTargets(nil).New(figures.CustomerCoverage, "", 9, 10)
	require.True(t, r.MeetsTarget(), "9 / 10 = 90 %% meets seed 003's 90 %%")
	require.False(t, figures.NewTargets(nil).New(figures.CustomerCoverage, "", 8, 10).MeetsTarget())
}
