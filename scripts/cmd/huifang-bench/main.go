// Command huifang-bench is `make bench`: it starts Huifang on this machine
// with the durable settings it ships with (JetStream file storage synced on
// every write, Postgres with fsync and synchronous commits) and prints, in
// one run, side by side:
//
//   - the raw limits of the parts under it: JetStream single-message and
//     atomic-batch publishes, Postgres single-row and 500-row commits;
//   - Huifang's sustained rate ingress → task: a burst of completed repairs
//     published at once (huifang-loadgen -rate 0), timed until dispatch
//     holds a task for each, under make run's instant policy;
//   - what each event cost: Postgres commits, rows and WAL bytes, CPU
//     seconds per 1,000 events of each process, the services' peak RSS;
//   - the latency publish → VisitDue and → task (p50, p99) at half that rate
//     (huifang-loadgen -rate R/2);
//   - the ratio of Huifang's rate to what the rows it writes would allow at
//     Postgres's batched rate.
//
// It writes the figures as JSON (-json) and rewrites the table between the
// markers of docs/benchmarks.md (-docs).
//
//	huifang-bench -bin .bin -database-url postgres://... [-n 10000] [-latency 30s]
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	"time"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	if err := run(ctx, log, os.Args[1:], os.Stdout); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			os.Exit(2)
		}
		fmt.Fprintln(os.Stderr, "huifang-bench:", err)
		os.Exit(1)
	}
}

// config is what the flags say.
type config struct {
	bin         string
	databaseURL string
	events      int
	latency     time.Duration
	rawMessages int
	rawRows     int
	jsonFile    string
	docs        string
	commit      string
	// profile, when set, is the folder for CPU profiles of the services and
	// the NATS server taken during the burst, profileSeconds long.
	profile        string
	profileSeconds int
}

func parseFlags(args []string, stderr io.Writer) (config, error) {
	var cfg config
	fs := flag.NewFlagSet("huifang-bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&cfg.bin, "bin", ".bin", "folder of the built services, huifang-nats and huifang-loadgen (make build)")
	fs.StringVar(&cfg.databaseURL, "database-url", os.Getenv("DATABASE_URL"), "PostgreSQL server to create the benchmark's databases on (env DATABASE_URL)")
	fs.IntVar(&cfg.events, "n", 10000, "completed services of the burst that measures the sustained rate")
	fs.DurationVar(&cfg.latency, "latency", 30*time.Second, "how long to publish at half the sustained rate to measure latency")
	fs.IntVar(&cfg.rawMessages, "raw-messages", 20000, "messages of each raw JetStream measurement")
	fs.IntVar(&cfg.rawRows, "raw-rows", 20000, "rows of the raw single-row Postgres measurement (ten times as many batched)")
	fs.StringVar(&cfg.jsonFile, "json", ".dev/bench/bench.json", "write the figures as JSON here (empty: do not)")
	fs.StringVar(&cfg.docs, "docs", "", "rewrite the table between the make-bench markers of this file (docs/benchmarks.md)")
	fs.StringVar(&cfg.commit, "commit", "", "the commit measured, for the table (make bench passes git describe)")
	fs.StringVar(&cfg.profile, "profile", "", "write CPU profiles of the services and the NATS server, taken during the burst, to this folder (<process>.pprof; go tool pprof -top)")
	fs.IntVar(&cfg.profileSeconds, "profile-seconds", 15, "how long each -profile profile lasts, from the burst's start")
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), "usage: huifang-bench [flags]   (make bench; docs/benchmarks.md)")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return cfg, err
	}
	switch {
	case fs.NArg() > 0:
		return cfg, fmt.Errorf("unexpected argument %q: every setting is a flag (-h lists them)", fs.Arg(0))
	case cfg.databaseURL == "":
		return cfg, errors.New("-database-url (or DATABASE_URL) is required: make bench starts a PostgreSQL when it is not set")
	case cfg.events < 100:
		return cfg, fmt.Errorf("-n %d: at least 100 events", cfg.events)
	case cfg.latency < time.Second:
		return cfg, fmt.Errorf("-latency %s: at least 1s", cfg.latency)
	case cfg.profile != "" && (cfg.profileSeconds < 1 || cfg.profileSeconds > 600):
		return cfg, fmt.Errorf("-profile-seconds %d: 1 to 600", cfg.profileSeconds)
	case cfg.rawMessages < 500 || cfg.rawRows < 100:
		return cfg, errors.New("-raw-messages must be at least 500 and -raw-rows at least 100")
	}
	return cfg, nil
}

func run(ctx context.Context, log *slog.Logger, args []string, stdout io.Writer) error {
	cfg, err := parseFlags(args, os.Stderr)
	if err != nil {
		return err
	}
	res, err := measure(ctx, log, cfg)
	if err != nil {
		return err
	}
	printTable(stdout, res)
	if cfg.jsonFile != "" {
		if err := writeJSON(cfg.jsonFile, res); err != nil {
			return err
		}
		log.Info("figures written", "file", cfg.jsonFile)
	}
	if cfg.docs != "" {
		if err := updateDocs(cfg.docs, res); err != nil {
			return err
		}
		log.Info("table updated", "file", cfg.docs)
	}
	return nil
}
