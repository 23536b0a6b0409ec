package engine

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	calendar "github.com/huifang/huifang/pkg/contact"
	"github.com/huifang/huifang/services/scheduler/internal/contact"
	"github.com/huifang/huifang/services/scheduler/internal/policy"
)

var t0 = time.Date(2026, 3, 2, 10, 0, 0, 0, time.UTC)

const day = 24 * time.Hour

func series() policy.Policy {
	return policy.Policy{ID: "p", Tenant: "t", Name: "p", Version: 1, Active: true, Trigger: policy.Trigger{ServiceTypes: []string{"lead_call"}},
		Stop:  policy.Stop{Answered: true},
		Steps: []policy.Step{{Channel: policy.ChannelPhone, SampleRate: 1, Every: policy.Duration(7 * day)}}}
}

func count(out []Outcome, status string) int {
	n := 0
	for _, o := range out {
		if o.Status == status {
			n++
		}
	}
	return n
}

// Stop conditions in a run: an answered visit ends the series; an opt-out ends it too.
func TestRunStops(t *testing.T) {
	svc := &policy.Service{Tenant: "t", ID: "s", Type: "lead_call", CustomerID: "c", CompletedAt: t0}
	out := Sim{Policies: []policy.Policy{series()}}.Run([]Event{
		{At: t0, Service: svc},
		{At: t0.Add(10 * day), CustomerID: "c", AnsweredService: "s", AnsweredPolicy: "p"},
	}, t0.Add(60*day))
	require.Equal(t, 2, count(out, "due"), "day 0 and day 7")
	require.Equal(t, 1, count(out, "cancelled"), "day 14 is cancelled when the customer answered")

	out = Sim{Policies: []policy.Policy{series()}}.Run([]Event{
		{At: t0, Service: svc},
		{At: t0.Add(3 * day), CustomerID: "c", OptOut: policy.ChannelPhone},
	}, t0.Add(60*day))
	require.Equal(t, 1, count(out, "due"))
	require.Equal(t, 1, count(out, "suppressed"), "the next call is suppressed and the series ends")
	require.Zero(t, count(out, "planned"))
}

// Seed 002: a customer who dislikes calls is called half as often.
func TestRunDislikesCalls(t *testing.T) {
	svc := &policy.Service{Tenant: "t", ID: "s", Type: "lead_call", CustomerID: "c", CompletedAt: t0}
	p := series()
	p.Stop = policy.Stop{}
	out := Sim{Policies: []policy.Policy{p}, Prefs: map[string]contact.Prefs{"c": {DislikesCalls: true}}}.Run([]Event{{At: t0, Service: svc}}, t0.Add(55*day))
	var dues []time.Time
	for _, o := range out {
		if o.Status == "due" {
			dues = append(dues, o.DueAt)
		}
	}
	require.Equal(t, []time.Time{t0, t0.Add(14 * day), t0.Add(28 * day), t0.Add(42 * day)}, dues)
}

// Plan: active matching policies only, once per customer, and seed 000's
// complaints that need no follow-up kept as not planned with the reason.
func TestPlan(t *testing.T) {
	once := series()
	once.ID, once.Trigger.OncePerCustomer = "once", true
	off := series()
	off.ID, off.Active = "off", false
	other := series()
	other.ID, other.Trigger.ServiceTypes = "other", []string{"repair"}
	ps := []policy.Policy{series(), once, off, other}
	s := policy.Service{Tenant: "t", ID: "s", Type: "lead_call", CustomerID: "c", CompletedAt: t0}
	ids := func(pl []Planned) []string {
		var out []string
		for _, p := range pl {
			out = append(out, p.Policy.ID)
		}
		return out
	}
	require.Equal(t, []string{"p", "once"}, ids(mustPlan(t, ps, s, nil, "")))
	require.Equal(t, []string{"p"}, ids(mustPlan(t, ps, s, []string{"once"}, "")), "the customer is enrolled in once already")

	none := mustPlan(t, ps, s, nil, NoFollowUp(true, false))
	require.Len(t, none, 2)
	for _, pl := range none {
		require.False(t, pl.Visit.Planned)
		require.Equal(t, NoFollowUpAnonymous, pl.Visit.Reason)
		require.Equal(t, policy.KindStop, pl.Visit.Decisions[len(pl.Visit.Decisions)-1].Kind)
	}
	require.Equal(t, NoFollowUpWrittenReplyOnly, NoFollowUp(false, true))
	require.Empty(t, NoFollowUp(false, false))
}

// Feedback's rounds (seed 004: again until satisfied): by phone unless asked
// otherwise, on site for a major complaint (seed 000), placed in the windows.
func TestFollowUp(t *testing.T) {
	r := contact.Preset002()
	r.TimeZone = "UTC"
	due := time.Date(2026, 3, 2, 12, 0, 0, 0, time.UTC)
	v := FollowUp(Request{Due: due, Reason: "unsatisfied", PreviousVisit: "v-1"}, 2, false, r, contact.Prefs{})
	require.Equal(t, policy.FollowUpID, v.PolicyID)
	require.Equal(t, 2, v.Occurrence)
	require.Equal(t, int32(policy.ChannelPhone), v.Channel)
	require.Equal(t, due, v.Nominal)
	require.Equal(t, time.Date(2026, 3, 2, 15, 30, 0, 0, time.UTC), v.DueAt, "placed in the afternoon window")
	require.Equal(t, due.Add(policy.DefaultWindow), v.Deadline)
	require.Equal(t, "follow-up requested by feedback: unsatisfied (after visit v-1)", v.Reason)
	require.Equal(t, policy.KindWindow, v.Decisions[len(v.Decisions)-1].Kind)

	major := FollowUp(Request{Due: due, Deadline: due.Add(time.Hour)}, 0, true, contact.Rules{}, contact.Prefs{})
	require.Equal(t, int32(policy.ChannelOnsite), major.Channel)
	require.Equal(t, due.Add(time.Hour), major.Deadline)
	sms := FollowUp(Request{Due: due, Channel: policy.ChannelSMS}, 0, true, contact.Rules{}, contact.Prefs{})
	require.Equal(t, int32(policy.ChannelSMS), sms.Channel, "only a call becomes a visit on site")
}

// A series goes on after a fired or suppressed visit, not after an opt-out
// nor from a policy switched off.
func TestAfterDue(t *testing.T) {
	p := series()
	s := policy.Service{Tenant: "t", ID: "s", Type: "lead_call", CustomerID: "c", CompletedAt: t0}
	vs, err := Initial(p, s, contact.Rules{}, contact.Prefs{}, nil)
	require.NoError(t, err)
	first := vs[0]
	next, ok := AfterDue(p, first, contact.Outcome{Action: contact.Fire}, s, contact.Rules{}, contact.Prefs{})
	require.True(t, ok)
	require.Equal(t, t0.Add(7*day), next.DueAt)
	_, ok = AfterDue(p, first, contact.Outcome{Action: contact.Suppress, Decisions: []policy.Decision{{Kind: policy.KindOptOut}}}, s, contact.Rules{}, contact.Prefs{})
	require.False(t, ok, "an opt-out ends the series")
	p.Active = false
	_, ok = AfterDue(p, first, contact.Outcome{Action: contact.Fire}, s, contact.Rules{}, contact.Prefs{})
	require.False(t, ok, "a policy switched off plans nothing new")
}

// RunBounded gives up, with no outcomes, once the visits decided and still
// pending exceed its bound; a run within it returns what Run returns.
func TestRunBounded(t *testing.T) {
	hourly := series()
	hourly.Stop = policy.Stop{}
	hourly.Steps[0].Every = policy.Duration(time.Hour)
	svc := &policy.Service{Tenant: "t", ID: "s", Type: "lead_call", CustomerID: "c", CompletedAt: t0}
	events := []Event{{At: t0, Service: svc}}
	sim := Sim{Policies: []policy.Policy{hourly}}

	// 100 hours: occurrences 0..100 fall due, the 101st is still planned.
	want := sim.Run(events, t0.Add(100*time.Hour))
	require.Len(t, want, 102)
	got, err := sim.RunBounded(events, t0.Add(100*time.Hour), 102)
	require.NoError(t, err)
	require.Equal(t, want, got)

	got, err = sim.RunBounded(events, t0.Add(100*time.Hour), 101)
	require.ErrorIs(t, err, ErrTooManyOutcomes)
	require.Nil(t, got)

	// Three years of an hourly series stop at the bound, not at 26,282 outcomes.
	got, err = sim.RunBounded(events, t0.Add(3*365*day), 1000)
	require.ErrorIs(t, err, ErrTooManyOutcomes)
	require.Nil(t, got)
}

// Issue 16 (holidays anchor at local midnight: an SMS at 00:00 unless quiet
// hours are set); seed 002 real estate: class D visitors only on holidays, by
// SMS. A tenant in Asia/Shanghai without quiet hours gets the holiday SMS at
// 09:00 there (01:00 UTC), the next one on the next holiday at 09:00 too;
// with quiet hours 21:00–08:00 it is sent when they end, at 08:00.
func TestHolidayMessagesAreNotSentAtMidnight(t *testing.T) {
	p := policy.Policy{ID: "d", Tenant: "t", Name: "class-d", Version: 1, Active: true, Trigger: policy.Trigger{ServiceTypes: []string{"showroom_visit"}},
		Steps: []policy.Step{{Channel: policy.ChannelSMS, SampleRate: 1, OnHolidays: true, Window: policy.Duration(day)}}}
	r := contact.Rules{}
	r.TimeZone, r.Holidays = "Asia/Shanghai", []string{"2026-04-04", "2026-05-01"}
	svc := policy.Service{Tenant: "t", ID: "s", Type: "showroom_visit", CustomerID: "c", CompletedAt: t0}

	vs, err := Initial(p, svc, r, contact.Prefs{}, nil)
	require.NoError(t, err)
	v := vs[0]
	require.True(t, time.Date(2026, 4, 3, 16, 0, 0, 0, time.UTC).Equal(v.Nominal), "the holiday starts at midnight in Shanghai")
	require.Equal(t, time.Date(2026, 4, 4, 1, 0, 0, 0, time.UTC), v.DueAt, "09:00 in Shanghai")
	require.True(t, time.Date(2026, 4, 4, 16, 0, 0, 0, time.UTC).Equal(v.Deadline), "the deadline counts from the holiday")
	require.Equal(t, policy.KindQuiet, v.Decisions[len(v.Decisions)-1].Kind)
	require.Contains(t, v.Decisions[len(v.Decisions)-1].Detail, "made at 09:00, not at midnight")

	next, ok := Following(p, v, svc, r, contact.Prefs{})
	require.True(t, ok)
	require.Equal(t, time.Date(2026, 5, 1, 1, 0, 0, 0, time.UTC), next.DueAt, "the next holiday, 09:00 in Shanghai")

	r.Quiet = &calendar.Window{Start: 21 * 60, End: 8 * 60}
	qs, err := Initial(p, svc, r, contact.Prefs{}, nil)
	require.NoError(t, err)
	q := qs[0]
	require.Equal(t, time.Date(2026, 4, 4, 0, 0, 0, 0, time.UTC), q.DueAt, "the end of the tenant's quiet hours, 08:00 in Shanghai")
	require.Equal(t, policy.KindQuiet, q.Decisions[len(q.Decisions)-1].Kind)
}

func mustPlan(t *testing.T, ps []policy.Policy, s policy.Service, pending []string, noFollowUp string) []Planned {
	t.Helper()
	out, err := Plan(ps, s, contact.Rules{}, contact.Prefs{}, pending, noFollowUp, policy.MemoryQuota{})
	require.NoError(t, err)
	return out
}
