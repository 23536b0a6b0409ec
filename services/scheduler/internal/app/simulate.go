package app

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/huifang/huifang/pkg/invalid"
	"github.com/huifang/huifang/services/scheduler/internal/engine"
	"github.com/huifang/huifang/services/scheduler/internal/policy"
	"github.com/huifang/huifang/services/scheduler/internal/store"
)

// Bounds of a simulation, so a dry run stays a dry run.
const (
	maxSimServices = 200_000
	maxSimDays     = 366
	maxSimHorizon  = 3 * 365 * 24 * time.Hour
	defaultHorizon = 90 * 24 * time.Hour
)

// Simulation is a dry run of one policy: a draft, or a stored one by id,
// over the tenant's past services (From, To) or a synthetic load.
type Simulation struct {
	Tenant   string
	Draft    *policy.Policy
	PolicyID string
	// Synthetic, when set, is the load; From, when set, its first day.
	Synthetic *Synthetic
	// From and To bound the replay of the tenant's services, [From, To).
	From, To time.Time
	// Horizon is how long after the last service visits still count; nil: 90 days.
	Horizon *time.Duration
}

// Synthetic is a made-up load: ServicesPerDay services each day for Days
// days, spread from 08:00 to 18:00 UTC, with types, tiers, severities and
// org units taken in turn.
type Synthetic struct {
	ServicesPerDay, Days                      int
	ServiceTypes, Tiers, Severities, OrgUnits []string
}

// SimulationResult counts the visits a simulation made.
type SimulationResult struct {
	Services, Visits, Suppressed int
	// PerDay: visits by due day (UTC), in order.
	PerDay        []DayCount
	PerChannel    map[string]int
	PerGroup      map[string]int
	PeakDayVisits int
}

// DayCount is the number of visits due on a day.
type DayCount struct {
	Date   string
	Visits int
}

// Simulate runs a policy over the tenant's past services or a synthetic
// load, with the tenant's contact policy, in memory (engine.Sim), and
// counts the visits it would create per day, channel and group.
func (a *App) Simulate(ctx context.Context, in Simulation) (SimulationResult, error) {
	var p policy.Policy
	switch {
	case in.Draft != nil:
		p = *in.Draft
		if err := policy.Validate(p); err != nil {
			return SimulationResult{}, err
		}
		p.ID, p.Version = "draft", 1
	case in.PolicyID != "":
		got, err := a.GetPolicy(ctx, in.Tenant, in.PolicyID, 0)
		if err != nil {
			return SimulationResult{}, err
		}
		p = got
	default:
		return SimulationResult{}, invalid.New("policy", "is required (or policy_id)")
	}
	p.Tenant, p.Active = in.Tenant, true

	var services []policy.Service
	switch syn := in.Synthetic; {
	case syn != nil:
		var l invalid.List
		if syn.ServicesPerDay < 1 {
			l.Add("synthetic.services_per_day", "must be at least 1")
		}
		if syn.Days < 1 || syn.Days > maxSimDays {
			l.Add("synthetic.days", fmt.Sprintf("must be 1–%d", maxSimDays))
		}
		if int64(syn.ServicesPerDay)*int64(syn.Days) > maxSimServices {
			l.Add("synthetic.services_per_day", fmt.Sprintf("times days must be at most %d", maxSimServices))
		}
		if err := l.Err(); err != nil {
			return SimulationResult{}, err
		}
		services = synthetic(in.Tenant, or(in.From, a.now().Truncate(24*time.Hour)), *syn, p.Trigger.ServiceTypes)
	case !in.From.IsZero() && !in.To.IsZero():
		if !in.To.After(in.From) {
			return SimulationResult{}, invalid.New("to", "must be after from")
		}
		got, err := store.Services(ctx, a.DB, in.Tenant, in.From, in.To, maxSimServices)
		if err != nil {
			return SimulationResult{}, err
		}
		services = got
	default:
		return SimulationResult{}, invalid.New("synthetic", "is required when from and to are not both set")
	}
	rules, err := rulesOf(ctx, a.DB, in.Tenant)
	if err != nil {
		return SimulationResult{}, err
	}
	horizon := defaultHorizon
	if in.Horizon != nil {
		horizon = *in.Horizon
		if horizon <= 0 || horizon > maxSimHorizon {
			return SimulationResult{}, invalid.New("horizon", "must be above 0 and at most 3 years")
		}
	}
	events := make([]engine.Event, len(services))
	var last time.Time
	for i := range services {
		events[i] = engine.Event{At: services[i].CompletedAt, Service: &services[i]}
		if services[i].CompletedAt.After(last) {
			last = services[i].CompletedAt
		}
	}
	out := engine.Sim{Policies: []policy.Policy{p}, Rules: rules}.Run(events, last.Add(horizon))
	return summarise(len(services), out), nil
}

func pick(list []string, i int) string {
	if len(list) == 0 {
		return ""
	}
	return list[i%len(list)]
}

// synthetic spreads services evenly over each day from 08:00 to 18:00 UTC.
func synthetic(tenant string, start time.Time, syn Synthetic, types []string) []policy.Service {
	if len(syn.ServiceTypes) > 0 {
		types = syn.ServiceTypes
	}
	per := syn.ServicesPerDay
	out := make([]policy.Service, 0, per*syn.Days)
	step := 10 * time.Hour / time.Duration(per)
	n := 0
	for d := range syn.Days {
		day := start.AddDate(0, 0, d).Add(8 * time.Hour)
		for j := range per {
			out = append(out, policy.Service{
				Tenant: tenant, ID: fmt.Sprintf("synthetic-%d", n), Type: pick(types, n), CustomerID: fmt.Sprintf("synthetic-customer-%d", n),
				CompletedAt: day.Add(time.Duration(j) * step), Tier: pick(syn.Tiers, n), OrgUnit: pick(syn.OrgUnits, n),
				Severity: pick(syn.Severities, n),
			})
			n++
		}
	}
	return out
}

func summarise(services int, out []engine.Outcome) SimulationResult {
	res := SimulationResult{Services: services, PerChannel: map[string]int{}, PerGroup: map[string]int{}}
	days := map[string]int{}
	for _, o := range out {
		if o.Status != "due" && o.Status != "planned" {
			res.Suppressed++
			continue
		}
		res.Visits++
		days[o.DueAt.UTC().Format(time.DateOnly)]++
		res.PerChannel[policy.ChannelName(o.Channel)]++
		g := o.Group
		if g == "" {
			g = "(any)"
		}
		res.PerGroup[g]++
	}
	keys := make([]string, 0, len(days))
	for k := range days {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		res.PerDay = append(res.PerDay, DayCount{Date: k, Visits: days[k]})
		res.PeakDayVisits = max(res.PeakDayVisits, days[k])
	}
	return res
}
