package engine

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

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
