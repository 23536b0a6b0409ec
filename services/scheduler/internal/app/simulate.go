package app

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
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
	// MaxSimOutcomes bounds the visits one simulation decides (due,
	// suppressed, cancelled or still planned at the end), and with them its
	// memory: measured, a run of 10,000 one-step services held ~32 MiB of
	// heap and allocated 51 MiB, where the three-year hourly series of 20
	// services (525,640 outcomes) held over 1 GiB.
	MaxSimOutcomes = 10_000
	// MaxSimulations is how many simulations a scheduler runs at once; one
	// more is answered ErrBusy.
	MaxSimulations = 2
)

// ErrBusy says MaxSimulations simulations are running: try again in a moment.
var ErrBusy = errors.New("the scheduler is running as many simulations as it may at once; try again in a moment")

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
//
// A simulation decides at most MaxSimOutcomes visits: a request whose load,
// horizon and steps would make more is refused (InvalidArgument naming
// them) before the load is built, and a run that finds more than the
// estimate stops at the bound with the same answer. At most MaxSimulations
// run at once (ErrBusy).
func (a *App) Simulate(ctx context.Context, in Simulation) (SimulationResult, error) {
	if !a.sims.enter(MaxSimulations) {
		return SimulationResult{}, ErrBusy
	}
	defer a.sims.leave()
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

	horizon := defaultHorizon
	if in.Horizon != nil {
		horizon = *in.Horizon
		if horizon <= 0 || horizon > maxSimHorizon {
			return SimulationResult{}, invalid.New("horizon", "must be above 0 and at most 3 years")
		}
	}
	var (
		services []policy.Service
		load     []string // the request's fields that make the load
	)
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
		load = []string{"synthetic.services_per_day", "synthetic.days"}
		gen := newSynthetic(in.Tenant, or(in.From, a.now().Truncate(24*time.Hour)), *syn, p.Trigger.ServiceTypes)
		// The estimate comes first, one service at a time: a load that
		// would make too many visits is refused before it is built.
		if err := bounded(p, gen.each, gen.last().Add(horizon), load, in.Draft != nil); err != nil {
			return SimulationResult{}, err
		}
		services = gen.all()
	case !in.From.IsZero() && !in.To.IsZero():
		if !in.To.After(in.From) {
			return SimulationResult{}, invalid.New("to", "must be after from")
		}
		got, err := store.Services(ctx, a.DB, in.Tenant, in.From, in.To, maxSimServices)
		if err != nil {
			return SimulationResult{}, err
		}
		services, load = got, []string{"from", "to"}
		last := in.From
		if len(services) > 0 {
			last = services[len(services)-1].CompletedAt
		}
		each := func(fn func(policy.Service)) {
			for _, s := range services {
				fn(s)
			}
		}
		if err := bounded(p, each, last.Add(horizon), load, in.Draft != nil); err != nil {
			return SimulationResult{}, err
		}
	default:
		return SimulationResult{}, invalid.New("synthetic", "is required when from and to are not both set")
	}
	rules, err := rulesOf(ctx, a.DB, in.Tenant)
	if err != nil {
		return SimulationResult{}, err
	}
	events := make([]engine.Event, len(services))
	var last time.Time
	for i := range services {
		events[i] = engine.Event{At: services[i].CompletedAt, Service: &services[i]}
		if services[i].CompletedAt.After(last) {
			last = services[i].CompletedAt
		}
	}
	out, err := engine.Sim{Policies: []policy.Policy{p}, Rules: rules}.RunBounded(events, last.Add(horizon), MaxSimOutcomes)
	if errors.Is(err, engine.ErrTooManyOutcomes) {
		// The estimate missed visits it cannot foresee (holidays,
		// milestones, date anchors): the run stopped at the bound.
		return SimulationResult{}, tooMany(load, recurring(p, in.Draft != nil), fmt.Sprintf("more than %d", MaxSimOutcomes))
	}
	if err != nil {
		return SimulationResult{}, err
	}
	return summarise(len(services), out), nil
}

// bounded estimates the visits a simulation of p over the services each
// yields, run until until, decides, and refuses the request when they are
// more than MaxSimOutcomes, naming the fields that make them: the load's,
// horizon, and the recurring steps (policy.steps[i].every of a draft, or
// policy_id). A service the policy does not match makes none; a step makes
// one outcome for a service it samples out, one for a step that does not
// recur, and for a series every occurrence due by until and the one still
// planned then (at most max_occurrences; the engine's bound catches what
// the estimate cannot foresee: holidays, milestones, date anchors).
func bounded(p policy.Policy, each func(func(policy.Service)), until time.Time, load []string, draft bool) error {
	var n float64
	each(func(s policy.Service) {
		if p.Matches(s) {
			n += visitsOf(p, until.Sub(s.CompletedAt))
		}
	})
	if n <= MaxSimOutcomes {
		return nil
	}
	return tooMany(load, recurring(p, draft), fmt.Sprintf("about %.0f", n))
}

// tooMany is the refusal of a simulation that would decide too many visits.
func tooMany(load, steps []string, visits string) error {
	var l invalid.List
	fields := append(append(slices.Clone(load), "horizon"), steps...)
	for i, f := range fields {
		others := slices.Delete(slices.Clone(fields), i, i+1)
		l.Add(f, fmt.Sprintf("together with %s would make the simulation decide %s visits; one simulation decides at most %d "+
			"(fewer services, a shorter horizon or a step that recurs less often)", strings.Join(others, ", "), visits, MaxSimOutcomes))
	}
	return l.Err()
}

// recurring names the fields of p's recurring steps: policy.steps[i].every
// (or .seasons, .on_holidays, .on_milestones) of a draft; policy_id for a
// stored policy (when it has one).
func recurring(p policy.Policy, draft bool) []string {
	var out []string
	for i, st := range p.Steps {
		if !st.Recurring() {
			continue
		}
		if !draft {
			return []string{"policy_id"}
		}
		f := fmt.Sprintf("policy.steps[%d].", i)
		switch {
		case st.Every > 0:
			f += "every"
		case st.EveryMonths > 0:
			f += "every_months"
		case len(st.Seasons) > 0:
			f += "seasons"
		case st.OnHolidays:
			f += "on_holidays"
		default:
			f += "on_milestones"
		}
		out = append(out, f)
	}
	return out
}

// visitsOf estimates the outcomes of p for one service it matches, span
// before the run ends: per step, a series' length when sampled in (share
// sample_rate), one outcome when sampled out.
func visitsOf(p policy.Policy, span time.Duration) float64 {
	var n float64
	for _, st := range p.Steps {
		rate := min(max(st.SampleRate, 0), 1)
		n += rate*series(st, p.Stop, span) + (1 - rate)
	}
	return n
}

// series estimates the outcomes of one step's series for a service span
// before the run ends: one for a step that does not recur (or recurs on
// dates the estimate does not know), else every occurrence at the
// shortest cadence (every, every_months at 28 days a month, or a season's) due by then, and the next one,
// still planned at the end.
func series(st policy.Step, stop policy.Stop, span time.Duration) float64 {
	cadence := st.Every.D()
	if st.EveryMonths > 0 {
		cadence = time.Duration(st.EveryMonths) * 28 * 24 * time.Hour // the shortest month
	}
	for _, se := range st.Seasons {
		if d := se.Every.D(); d > 0 && (cadence <= 0 || d < cadence) {
			cadence = d
		}
	}
	if !st.Recurring() || cadence <= 0 {
		return 1
	}
	if stop.After > 0 {
		span = min(span, stop.After.D())
	}
	span -= st.Offset.D()
	if span < 0 {
		return 1
	}
	n := float64(span/cadence) + 2
	if st.MaxOccurrences > 0 {
		n = min(n, float64(st.MaxOccurrences))
	}
	return n
}

// gate lets at most a number of callers in at once; its zero value is
// ready.
type gate struct {
	mu sync.Mutex
	in int
}

// enter lets the caller in when fewer than limit are in.
func (g *gate) enter(limit int) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.in >= limit {
		return false
	}
	g.in++
	return true
}

// leave lets another in.
func (g *gate) leave() {
	g.mu.Lock()
	g.in--
	g.mu.Unlock()
}

func pick(list []string, i int) string {
	if len(list) == 0 {
		return ""
	}
	return list[i%len(list)]
}

// syntheticLoad makes a synthetic load's services one at a time: spread
// evenly over each day from 08:00 to 18:00 UTC, with types, tiers,
// severities and org units taken in turn.
type syntheticLoad struct {
	tenant string
	start  time.Time
	syn    Synthetic
	types  []string
}

func newSynthetic(tenant string, start time.Time, syn Synthetic, types []string) syntheticLoad {
	if len(syn.ServiceTypes) > 0 {
		types = syn.ServiceTypes
	}
	return syntheticLoad{tenant: tenant, start: start, syn: syn, types: types}
}

// at returns the load's service n (day n / services_per_day).
func (g syntheticLoad) at(n int) policy.Service {
	per := g.syn.ServicesPerDay
	step := 10 * time.Hour / time.Duration(per)
	day := g.start.AddDate(0, 0, n/per).Add(8 * time.Hour)
	return policy.Service{
		Tenant: g.tenant, ID: fmt.Sprintf("synthetic-%d", n), Type: pick(g.types, n), CustomerID: fmt.Sprintf("synthetic-customer-%d", n),
		CompletedAt: day.Add(time.Duration(n%per) * step), Tier: pick(g.syn.Tiers, n), OrgUnit: pick(g.syn.OrgUnits, n),
		Severity: pick(g.syn.Severities, n),
	}
}

func (g syntheticLoad) len() int { return g.syn.ServicesPerDay * g.syn.Days }

// last is when the load's last service completes.
func (g syntheticLoad) last() time.Time { return g.at(g.len() - 1).CompletedAt }

// each calls fn with every service of the load, keeping none.
func (g syntheticLoad) each(fn func(policy.Service)) {
	for n := range g.len() {
		fn(g.at(n))
	}
}

// all returns the load's services.
func (g syntheticLoad) all() []policy.Service {
	out := make([]policy.Service, 0, g.len())
	g.each(func(s policy.Service) { out = append(out, s) })
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
