// Package chaos is Huifang's fault-injection suite. It runs the whole system
// on this machine (the five services as processes, nats-server as a process
// or a three-node cluster, a PostgreSQL cluster it owns), drives it with
// realistic ingress traffic (package load) and agents who claim and log
// visits, injects faults on a seeded, replayable schedule (kill -9 of a
// service, NATS killed and restarted, once with an empty store, a node of a
// NATS cluster killed, Postgres stopped at once and started again, its
// sessions ended, a worker paused past its lease, a poison message), lets
// the system settle and checks the invariants of exactly-once effects from
// the databases and from what the generator saw acknowledged.
//
// The short profile runs inside `go test ./...` (TestChaos); the long one is
// `make chaos` (CHAOS_PROFILE=long). CHAOS_SEED replays a run;
// CHAOS_SCENARIO runs some scenarios only (comma-separated names).
package chaos

import (
	"fmt"
	"hash/fnv"
	"math/rand/v2"
	"slices"
	"time"

	"github.com/huifang/huifang/scripts/internal/stack"
)

// Profile sets how long and how hard a run is.
type Profile struct {
	Name string
	// Load is how long the generator publishes, at Rate inputs per second.
	Load time.Duration
	Rate float64
	// Repeat is how often each fault of a scenario is injected.
	Repeat int
	// PGOutage is how long Postgres stays down; Pause how long a worker stays stopped.
	PGOutage time.Duration
	Pause    time.Duration
	// SendLease is dispatch's SEND_LEASE in the pause scenario (shorter than Pause).
	SendLease time.Duration
	// Settle bounds the wait for the system to finish its work after the
	// load; Quiet ends it earlier when nothing moved for that long.
	Settle time.Duration
	Quiet  time.Duration
}

// Short runs inside `go test ./...`: a few minutes on 2 cores.
var Short = Profile{Name: "short", Load: 14 * time.Second, Rate: 12, Repeat: 1, PGOutage: 5 * time.Second,
	Pause: 6 * time.Second, SendLease: 2 * time.Second, Settle: 90 * time.Second, Quiet: 20 * time.Second}

// Long is `make chaos`.
var Long = Profile{Name: "long", Load: 120 * time.Second, Rate: 30, Repeat: 3, PGOutage: 30 * time.Second,
	Pause: 20 * time.Second, SendLease: 5 * time.Second, Settle: 6 * time.Minute, Quiet: 60 * time.Second}

// Fault kinds.
const (
	KillService  = "kill-9"            // SIGKILL a service instance, start it again after For
	KillNATS     = "nats-kill-9"       // SIGKILL the NATS server, start it again on the same store after For
	WipeNATS     = "nats-wipe"         // SIGKILL the NATS server, start it again with an empty store
	KillNATSNode = "nats-node-kill-9"  // SIGKILL one node of the cluster, start it again after For
	WipeNATSNode = "nats-node-wipe"    // SIGKILL one node of the cluster, start it again with an empty store
	CrashPG      = "pg-stop-immediate" // pg_ctl stop -m immediate, start again after For
	TerminatePG  = "pg-terminate"      // pg_terminate_backend of every session of the database
	Pause        = "sigstop"           // SIGSTOP an instance for For, then SIGCONT
	Poison       = "poison"            // a VisitDue every consumer of it fails on
)

// Fault is one injection of a schedule.
type Fault struct {
	// At is when it starts, from the start of the load.
	At   time.Duration
	Kind string
	// Target names the instance (kill, pause), the NATS node (its index) or nothing.
	Target string
	// For is how long the target stays down or paused.
	For time.Duration
}

func (f Fault) String() string {
	s := fmt.Sprintf("%s@%.1fs", f.Kind, f.At.Seconds())
	if f.Target != "" {
		s += " " + f.Target
	}
	if f.For > 0 {
		s += fmt.Sprintf(" for %.1fs", f.For.Seconds())
	}
	return s
}

// Scenario is one kind of fault run against a fresh system.
type Scenario struct {
	Name string
	// What says in a line what is injected (the report's first column).
	What string
	// NATSNodes is 3 for a JetStream cluster (R3 streams), else one server.
	NATSNodes int
	Replicas  map[string]int
	Env       map[string][]string
	// Oversized is how many oversized inputs the load carries.
	Oversized int
	// faults plans the injections from the scenario's own random source.
	faults func(rng *rand.Rand, p Profile) []Fault
}

// Scenarios are the suite's scenarios for a profile.
func Scenarios(p Profile) []Scenario {
	return []Scenario{
		{
			Name: "kill-services", What: "kill -9 of each service at a random moment, restarted 0.5–3 s later",
			faults: func(rng *rand.Rand, p Profile) []Fault {
				var targets []string
				for range p.Repeat {
					targets = append(targets, shuffled(rng, stack.Services())...)
				}
				return spread(rng, p, targets, func(target string) Fault {
					return Fault{Kind: KillService, Target: target, For: time.Duration(500+rng.IntN(2500)) * time.Millisecond}
				})
			},
		},
		{
			Name: "nats-restart", What: "nats-server (single node) killed with kill -9 and restarted on its store; then once with an empty store",
			faults: func(rng *rand.Rand, p Profile) []Fault {
				var kinds []string
				for range p.Repeat {
					kinds = append(kinds, KillNATS)
				}
				kinds = append(kinds, WipeNATS)
				return spread(rng, p, kinds, func(kind string) Fault {
					return Fault{Kind: kind, For: time.Duration(1000+rng.IntN(3000)) * time.Millisecond}
				})
			},
		},
		{
			Name: "nats-cluster-node", What: "one node of a 3-node JetStream cluster (R3 streams) killed with kill -9 and restarted; then once with an empty store",
			NATSNodes: 3,
			faults: func(rng *rand.Rand, p Profile) []Fault {
				var kinds []string
				for range p.Repeat {
					kinds = append(kinds, KillNATSNode)
				}
				kinds = append(kinds, WipeNATSNode)
				return spread(rng, p, kinds, func(kind string) Fault {
					return Fault{Kind: kind, Target: fmt.Sprint(rng.IntN(3)), For: time.Duration(2000+rng.IntN(4000)) * time.Millisecond}
				})
			},
		},
		{
			Name: "postgres-outage", What: "Postgres stopped with pg_ctl stop -m immediate and restarted; every session terminated",
			faults: func(rng *rand.Rand, p Profile) []Fault {
				// An outage takes most of its slot: at most two in a run.
				kinds := []string{CrashPG, TerminatePG}
				if p.Repeat > 1 {
					kinds = append(kinds, CrashPG)
				}
				return spread(rng, p, kinds, func(kind string) Fault {
					if kind == CrashPG {
						return Fault{Kind: kind, For: p.PGOutage}
					}
					return Fault{Kind: kind}
				})
			},
		},
		{
			Name: "paused-worker", What: "SIGSTOP past the lease, then SIGCONT: the dispatch replica in the middle of an SMS send (SEND_LEASE shorter than the pause; another replica takes over) and analytics' leader",
			Replicas: map[string]int{"dispatch": 2, "analytics": 2},
			faults: func(rng *rand.Rand, p Profile) []Fault {
				var targets []string
				for range p.Repeat {
					targets = append(targets, shuffled(rng, []string{MidSend, "analytics"})...)
				}
				return spread(rng, p, targets, func(target string) Fault {
					return Fault{Kind: Pause, Target: target, For: p.Pause}
				})
			},
		},
		{
			Name: "poison-and-bad-input", What: "a poison VisitDue that always fails its consumers, and oversized inputs, beside the usual malformed ones",
			Oversized: 2,
			faults: func(rng *rand.Rand, p Profile) []Fault {
				kinds := make([]string, p.Repeat)
				for i := range kinds {
					kinds[i] = Poison
				}
				return spread(rng, p, kinds, func(kind string) Fault { return Fault{Kind: kind} })
			},
		},
	}
}

// ScenarioSeed is a scenario's own seed: the run's seed and its name, so
// that one scenario run alone (CHAOS_SCENARIO) replays as in the full run.
func ScenarioSeed(seed int64, name string) int64 {
	h := fnv.New64a()
	_, _ = fmt.Fprintf(h, "%d/%s", seed, name)
	return int64(h.Sum64() >> 1)
}

// Schedule plans a scenario's faults for a seed.
func (sc Scenario) Schedule(seed int64, p Profile) []Fault {
	rng := rand.New(rand.NewPCG(uint64(seed), 0xda3e39cb94b95bdb))
	return sc.faults(rng, p)
}

// spread places one fault per item at random moments of the load, each in
// its own slot (so that they do not overlap), after a first tenth of quiet.
func spread[T any](rng *rand.Rand, p Profile, items []T, make func(T) Fault) []Fault {
	if len(items) == 0 {
		return nil
	}
	start := p.Load / 10
	slot := (p.Load - start) / time.Duration(len(items))
	var out []Fault
	for i, it := range items {
		f := make(it)
		room := slot - f.For - slot/4
		jitter := time.Duration(0)
		if room > 0 {
			jitter = time.Duration(rng.Int64N(int64(room)))
		}
		f.At = start + time.Duration(i)*slot + jitter
		out = append(out, f)
	}
	return out
}

func shuffled(rng *rand.Rand, in []string) []string {
	out := slices.Clone(in)
	rng.Shuffle(len(out), func(i, j int) { out[i], out[j] = out[j], out[i] })
	return out
}
