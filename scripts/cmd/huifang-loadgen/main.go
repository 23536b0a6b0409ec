// Command huifang-loadgen publishes realistic completed-service traffic to a
// running Huifang, as upstream ERPs send it, and measures how long the
// events take through the pipeline.
//
//	huifang-loadgen [-nats URL] [-rate N] [-n N | -d DURATION] [-tenants N] [-customers N]
//	                [-types a,b] [-duplicates R] [-malformed R] [-seed S]
//	                [-database-url URL] [-json FILE] ...
//
// Events are ServiceCompleted JSON on huifang.ingress.service.completed
// (scripts/internal/load makes them: mixed service types, tenants and org
// units, repeat customers, resends and malformed ones), published
// asynchronously at a target rate with a bounded number of pending acks.
// Meanwhile it follows huifang.events.service.completed, .visit.planned and
// .visit.due (ordered JetStream consumers starting at new messages) and
// huifang.deadletter.intake, and, with -database-url, polls dispatch.tasks
// read-only: each stage's latency is measured from the publish of the event
// that caused it. docs/loadgen.md explains the output.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	neturl "net/url"
	"os"
	"os/signal"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/huifang/huifang/pkg/stream"
	"github.com/huifang/huifang/scripts/internal/load"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	go func() {
		// The first Ctrl-C ends the run with its summary; a second one kills it.
		<-ctx.Done()
		stop()
	}()
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	err := run(ctx, log, os.Args[1:], os.Stdout, os.Stderr)
	var usage usageError
	switch {
	case err == nil:
	case errors.Is(err, flag.ErrHelp):
	case errors.As(err, &usage):
		fmt.Fprintln(os.Stderr, "huifang-loadgen:", err)
		os.Exit(2)
	default:
		fmt.Fprintln(os.Stderr, "huifang-loadgen:", err)
		os.Exit(1)
	}
}

// builtinServiceTypes are intake's built-in service types
// (services/intake/internal/ingest.ServiceTypes; a test keeps them equal).
func builtinServiceTypes() []string {
	return []string{
		"purchase", "delivery", "installation", "repair", "maintenance", "complaint_closed",
		"discharge", "community_event", "showroom_visit", "lead_call", "referral", "vehicle_delivery", "agency_due",
		"move_in", "incident_closed", "checkup", "parts_arrived", "recall", "campaign",
	}
}

// orgUnits are the org units of every generated tenant.
func orgUnits() []string { return []string{"north", "south", "east"} }

const (
	// defaultEvents is -n when neither -n nor -d is given.
	defaultEvents = 1000
	// maxCustomers keeps the fake phone numbers in +86 139 0000 xxxx.
	maxCustomers = 10000
	maxTenants   = 100
)

// config is what the flags say.
type config struct {
	natsURL      string
	rate         float64
	events       int
	duration     time.Duration
	tenants      int
	customers    int
	types        []string
	duplicates   float64
	malformed    float64
	seed         int64
	sourceSystem string
	maxPending   int
	ackTimeout   time.Duration
	wait         time.Duration
	databaseURL  string
	jsonFile     string
	progress     time.Duration
	archive      string
}

// usageError is a bad command line (exit status 2).
type usageError struct{ msg string }

func (e usageError) Error() string { return e.msg }

func usagef(format string, args ...any) error { return usageError{fmt.Sprintf(format, args...)} }

func parseFlags(args []string, stderr io.Writer) (config, error) {
	var cfg config
	var types string
	fs := flag.NewFlagSet("huifang-loadgen", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&cfg.natsURL, "nats", envOr("NATS_URL", "nats://127.0.0.1:4223"), "NATS server (env NATS_URL; make run's server by default)")
	fs.Float64Var(&cfg.rate, "rate", 100, "target events per second; 0 publishes as fast as the pending acks allow")
	fs.IntVar(&cfg.events, "n", 0, fmt.Sprintf("events to publish (with -d: at most this many; neither: %d)", defaultEvents))
	fs.DurationVar(&cfg.duration, "d", 0, "publish for this long (e.g. 2m)")
	fs.IntVar(&cfg.tenants, "tenants", 1, "tenants to spread the events over: default, t2, t3, ...")
	fs.IntVar(&cfg.customers, "customers", 200, "customers per tenant (a fifth of them bring half of the services)")
	fs.StringVar(&types, "types", strings.Join(builtinServiceTypes(), ","), "service types of the valid events, comma-separated, picked uniformly (repeat one to weight it)")
	fs.Float64Var(&cfg.duplicates, "duplicates", 0.05, "share of events that resend an earlier event (same source ids)")
	fs.Float64Var(&cfg.malformed, "malformed", 0.01, "share of events intake must refuse (cut-off JSON, no customer.external_id, unknown service_type, completed_at in the future)")
	fs.Int64Var(&cfg.seed, "seed", 0, "seed of the traffic's mix (0: from the clock; printed in the summary)")
	fs.StringVar(&cfg.sourceSystem, "source-system", "erp-loadgen", "source_system of the events")
	fs.IntVar(&cfg.maxPending, "max-pending", 256, "publishes awaiting JetStream's ack at most (PublishAsyncMaxPending)")
	fs.DurationVar(&cfg.ackTimeout, "ack-timeout", 10*time.Second, "how long a publish may wait for its ack (and for a free pending slot)")
	fs.DurationVar(&cfg.wait, "wait", 60*time.Second, "after the last ack, how long to wait at most for the pipeline to settle (0: do not wait)")
	fs.StringVar(&cfg.databaseURL, "database-url", "", "dispatch's PostgreSQL database, read-only, to measure publish → task (not measured when empty)")
	fs.StringVar(&cfg.jsonFile, "json", "", "also write the summary as JSON to this file")
	fs.DurationVar(&cfg.progress, "progress", time.Second, "interval of the progress lines on stderr (0: none)")
	fs.StringVar(&cfg.archive, "archive", "", "instead of publishing, write a customer archive of -n records (CSV, as huifang-import reads it) to this file, with -seed (0: 1), and exit")
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), "usage: huifang-loadgen [flags]   (docs/loadgen.md)")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return cfg, err
		}
		return cfg, usageError{err.Error()}
	}
	if fs.NArg() > 0 {
		return cfg, usagef("unexpected argument %q: every setting is a flag (-h lists them)", fs.Arg(0))
	}
	switch {
	case cfg.natsURL == "":
		return cfg, usagef("-nats: give the NATS server's URL (make run prints it)")
	case cfg.rate < 0:
		return cfg, usagef("-rate %g: must be 0 (as fast as possible) or more", cfg.rate)
	case cfg.events < 0:
		return cfg, usagef("-n %d: must not be negative", cfg.events)
	case cfg.duration < 0:
		return cfg, usagef("-d %s: must not be negative", cfg.duration)
	case cfg.tenants < 1 || cfg.tenants > maxTenants:
		return cfg, usagef("-tenants %d: must be 1–%d", cfg.tenants, maxTenants)
	case cfg.customers < 1 || cfg.customers > maxCustomers:
		return cfg, usagef("-customers %d: must be 1–%d", cfg.customers, maxCustomers)
	case cfg.duplicates < 0 || cfg.duplicates > 1:
		return cfg, usagef("-duplicates %g: must be a share between 0 and 1 (0.05 is 5%%)", cfg.duplicates)
	case cfg.malformed < 0 || cfg.malformed > 1:
		return cfg, usagef("-malformed %g: must be a share between 0 and 1 (0.01 is 1%%)", cfg.malformed)
	case cfg.duplicates+cfg.malformed > 1:
		return cfg, usagef("-duplicates %g and -malformed %g: together they must not exceed 1", cfg.duplicates, cfg.malformed)
	case strings.TrimSpace(cfg.sourceSystem) == "":
		return cfg, usagef("-source-system: must not be empty")
	case cfg.maxPending < 1:
		return cfg, usagef("-max-pending %d: must be at least 1", cfg.maxPending)
	case cfg.ackTimeout <= 0:
		return cfg, usagef("-ack-timeout %s: must be positive", cfg.ackTimeout)
	case cfg.wait < 0:
		return cfg, usagef("-wait %s: must not be negative", cfg.wait)
	case cfg.progress < 0:
		return cfg, usagef("-progress %s: must not be negative", cfg.progress)
	}
	if cfg.events == 0 && cfg.duration == 0 {
		cfg.events = defaultEvents
	}
	for _, t := range strings.Split(types, ",") {
		t = strings.TrimSpace(t)
		if t == "" {
			continue
		}
		if !slices.Contains(builtinServiceTypes(), t) {
			return cfg, usagef("-types: %q is not a built-in service type; one of %s", t, strings.Join(builtinServiceTypes(), ", "))
		}
		cfg.types = append(cfg.types, t)
	}
	if len(cfg.types) == 0 {
		return cfg, usagef("-types: name at least one service type")
	}
	return cfg, nil
}

// tenantNames are the tenants of -tenants n: default, t2, ..., tn.
func tenantNames(n int) []string {
	out := []string{"default"}
	for i := 2; i <= n; i++ {
		out = append(out, "t"+strconv.Itoa(i))
	}
	return out
}

// fakeIdentity is customer c's name and phone: plainly made up (测试客户 is
// "test customer"; +86 139 0000 xxxx).
func fakeIdentity(c int) (string, string) {
	return fmt.Sprintf("测试客户%04d", c), fmt.Sprintf("+86139%08d", c)
}

// loadConfig is the generator's configuration for cfg.
func loadConfig(cfg config, runID string, now time.Time) load.Config {
	tenants := map[string][]string{}
	for _, t := range tenantNames(cfg.tenants) {
		tenants[t] = orgUnits()
	}
	return load.Config{
		Seed: cfg.seed, Events: cfg.events, Tenants: tenants, ServiceTypes: cfg.types, Customers: cfg.customers,
		ResendRate: cfg.duplicates, MalformedRate: cfg.malformed, SourceSystem: cfg.sourceSystem, Now: now,
		RunID: runID, Identity: fakeIdentity,
	}
}

// maxConsecutiveFailures stops a run whose publishes all fail.
const maxConsecutiveFailures = 100

func run(ctx context.Context, log *slog.Logger, args []string, stdout, stderr io.Writer) error {
	cfg, err := parseFlags(args, stderr)
	if err != nil {
		return err
	}
	if cfg.archive != "" {
		return writeArchive(cfg)
	}
	start := time.Now()
	if cfg.seed == 0 {
		cfg.seed = start.UnixNano()
	}
	// The run's own source event ids: replaying a seed against a system
	// that saw it must not be dropped as resends.
	runID := "lg" + strconv.FormatInt(start.UnixMilli(), 36)

	tr := newTracker(start)
	closed := make(chan struct{})
	nc, err := nats.Connect(cfg.natsURL, nats.Name("huifang-loadgen"), nats.Timeout(10*time.Second), nats.MaxReconnects(-1),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			if err != nil {
				log.Warn("disconnected from NATS; reconnecting", "err", err)
			}
		}),
		nats.ReconnectHandler(func(nc *nats.Conn) { log.Info("reconnected to NATS", "server", nc.ConnectedUrlRedacted()) }),
		nats.ClosedHandler(func(*nats.Conn) { close(closed) }))
	if err != nil {
		return fmt.Errorf("connect to %s: %w", redactURL(cfg.natsURL), err)
	}
	defer func() {
		// The connection's callbacks run on their own goroutine: wait for
		// the last one, so that nothing writes after run returns.
		nc.Close()
		<-closed
	}()
	js, err := jetstream.New(nc,
		jetstream.WithPublishAsyncMaxPending(cfg.maxPending),
		jetstream.WithPublishAsyncTimeout(cfg.ackTimeout),
		jetstream.WithPublishAsyncAckHandler(func(_ jetstream.JetStream, m *nats.Msg, _ *jetstream.PubAck) { tr.ack(m, time.Now()) }),
		jetstream.WithPublishAsyncErrHandler(func(_ jetstream.JetStream, m *nats.Msg, err error) { tr.fail(m, err) }))
	if err != nil {
		return fmt.Errorf("jetstream: %w", err)
	}
	if err := checkStreams(ctx, js); err != nil {
		return err
	}
	stopObserving, err := observe(ctx, js, tr)
	if err != nil {
		return err
	}
	defer stopObserving()

	var tasks *taskPoller
	if cfg.databaseURL != "" {
		if tasks, err = newTaskPoller(ctx, cfg.databaseURL, tr); err != nil {
			return err
		}
		defer tasks.close()
	}
	pollCtx, stopPolling := context.WithCancel(context.WithoutCancel(ctx))
	pollDone := make(chan struct{})
	go func() {
		defer close(pollDone)
		if tasks != nil {
			tasks.run(pollCtx, log, 500*time.Millisecond)
		}
	}()
	progressDone := make(chan struct{})
	go func() {
		defer close(progressDone)
		if cfg.progress > 0 {
			reportProgress(pollCtx, stderr, tr, cfg.progress, tasks != nil)
		}
	}()

	gen := load.NewGenerator(loadConfig(cfg, runID, start))
	pubErr := publish(ctx, js, gen, tr, cfg)
	tr.publishEnded(time.Now())
	// Every publish is answered by an ack, an error or the ack timeout.
	select {
	case <-js.PublishAsyncComplete():
	case <-time.After(cfg.ackTimeout + 5*time.Second):
		log.Warn("some publishes were never answered", "pending", js.PublishAsyncPending())
		tr.abandon(errors.New("no answer from JetStream by the end of the run"))
	}
	outcome := "interrupted"
	if ctx.Err() == nil {
		outcome = settle(ctx, tr, cfg.wait, tasks != nil)
	}
	stopPolling()
	<-pollDone
	<-progressDone
	if tasks != nil {
		// A last look, so that the summary has every task created by now.
		fctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		if err := tasks.poll(fctx); err != nil {
			log.Warn("last poll of dispatch.tasks failed", "err", err)
		}
		cancel()
	}

	sum := tr.summary(time.Now(), outcome, tasks != nil)
	sum.RunID, sum.Seed, sum.NATS, sum.TargetRate = runID, cfg.seed, redactURL(cfg.natsURL), cfg.rate
	sum.SourceSystem = cfg.sourceSystem
	printSummary(stdout, sum)
	if cfg.jsonFile != "" {
		if err := writeJSON(cfg.jsonFile, sum); err != nil {
			return err
		}
	}
	switch {
	case pubErr != nil:
		return pubErr
	case sum.Failed > 0:
		return fmt.Errorf("%d of %d publishes failed (%s)", sum.Failed, sum.Published, topErrors(sum.Errors, 3))
	}
	return nil
}

// checkStreams says clearly when Huifang's streams are not there.
func checkStreams(ctx context.Context, js jetstream.JetStream) error {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	for _, name := range []string{stream.IngressStream, stream.EventsStream, stream.DLQStream} {
		if _, err := js.Stream(ctx, name); err != nil {
			if errors.Is(err, jetstream.ErrStreamNotFound) {
				return fmt.Errorf("stream %s not found: start Huifang first (make run); its services create the streams", name)
			}
			return fmt.Errorf("look up stream %s: %w", name, err)
		}
	}
	return nil
}

// newTaskPoller connects to dispatch's database read-only and checks that
// dispatch.tasks is there.
func newTaskPoller(ctx context.Context, url string, tr *tracker) (*taskPoller, error) {
	pc, err := pgxpool.ParseConfig(url)
	if err != nil {
		return nil, usagef("-database-url: %v", err)
	}
	pc.MaxConns = 2
	pc.ConnConfig.RuntimeParams["default_transaction_read_only"] = "on"
	pc.ConnConfig.RuntimeParams["application_name"] = "huifang-loadgen"
	db, err := pgxpool.NewWithConfig(ctx, pc)
	if err != nil {
		return nil, fmt.Errorf("-database-url: %w", err)
	}
	cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if _, err := db.Exec(cctx, `SELECT tenant_id, visit_id, created_at FROM dispatch.tasks LIMIT 0`); err != nil {
		db.Close()
		return nil, fmt.Errorf("-database-url: cannot read dispatch.tasks (is it dispatch's database, e.g. make run's huifang?): %w", err)
	}
	return &taskPoller{db: db, tr: tr}, nil
}

func writeJSON(path string, sum *Summary) error {
	b, err := json.MarshalIndent(sum, "", "  ")
	if err != nil {
		return fmt.Errorf("summary as JSON: %w", err)
	}
	if err := os.WriteFile(path, append(b, '\n'), 0o644); err != nil {
		return fmt.Errorf("write the summary: %w", err)
	}
	return nil
}

func envOr(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}

// redactURL is a NATS URL list without passwords, for the output.
func redactURL(urls string) string {
	parts := strings.Split(urls, ",")
	for i, p := range parts {
		if u, err := neturl.Parse(strings.TrimSpace(p)); err == nil && u.User != nil {
			parts[i] = u.Redacted()
		}
	}
	return strings.Join(parts, ",")
}

// writeArchive writes -n records of a customer archive to -archive.
func writeArchive(cfg config) error {
	if cfg.seed == 0 {
		cfg.seed = 1
	}
	f, err := os.Create(cfg.archive)
	if err != nil {
		return fmt.Errorf("archive: %w", err)
	}
	if err := load.WriteArchive(f, cfg.events, cfg.seed); err != nil {
		f.Close()
		return fmt.Errorf("archive %s: %w", cfg.archive, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("archive %s: %w", cfg.archive, err)
	}
	return nil
}
