package rollup_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/types/known/timestamppb"

	eventsv1 "github.com/huifang/huifang/proto/huifang/events/v1"
	typesv1 "github.com/huifang/huifang/proto/huifang/types/v1"

	"github.com/huifang/huifang/pkg/invalid"
	"github.com/huifang/huifang/services/analytics/internal/rollup"
	"github.com/huifang/huifang/services/analytics/internal/satisfaction"
)

const (
	sat    = typesv1.Rating_RATING_SATISFIED
	fairly = typesv1.Rating_RATING_FAIRLY_SATISFIED
	unsat  = typesv1.Rating_RATING_UNSATISFIED
	none   = typesv1.Rating_RATING_UNSPECIFIED
)

func answer(aspect string, r typesv1.Rating) *typesv1.Answer {
	return &typesv1.Answer{Aspect: aspect, Rating: r}
}

func visit(loggedAt time.Time, answers ...*typesv1.Answer) *eventsv1.VisitLogged {
	return &eventsv1.VisitLogged{
		EventId:  "ev-1",
		TenantId: "acme",
		VisitId:  "visit-1",
		OrgUnit:  "north",
		LoggedAt: timestamppb.New(loggedAt),
		Answers:  answers,
	}
}

func TestFromVisit(t *testing.T) {
	logged := time.Date(2025, 3, 14, 10, 30, 0, 0, time.UTC)
	day := time.Date(2025, 3, 14, 0, 0, 0, 0, time.UTC)
	bucket := func(aspect string) rollup.Bucket {
		return rollup.Bucket{Tenant: "acme", Day: day, OrgUnit: "north", Aspect: aspect}
	}
	for _, tc := range []struct {
		name string
		ev   *eventsv1.VisitLogged
		want []rollup.Increment
	}{
		{
			name: "one vote per rated answer, sorted by aspect",
			ev:   visit(logged, answer("overall", sat), answer("staff_attitude", unsat), answer("cleaning", fairly)),
			want: []rollup.Increment{
				{Bucket: bucket("cleaning"), Counts: satisfaction.Counts{FairlySatisfied: 1}},
				{Bucket: bucket("overall"), Counts: satisfaction.Counts{Satisfied: 1}},
				{Bucket: bucket("staff_attitude"), Counts: satisfaction.Counts{Unsatisfied: 1}},
			},
		},
		{
			name: "answers without a rating add nothing, even with a blank aspect",
			ev:   visit(logged, answer("overall", fairly), answer("parking", none), answer("", none)),
			want: []rollup.Increment{{Bucket: bucket("overall"), Counts: satisfaction.Counts{FairlySatisfied: 1}}},
		},
		{
			name: "two answers on one aspect are two votes in one bucket",
			ev:   visit(logged, answer("overall", sat), answer("overall", unsat)),
			want: []rollup.Increment{{Bucket: bucket("overall"), Counts: satisfaction.Counts{Satisfied: 1, Unsatisfied: 1}}},
		},
		{
			name: "aspects are trimmed and lower-cased",
			ev:   visit(logged, answer(" Overall ", sat)),
			want: []rollup.Increment{{Bucket: bucket("overall"), Counts: satisfaction.Counts{Satisfied: 1}}},
		},
		{
			name: "no answers, no increments",
			ev:   visit(logged),
			want: []rollup.Increment{},
		},
		{
			name: "the day is the UTC day: 07:30 in Shanghai is the day before in UTC",
			ev:   visit(time.Date(2025, 3, 15, 7, 30, 0, 0, time.FixedZone("CST", 8*3600)), answer("overall", sat)),
			want: []rollup.Increment{{Bucket: bucket("overall"), Counts: satisfaction.Counts{Satisfied: 1}}},
		},
		{
			name: "one second before midnight UTC stays on that day",
			ev:   visit(time.Date(2025, 3, 14, 23, 59, 59, 0, time.UTC), answer("overall", sat)),
			want: []rollup.Increment{{Bucket: bucket("overall"), Counts: satisfaction.Counts{Satisfied: 1}}},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := rollup.FromVisit(tc.ev)
			require.NoError(t, err)
			require.Equal(t, tc.want, got)
		})
	}
}

func TestFromVisitDefaultsTenant(t *testing.T) {
	ev := visit(time.Date(2025, 3, 14, 10, 0, 0, 0, time.UTC), answer("overall", sat))
	ev.TenantId = ""
	got, err := rollup.FromVisit(ev)
	require.NoError(t, err)
	require.Len(t, got, 1)
	require.Equal(t, "default", got[0].Tenant)
}

func TestFromVisitRefuses(t *testing.T) {
	logged := time.Date(2025, 3, 14, 10, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		name  string
		edit  func(ev *eventsv1.VisitLogged)
		field string
	}{
		{"missing visit_id", func(ev *eventsv1.VisitLogged) { ev.VisitId = "" }, "visit_id"},
		{"blank visit_id", func(ev *eventsv1.VisitLogged) { ev.VisitId = "  " }, "visit_id"},
		{"missing logged_at", func(ev *eventsv1.VisitLogged) { ev.LoggedAt = nil }, "logged_at"},
		{"out-of-range logged_at", func(ev *eventsv1.VisitLogged) { ev.LoggedAt = &timestamppb.Timestamp{Nanos: -1} }, "logged_at"},
		{"rated answer without aspect", func(ev *eventsv1.VisitLogged) { ev.Answers[1].Aspect = "" }, "answers[1].aspect"},
		{"rated answer with malformed aspect", func(ev *eventsv1.VisitLogged) { ev.Answers[1].Aspect = "staff-attitude" }, "answers[1].aspect"},
		{"unknown rating", func(ev *eventsv1.VisitLogged) { ev.Answers[0].Rating = typesv1.Rating(9) }, "answers[0].rating"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ev := visit(logged, answer("overall", sat), answer("cleaning", fairly))
			tc.edit(ev)
			got, err := rollup.FromVisit(ev)
			require.Nil(t, got)
			bad, ok := invalid.As(err)
			require.True(t, ok, "want *invalid.Error, got %v", err)
			require.Equal(t, tc.field, bad.Violations[0].Field)
		})
	}
}
