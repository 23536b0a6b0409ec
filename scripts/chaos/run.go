package chaos

import (
	"context"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/huifang/huifang/scripts/internal/load"
	"github.com/huifang/huifang/scripts/internal/pgcluster"
)

// Report is one scenario's run.
type Report struct {
	Scenario string
	What     string
	Profile  string
	Seed     int64 // the run's seed (CHAOS_SEED)
	Faults   []Injected
	Outcome
	// Recovery is, for each fault, how long after it ended the last task of
	// an event published before its end was created (-1: never).
	Recovery []time.Duration
	// Settled says whether every check held within the settle bound; SettleTime is how long it took.
	Settled    bool
	SettleTime time.Duration
	LoadTime   time.Duration
	Duration   time.Duration
	AgentErrs  map[string]int
	// PublishErrs counts the generator's publishes JetStream did not
	// acknowledge, by error, with when the first and the last were sent.
	PublishErrs map[string]int
	LogDir      string
	// LogLines are the services' warnings and errors about the faults, for failure messages.
	LogLines []string
}

// MaxRecovery is the longest recovery of the run (-1 when one never recovered).
func (r Report) MaxRecovery() time.Duration {
	m := time.Duration(0)
	for _, d := range r.Recovery {
		if d < 0 {
			return -1
		}
		m = max(m, d)
	}
	return m
}

// RunConfig is what a scenario run needs from the suite.
type RunConfig struct {
	BinDir string
	PG     *pgcluster.Cluster
	Dir    string
	Seed   int64
	Log    *slog.Logger
}

// Run runs one scenario: a fresh system, the load with the agents at work
// and the faults on schedule, then the settle and the checks.
func Run(ctx context.Context, sc Scenario, p Profile, cfg RunConfig) (Report, error) {
	began := time.Now()
	seed := ScenarioSeed(cfg.Seed, sc.Name)
	rep := Report{Scenario: sc.Name, What: sc.What, Profile: p.Name, Seed: cfg.Seed}
	env := map[string][]string{}
	for k, v := range sc.Env {
		env[k] = v
	}
	// Leases short enough to run out within the settle: a claim whose answer
	// was lost, or a send whose outcome could not be recorded, comes back
	// after its lease (by design), and the checks see it worked.
	// The same for a send that failed for the moment (the local provider
	// keeps its messages in Postgres, so an outage fails sends): it is
	// tried again after SEND_BACKOFF.
	env["dispatch"] = append([]string{"LEASE=" + Lease.String(), "SEND_LEASE=" + SendLease.String(), "SEND_BACKOFF=" + SendBackoff.String()}, env["dispatch"]...)
	if sc.Name == "paused-worker" {
		env["dispatch"] = append(env["dispatch"], "SEND_LEASE="+p.SendLease.String())
	}
	sys, err := StartSystem(ctx, SystemConfig{BinDir: cfg.BinDir, PG: cfg.PG, DBName: fmt.Sprintf("chaos_%s_%d", strings.ReplaceAll(sc.Name, "-", "_"), seed%1000000),
		Dir: cfg.Dir, NATSNodes: sc.NATSNodes, Replicas: sc.Replicas, Env: env, Log: cfg.Log})
	if err != nil {
		return rep, fmt.Errorf("chaos: start the system: %w", err)
	}
	defer sys.Close()
	rep.LogDir = sys.LogDir

	events := load.Plan(load.Config{Seed: seed, Events: int(p.Rate * p.Load.Seconds()), Tenants: Tenants, ServiceTypes: ServiceTypes(),
		Customers: 60, ResendRate: 0.05, MalformedRate: 0.01, Oversized: sc.Oversized, MaxPayload: int(sys.NC.MaxPayload())})
	faults := sc.Schedule(seed, p)
	cfg.Log.Info("scenario", "name", sc.Name, "seed", cfg.Seed, "scenario_seed", seed, "events", len(events), "faults", fmt.Sprint(faults))

	crew, stopCrew := StartCrew(ctx, sys)
	defer stopCrew()
	inj := &injector{sys: sys, seed: seed}
	start := time.Now()
	injected := make(chan []Injected, 1)
	go func() { injected <- inj.run(ctx, start, faults) }()
	res := load.Run(ctx, sys.JS, events, p.Rate, 10*time.Second)
	rep.LoadTime = res.Duration
	rep.Faults = <-injected
	wiped := slices.ContainsFunc(rep.Faults, func(f Injected) bool { return f.Kind == WipeNATS })

	// Settle: wait until every check holds, or nothing moved for Quiet, or Settle passed.
	settleStart := time.Now()
	var o *observed
	var out Outcome
	last, lastChange := "", time.Now()
	for {
		o, err = observe(ctx, sys, wiped)
		if err != nil {
			cfg.Log.Warn("observe", "err", err)
		} else {
			out = check(sys, res, crew.Claims(), inj.poisons, rep.Faults, o, settleStart)
			if len(out.Violations) == 0 {
				rep.Settled = true
				break
			}
			if fp := fingerprint(o); fp != last {
				last, lastChange = fp, time.Now()
			}
		}
		quiet := p.Quiet
		if o != nil && o.inFlight {
			// A killed consumer's messages come again after the ack wait.
			quiet = max(quiet, ackWait+10*time.Second)
		}
		leased := o != nil && time.Now().Before(o.leasedUntil.Add(10*time.Second))
		// A reading that failed (a node away) says nothing about the
		// system: keep looking until Settle rather than stop at Quiet.
		unread := o != nil && (o.dlqStreamErr != "" || o.satisfyErr != "")
		if time.Since(settleStart) > p.Settle || (time.Since(lastChange) > quiet && o != nil && !leased && !unread) || ctx.Err() != nil {
			break
		}
		sleep(ctx, time.Second)
	}
	rep.SettleTime = time.Since(settleStart)
	stopCrew()
	if o == nil {
		return rep, fmt.Errorf("chaos: could not observe the system: %w", err)
	}
	// The final look, with the agents stopped.
	if o2, err := observe(ctx, sys, wiped); err == nil {
		o = o2
	}
	rep.Outcome = check(sys, res, crew.Claims(), inj.poisons, rep.Faults, o, settleStart)
	rep.Settled = len(rep.Outcome.Violations) == 0
	rep.Recovery = recovery(ctx, sys, res, rep.Faults)
	rep.AgentErrs = crew.Errors()
	rep.PublishErrs = publishErrors(res)
	if !rep.Settled {
		rep.LogLines = faultLogLines(sys)
	}
	rep.Duration = time.Since(began)
	return rep, nil
}

// ackWait is the services' consumers' AckWait (pkg/inbox).
const ackWait = 30 * time.Second

// Lease, SendLease and SendBackoff are dispatch's LEASE (a claim),
// SEND_LEASE (a send) and SEND_BACKOFF (the first retry of a failed send)
// in the suite, instead of 15 min, 2 min and 1 min.
const (
	Lease       = 30 * time.Second
	SendLease   = 10 * time.Second
	SendBackoff = 5 * time.Second
)

// publishErrors counts the failed publishes by error and says when they happened.
func publishErrors(res *load.Result) map[string]int {
	out := map[string]int{}
	var first, last time.Duration = -1, 0
	for _, p := range res.Publish {
		if p.Acked {
			continue
		}
		out[p.Err]++
		if first < 0 {
			first = p.At
		}
		last = max(last, p.At)
	}
	if len(out) > 0 {
		out[fmt.Sprintf("(sent between +%.1fs and +%.1fs)", first.Seconds(), last.Seconds())] = 0
	}
	return out
}

// fingerprint changes whenever the pipeline moves.
func fingerprint(o *observed) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%d/%d/%d/%d/%d/%d", len(o.serviceKey), len(o.scheduled), len(o.visits), len(o.tasks), len(o.records), len(o.deadLetters))
	for _, s := range schemas {
		fmt.Fprintf(&b, "/%d", o.outboxes[s].Unpublished)
	}
	for _, t := range slices.Sorted(maps.Keys(o.satisfaction)) {
		fmt.Fprintf(&b, "/%d", o.satisfaction[t].GetReturned())
	}
	for _, d := range slices.Sorted(maps.Keys(o.consumerState)) {
		fmt.Fprintf(&b, "/%s=%s", d, o.consumerState[d])
	}
	done := 0
	for _, ts := range o.tasks {
		for _, t := range ts {
			if t.Status == "done" || t.Status == "sent" {
				done++
			}
		}
	}
	fmt.Fprintf(&b, "/%d", done)
	return b.String()
}

// recovery measures, for each fault, how long after its end the last task
// was created for a valid event acknowledged before that end: the time the
// system took to catch up with what the fault held back. -1 when some such
// event never got its task (visits that were not due are not counted). For
// a poison message, which holds up what comes after it, it is the longest
// wait from publish to task of an event sent in the 10 s after the poison.
func recovery(ctx context.Context, sys *System, res *load.Result, faults []Injected) []time.Duration {
	created := map[string]time.Time{} // upstream key → first task's creation
	rows, err := sys.DB.Query(ctx, `SELECT s.tenant_id || '/' || s.source_system || '/' || s.source_event_id, min(t.created_at)
FROM intake.services s
JOIN scheduler.planned_visits v ON v.tenant_id = s.tenant_id AND v.service_id = s.id AND v.policy_id IN (
  SELECT id FROM scheduler.policies WHERE name = ANY($1))
JOIN dispatch.tasks t ON t.tenant_id = v.tenant_id AND t.visit_id = v.id
GROUP BY 1`, Policies)
	if err != nil {
		return nil
	}
	for rows.Next() {
		var key string
		var at time.Time
		if rows.Scan(&key, &at) == nil {
			created[key] = at
		}
	}
	rows.Close()
	var out []time.Duration
	for _, f := range faults {
		end := f.End
		worst := time.Duration(0)
		if f.Kind == Poison {
			// What the poison holds up comes after it: the longest wait
			// (publish → task) of an event sent in the 10 s after it.
			for _, e := range res.Events {
				p := res.Publish[e.Seq]
				at := res.Start.Add(p.At)
				if e.Kind != load.Valid || !p.Acked || at.Before(f.Start) || at.After(f.Start.Add(10*time.Second)) {
					continue
				}
				c, ok := created[e.Key()]
				if !ok {
					worst = -1
					break
				}
				worst = max(worst, c.Sub(at))
			}
			out = append(out, worst)
			continue
		}
		for _, e := range res.Events {
			p := res.Publish[e.Seq]
			if e.Kind != load.Valid || !p.Acked || res.Start.Add(p.At).After(end) {
				continue
			}
			c, ok := created[e.Key()]
			if !ok {
				worst = -1
				break
			}
			worst = max(worst, c.Sub(end))
		}
		out = append(out, worst)
	}
	return out
}

// faultLogLines gathers the services' warnings and errors (deduplicated by
// message), to show beside a failed invariant.
func faultLogLines(sys *System) []string {
	var out []string
	for _, inst := range sys.Stack.Instances() {
		seen := map[string]int{}
		var order []string
		for _, level := range []string{`"level":"WARN"`, `"level":"ERROR"`} {
			for _, line := range sys.LogLines(inst, level) {
				msg := between(line, `"msg":"`, `"`)
				if seen[msg] == 0 {
					order = append(order, line)
				}
				seen[msg]++
			}
		}
		for _, line := range order {
			msg := between(line, `"msg":"`, `"`)
			if len(line) > 600 {
				line = line[:600] + "…"
			}
			out = append(out, fmt.Sprintf("%s (×%d): %s", inst, seen[msg], line))
		}
	}
	return out
}

func between(s, from, to string) string {
	i := strings.Index(s, from)
	if i < 0 {
		return ""
	}
	s = s[i+len(from):]
	if j := strings.Index(s, to); j >= 0 {
		return s[:j]
	}
	return s
}

// Summary is the report's lines for a test log or a failure message.
func (r Report) Summary() string {
	var b strings.Builder
	fmt.Fprintf(&b, "scenario %s (%s profile, seed %d): %s\n", r.Scenario, r.Profile, r.Seed, r.What)
	fmt.Fprintf(&b, "  load: %d inputs published in %.1fs, %d acknowledged (%d valid events, %d resends, %d bad inputs); %d services, %d due visits, %d tasks, %d records\n",
		r.Published, r.LoadTime.Seconds(), r.Acked, r.AckedValid, r.Resends, r.BadInputs, r.Services, r.DueVisits, r.Tasks, r.Records)
	fmt.Fprintf(&b, "  lost %d, doubled %d; settled: %v after %.1fs; SMS tried more than once: %d, duplicate sends the provider dropped by idempotency key: %d\n",
		r.Lost, r.Doubled, r.Settled, r.SettleTime.Seconds(), r.SendsRetried, r.ProviderDuplicates)
	if r.WithStore > 0 {
		fmt.Fprintf(&b, "  %d acknowledged ingress events went with the wiped store before intake took them (not counted as lost):\n", r.WithStore)
		for _, d := range r.WithStoreDetail {
			fmt.Fprintf(&b, "    %s\n", d)
		}
	}
	for i, f := range r.Faults {
		rec := "n/a"
		if i < len(r.Recovery) {
			if r.Recovery[i] < 0 {
				rec = "never"
			} else {
				rec = fmt.Sprintf("%.1fs", r.Recovery[i].Seconds())
			}
		}
		if f.Kind == Poison {
			fmt.Fprintf(&b, "  fault %s; events sent in the 10 s after it waited up to %s for their task\n", f, rec)
			continue
		}
		fmt.Fprintf(&b, "  fault %s; caught up %s after\n", f, rec)
	}
	if len(r.PublishErrs) > 0 {
		fmt.Fprintf(&b, "  publishes not acknowledged: %v\n", r.PublishErrs)
	}
	if len(r.AgentErrs) > 0 {
		fmt.Fprintf(&b, "  agents' errors: %v\n", r.AgentErrs)
	}
	for _, v := range r.Violations {
		fmt.Fprintf(&b, "  VIOLATED %s\n", v)
	}
	if len(r.LogLines) > 0 {
		fmt.Fprintf(&b, "  services' warnings and errors (first of each message; logs in %s):\n", r.LogDir)
		for i, l := range r.LogLines {
			if i == 40 {
				fmt.Fprintf(&b, "    … %d more\n", len(r.LogLines)-i)
				break
			}
			fmt.Fprintf(&b, "    %s\n", l)
		}
	}
	return b.String()
}
