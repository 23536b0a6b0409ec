package chaos

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/huifang/huifang/scripts/internal/pgcluster"
	"github.com/huifang/huifang/scripts/internal/stack"
)

// binDir holds the five services and huifang-nats, built once by TestMain.
var binDir string

func TestMain(m *testing.M) {
	os.Exit(runTests(m))
}

func runTests(m *testing.M) int {
	root, err := stack.Root(".")
	if err != nil {
		fmt.Fprintln(os.Stderr, "chaos:", err)
		return 1
	}
	dir, err := os.MkdirTemp("", "huifang-chaos-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "chaos:", err)
		return 1
	}
	defer os.RemoveAll(dir)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	if err := stack.Build(ctx, root, dir, "huifang-nats"); err != nil {
		fmt.Fprintln(os.Stderr, "chaos: build the services:", err)
		return 1
	}
	binDir = dir
	// One system test at a time on this machine: scripts/e2e takes the same lock.
	release, err := stack.LockMachine("system-tests")
	if err != nil {
		fmt.Fprintln(os.Stderr, "chaos:", err)
		return 1
	}
	defer release()
	return m.Run()
}

// DefaultShortSeed is the seed of the short run inside `go test ./...`, so
// that CI runs the same schedule every time; CHAOS_SEED picks another.
const DefaultShortSeed = 20261206

// TestChaos runs every scenario of the profile (CHAOS_PROFILE: short, the
// default, or long) with its seed (CHAOS_SEED), each against a fresh system
// on a Postgres cluster this test owns, and fails a scenario for every
// invariant its run broke, with the faults, the events concerned and the
// services' warnings.
func TestChaos(t *testing.T) {
	p := Short
	if os.Getenv("CHAOS_PROFILE") == "long" {
		p = Long
	}
	seed := int64(DefaultShortSeed)
	if p.Name == "long" {
		seed = time.Now().UnixNano() % 1_000_000_000
	}
	if s := os.Getenv("CHAOS_SEED"); s != "" {
		v, err := strconv.ParseInt(s, 10, 64)
		require.NoError(t, err, "CHAOS_SEED must be an integer")
		seed = v
	}
	replay := func(scenario string) string {
		only := ""
		if scenario != "" {
			only = "CHAOS_SCENARIO=" + scenario + " "
		}
		if p.Name == "short" {
			return fmt.Sprintf("cd scripts && %sCHAOS_SEED=%d go test -race -count=1 -run TestChaos ./chaos/", only, seed)
		}
		return fmt.Sprintf("%sCHAOS_SEED=%d make chaos", only, seed)
	}
	t.Logf("chaos: %s profile, seed %d; replay with: %s (CHAOS_SCENARIO=name,... runs some scenarios only)", p.Name, seed, replay(""))

	var only []string
	if s := os.Getenv("CHAOS_SCENARIO"); s != "" {
		only = strings.Split(s, ",")
	}
	ctx := t.Context()
	pctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	pg, err := pgcluster.Start(pctx)
	cancel()
	require.NoError(t, err, "a Postgres cluster of the test's own (it stops and starts it)")
	t.Cleanup(pg.Destroy)

	var reports []Report
	for _, sc := range Scenarios(p) {
		if len(only) > 0 && !slices.Contains(only, sc.Name) {
			continue
		}
		t.Run(sc.Name, func(t *testing.T) {
			dir, err := os.MkdirTemp("", "huifang-chaos-"+sc.Name+"-")
			require.NoError(t, err)
			log := slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelInfo}))
			rep, err := Run(t.Context(), sc, p, RunConfig{BinDir: binDir, PG: pg, Dir: dir, Seed: seed, Log: log})
			require.NoError(t, err)
			reports = append(reports, rep)
			t.Log("\n" + rep.Summary())
			if len(rep.Violations) > 0 {
				t.Errorf("scenario %s broke %d invariants (seed %d; replay: %s); logs kept in %s:\n%s",
					sc.Name, len(rep.Violations), seed, replay(sc.Name), dir, rep.Summary())
				return
			}
			if os.Getenv("CHAOS_KEEP") == "" {
				_ = os.RemoveAll(dir)
			}
		})
	}
	if path := os.Getenv("CHAOS_REPORT"); path != "" {
		b, err := json.MarshalIndent(reports, "", "  ")
		require.NoError(t, err)
		require.NoError(t, os.MkdirAll(filepath.Dir(path), 0o755))
		require.NoError(t, os.WriteFile(path, b, 0o644))
		t.Logf("chaos: report written to %s", path)
	}
}

// TestScheduleIsReplayable: the same seed plans the same faults and load;
// another seed plans others; faults start inside the load.
func TestScheduleIsReplayable(t *testing.T) {
	for _, p := range []Profile{Short, Long} {
		for _, sc := range Scenarios(p) {
			a := sc.Schedule(ScenarioSeed(7, sc.Name), p)
			require.Equal(t, a, sc.Schedule(ScenarioSeed(7, sc.Name), p), "%s/%s", p.Name, sc.Name)
			require.NotEmpty(t, a)
			for _, f := range a {
				require.Less(t, f.At, p.Load, "%s/%s: %s starts while the load runs", p.Name, sc.Name, f)
				require.GreaterOrEqual(t, f.At, p.Load/10)
			}
		}
	}
	sc := Scenarios(Short)[0]
	require.NotEqual(t, sc.Schedule(ScenarioSeed(7, sc.Name), Short), sc.Schedule(ScenarioSeed(8, sc.Name), Short))
	kills := map[string]bool{}
	for _, f := range sc.Schedule(1, Short) {
		kills[f.Target] = true
	}
	require.Len(t, kills, len(stack.Services()), "each service is killed")
}
