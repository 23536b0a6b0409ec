package main

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/huifang/huifang/scripts/internal/stack"
)

// Result is one run's figures (the JSON file).
type Result struct {
	At      time.Time `json:"at"`
	Commit  string    `json:"commit,omitempty"`
	Machine Machine   `json:"machine"`
	Raw     Raw       `json:"raw"`
	// Sustained is the burst: Events completed repairs published at once,
	// timed until dispatch held a task for each.
	Sustained Sustained `json:"sustained"`
	// Latency is huifang-loadgen's at half the sustained rate.
	Latency Latency `json:"latency"`
	// PostgresLimit is what Postgres's batched rate allows for the rows
	// Huifang writes per event; Ratio is the sustained rate over it.
	PostgresLimit float64 `json:"postgres_limit_events_per_s"`
	Ratio         float64 `json:"ratio_to_postgres_limit"`
	// PeakRSSBytes is each service's and the NATS server's peak resident
	// set over the whole run.
	PeakRSSBytes map[string]int64 `json:"peak_rss_bytes"`
	// Profiles are the CPU profiles of the burst (-profile), by process.
	Profiles map[string]string `json:"profiles,omitempty"`
}

// Machine describes where it ran.
type Machine struct {
	CPUs  int    `json:"cpus"`
	Model string `json:"cpu_model,omitempty"`
	Go    string `json:"go"`
}

// Sustained are the burst's figures.
type Sustained struct {
	Events        int     `json:"events"`
	Seconds       float64 `json:"seconds"`
	EventsPerS    float64 `json:"events_per_s"`
	PublishedPerS float64 `json:"published_per_s"`
	CommitsPer    float64 `json:"commits_per_event"`
	// RollbacksPer are transactions rolled back per event: batches that gave
	// way to a lock and were done again message by message, among others.
	RollbacksPer  float64            `json:"rollbacks_per_event"`
	RowsPer       float64            `json:"rows_per_event"`
	WALBytesPer   float64            `json:"wal_bytes_per_event"`
	StatementsPer float64            `json:"statements_per_event,omitempty"`
	CPUPer1000    map[string]float64 `json:"cpu_seconds_per_1000_events"`
	// TableRowsPer are the rows inserted, updated and deleted per event in
	// each table ("schema.table"), those that wrote any.
	TableRowsPer map[string]TableRows `json:"table_rows_per_event,omitempty"`
	// TopStatements are the statements that took the most of Postgres's
	// time in the burst (pg_stat_statements, when loaded), most first.
	TopStatements []Statement `json:"top_statements,omitempty"`
}

// Statement is one normalized statement's share of the burst.
type Statement struct {
	Query      string  `json:"query"`
	Calls      int64   `json:"calls"`
	TotalMS    float64 `json:"total_ms"`
	Rows       int64   `json:"rows"`
	WALBytes   int64   `json:"wal_bytes"`
	SharePct   float64 `json:"share_pct"`
	PerEventMS float64 `json:"ms_per_event"`
}

// statementsOf reads pg_stat_statements for the benchmark's database, by
// query id.
func statementsOf(ctx context.Context, db *pgxpool.Pool) (map[int64]Statement, error) {
	rows, err := db.Query(ctx, `SELECT s.queryid, left(s.query, 300), s.calls, s.total_exec_time, s.rows, s.wal_bytes::bigint
FROM pg_stat_statements s JOIN pg_database d ON d.oid = s.dbid WHERE d.datname = current_database() AND s.queryid IS NOT NULL`)
	if err != nil {
		return nil, fmt.Errorf("read pg_stat_statements: %w", err)
	}
	defer rows.Close()
	out := map[int64]Statement{}
	for rows.Next() {
		var id int64
		var st Statement
		if err := rows.Scan(&id, &st.Query, &st.Calls, &st.TotalMS, &st.Rows, &st.WALBytes); err != nil {
			return nil, fmt.Errorf("read pg_stat_statements: %w", err)
		}
		prev := out[id]
		st.Calls += prev.Calls
		st.TotalMS += prev.TotalMS
		st.Rows += prev.Rows
		st.WALBytes += prev.WALBytes
		out[id] = st
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read pg_stat_statements: %w", err)
	}
	return out, nil
}

// topStatements are the statements of after that took the most time since
// before, at most n.
func topStatements(before, after map[int64]Statement, events, n int) []Statement {
	var out []Statement
	total := 0.0
	for id, a := range after {
		b := before[id]
		d := Statement{Query: strings.Join(strings.Fields(a.Query), " "), Calls: a.Calls - b.Calls, TotalMS: a.TotalMS - b.TotalMS,
			Rows: a.Rows - b.Rows, WALBytes: a.WALBytes - b.WALBytes}
		if d.Calls <= 0 {
			continue
		}
		total += d.TotalMS
		out = append(out, d)
	}
	slices.SortFunc(out, func(a, b Statement) int { return cmp.Compare(b.TotalMS, a.TotalMS) })
	out = out[:min(n, len(out))]
	for i := range out {
		if total > 0 {
			out[i].SharePct = 100 * out[i].TotalMS / total
		}
		out[i].PerEventMS = out[i].TotalMS / float64(events)
	}
	return out
}

// TableRows are one table's row writes per event.
type TableRows struct {
	Inserted float64 `json:"inserted"`
	Updated  float64 `json:"updated"`
	Deleted  float64 `json:"deleted"`
}

// Total is every row the table wrote.
func (t TableRows) Total() float64 { return t.Inserted + t.Updated + t.Deleted }

// tableRows reads each table's counters of rows written.
func tableRows(ctx context.Context, db *pgxpool.Pool) (map[string][3]int64, error) {
	rows, err := db.Query(ctx, `SELECT schemaname || '.' || relname, n_tup_ins, n_tup_upd, n_tup_del FROM pg_stat_user_tables`)
	if err != nil {
		return nil, fmt.Errorf("read the tables' counters: %w", err)
	}
	defer rows.Close()
	out := map[string][3]int64{}
	for rows.Next() {
		var name string
		var v [3]int64
		if err := rows.Scan(&name, &v[0], &v[1], &v[2]); err != nil {
			return nil, fmt.Errorf("read the tables' counters: %w", err)
		}
		out[name] = v
	}
	return out, rows.Err()
}

// Latency are the percentiles from publish, in milliseconds.
type Latency struct {
	Rate    float64 `json:"offered_per_s"`
	Events  int     `json:"events"`
	DueP50  float64 `json:"visit_due_p50_ms"`
	DueP99  float64 `json:"visit_due_p99_ms"`
	TaskP50 float64 `json:"task_p50_ms"`
	TaskP99 float64 `json:"task_p99_ms"`
	Settled bool    `json:"settled"`
}

// measure runs everything and returns the figures.
func measure(ctx context.Context, log *slog.Logger, cfg config) (*Result, error) {
	res := &Result{At: time.Now().UTC(), Commit: cfg.commit, Machine: machine()}
	tmp, err := os.MkdirTemp("", "huifang-bench-")
	if err != nil {
		return nil, fmt.Errorf("temp folder: %w", err)
	}
	defer os.RemoveAll(tmp)
	bin, err := filepath.Abs(cfg.bin)
	if err != nil {
		return nil, fmt.Errorf("-bin: %w", err)
	}
	run := strconv.FormatInt(time.Now().Unix(), 10)

	prof, err := newProfiler(cfg)
	if err != nil {
		return nil, err
	}
	natsCtx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	ns, err := stack.RunNATS(natsCtx, filepath.Join(bin, "huifang-nats"), filepath.Join(tmp, "nats"), prof.natsArgs()...)
	if err != nil {
		return nil, err
	}
	defer ns.Stop()

	log.Info("raw limits: JetStream", "messages", cfg.rawMessages)
	if res.Raw.JetStreamSingle, res.Raw.JetStreamBatch100, res.Raw.JetStreamBatch500, err = measureJetStream(ctx, ns.URL, cfg.rawMessages); err != nil {
		return nil, err
	}
	log.Info("raw limits: Postgres", "rows", cfg.rawRows)
	rawURL, err := stack.CreateDatabase(ctx, cfg.databaseURL, "huifang_bench_raw_"+run)
	if err != nil {
		return nil, err
	}
	defer dropDatabase(log, cfg.databaseURL, "huifang_bench_raw_"+run)
	if res.Raw.PostgresSingle, res.Raw.PostgresBatched, err = measurePostgres(ctx, rawURL, cfg.rawRows, 10*cfg.rawRows); err != nil {
		return nil, err
	}

	dbName := "huifang_bench_" + run
	dbURL, err := stack.CreateDatabase(ctx, cfg.databaseURL, dbName)
	if err != nil {
		return nil, err
	}
	defer dropDatabase(log, cfg.databaseURL, dbName)
	startCtx, cancelStart := context.WithTimeout(ctx, 3*time.Minute)
	defer cancelStart()
	st, is, err := stack.StartWithIssuer(startCtx, stack.Config{
		BinDir: bin, DatabaseURL: dbURL, NATSURL: ns.URL, Env: prof.env(),
		LogLevel: "info", LogDir: filepath.Join(tmp, "logs"), ReadyTimeout: 2 * time.Minute, StopGrace: 15 * time.Second,
		Log: log.With("part", "stack"),
	})
	if err != nil {
		return nil, err
	}
	defer func() {
		if err := st.StopAll(context.WithoutCancel(ctx)); err != nil {
			log.Warn("services did not stop cleanly", "err", err)
		}
		_ = is.Close()
	}()
	policyCtx, cancelPolicy := context.WithTimeout(ctx, 30*time.Second)
	defer cancelPolicy()
	if err := stack.CreateInstantPolicy(policyCtx, st, is); err != nil {
		return nil, err
	}
	db, err := pgxpool.New(ctx, dbURL)
	if err != nil {
		return nil, fmt.Errorf("connect: %w", err)
	}
	defer db.Close()
	countStatements(ctx, log, db)

	log.Info("sustained rate: burst of completed repairs", "events", cfg.events)
	if res.Sustained, err = burst(ctx, log, cfg, st, ns, db, bin, tmp, prof); err != nil {
		return nil, err
	}
	if files, errs := prof.wait(); prof != nil {
		res.Profiles = files
		for _, err := range errs {
			log.Warn("a profile was not taken", "err", err)
		}
		log.Info("CPU profiles of the burst written (go tool pprof -top <file>)", "folder", cfg.profile, "seconds", cfg.profileSeconds)
	}
	if rows := res.Sustained.RowsPer; rows > 0 {
		res.PostgresLimit = res.Raw.PostgresBatched / rows
		res.Ratio = res.Sustained.EventsPerS / res.PostgresLimit
	}

	rate := max(1, float64(int(res.Sustained.EventsPerS/2)))
	log.Info("latency at half the sustained rate", "rate", rate, "for", cfg.latency)
	if res.Latency, err = latency(ctx, bin, ns.URL, dbURL, rate, cfg.latency, tmp); err != nil {
		return nil, err
	}
	// The high-water marks, of both runs.
	res.PeakRSSBytes = map[string]int64{}
	for name, pid := range procs(ctx, st, ns, db) {
		if name == "postgres" || pid == 0 {
			continue
		}
		if v, err := peakRSS("/proc", pid); err == nil {
			res.PeakRSSBytes[name] = v
		}
	}
	return res, nil
}

// pgCounters are what Postgres counts of the work done: commits and rows
// written in the benchmark's database, WAL bytes of the whole server, and
// statements when pg_stat_statements is loaded (-1 otherwise).
type pgCounters struct{ commits, rollbacks, rows, walBytes, statements int64 }

func readCounters(ctx context.Context, db *pgxpool.Pool) (pgCounters, error) {
	c, err := readRows(ctx, db)
	if err != nil {
		return c, err
	}
	c.statements = -1
	var calls int64
	if err := db.QueryRow(ctx, `SELECT coalesce(sum(calls), 0)::bigint FROM pg_stat_statements s JOIN pg_database d ON d.oid = s.dbid
WHERE d.datname = current_database()`).Scan(&calls); err == nil {
		c.statements = calls
	}
	return c, nil
}

// readRows reads the counters but the statements (which cost Postgres
// more to sum than the settling's polls should).
func readRows(ctx context.Context, db *pgxpool.Pool) (pgCounters, error) {
	var c pgCounters
	err := db.QueryRow(ctx, `SELECT d.xact_commit, d.xact_rollback, d.tup_inserted + d.tup_updated + d.tup_deleted, w.wal_bytes::bigint
FROM pg_stat_database d, pg_stat_wal w WHERE d.datname = current_database()`).Scan(&c.commits, &c.rollbacks, &c.rows, &c.walBytes)
	if err != nil {
		return c, fmt.Errorf("read Postgres's counters: %w", err)
	}
	c.statements = -1
	return c, nil
}

// procs are the processes whose CPU time and memory the burst reports: the
// services, the NATS server and Postgres (the tree under the postmaster of
// the benchmark's connections, when it runs on this machine).
func procs(ctx context.Context, st *stack.Stack, ns *stack.NATSProcess, db *pgxpool.Pool) map[string]int {
	out := map[string]int{"nats-server": ns.Pid()}
	for _, s := range stack.Services() {
		out[s] = st.Pid(s)
	}
	var backend int
	if err := db.QueryRow(ctx, `SELECT pg_backend_pid()`).Scan(&backend); err == nil {
		if s, err := readStat("/proc", backend); err == nil && strings.HasPrefix(s.comm, "postgres") {
			out["postgres"] = s.ppid
		}
	}
	return out
}

func cpuOf(pids map[string]int) map[string]float64 {
	out := map[string]float64{}
	for name, pid := range pids {
		if pid == 0 {
			continue
		}
		if v, err := treeCPU("/proc", pid); err == nil {
			out[name] = v
		}
	}
	return out
}

// burst publishes cfg.events completed repairs as fast as NATS takes them
// and times them until dispatch holds a task for each.
func burst(ctx context.Context, log *slog.Logger, cfg config, st *stack.Stack, ns *stack.NATSProcess, db *pgxpool.Pool, bin, tmp string, prof *profiler) (Sustained, error) {
	out := Sustained{Events: cfg.events}
	tasks := func() (int, error) {
		var n int
		err := db.QueryRow(ctx, `SELECT count(*) FROM dispatch.tasks`).Scan(&n)
		return n, err
	}
	before, err := tasks()
	if err != nil {
		return out, fmt.Errorf("count tasks: %w", err)
	}
	pids := procs(ctx, st, ns, db)
	pg0, err := readCounters(ctx, db)
	if err != nil {
		return out, err
	}
	cpu0 := cpuOf(pids)
	tables0, err := tableRows(ctx, db)
	if err != nil {
		return out, err
	}
	stmts0, stmtsErr := statementsOf(ctx, db)
	if stmtsErr != nil {
		log.Info("the top statements are not reported", "err", stmtsErr)
	}

	summary := filepath.Join(tmp, "burst.json")
	prof.start(ctx)
	start := time.Now()
	gen := exec.CommandContext(ctx, filepath.Join(bin, "huifang-loadgen"), "-nats", ns.URL, "-rate", "0", "-n", strconv.Itoa(cfg.events),
		"-types", "repair", "-tenants", "1", "-customers", strconv.Itoa(max(200, cfg.events/4)), "-duplicates", "0", "-malformed", "0",
		"-wait", "0", "-progress", "0", "-seed", "20261207", "-json", summary)
	var stderr bytes.Buffer
	gen.Stdout, gen.Stderr = &stderr, &stderr
	if err := gen.Run(); err != nil {
		return out, fmt.Errorf("huifang-loadgen: %w\n%s", err, stderr.String())
	}
	var s loadSummary
	if err := readJSON(summary, &s); err != nil {
		return out, err
	}
	if s.Acked != cfg.events {
		return out, fmt.Errorf("huifang-loadgen: %d of %d events acked", s.Acked, cfg.events)
	}
	out.PublishedPerS = s.PublishRate
	last := time.Now()
	for deadline := time.Now().Add(30 * time.Minute); ; {
		n, err := tasks()
		if err != nil {
			return out, fmt.Errorf("count tasks: %w", err)
		}
		if n-before >= cfg.events {
			break
		}
		if time.Now().After(deadline) {
			return out, fmt.Errorf("%d of %d tasks after 30 minutes", n-before, cfg.events)
		}
		if time.Since(last) > 10*time.Second {
			log.Info("waiting for the tasks", "tasks", n-before, "of", cfg.events)
			last = time.Now()
		}
		// Counting the tasks costs Postgres what the pipeline needs: every
		// quarter of a second is precise enough for a run of a minute or more.
		if !sleep(ctx, 250*time.Millisecond) {
			return out, ctx.Err()
		}
	}
	out.Seconds = time.Since(start).Seconds()
	out.EventsPerS = float64(cfg.events) / out.Seconds

	// Postgres reports a backend's counters when its transaction ends, at
	// most once a second, and a backend that went idle meanwhile reports
	// them within 10 s: wait until the rows written have not moved for
	// longer than that.
	// The CPU is read when the rows last moved: the idle wait after it is
	// not the burst's.
	settled, moved, cpu1 := pg0, time.Now(), cpuOf(pids)
	for deadline := time.Now().Add(time.Minute); time.Since(moved) < 11*time.Second && time.Now().Before(deadline); {
		now, err := readRows(ctx, db)
		if err != nil {
			return out, err
		}
		if now.rows != settled.rows {
			moved, cpu1 = time.Now(), cpuOf(pids)
		}
		settled = now
		if !sleep(ctx, 100*time.Millisecond) {
			return out, ctx.Err()
		}
	}
	if final, err := readCounters(ctx, db); err == nil {
		settled.statements = final.statements
	}
	per := func(v int64) float64 { return float64(v) / float64(cfg.events) }
	tables1, err := tableRows(ctx, db)
	if err != nil {
		return out, err
	}
	if stmtsErr == nil {
		stmts1, err := statementsOf(ctx, db)
		if err != nil {
			log.Info("the top statements are not reported", "err", err)
		} else if out.TopStatements = topStatements(stmts0, stmts1, cfg.events, 25); len(out.TopStatements) == 0 {
			log.Info("the top statements are not reported: none counted in the burst", "before", len(stmts0), "after", len(stmts1))
		}
	}
	out.TableRowsPer = map[string]TableRows{}
	for name, v := range tables1 {
		v0 := tables0[name]
		if strings.HasPrefix(name, "pg_temp") {
			name = "temporary tables"
		}
		t := out.TableRowsPer[name]
		t.Inserted += per(v[0] - v0[0])
		t.Updated += per(v[1] - v0[1])
		t.Deleted += per(v[2] - v0[2])
		out.TableRowsPer[name] = t
	}
	maps.DeleteFunc(out.TableRowsPer, func(_ string, t TableRows) bool { return t.Total() < 0.05 })
	out.CommitsPer = per(settled.commits - pg0.commits)
	out.RollbacksPer = per(settled.rollbacks - pg0.rollbacks)
	out.RowsPer = per(settled.rows - pg0.rows)
	out.WALBytesPer = per(settled.walBytes - pg0.walBytes)
	if settled.statements >= 0 && pg0.statements >= 0 {
		out.StatementsPer = per(settled.statements - pg0.statements)
	}
	out.CPUPer1000 = map[string]float64{}
	for name, v := range cpu1 {
		if v0, ok := cpu0[name]; ok {
			out.CPUPer1000[name] = (v - v0) * 1000 / float64(cfg.events)
		}
	}
	return out, nil
}

// loadSummary is the part of huifang-loadgen's JSON summary used here.
type loadSummary struct {
	Acked       int     `json:"acked"`
	PublishRate float64 `json:"publish_rate"`
	Latency     map[string]struct {
		Count int     `json:"count"`
		P50   float64 `json:"p50_ms"`
		P99   float64 `json:"p99_ms"`
	} `json:"latency"`
	Wait string `json:"wait"`
}

// latency publishes completed repairs at rate for d with huifang-loadgen
// and returns its percentiles publish → VisitDue and → task.
func latency(ctx context.Context, bin, natsURL, dbURL string, rate float64, d time.Duration, tmp string) (Latency, error) {
	summary := filepath.Join(tmp, "latency.json")
	gen := exec.CommandContext(ctx, filepath.Join(bin, "huifang-loadgen"), "-nats", natsURL, "-rate", strconv.FormatFloat(rate, 'f', -1, 64),
		"-d", d.String(), "-types", "repair", "-tenants", "1", "-customers", "2000", "-database-url", dbURL,
		"-wait", "5m", "-progress", "0", "-seed", "20261208", "-json", summary)
	var stderr bytes.Buffer
	gen.Stdout, gen.Stderr = &stderr, &stderr
	if err := gen.Run(); err != nil {
		return Latency{}, fmt.Errorf("huifang-loadgen: %w\n%s", err, stderr.String())
	}
	var s loadSummary
	if err := readJSON(summary, &s); err != nil {
		return Latency{}, err
	}
	due, task := s.Latency["visit_due"], s.Latency["task"]
	if due.Count == 0 || task.Count == 0 {
		return Latency{}, fmt.Errorf("huifang-loadgen measured %d VisitDue and %d tasks: is the instant policy in force?\n%s", due.Count, task.Count, stderr.String())
	}
	return Latency{
		Rate: rate, Events: due.Count, DueP50: due.P50, DueP99: due.P99, TaskP50: task.P50, TaskP99: task.P99,
		Settled: s.Wait == "settled",
	}, nil
}

func readJSON(path string, v any) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("read %s: %w", path, err)
	}
	if err := json.Unmarshal(b, v); err != nil {
		return fmt.Errorf("decode %s: %w", path, err)
	}
	return nil
}

// countStatements creates pg_stat_statements in the benchmark's database,
// so that the burst reports statements per event; Postgres must load it
// (shared_preload_libraries, as scripts/postgres.sh does when installed).
func countStatements(ctx context.Context, log *slog.Logger, db *pgxpool.Pool) {
	if _, err := db.Exec(ctx, `CREATE EXTENSION IF NOT EXISTS pg_stat_statements`); err != nil {
		log.Info("statements per event not counted: no pg_stat_statements", "err", err)
	}
}

func dropDatabase(log *slog.Logger, adminURL, name string) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	db, err := pgxpool.New(ctx, adminURL)
	if err != nil {
		log.Warn("drop database", "database", name, "err", err)
		return
	}
	defer db.Close()
	if _, err := db.Exec(ctx, `DROP DATABASE IF EXISTS `+pgx.Identifier{name}.Sanitize()+` WITH (FORCE)`); err != nil {
		log.Warn("drop database", "database", name, "err", err)
	}
}

func machine() Machine {
	m := Machine{CPUs: runtime.NumCPU(), Go: runtime.Version()}
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for line := range strings.SplitSeq(string(b), "\n") {
			if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
				m.Model = strings.TrimSpace(v)
				break
			}
		}
	}
	return m
}

func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}
