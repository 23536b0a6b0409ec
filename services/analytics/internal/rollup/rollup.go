// Package rollup decides what each event adds to the daily rollups: the
// deltas of (metric, day, dimensions) counters. Events about a visit or a
// complaint change a small ledger entry, and the delta is the entry's
// contribution after the event minus its contribution before, so every
// counter is always the sum over visits (or complaints) of a pure function
// of their state, whatever order the events come in. It does no I/O.
package rollup

import (
	"cmp"
	"slices"
	"strings"
	"time"
)

// Metrics, the names of the counters in the rollup.
const (
	// Per visit, on the UTC day it fell due (the day it was logged when no due time is known).
	MetricDue          = "visit.due"           // eligible: planned or due, not cancelled; or logged
	MetricDone         = "visit.done"          // logged
	MetricWithDeadline = "visit.with_deadline" // due with a known policy deadline
	MetricOnTime       = "visit.on_time"       // logged by the policy deadline, not fired late
	MetricLate         = "visit.late"          // fired after the policy deadline (VisitDue.late, issue 16)
	MetricInTime       = "visit.in_time"       // logged by the deadline, or logged without one (a message made in time, seed 000)
	MetricWithBase     = "visit.with_base"     // due with a known service completion time
	MetricWithin48h    = "visit.within_48h"    // logged within 48 h of the service (seed 003)
	MetricReturned     = "visit.returned"      // logged with at least one rated answer
	MetricUnreachable  = "visit.unreachable"   // unreachable and never logged
	MetricAttempted    = "visit.attempted"     // at least one attempt
	MetricContacted    = "visit.contacted"     // at least one answered attempt

	// Per logged visit record, on the UTC day it was logged.
	MetricLogged = "record.logged"
	// MetricRecordReturned: a record with at least one rated answer, seed
	// 003's questionnaire returned (回收票数), the denominator of its
	// satisfaction rates; counted with the record's dimensions and no aspect.
	MetricRecordReturned  = "record.returned"
	MetricVoteSatisfied   = "vote.satisfied"
	MetricVoteFairly      = "vote.fairly_satisfied"
	MetricVoteUnsatisfied = "vote.unsatisfied"
	MetricNPSPromoter     = "nps.promoter"
	MetricNPSPassive      = "nps.passive"
	MetricNPSDetractor    = "nps.detractor"
	MetricProblem         = "problem"
	// MetricNoShow: an invited customer did not come (seed 000, auto
	// dealer: for no-shows record the reason), in the bucket (category) of
	// its reason's short name.
	MetricNoShow = "record.no_show"

	// Per complaint, on the UTC day it was escalated.
	MetricComplaint       = "complaint.escalated"
	MetricResolved        = "complaint.resolved" // total: seconds from escalation to resolution
	MetricResolvedOnTime  = "complaint.resolved_on_time"
	MetricImproved        = "complaint.improved"
	MetricComplaintClosed = "complaint.closed"
	MetricAcknowledged    = "complaint.acknowledged" // total: seconds from escalation to the first acknowledgement
	MetricReview          = "review"                 // total: score points
	MetricService         = "service.completed"
	MetricWonBack         = "customer.won_back"
)

// Dims are the dimensions of a counter; an empty one is "not applicable".
type Dims struct {
	OrgUnit         string `json:"org_unit,omitempty"`
	PolicyID        string `json:"policy_id,omitempty"`
	ServiceType     string `json:"service_type,omitempty"`
	ProductCategory string `json:"product_category,omitempty"`
	Channel         string `json:"channel,omitempty"`
	AgentID         string `json:"agent_id,omitempty"`
	Aspect          string `json:"aspect,omitempty"`
	Category        string `json:"category,omitempty"`
}

// Key names one counter.
type Key struct {
	Tenant string
	Metric string
	// Day is midnight UTC.
	Day time.Time
	Dims
}

// Delta is what to add to one counter.
type Delta struct {
	Key
	N     int64
	Total int64
}

// Day returns midnight UTC of the UTC day t falls on.
func Day(t time.Time) time.Time {
	y, m, d := t.UTC().Date()
	return time.Date(y, m, d, 0, 0, 0, 0, time.UTC)
}

// Month returns midnight UTC of the first day of t's UTC month.
func Month(t time.Time) time.Time {
	y, m, _ := t.UTC().Date()
	return time.Date(y, m, 1, 0, 0, 0, 0, time.UTC)
}

// Diff returns after − before, merged per key, without zero deltas, in a
// stable order.
func Diff(before, after []Delta) []Delta {
	return AppendDiff(make([]Delta, 0, len(before)+len(after)), before, after)
}

// AppendDiff appends after − before to dst, as Diff returns it: the
// deltas are merged in dst's spare capacity, so a caller that gathers the
// changes of many entries allocates only as dst grows.
func AppendDiff(dst, before, after []Delta) []Delta {
	n := len(dst)
	for _, d := range before {
		d.N, d.Total = -d.N, -d.Total
		dst = append(dst, d)
	}
	dst = append(dst, after...)
	return dst[:n+len(merge(dst[n:]))]
}

// Merge adds up deltas of the same key and drops those that come to zero.
func Merge(ds []Delta) []Delta {
	return merge(append(make([]Delta, 0, len(ds)), ds...))
}

// merge is Merge in place: it sorts ds, adds up the deltas of each key
// into the first of them and returns the prefix of ds that holds the
// sums that are not zero.
func merge(ds []Delta) []Delta {
	for i := range ds {
		ds[i].Day = Day(ds[i].Day)
	}
	slices.SortFunc(ds, func(a, b Delta) int { return compareKeys(a.Key, b.Key) })
	out := ds[:0]
	for _, d := range ds {
		if n := len(out); n > 0 && compareKeys(out[n-1].Key, d.Key) == 0 {
			out[n-1].N += d.N
			out[n-1].Total += d.Total
			continue
		}
		out = append(out, d)
	}
	return slices.DeleteFunc(out, func(d Delta) bool { return d.N == 0 && d.Total == 0 })
}

// compareKeys orders keys by metric, day, then tenant and dimensions in
// turn: the order Merge returns (and the counters are written in). It
// compares no further than the first field that differs, and allocates
// nothing: a sort calls it n·log n times per batch.
func compareKeys(a, b Key) int {
	if c := cmp.Compare(a.Metric, b.Metric); c != 0 {
		return c
	}
	if c := a.Day.Compare(b.Day); c != 0 {
		return c
	}
	for _, f := range [...][2]string{{a.Tenant, b.Tenant}, {a.OrgUnit, b.OrgUnit}, {a.PolicyID, b.PolicyID},
		{a.ServiceType, b.ServiceType}, {a.ProductCategory, b.ProductCategory}, {a.Channel, b.Channel},
		{a.AgentID, b.AgentID}, {a.Aspect, b.Aspect}, {a.Category, b.Category}} {
		if c := strings.Compare(f[0], f[1]); c != 0 {
			return c
		}
	}
	return 0
}

// set overwrites *dst with s when s is not empty: a later event fills in a dimension, an empty one keeps it.
func set(dst *string, s string) {
	if s = strings.TrimSpace(s); s != "" {
		*dst = s
	}
}
