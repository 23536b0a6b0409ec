package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/huifang/huifang/pkg/pgtest"
	"github.com/huifang/huifang/scripts/internal/load"
	"github.com/huifang/huifang/scripts/internal/stack"
)

// TestAgainstTheWholeSystem runs the load generator against the five
// services (built from this tree, as processes, as scripts/e2e runs them)
// on a fresh database and a NATS server process, with make run's instant
// policy for repairs: 300 events at 200/s over two tenants. Every event is
// acked and stored once; every repair of the default tenant reaches
// VisitDue and a task, with latencies measured; the second tenant's events
// are taken too and planned with the built-in policies only (a purchase
// gets the appliance-purchase follow-up a day later; nothing falls due);
// every malformed event is dead-lettered.
func TestAgainstTheWholeSystem(t *testing.T) {
	// One system test at a time on the machine (scripts/e2e and
	// scripts/chaos hold the same lock).
	release, err := stack.LockMachine("system-tests")
	require.NoError(t, err)
	t.Cleanup(release)

	root, err := stack.Root(".")
	require.NoError(t, err)
	bin := t.TempDir()
	buildCtx, cancel := context.WithTimeout(t.Context(), 10*time.Minute)
	defer cancel()
	require.NoError(t, stack.Build(buildCtx, root, bin, "huifang-nats"))

	dbURL := pgtest.NewDatabase(t)
	natsCtx, cancelNATS := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancelNATS()
	ns, err := stack.RunNATS(natsCtx, filepath.Join(bin, "huifang-nats"), t.TempDir())
	require.NoError(t, err)
	t.Cleanup(ns.Stop)
	startCtx, cancelStart := context.WithTimeout(t.Context(), 3*time.Minute)
	defer cancelStart()
	st, is, err := stack.StartWithIssuer(startCtx, stack.Config{
		BinDir: bin, DatabaseURL: dbURL, NATSURL: ns.URL,
		LogLevel: "info", LogDir: t.TempDir(), ReadyTimeout: 2 * time.Minute, StopGrace: 15 * time.Second,
		Log: slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelWarn})),
	})
	require.NoError(t, err)
	t.Cleanup(func() {
		if err := st.StopAll(context.Background()); err != nil {
			t.Errorf("services did not shut down cleanly: %v", err)
		}
		if t.Failed() {
			for _, s := range st.Instances() {
				t.Logf("--- last lines of %s's log:\n%s", s, st.LogTail(s, 30))
			}
		}
		_ = is.Close()
	})

	// make run's instant policy, as scripts/e2e's prepare() creates it.
	pctx, cancelPolicy := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancelPolicy()
	require.NoError(t, stack.CreateInstantPolicy(pctx, st, is))

	args := []string{"-nats", ns.URL, "-rate", "200", "-n", "300", "-tenants", "2", "-seed", "20261206",
		"-types", "repair,repair,repair,purchase,installation,maintenance,delivery", "-database-url", dbURL,
		"-wait", "3m", "-json", filepath.Join(t.TempDir(), "summary.json")}
	var stdout, stderr bytes.Buffer
	require.NoError(t, run(t.Context(), slog.New(slog.NewTextHandler(&stderr, nil)), args, &stdout, &stderr), "stderr:\n%s", stderr.String())
	t.Log("\n" + stdout.String())

	var s Summary
	b, err := os.ReadFile(args[len(args)-1])
	require.NoError(t, err)
	require.NoError(t, json.Unmarshal(b, &s))

	// What the run published, from the same flags.
	cfg, err := parseFlags(args, io.Discard)
	require.NoError(t, err)
	want := map[string]map[string]int{} // tenant → service type → valid events
	for _, e := range load.Plan(loadConfig(cfg, "x", time.Now())) {
		if e.Kind == load.Valid {
			if want[e.Tenant] == nil {
				want[e.Tenant] = map[string]int{}
			}
			want[e.Tenant][e.ServiceType]++
		}
	}
	repairs := want["default"]["repair"]
	require.Positive(t, repairs)
	require.Positive(t, want["t2"]["purchase"])

	require.Equal(t, 300, s.Published)
	require.Equal(t, 300, s.Acked)
	require.Zero(t, s.Failed)
	require.Equal(t, "settled", s.Wait, "the pipeline settled within -wait")
	require.Equal(t, s.Kinds["valid"], s.Latency[stageService].Count, "every valid event stored")
	require.Zero(t, s.ServicesMissing)
	require.Zero(t, s.ServicesTwice, "resends dropped by intake")

	// The instant policy: every repair of the default tenant fell due at
	// once and became a task, the latencies measured.
	require.Equal(t, repairs, s.Latency[stageDue].Count, "VisitDue for every repair of the default tenant")
	require.Equal(t, repairs, s.Latency[stageTask].Count, "a task for every one")
	require.True(t, s.TasksMeasured)
	require.Positive(t, s.Latency[stageDue].P50)
	require.GreaterOrEqual(t, s.Latency[stageTask].P50, s.Latency[stageService].P50, "a task comes after the service")
	require.Equal(t, repairs, s.ByTenant["default"].Due)
	require.Equal(t, repairs, s.ByTenant["default"].Tasks)
	require.Zero(t, s.VisitsDueNotFired)
	require.Zero(t, s.FiredWithoutTask)

	// The second tenant: accepted, planned with the built-in policies only.
	t2 := s.ByTenant["t2"]
	require.NotNil(t, t2)
	require.Equal(t, t2.Valid, t2.Services, "the second tenant's events are taken")
	require.Equal(t, want["t2"]["purchase"], t2.Planned, "only the built-in appliance-purchase policy plans its visits")
	require.Zero(t, t2.Due, "no policy of the second tenant falls due at once")
	require.Equal(t, want["default"]["purchase"]+want["t2"]["purchase"], s.ByType["purchase"].Planned)

	require.Equal(t, s.Kinds["malformed"], s.DeadLetters, "every malformed event dead-lettered")
	require.Equal(t, s.MalformedFields, s.DeadLetterFields)
}
