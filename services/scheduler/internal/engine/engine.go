// Package engine combines policies with the contact policy: it plans the
// visits of a service (matching, once per customer, no follow-up where seed
// 000 wants none) and the next visit of a recurring series, placed in the
// times the contact policy allows, plans the rounds feedback asks for, and
// runs whole scripted histories in memory on a fake clock (SimulatePolicy
// and the policy packs' golden tests) with the same functions the
// scheduler's use cases call inside their transactions. It does no I/O.
package engine

import (
	"container/heap"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/huifang/huifang/services/scheduler/internal/contact"
	"github.com/huifang/huifang/services/scheduler/internal/policy"
)

// Initial plans the first visit of every step of p for the service, a
// sampled step by its quota in q (nil: none counted, every step sampled
// in), and places each where the contact policy and the customer allow.
func Initial(p policy.Policy, s policy.Service, r contact.Rules, prefs contact.Prefs, q policy.Quota) ([]policy.Visit, error) {
	vs, err := p.Plan(s, r, q)
	if err != nil {
		return nil, err
	}
	for i := range vs {
		if vs[i].Planned {
			place(&vs[i], p, r, prefs)
		}
	}
	return vs, nil
}

// Following plans the visit after prev in a recurring series, placed.
func Following(p policy.Policy, prev policy.Visit, s policy.Service, r contact.Rules, prefs contact.Prefs) (policy.Visit, bool) {
	v, ok := p.Next(prev, s, r, prefs.DislikesCalls)
	if !ok {
		return v, false
	}
	place(&v, p, r, prefs)
	return v, true
}

// Remileage plans again, with the driving habit a later reading gives, a
// pending visit of a mileage anchor that p planned for base (issue 16:
// later readings move reminders; seed 000 auto: "3 months or 3,000 km,
// whichever first", "ask the mileage"), placed where the contact policy
// and the customer allow; false when later's reading does not move it.
func Remileage(p policy.Policy, v policy.Visit, base, later policy.Service, r contact.Rules, prefs contact.Prefs) (policy.Visit, bool) {
	n, ok := p.Remileage(v, base, later, r)
	if !ok {
		return n, false
	}
	before := len(n.Decisions)
	place(&n, p, r, prefs)
	if len(n.Decisions) == before {
		markLate(&n) // place marks a visit it moved itself
	}
	return n, true
}

// place moves v to the first time the contact policy and the customer
// allow. The deadline stays the policy's: a visit moved past it is late,
// and says so (issue 16: a late visit keeps its deadline and is reported).
func place(v *policy.Visit, p policy.Policy, r contact.Rules, prefs contact.Prefs) {
	holiday := v.Step < len(p.Steps) && p.Steps[v.Step].CalendarStep()
	start, ds := v.Nominal, []policy.Decision(nil)
	if v.OnDay {
		start, ds = r.DayStart(v.Nominal)
	}
	at, moves := r.Place(start, v.Channel, prefs, holiday)
	ds = append(ds, moves...)
	if len(ds) == 0 {
		return
	}
	v.DueAt = at
	v.Decisions = append(v.Decisions, ds...)
	v.Reason += "; moved: " + ds[len(ds)-1].Detail
	markLate(v)
}

// markLate adds the late decision to a visit placed after its deadline.
func markLate(v *policy.Visit) {
	if v.Late() {
		v.Decisions = append(v.Decisions, policy.LateDecision(v.DueAt, v.Deadline, "placed at"))
		v.Reason += "; late: after its deadline " + v.Deadline.UTC().Format(time.RFC3339)
	}
}

// Planned is a visit a policy planned for a service: planned, or kept as
// not planned (sampled out, no anchor, no follow-up wanted) with the reason.
type Planned struct {
	Policy policy.Policy
	Visit  policy.Visit
}

// Seed 000: complaints that need no follow-up.
const (
	NoFollowUpAnonymous        = "seed 000: an anonymous complaint needs no follow-up"
	NoFollowUpWrittenReplyOnly = "seed 000: only a written reply was requested: no follow-up"
	// NoFollowUpResolved: a resolved complaint whose owner said it needs none.
	NoFollowUpResolved = "seed 000: an anonymous or written-reply-only complaint needs no follow-up; the written reply is attached to it"
)

// NoFollowUp is why a completed service's complaint gets no follow-up
// (seed 000: anonymous complaints, and those where only a written reply was
// requested), "" when it gets one.
func NoFollowUp(anonymous, writtenReplyOnly bool) string {
	switch {
	case anonymous:
		return NoFollowUpAnonymous
	case writtenReplyOnly:
		return NoFollowUpWrittenReplyOnly
	}
	return ""
}

// Plan plans the first visits of every policy that applies to the service:
// active, matching, and enrolling the customer (a policy triggered once per
// customer skips a customer with a pending visit of it: pending names the
// policies of the customer's pending visits). Each step is placed by the
// contact policy; a sampled step counts the service in its quota in q. A
// non-empty noFollowUp keeps every visit, not planned, with that reason,
// and counts the service in no quota (it is not eligible).
func Plan(policies []policy.Policy, s policy.Service, r contact.Rules, prefs contact.Prefs, pending []string, noFollowUp string, q policy.Quota) ([]Planned, error) {
	var out []Planned
	if noFollowUp != "" {
		q = nil
	}
	for _, p := range policies {
		if !p.Matches(s) || !p.Enrolls(s, pending) {
			continue
		}
		vs, err := Initial(p, s, r, prefs, q)
		if err != nil {
			return nil, err
		}
		for _, v := range vs {
			if noFollowUp != "" && v.Planned {
				v.Planned, v.Reason = false, noFollowUp
				v.Decisions = append(v.Decisions, policy.Decision{Kind: policy.KindStop, Detail: noFollowUp})
			}
			out = append(out, Planned{Policy: p, Visit: v})
		}
	}
	return out, nil
}

// AfterDue plans the next visit of a recurring series once the contact
// policy handled the previous one (fired or suppressed it): none after an
// opt-out, none from a policy that is switched off.
func AfterDue(p policy.Policy, prev policy.Visit, out contact.Outcome, s policy.Service, r contact.Rules, prefs contact.Prefs) (policy.Visit, bool) {
	if out.OptedOut() || !p.Active {
		return policy.Visit{}, false
	}
	return Following(p, prev, s, r, prefs)
}

// Request is a round of follow-up feedback asked for (FollowUpRequested).
type Request struct {
	// Due is when the round is wanted; Deadline when it stops being timely
	// (zero: Due + 48 h, seed 003).
	Due, Deadline time.Time
	Channel       int32
	Group         string
	Reason        string
	// PreviousVisit is the visit after which feedback asked for the round.
	PreviousVisit string
	// By is who asked for an ad-hoc follow-up (ScheduleFollowUp); empty:
	// feedback asked (FollowUpRequested).
	By string
}

// FollowUp plans round number round of the visits feedback asks for (a
// promised reply, another round until the customer is satisfied: seed 000,
// 004), by phone unless asked otherwise, and placed by the contact policy.
// Seed 000 (property): from the second follow-up on a phone call is allowed,
// unless the complaint is of the third (major) class: then it is made on
// site (complaintMajor).
func FollowUp(req Request, round int, complaintMajor bool, r contact.Rules, prefs contact.Prefs) policy.Visit {
	deadline := req.Deadline
	if deadline.IsZero() {
		deadline = req.Due.Add(policy.DefaultWindow)
	}
	reason := "follow-up requested by feedback: " + req.Reason
	if req.By != "" {
		reason = "ad-hoc follow-up asked for by " + req.By + ": " + req.Reason
	}
	if req.PreviousVisit != "" {
		reason += " (after visit " + req.PreviousVisit + ")"
	}
	v := policy.Visit{PolicyID: policy.FollowUpID, Occurrence: round, Channel: req.Channel, Group: req.Group,
		Nominal: req.Due, DueAt: req.Due, Deadline: deadline, Planned: true, SampleRate: 1, Reason: reason,
		Decisions: []policy.Decision{{Kind: policy.KindRule, Detail: reason + "; seed 004: go again until the customer is satisfied", At: req.Due}}}
	if v.Channel == 0 {
		v.Channel = policy.ChannelPhone
	}
	if complaintMajor && v.Channel == policy.ChannelPhone {
		v.Channel = policy.ChannelOnsite
		v.Decisions = append(v.Decisions, policy.Decision{Kind: policy.KindRule, Detail: "seed 000: a major complaint is followed up on site, not by phone"})
	}
	if at, ds := r.Place(req.Due, v.Channel, prefs, false); len(ds) > 0 {
		v.DueAt, v.Decisions = at, append(v.Decisions, ds...)
		markLate(&v)
	}
	return v
}

// Customer events a history may hold besides services.
type Event struct {
	At time.Time
	// Service completed (nil otherwise).
	Service *policy.Service
	// OptOut: the customer opted out of a channel.
	CustomerID string
	OptOut     int32
	// Answered: the customer (CustomerID) answered the visits of this service and policy (stop condition).
	AnsweredService, AnsweredPolicy string
	// Unreachable: the visit that fell due for this service, policy and step
	// (first occurrence) could not be made (VisitUnreachable).
	Unreachable *Failed
}

// Failed names a visit that fell due in a simulation.
type Failed struct {
	ServiceID, PolicyID string
	Step, Occurrence    int
}

// Outcome is a visit's fate in a simulation.
type Outcome struct {
	policy.Visit
	Service policy.Service
	// Status: due (fired at FiredAt), suppressed, cancelled, or planned (still pending at the end).
	Status  string
	FiredAt time.Time
}

// Sim runs policies over a history in memory, with the sampling quotas of
// each run starting at zero.
type Sim struct {
	Policies []policy.Policy
	Rules    contact.Rules
	Prefs    map[string]contact.Prefs
}

type pending struct {
	v    policy.Visit
	s    policy.Service
	pol  policy.Policy
	dead bool
	seq  int
}

// queue is a min-heap of pending visits by due time (then insertion order).
type queue []*pending

func (q queue) Len() int { return len(q) }
func (q queue) Less(i, j int) bool {
	if c := q[i].v.DueAt.Compare(q[j].v.DueAt); c != 0 {
		return c < 0
	}
	return q[i].seq < q[j].seq
}
func (q queue) Swap(i, j int) { q[i], q[j] = q[j], q[i] }
func (q *queue) Push(x any)   { *q = append(*q, x.(*pending)) }
func (q *queue) Pop() any {
	old := *q
	x := old[len(old)-1]
	*q = old[:len(old)-1]
	return x
}

// Run plays the events in time order until the end and returns every
// visit's outcome, in the order they were decided.
func (sim Sim) Run(events []Event, until time.Time) []Outcome {
	out, _ := sim.RunBounded(events, until, 0)
	return out
}

// ErrTooManyOutcomes says a run would decide more visits than its bound.
var ErrTooManyOutcomes = errors.New("engine: the run decides more visits than its bound")

// RunBounded is Run that gives up, with ErrTooManyOutcomes and no outcomes,
// as soon as the visits decided and those still pending (each becomes at
// least one outcome) exceed limit: what a run holds in memory stays
// proportional to limit. A limit of 0 or less bounds nothing.
func (sim Sim) RunBounded(events []Event, until time.Time, limit int) ([]Outcome, error) {
	events = slices.Clone(events)
	slices.SortStableFunc(events, func(a, b Event) int { return a.At.Compare(b.At) })
	prefs := map[string]contact.Prefs{}
	for k, v := range sim.Prefs {
		prefs[k] = v
	}
	var (
		out        []Outcome
		q          queue
		seq        int
		alive      int // pending visits not yet decided
		history    = map[string][]contact.Contact{}
		byCustomer = map[string][]*pending{}
		quota      = policy.MemoryQuota{}
	)
	over := func() bool { return limit > 0 && len(out)+alive > limit }
	push := func(p *pending) {
		seq++
		p.seq = seq
		alive++
		heap.Push(&q, p)
		byCustomer[p.s.CustomerID] = append(byCustomer[p.s.CustomerID], p)
	}
	// live drops dead entries from a customer's list and returns it.
	live := func(customer string) []*pending {
		l := slices.DeleteFunc(byCustomer[customer], func(p *pending) bool { return p.dead })
		byCustomer[customer] = l
		return l
	}
	cancel := func(p *pending, reason string) {
		p.dead = true
		alive--
		o := Outcome{Visit: p.v, Service: p.s, Status: "cancelled"}
		o.Reason = reason
		out = append(out, o)
	}
	ei := 0
	for {
		if over() {
			return nil, ErrTooManyOutcomes
		}
		for q.Len() > 0 && q[0].dead {
			heap.Pop(&q)
		}
		var p *pending
		if q.Len() > 0 {
			p = q[0]
		}
		if ei < len(events) && (p == nil || !events[ei].At.After(p.v.DueAt)) {
			ev := events[ei]
			if ev.At.After(until) {
				break
			}
			ei++
			if f := ev.Unreachable; f != nil {
				ev.Service = sim.unreachable(out, *f, ev.At)
			}
			switch {
			case ev.Service != nil:
				s := *ev.Service
				for _, x := range live(s.CustomerID) {
					if x.pol.Stop.CameIn(x.s.CompletedAt, s) {
						cancel(x, "stopped: the customer came in ("+s.Type+")")
					}
				}
				for _, x := range live(s.CustomerID) {
					if nv, ok := Remileage(x.pol, x.v, x.s, s, sim.Rules, prefs[s.CustomerID]); ok {
						nv.Decisions = append(slices.Clone(x.v.Decisions), nv.Decisions...)
						x.dead = true
						alive--
						push(&pending{v: nv, s: x.s, pol: x.pol})
					}
				}
				var enrolled []string
				for _, x := range live(s.CustomerID) {
					enrolled = append(enrolled, x.pol.ID)
				}
				planned, err := Plan(sim.Policies, s, sim.Rules, prefs[s.CustomerID], enrolled, "", quota)
				if err != nil {
					return nil, err
				}
				for _, pl := range planned {
					if !pl.Visit.Planned {
						out = append(out, Outcome{Visit: pl.Visit, Service: s, Status: "suppressed"})
						continue
					}
					push(&pending{v: pl.Visit, s: s, pol: pl.Policy})
				}
			case ev.OptOut != 0:
				pr := prefs[ev.CustomerID]
				pr.OptedOut = append(pr.OptedOut, ev.OptOut)
				prefs[ev.CustomerID] = pr
			case ev.AnsweredService != "":
				for _, x := range live(ev.CustomerID) {
					if x.s.ID == ev.AnsweredService && x.pol.ID == ev.AnsweredPolicy && x.pol.Stop.Answered {
						cancel(x, "stopped: the customer answered")
					}
				}
			}
			continue
		}
		if p == nil || p.v.DueAt.After(until) {
			break
		}
		heap.Pop(&q)
		p.dead = true
		alive--
		now := p.v.DueAt
		pr := prefs[p.s.CustomerID]
		holiday := p.v.Step < len(p.pol.Steps) && p.pol.Steps[p.v.Step].CalendarStep()
		res := sim.Rules.Check(now, contact.Pending{Channel: p.v.Channel, Deadline: p.v.Deadline, HolidayStep: holiday}, pr, history[p.s.CustomerID])
		res.Apply(&p.v)
		switch res.Action {
		case contact.Suppress:
			out = append(out, Outcome{Visit: p.v, Service: p.s, Status: "suppressed"})
		case contact.Move:
			push(&pending{v: p.v, s: p.s, pol: p.pol})
			continue
		default:
			history[p.s.CustomerID] = append(history[p.s.CustomerID], contact.Contact{Channel: p.v.Channel, At: now})
			out = append(out, Outcome{Visit: p.v, Service: p.s, Status: "due", FiredAt: now})
		}
		if nv, ok := AfterDue(p.pol, p.v, res, p.s, sim.Rules, pr); ok {
			push(&pending{v: nv, s: p.s, pol: p.pol})
		}
	}
	for _, p := range q {
		if !p.dead {
			out = append(out, Outcome{Visit: p.v, Service: p.s, Status: "planned"})
		}
	}
	return out, nil
}

// unreachable turns a visit that fell due into the visit_unreachable service
// its failure is (nil when no such visit fell due).
func (sim Sim) unreachable(out []Outcome, f Failed, at time.Time) *policy.Service {
	for _, o := range out {
		if o.Status != "due" || o.Service.ID != f.ServiceID || o.PolicyID != f.PolicyID || o.Step != f.Step || o.Occurrence != f.Occurrence {
			continue
		}
		name := o.PolicyID
		for _, p := range sim.Policies {
			if p.ID == o.PolicyID {
				name = p.Name
			}
		}
		s := policy.Unreachable(o.Service, name, o.Step, fmt.Sprintf("%s/%s/%d/%d", f.ServiceID, f.PolicyID, f.Step, f.Occurrence), at)
		return &s
	}
	return nil
}
