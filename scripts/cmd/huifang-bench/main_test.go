package main

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/huifang/huifang/pkg/pgtest"
	"github.com/huifang/huifang/scripts/internal/stack"
)

func TestParseStat(t *testing.T) {
	// A command with a space and a parenthesis, as Postgres names its backends.
	line := "4242 (postgres: x (y)) S 17 4242 4242 0 -1 4194560 1 0 0 0 250 130 40 20 20 0 1 0 100 1000 10 18446744073709551615"
	st, err := parseStat([]byte(line))
	require.NoError(t, err)
	require.Equal(t, 17, st.ppid)
	require.Equal(t, "postgres: x (y)", st.comm)
	require.InDelta(t, 3.8, st.cpu, 1e-9, "utime + stime in seconds")
	require.InDelta(t, 0.6, st.childrenCPU, 1e-9, "cutime + cstime in seconds")

	_, err = parseStat([]byte("12 (short) S 1 2"))
	require.ErrorContains(t, err, "fields")
}

// A fake /proc: a postmaster (10) with a backend (11) that has a child (12),
// and an unrelated process (20).
func fakeProc(t *testing.T) string {
	root := t.TempDir()
	write := func(pid, ppid string, utime, stime, cutime string) {
		require.NoError(t, os.MkdirAll(filepath.Join(root, pid), 0o755))
		line := pid + " (postgres) S " + ppid + " 0 0 0 -1 0 0 0 0 0 " + utime + " " + stime + " " + cutime + " 0 20 0 1 0 0 0 0"
		require.NoError(t, os.WriteFile(filepath.Join(root, pid, "stat"), []byte(line), 0o644))
	}
	write("10", "1", "100", "100", "500") // 2 s own, 5 s of reaped children
	write("11", "10", "300", "0", "0")
	write("12", "11", "50", "50", "0")
	write("20", "1", "900", "0", "0")
	require.NoError(t, os.WriteFile(filepath.Join(root, "10", "status"), []byte("Name:\tpostgres\nVmPeak:\t  9000 kB\nVmHWM:\t  2048 kB\nVmRSS:\t 1024 kB\n"), 0o644))
	require.NoError(t, os.MkdirAll(filepath.Join(root, "self"), 0o755))
	return root
}

func TestTreeCPUSumsTheProcessAndEverythingUnderIt(t *testing.T) {
	root := fakeProc(t)
	cpu, err := treeCPU(root, 10)
	require.NoError(t, err)
	require.InDelta(t, 2+5+3+1, cpu, 1e-9, "not the unrelated process")
	rss, err := peakRSS(root, 10)
	require.NoError(t, err)
	require.Equal(t, int64(2048*1024), rss)
	_, err = peakRSS(root, 11)
	require.Error(t, err)
}

func TestReplaceBetweenMarkers(t *testing.T) {
	doc := "# Benchmarks\n\nintro\n\n" + beginMarker + "\nold table\n" + endMarker + "\n\n## more\n"
	out, err := replaceBetween([]byte(doc), "new table\n")
	require.NoError(t, err)
	require.Equal(t, "# Benchmarks\n\nintro\n\n"+beginMarker+"\nnew table\n"+endMarker+"\n\n## more\n", string(out))
	again, err := replaceBetween(out, "new table\n")
	require.NoError(t, err)
	require.Equal(t, string(out), string(again), "rewriting the same table changes nothing")

	_, err = replaceBetween([]byte("# no markers\n"), "x")
	require.ErrorContains(t, err, "no table markers")
	_, err = replaceBetween([]byte(endMarker+"\n"+beginMarker+"\n"), "x")
	require.ErrorContains(t, err, "before")
}

func TestThousands(t *testing.T) {
	for in, want := range map[float64]string{0: "0", 999.4: "999", 999.6: "1,000", 53885: "53,885", 1234567: "1,234,567"} {
		require.Equal(t, want, thousands(in), "%v", in)
	}
}

func TestFlagsAreChecked(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"-database-url", ""}, "-database-url"},
		{[]string{"-database-url", "postgres://x", "-n", "10"}, "-n 10"},
		{[]string{"-database-url", "postgres://x", "-latency", "10ms"}, "-latency"},
		{[]string{"-database-url", "postgres://x", "extra"}, "unexpected argument"},
		{[]string{"-database-url", "postgres://x", "-profile", "p", "-profile-seconds", "0"}, "-profile-seconds 0"},
	} {
		t.Setenv("DATABASE_URL", "")
		_, err := parseFlags(tc.args, io.Discard)
		require.ErrorContains(t, err, tc.want, "%v", tc.args)
	}
}

// make bench, small: the services built from this tree, a burst of 300
// events and 3 s of latency measurement. Every figure is there and
// plausible, the JSON written and the table put between the markers.
func TestBenchAgainstTheWholeSystem(t *testing.T) {
	release, err := stack.LockMachine("system-tests")
	require.NoError(t, err)
	t.Cleanup(release)

	root, err := stack.Root(".")
	require.NoError(t, err)
	bin := t.TempDir()
	buildCtx, cancel := context.WithTimeout(t.Context(), 10*time.Minute)
	defer cancel()
	require.NoError(t, stack.Build(buildCtx, root, bin, "huifang-nats", "huifang-loadgen"))

	adminURL := pgtest.AdminURL()
	dir := t.TempDir()
	docs := filepath.Join(dir, "benchmarks.md")
	require.NoError(t, os.WriteFile(docs, []byte("# Benchmarks\n\n"+beginMarker+"\n"+endMarker+"\n"), 0o644))
	jsonFile := filepath.Join(dir, "bench.json")
	profiles := filepath.Join(dir, "profiles")
	var stdout, stderr bytes.Buffer
	err = run(t.Context(), slog.New(slog.NewTextHandler(&stderr, nil)), []string{"-bin", bin, "-database-url", adminURL,
		"-n", "300", "-latency", "3s", "-raw-messages", "1000", "-raw-rows", "400", "-json", jsonFile, "-docs", docs, "-commit", "test",
		"-profile", profiles, "-profile-seconds", "2"}, &stdout)
	require.NoError(t, err, "stderr:\n%s", stderr.String())
	t.Log(stdout.String())

	var r Result
	b, err := os.ReadFile(jsonFile)
	require.NoError(t, err)
	require.NoError(t, json.Unmarshal(b, &r))
	for name, v := range map[string]float64{
		"JetStream single": r.Raw.JetStreamSingle, "JetStream batch 100": r.Raw.JetStreamBatch100, "JetStream batch 500": r.Raw.JetStreamBatch500,
		"Postgres single": r.Raw.PostgresSingle, "Postgres batched": r.Raw.PostgresBatched,
		"events/s": r.Sustained.EventsPerS, "commits/event": r.Sustained.CommitsPer, "rows/event": r.Sustained.RowsPer,
		"WAL/event": r.Sustained.WALBytesPer, "limit": r.PostgresLimit, "ratio": r.Ratio,
		"VisitDue p50": r.Latency.DueP50, "VisitDue p99": r.Latency.DueP99, "task p99": r.Latency.TaskP99,
	} {
		require.Positive(t, v, name)
	}
	require.Equal(t, 300, r.Sustained.Events)
	require.GreaterOrEqual(t, r.Latency.DueP99, r.Latency.DueP50)
	require.True(t, r.Latency.Settled)
	// Each event writes at least a service, a visit and a task.
	require.GreaterOrEqual(t, r.Sustained.RowsPer, 3.0)
	// The rows by table add up to at most the database's count (which adds
	// the system catalogs': temporary tables, statistics).
	byTable := 0.0
	for _, name := range []string{"intake.services", "scheduler.planned_visits", "dispatch.tasks"} {
		require.GreaterOrEqual(t, r.Sustained.TableRowsPer[name].Inserted, 0.99, name)
	}
	for _, tr := range r.Sustained.TableRowsPer {
		byTable += tr.Total()
	}
	require.LessOrEqual(t, byTable, r.Sustained.RowsPer+0.01)
	require.Greater(t, byTable, 3.0)
	require.NotEmpty(t, r.Sustained.TopStatements, "the statements that took the most time")
	for _, svc := range append(stack.Services(), "nats-server") {
		require.Contains(t, r.Sustained.CPUPer1000, svc)
		require.Positive(t, r.PeakRSSBytes[svc], svc)
		// A CPU profile of the burst from each process: gzipped pprof.
		require.Equal(t, filepath.Join(profiles, svc+".pprof"), r.Profiles[svc], svc)
		f, err := os.Open(r.Profiles[svc])
		require.NoError(t, err, svc)
		zr, err := gzip.NewReader(f)
		require.NoError(t, err, svc)
		n, err := io.Copy(io.Discard, zr)
		require.NoError(t, err, svc)
		require.Greater(t, n, int64(100), svc)
		require.NoError(t, f.Close())
	}
	out, err := os.ReadFile(docs)
	require.NoError(t, err)
	require.Contains(t, string(out), "**Huifang ingress → task**, burst of 300 completed repairs")
	require.True(t, strings.HasSuffix(string(out), endMarker+"\n"))
	require.Contains(t, stdout.String(), "| raw Postgres, 4 clients")
	require.Contains(t, stdout.String(), "| rows written per event, by table")
}
