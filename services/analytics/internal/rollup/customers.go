package rollup

import (
	"cmp"
	"slices"
	"strings"
	"time"
)

// Customer coverage (seed 003: coverage ≥ 90 % of served customers) counts
// distinct customers per calendar month and year, which daily counters
// cannot sum. Each served service puts its customer into the buckets of
// the month and year of the service's first eligible follow-up, once with
// that follow-up's org unit and once for all units together; a bucket
// counts a customer while at least one of their services is in it
// (eligible), and as covered while at least one of those was followed up.

// Spans of a customer-coverage bucket.
const (
	SpanMonth = "month"
	SpanYear  = "year"
)

// MemberKey names one customer in one bucket.
type MemberKey struct {
	Tenant string
	Span   string // SpanMonth or SpanYear
	// Period is the bucket's first day: the 1st of the month, or 1 January.
	Period time.Time
	// AllUnits marks the bucket of every org unit together (OrgUnit is then "").
	AllUnits bool
	OrgUnit  string
	Customer string
}

// Compare orders keys: the order members are locked in.
func (k MemberKey) Compare(o MemberKey) int {
	b := func(x bool) int {
		if x {
			return 1
		}
		return 0
	}
	return cmp.Or(strings.Compare(k.Tenant, o.Tenant), strings.Compare(k.Span, o.Span), k.Period.Compare(o.Period),
		cmp.Compare(b(k.AllUnits), b(o.AllUnits)), strings.Compare(k.OrgUnit, o.OrgUnit), strings.Compare(k.Customer, o.Customer))
}

// MemberDelta changes how many of a customer's services are in a bucket
// (Services) and how many of those were covered (Covered).
type MemberDelta struct {
	MemberKey
	Services, Covered int64
}

// Bucket returns the customer-coverage bucket [from, to) is exactly: one
// calendar month or one calendar year (UTC), and false for any other period
// (distinct customers cannot be added up across buckets).
func Bucket(from, to time.Time) (span string, period time.Time, ok bool) {
	if from.IsZero() || to.IsZero() {
		return "", time.Time{}, false
	}
	from, to = from.UTC(), to.UTC()
	switch {
	case from.Equal(Month(from)) && to.Equal(from.AddDate(0, 1, 0)):
		return SpanMonth, from, true
	case from.Equal(Year(from)) && to.Equal(from.AddDate(1, 0, 0)):
		return SpanYear, from, true
	}
	return "", time.Time{}, false
}

// Year returns the 1 January (UTC) of t's year.
func Year(t time.Time) time.Time {
	t = t.UTC()
	return time.Date(t.Year(), time.January, 1, 0, 0, 0, 0, time.UTC)
}

// Members returns what the service adds to the customer buckets: its
// customer with one service (covered or not) in four buckets (month and
// year, its org unit and all units), nothing when it is not eligible.
func (s ServiceCoverage) Members() []MemberDelta {
	f, covered, ok := s.first()
	if !ok {
		return nil
	}
	var c int64
	if covered {
		c = 1
	}
	cust := s.Customer()
	var out []MemberDelta
	for _, p := range []struct {
		span   string
		period time.Time
	}{{SpanMonth, Month(f.Day)}, {SpanYear, Year(f.Day)}} {
		out = append(out,
			MemberDelta{MemberKey{Tenant: s.Tenant, Span: p.span, Period: p.period, OrgUnit: f.OrgUnit, Customer: cust}, 1, c},
			MemberDelta{MemberKey{Tenant: s.Tenant, Span: p.span, Period: p.period, AllUnits: true, Customer: cust}, 1, c})
	}
	return out
}

// MemberDiff returns after − before, merged per key, without zero deltas,
// in key order.
func MemberDiff(before, after []MemberDelta) []MemberDelta {
	if len(before)+len(after) == 0 {
		return nil
	}
	all := make([]MemberDelta, 0, len(before)+len(after))
	for _, d := range before {
		d.Services, d.Covered = -d.Services, -d.Covered
		all = append(all, d)
	}
	all = append(all, after...)
	slices.SortStableFunc(all, func(a, b MemberDelta) int { return a.Compare(b.MemberKey) })
	out := all[:0] // the sums go into the first delta of each key
	for _, d := range all {
		if n := len(out); n > 0 && out[n-1].Compare(d.MemberKey) == 0 {
			out[n-1].Services += d.Services
			out[n-1].Covered += d.Covered
			continue
		}
		out = append(out, d)
	}
	return slices.DeleteFunc(out, func(d MemberDelta) bool { return d.Services == 0 && d.Covered == 0 })
}
