package rollup_test

import (
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/types/known/timestamppb"

	eventsv1 "github.com/huifang/huifang/proto/huifang/events/v1"
	typesv1 "github.com/huifang/huifang/proto/huifang/types/v1"

	"github.com/huifang/huifang/services/analytics/internal/rollup"
)

func hour(h int) time.Time {
	return time.Date(2025, 3, 1, 0, 0, 0, 0, time.UTC).Add(time.Duration(h) * time.Hour)
}

// metrics lists the metrics of a contribution.
func metrics(ds []rollup.Delta) []string {
	var out []string
	for _, d := range ds {
		out = append(out, d.Metric)
	}
	slices.Sort(out)
	return out
}

func TestVisitContribution(t *testing.T) {
	base := rollup.Visit{Tenant: "default", VisitID: "v", Due: true, DueAt: hour(10), Deadline: hour(34), ServiceCompletedAt: hour(0)}
	for _, tc := range []struct {
		name string
		v    func(v rollup.Visit) rollup.Visit
		want []string
	}{
		{"due, not made yet: counts against coverage and timeliness (seed 003: against what was due)", func(v rollup.Visit) rollup.Visit { return v },
			[]string{"visit.due", "visit.with_base", "visit.with_deadline"}},
		{"made by the deadline and within 48 h, rated", func(v rollup.Visit) rollup.Visit { v.LoggedAt, v.Rated = hour(20), true; return v },
			[]string{"visit.done", "visit.due", "visit.in_time", "visit.on_time", "visit.returned", "visit.with_base", "visit.with_deadline", "visit.within_48h"}},
		{"exactly at the deadline is on time", func(v rollup.Visit) rollup.Visit { v.LoggedAt = hour(34); return v },
			[]string{"visit.done", "visit.due", "visit.in_time", "visit.on_time", "visit.with_base", "visit.with_deadline", "visit.within_48h"}},
		{"after the deadline, exactly 48 h after the service (seed 003: within 48 h)", func(v rollup.Visit) rollup.Visit { v.LoggedAt = hour(48); return v },
			[]string{"visit.done", "visit.due", "visit.with_base", "visit.with_deadline", "visit.within_48h"}},
		{"49 h after the service", func(v rollup.Visit) rollup.Visit { v.LoggedAt = hour(49); return v },
			[]string{"visit.done", "visit.due", "visit.with_base", "visit.with_deadline"}},
		{"issue 16: fired after its deadline and logged at once: late, never on time", func(v rollup.Visit) rollup.Visit { v.Late, v.LoggedAt = true, hour(40); return v },
			[]string{"visit.done", "visit.due", "visit.late", "visit.with_base", "visit.with_deadline", "visit.within_48h"}},
		{"issue 16: fired late, the record dated before the deadline: still not on time", func(v rollup.Visit) rollup.Visit { v.Late, v.LoggedAt = true, hour(30); return v },
			[]string{"visit.done", "visit.due", "visit.in_time", "visit.late", "visit.with_base", "visit.with_deadline", "visit.within_48h"}},
		{"cancelled: not due", func(v rollup.Visit) rollup.Visit { v.Cancelled = true; return v }, nil},
		{"cancelled after it was made: still made", func(v rollup.Visit) rollup.Visit { v.Cancelled, v.LoggedAt = true, hour(20); return v },
			[]string{"visit.done", "visit.due", "visit.in_time", "visit.on_time", "visit.with_base", "visit.with_deadline", "visit.within_48h"}},
		{"unreachable after two unanswered attempts", func(v rollup.Visit) rollup.Visit { v.Unreachable, v.Attempted = true, true; return v },
			[]string{"visit.attempted", "visit.due", "visit.unreachable", "visit.with_base", "visit.with_deadline"}},
		{"unreachable, then made: not unreachable", func(v rollup.Visit) rollup.Visit {
			v.Unreachable, v.Attempted, v.Answered, v.LoggedAt = true, true, true, hour(20)
			return v
		}, []string{"visit.attempted", "visit.contacted", "visit.done", "visit.due", "visit.in_time", "visit.on_time", "visit.with_base", "visit.with_deadline", "visit.within_48h"}},
		{"only attempts known, no due time: nothing yet", func(v rollup.Visit) rollup.Visit {
			return rollup.Visit{Tenant: "default", VisitID: "v", Attempted: true}
		}, nil},
		{"logged without a plan, deadline or service time: due and in time", func(v rollup.Visit) rollup.Visit {
			return rollup.Visit{Tenant: "default", VisitID: "v", LoggedAt: hour(3)}
		}, []string{"visit.done", "visit.due", "visit.in_time"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := tc.v(base).Contribution()
			require.Equal(t, tc.want, metrics(got))
			for _, d := range got {
				require.Equal(t, int64(1), d.N)
			}
		})
	}
}

// The counters a visit ends with do not depend on the order its events
// come in: every permutation of its five events sums to the same deltas.
func TestVisitEventsCommute(t *testing.T) {
	ts := timestamppb.New
	evs := []rollup.VisitEvent{
		&eventsv1.VisitPlanned{VisitId: "v", DueAt: ts(hour(10)), Deadline: ts(hour(34)), OrgUnit: "north", PolicyId: "p"},
		&eventsv1.VisitDue{VisitId: "v", DueAt: ts(hour(10)), Deadline: ts(hour(34)), ServiceCompletedAt: ts(hour(0)), OrgUnit: "north"},
		&eventsv1.VisitAssigned{VisitId: "v", AgentId: "a1"},
		&eventsv1.VisitAttempted{VisitId: "v", AgentId: "a1", Disposition: typesv1.Disposition_DISPOSITION_ANSWERED},
		&eventsv1.VisitLogged{VisitId: "v", AgentId: "a1", LoggedAt: ts(hour(20)), Answers: []*typesv1.Answer{{Aspect: "overall", Rating: typesv1.Rating_RATING_SATISFIED}}},
	}
	var want []rollup.Delta
	permute(len(evs), func(order []int) {
		v := rollup.Visit{Tenant: "default", VisitID: "v"}
		var all []rollup.Delta
		for _, i := range order {
			next := rollup.Apply(v, evs[i])
			all = append(all, rollup.Diff(v.Contribution(), next.Contribution())...)
			v = next
		}
		got := rollup.Merge(all)
		if want == nil {
			want = got
			require.Len(t, want, 10, "every visit metric but unreachable")
		}
		require.Equal(t, want, got, "order %v", order)
	})
}

func permute(n int, f func([]int)) {
	var rec func(k int, p []int)
	rec = func(k int, p []int) {
		if k == n {
			f(p)
			return
		}
		for i := k; i < n; i++ {
			p[k], p[i] = p[i], p[k]
			rec(k+1, p)
			p[k], p[i] = p[i], p[k]
		}
	}
	p := make([]int, n)
	for i := range p {
		p[i] = i
	}
	rec(0, p)
}

// A visit whose org unit becomes known later moves its counters: the diff
// takes them out of the old bucket and puts them in the new one.
func TestDiffMovesCounters(t *testing.T) {
	before := rollup.Visit{Tenant: "default", VisitID: "v", Due: true, DueAt: hour(10)}
	after := before
	after.OrgUnit = "north"
	d := rollup.Diff(before.Contribution(), after.Contribution())
	require.Len(t, d, 2)
	byUnit := map[string]int64{d[0].OrgUnit: d[0].N, d[1].OrgUnit: d[1].N}
	require.Equal(t, map[string]int64{"": -1, "north": 1}, byUnit)
	require.Empty(t, rollup.Diff(after.Contribution(), after.Contribution()))
}

func TestComplaintContribution(t *testing.T) {
	esc := hour(0)
	c := rollup.Complaint{Tenant: "default", ComplaintID: "c", EscalatedAt: esc, Deadline: esc.Add(72 * time.Hour)}
	require.Equal(t, []string{"complaint.escalated"}, metrics(c.Contribution()))

	c.ResolvedAt = esc.Add(48 * time.Hour)
	got := c.Contribution()
	// A resolution alone is no improvement (seed 003 asks for a plan carried out).
	require.Equal(t, []string{"complaint.escalated", "complaint.resolved", "complaint.resolved_on_time"}, metrics(got))
	for _, d := range got {
		if d.Metric == rollup.MetricResolved {
			require.Equal(t, int64(48*3600), d.Total, "resolution time in seconds")
		}
	}
	// Seed 003: an improvement within 30 days; 30 days and one second is too late.
	c.ResolvedAt = esc.Add(rollup.ImprovementWindow + time.Second)
	require.Equal(t, []string{"complaint.escalated", "complaint.resolved"}, metrics(c.Contribution()))

	// Reopened: no longer resolved until the next resolution.
	c = rollup.ApplyComplaint(c, &eventsv1.ComplaintReopened{ComplaintId: "c", At: timestamppb.New(c.ResolvedAt.Add(time.Hour))})
	require.True(t, c.Open())
	require.Equal(t, []string{"complaint.escalated"}, metrics(c.Contribution()))

	// Seed 004 (answer within the set time): the first acknowledgement counts, in seconds after escalation.
	for _, at := range []time.Time{esc.Add(6 * time.Hour), esc.Add(9 * time.Hour), esc.Add(6 * time.Hour)} {
		c = rollup.ApplyComplaint(c, &eventsv1.ComplaintAcknowledged{ComplaintId: "c", At: timestamppb.New(at)})
	}
	got = c.Contribution()
	require.Equal(t, []string{"complaint.acknowledged", "complaint.escalated"}, metrics(got))
	require.Equal(t, int64(6*3600), got[0].Total+got[1].Total)
}

func TestWonBack(t *testing.T) {
	last := time.Date(2024, 8, 31, 10, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		at   time.Time
		want bool
	}{
		{time.Date(2025, 2, 28, 9, 0, 0, 0, time.UTC), false}, // 31 Aug + 6 months is 3 Mar (Go normalises 31 Feb)
		{time.Date(2025, 3, 3, 10, 0, 0, 0, time.UTC), true},
		{time.Date(2024, 12, 1, 0, 0, 0, 0, time.UTC), false},
	} {
		require.Equal(t, tc.want, rollup.WonBack(last, tc.at), "seed 000: churned after 6 months without a service; back at %s", tc.at)
	}
	require.False(t, rollup.WonBack(time.Time{}, last), "a new customer is not won back")
}

// A customer's latest service moves forward only; "won back" compares a
// service with the latest one handled before it.
func TestCustomerServe(t *testing.T) {
	d := func(y int, m time.Month, day int) time.Time { return time.Date(y, m, day, 10, 0, 0, 0, time.UTC) }
	c := rollup.Customer{Tenant: "default", CustomerID: "cu1"}
	require.False(t, c.Serve(d(2024, 8, 1)), "a new customer is not won back")
	require.Equal(t, d(2024, 8, 1), c.LastServiceAt)
	require.False(t, c.Serve(d(2024, 9, 1)), "a month later: not churned")
	require.False(t, c.Serve(d(2024, 7, 1)), "an older service changes nothing")
	require.Equal(t, d(2024, 9, 1), c.LastServiceAt)
	require.False(t, c.Serve(d(2024, 9, 1)), "the same service again changes nothing")
	require.True(t, c.Serve(d(2025, 3, 1)), "6 months after the latest: won back (seed 000)")
	require.Equal(t, d(2025, 3, 1), c.LastServiceAt)
	require.False(t, c.Serve(d(2025, 3, 1)), "a redelivery does not win them back twice")
}

func TestFromVisitLogged(t *testing.T) {
	nps := int32(8)
	ev := &eventsv1.VisitLogged{VisitId: "v", LoggedAt: timestamppb.New(hour(30)), OrgUnit: " north ", Nps: &nps,
		Answers: []*typesv1.Answer{
			{Aspect: "Overall ", Rating: typesv1.Rating_RATING_SATISFIED},
			{Aspect: "cleaning", Rating: typesv1.Rating_RATING_FAIRLY_SATISFIED},
			{Aspect: "cleaning", Rating: typesv1.Rating_RATING_UNSATISFIED},
			{Aspect: "cleaning", Rating: typesv1.Rating_RATING_SATISFIED},
			{Aspect: "parking"},
		},
		Problems: []*typesv1.Problem{{Category: "product_quality"}, {}}}
	require.NoError(t, rollup.CheckVisitLogged(ev))
	got := rollup.FromVisitLogged(ev, "washer")
	type row struct {
		metric, aspect, category string
		n                        int64
	}
	var rows []row
	for _, d := range got {
		require.Equal(t, "north", d.OrgUnit)
		require.Equal(t, "washer", d.ProductCategory)
		require.Equal(t, time.Date(2025, 3, 2, 0, 0, 0, 0, time.UTC), d.Day)
		rows = append(rows, row{d.Metric, d.Aspect, d.Category, d.N})
	}
	// Seed 003 lines 66-69: one questionnaire returned (回收票数), one vote per
	// item; the record rated cleaning three times: its one vote is the least
	// favourable, so an item's votes never outnumber the questionnaires.
	require.ElementsMatch(t, []row{
		{"record.logged", "", "", 1},
		{"record.returned", "", "", 1},
		{"vote.satisfied", "overall", "", 1},
		{"vote.unsatisfied", "cleaning", "", 1},
		{"nps.passive", "", "", 1},
		{"problem", "", "product_quality", 1},
		{"problem", "", "other", 1},
	}, rows)
}

// A record that rates nothing is logged but not a questionnaire returned.
func TestFromVisitLoggedWithoutRatings(t *testing.T) {
	ev := &eventsv1.VisitLogged{VisitId: "v", LoggedAt: timestamppb.New(hour(30)), Answers: []*typesv1.Answer{{Aspect: "parking", Comment: "ok"}}}
	require.NoError(t, rollup.CheckVisitLogged(ev))
	var metrics []string
	for _, d := range rollup.FromVisitLogged(ev, "") {
		metrics = append(metrics, d.Metric)
	}
	require.Equal(t, []string{"record.logged"}, metrics)
}

func TestCheckVisitLogged(t *testing.T) {
	bad := int32(11)
	for _, tc := range []struct {
		name  string
		ev    *eventsv1.VisitLogged
		field string
	}{
		{"no visit id", &eventsv1.VisitLogged{LoggedAt: timestamppb.New(hour(1))}, "visit_id"},
		{"no logged_at", &eventsv1.VisitLogged{VisitId: "v"}, "logged_at"},
		{"aspect with a dash", &eventsv1.VisitLogged{VisitId: "v", LoggedAt: timestamppb.New(hour(1)), Answers: []*typesv1.Answer{{Aspect: "staff-attitude", Rating: typesv1.Rating_RATING_SATISFIED}}}, "answers[0].aspect"},
		{"unknown rating", &eventsv1.VisitLogged{VisitId: "v", LoggedAt: timestamppb.New(hour(1)), Answers: []*typesv1.Answer{{Aspect: "overall", Rating: 9}}}, "answers[0].rating"},
		{"nps above 10", &eventsv1.VisitLogged{VisitId: "v", LoggedAt: timestamppb.New(hour(1)), Nps: &bad}, "nps"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := rollup.CheckVisitLogged(tc.ev)
			require.ErrorContains(t, err, tc.field+":")
		})
	}
}

func TestCheckService(t *testing.T) {
	require.NoError(t, rollup.CheckService(&eventsv1.ServiceCompleted{ServiceId: "s", CompletedAt: timestamppb.New(hour(1))}))
	require.ErrorContains(t, rollup.CheckService(&eventsv1.ServiceCompleted{CompletedAt: timestamppb.New(hour(1))}), "service_id:")
	require.ErrorContains(t, rollup.CheckService(&eventsv1.ServiceCompleted{ServiceId: "s"}), "completed_at:")
	_, err := rollup.FromService(&eventsv1.ServiceCompleted{ServiceId: "s"}, true)
	require.ErrorContains(t, err, "completed_at:", "FromService refuses what CheckService refuses")
	ds, err := rollup.FromService(&eventsv1.ServiceCompleted{ServiceId: "s", CompletedAt: timestamppb.New(hour(1)), TenantId: " acme "}, true)
	require.NoError(t, err)
	require.Len(t, ds, 2)
	require.Equal(t, "acme", ds[0].Tenant, "the tenant as pkg/tenant reads it")
}
