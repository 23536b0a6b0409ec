package rollup

import (
	"cmp"
	"maps"
	"slices"
	"strings"
	"time"
)

// Per served service, on the UTC day its first eligible follow-up fell due
// (seed 003: coverage of served customers).
const (
	MetricServiceEligible = "service.eligible" // at least one follow-up due and not cancelled (or made)
	MetricServiceCovered  = "service.covered"  // eligible, with a follow-up made
)

// ServiceVisit is what a service's coverage needs of one of its eligible visits.
type ServiceVisit struct {
	// Day is the UTC day the visit counts on: the day it fell due (or was logged).
	Day  time.Time `json:"day"`
	Done bool      `json:"done,omitempty"`
	// Customer is the customer the visit follows up, "" when unknown.
	Customer string `json:"customer,omitempty"`
	Dims
}

func (a ServiceVisit) equal(b ServiceVisit) bool {
	return a.Day.Equal(b.Day) && a.Done == b.Done && a.Customer == b.Customer && a.Dims == b.Dims
}

// CoverageKey names the service a visit is a follow-up of; a visit that
// names no service stands for a service of its own.
func (v Visit) CoverageKey() string {
	if v.ServiceID != "" {
		return v.ServiceID
	}
	return "visit:" + v.VisitID
}

// CoverageVisit returns what the visit adds to its service's coverage, and
// false when it is not eligible: the same rule as a visit's `visit.due`
// (planned or due and not cancelled, or made, with a known day).
func (v Visit) CoverageVisit() (ServiceVisit, bool) {
	day, ok := v.countDay()
	if !ok {
		return ServiceVisit{}, false
	}
	return ServiceVisit{Day: day, Done: v.Logged(), Customer: v.CustomerID, Dims: v.Dims}, true
}

// ServiceCoverage is one served service and its eligible follow-ups.
type ServiceCoverage struct {
	// Tenant and ServiceID are left out of the stored state when empty
	// (the ledger's columns hold them).
	Tenant    string                  `json:"tenant,omitempty"`
	ServiceID string                  `json:"service_id,omitempty"`
	Visits    map[string]ServiceVisit `json:"visits,omitempty"`
}

// With returns s with the visit's entry replaced (or removed when !eligible).
func (s ServiceCoverage) With(visitID string, sv ServiceVisit, eligible bool) ServiceCoverage {
	vs := maps.Clone(s.Visits)
	if vs == nil {
		vs = map[string]ServiceVisit{}
	}
	if eligible {
		vs[visitID] = sv
	} else {
		delete(vs, visitID)
	}
	s.Visits = vs
	return s
}

// Contribution is what the service adds: `service.eligible` when one of its
// follow-ups is eligible, and `service.covered` when one of them was made,
// both on the day of its first eligible follow-up (the earliest day; the
// smallest visit id on a tie) and with that follow-up's dimensions. It
// depends only on the set of visits, not on the order they came in.
func (s ServiceCoverage) Contribution() []Delta { return s.AppendContribution(nil) }

// AppendContribution appends the service's Contribution to out.
func (s ServiceCoverage) AppendContribution(out []Delta) []Delta {
	f, covered, ok := s.first()
	if !ok {
		return out
	}
	k := Key{Tenant: s.Tenant, Metric: MetricServiceEligible, Day: Day(f.Day), Dims: f.Dims}
	out = append(out, Delta{Key: k, N: 1})
	if covered {
		k.Metric = MetricServiceCovered
		out = append(out, Delta{Key: k, N: 1})
	}
	return out
}

// first returns the service's first eligible follow-up (the earliest day;
// the smallest visit id on a tie), whether any follow-up was made, and
// false when the service has no eligible follow-up.
func (s ServiceCoverage) first() (ServiceVisit, bool, bool) {
	// (day, id) orders the visits wholly, so one pass in the map's order
	// finds the same follow-up as a sort would.
	var firstID string
	var first ServiceVisit
	covered, found := false, false
	for id, v := range s.Visits {
		if !found || cmp.Or(v.Day.Compare(first.Day), strings.Compare(id, firstID)) < 0 {
			firstID, first, found = id, v, true
		}
		covered = covered || v.Done
	}
	return first, covered, found
}

// Customer is the customer the service was for: the smallest customer id
// its eligible follow-ups name (they normally all name the same one), or,
// when none names one, "service:" + the service key (it stands for a
// customer of its own). It depends only on the set of visits.
func (s ServiceCoverage) Customer() string {
	var c string
	for _, v := range s.Visits {
		if v.Customer != "" && (c == "" || v.Customer < c) {
			c = v.Customer
		}
	}
	if c == "" {
		return "service:" + s.ServiceID
	}
	return c
}

// CoverageChanged reports whether an event that took a visit from before to
// after changes any service's coverage.
func CoverageChanged(before, after Visit) bool {
	bs, bok := before.CoverageVisit()
	as, aok := after.CoverageVisit()
	return before.CoverageKey() != after.CoverageKey() || bok != aok || !bs.equal(as)
}

// CoverageKeys returns the services whose coverage an event that took a
// visit from before to after changes, in order (the order to lock them in):
// none, its service, or its old and new one when its service became known.
func CoverageKeys(before, after Visit) []string {
	if !CoverageChanged(before, after) {
		return nil
	}
	keys := []string{after.CoverageKey()}
	if _, ok := before.CoverageVisit(); ok && before.CoverageKey() != after.CoverageKey() {
		keys = append(keys, before.CoverageKey())
	}
	slices.Sort(keys)
	return keys
}

// Move returns s after the event that took a visit from before to after:
// the visit leaves s, and comes back when s is its service and it is eligible.
func (s ServiceCoverage) Move(before, after Visit) ServiceCoverage {
	s = s.With(after.VisitID, ServiceVisit{}, false)
	if s.ServiceID == after.CoverageKey() {
		sv, ok := after.CoverageVisit()
		s = s.With(after.VisitID, sv, ok)
	}
	return s
}
