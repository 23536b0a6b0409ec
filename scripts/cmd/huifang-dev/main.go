// Command huifang-dev runs the whole Huifang system on one machine for
// development (`make run`): PostgreSQL (scripts/postgres.sh, unless
// DATABASE_URL is set), an embedded NATS server with JetStream (unless
// NATS_URL is set), the five services and the console from .bin/, and a
// little demo data loaded through the services' public interfaces. Ctrl-C stops everything it
// started, and only that.
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"

	dispatchv1 "github.com/huifang/huifang/proto/huifang/dispatch/v1"
	schedulerv1 "github.com/huifang/huifang/proto/huifang/scheduler/v1"

	"github.com/huifang/huifang/pkg/issuer"
	"github.com/huifang/huifang/pkg/stream"
	"github.com/huifang/huifang/scripts/internal/stack"
)

func main() {
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, log, os.Args[1:], os.Stdout); err != nil {
		log.Error("huifang-dev failed", "err", err)
		os.Exit(1)
	}
}

type config struct {
	root        string
	binDir      string
	devDir      string
	database    string
	databaseURL string
	natsURL     string
	natsPort    int
	issuerPort  int
	consolePort int
	console     bool
	portOffset  int
	logLevel    string
	demo        bool
}

func run(ctx context.Context, log *slog.Logger, args []string, out io.Writer) error {
	// Configuration.
	root, err := stack.Root(".")
	if err != nil {
		return err
	}
	cfg := config{root: root, databaseURL: os.Getenv("DATABASE_URL"), natsURL: os.Getenv("NATS_URL")}
	fs := flag.NewFlagSet("huifang-dev", flag.ContinueOnError)
	fs.StringVar(&cfg.binDir, "bin", ".bin", "folder with the service binaries (relative to the repository root)")
	fs.StringVar(&cfg.devDir, "dev", ".dev", "folder for NATS data and logs (relative to the repository root)")
	fs.StringVar(&cfg.database, "db", "huifang", "database the services use, created on DATABASE_URL's server when missing; empty uses DATABASE_URL as it is")
	fs.StringVar(&cfg.databaseURL, "database-url", cfg.databaseURL, "PostgreSQL server (env DATABASE_URL); scripts/postgres.sh starts one when empty")
	fs.StringVar(&cfg.natsURL, "nats-url", cfg.natsURL, "NATS server with JetStream (env NATS_URL); an embedded one is started when empty")
	fs.IntVar(&cfg.natsPort, "nats-port", 4223, "port of the embedded NATS server")
	fs.IntVar(&cfg.issuerPort, "issuer-port", 7000, "port of the local token issuer (OpenID Connect discovery and keys), moved by -port-offset")
	fs.IntVar(&cfg.consolePort, "console-port", 8006, "HTTP port of the console (http://localhost:<port>), moved by -port-offset")
	fs.BoolVar(&cfg.console, "console", true, "start the console (the web pages) beside the services")
	fs.IntVar(&cfg.portOffset, "port-offset", 0, "added to the default ports (gRPC 7001–7005, HTTP 8001–8006, the issuer's 7000)")
	fs.StringVar(&cfg.logLevel, "log-level", "info", "LOG_LEVEL of the services")
	fs.BoolVar(&cfg.demo, "demo", true, "load demo data once the services are ready")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return err
	}
	cfg.binDir = inRoot(root, cfg.binDir)
	cfg.devDir = inRoot(root, cfg.devDir)

	// Everything started here is stopped in reverse order on the way out.
	var cleanups []func()
	defer func() {
		for i := len(cleanups) - 1; i >= 0; i-- {
			cleanups[i]()
		}
	}()

	// PostgreSQL.
	if cfg.databaseURL == "" {
		url, started, err := startPostgres(ctx, log, root)
		if err != nil {
			return err
		}
		cfg.databaseURL = url
		if started {
			cleanups = append(cleanups, func() { stopPostgres(log, root) })
		}
	}
	dbURL := cfg.databaseURL
	if cfg.database != "" {
		dbURL, err = stack.CreateDatabase(ctx, cfg.databaseURL, cfg.database)
		if err != nil {
			return err
		}
	}

	// NATS.
	if cfg.natsURL == "" {
		dir := filepath.Join(cfg.devDir, "nats")
		ns, err := stack.StartNATS(dir, cfg.natsPort)
		if err != nil {
			return fmt.Errorf("embedded NATS on 127.0.0.1:%d: %w", cfg.natsPort, err)
		}
		log.Info("embedded NATS started", "url", ns.ClientURL(), "store", dir)
		cfg.natsURL = ns.ClientURL()
		cleanups = append(cleanups, func() {
			ns.Shutdown()
			ns.WaitForShutdown()
			log.Info("embedded NATS stopped")
		})
	}

	// The local token issuer, and ready tokens in .dev/tokens/.
	is, err := startIssuer(log, cfg)
	if err != nil {
		return err
	}
	cleanups = append(cleanups, func() { _ = is.Close() })

	// Services.
	logDir := filepath.Join(cfg.devDir, "logs")
	st, err := stack.New(stack.Config{
		Auth: is.Config(), ClientSecrets: stack.RegisterClients(is),
		BinDir:      cfg.binDir,
		DatabaseURL: dbURL,
		NATSURL:     cfg.natsURL,
		PortOffset:  cfg.portOffset,
		LogLevel:    cfg.logLevel,
		LogDir:      logDir,
		Log:         log,
	})
	if err != nil {
		return fmt.Errorf("%w (run 'make build' first)", err)
	}
	cleanups = append(cleanups, func() {
		if err := st.StopAll(context.Background()); err != nil {
			log.Warn("a service did not stop cleanly", "err", err)
		}
	})
	if err := st.StartAll(ctx); err != nil {
		return err
	}
	log.Info("all services ready", "logs", logDir)

	// Demo data.
	if cfg.demo {
		if err := loadDemo(ctx, log, st, is, cfg.natsURL); err != nil {
			return fmt.Errorf("demo data: %w", err)
		}
	}
	consoleURL := ""
	if cfg.console {
		c, err := startConsole(ctx, log, cfg, st, is, logDir)
		if err != nil {
			return err
		}
		cleanups = append(cleanups, c.Stop)
		consoleURL = c.URL
	}
	printNext(out, st, cfg.natsURL, logDir, consoleURL)

	<-ctx.Done()
	log.Info("stopping")
	return nil
}

func inRoot(root, p string) string {
	if filepath.IsAbs(p) {
		return p
	}
	return filepath.Join(root, p)
}

// startPostgres starts the throwaway cluster of scripts/postgres.sh and says
// whether this program started it (false when it was already running).
func startPostgres(ctx context.Context, log *slog.Logger, root string) (string, bool, error) {
	script := filepath.Join(root, "scripts", "postgres.sh")
	status := exec.CommandContext(ctx, script, "status")
	status.Stderr = io.Discard
	running := status.Run() == nil
	var stdout bytes.Buffer
	start := exec.CommandContext(ctx, script, "start")
	start.Stdout, start.Stderr = &stdout, os.Stderr
	if err := start.Run(); err != nil {
		return "", false, fmt.Errorf("%s start: %w", script, err)
	}
	lines := strings.Fields(stdout.String())
	if len(lines) == 0 {
		return "", false, fmt.Errorf("%s start printed no URL", script)
	}
	url := lines[len(lines)-1]
	log.Info("PostgreSQL", "url", url, "already_running", running)
	return url, !running, nil
}

func stopPostgres(log *slog.Logger, root string) {
	cmd := exec.Command(filepath.Join(root, "scripts", "postgres.sh"), "stop")
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Run(); err != nil {
		log.Warn("stopping PostgreSQL failed", "err", err)
		return
	}
	log.Info("PostgreSQL stopped")
}

// loadDemo registers an agent and the instant policy and publishes a few
// completed services, all through the public interfaces.
func loadDemo(ctx context.Context, log *slog.Logger, st *stack.Stack, is *issuer.Issuer, natsURL string) error {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	// The demo tenant's admin registers the agent and the policy (the
	// audit log names admin-1).
	ctx, err := is.Context(ctx, devTokens()["admin"])
	if err != nil {
		return err
	}
	dispatchConn, err := grpc.NewClient(st.GRPCAddr("dispatch"), grpc.WithTransportCredentials(insecure.NewCredentials()), is.StaffCalls())
	if err != nil {
		return err
	}
	defer dispatchConn.Close()
	schedulerConn, err := grpc.NewClient(st.GRPCAddr("scheduler"), grpc.WithTransportCredentials(insecure.NewCredentials()), is.StaffCalls())
	if err != nil {
		return err
	}
	defer schedulerConn.Close()

	// The agent, and the leader of its group (the leader token's l-1: its
	// wallboard and deadline lists are of the groups it oversees).
	for _, a := range []*dispatchv1.Agent{
		{Id: "a-1", TenantId: "default", Name: "李娜", Groups: []string{"default"}},
		{Id: "l-1", TenantId: "default", Name: "王强", Groups: []string{"default"}, Role: dispatchv1.Role_ROLE_LEADER},
	} {
		if _, err := dispatchv1.NewDispatchServiceClient(dispatchConn).UpsertAgent(ctx, &dispatchv1.UpsertAgentRequest{Agent: a}); err != nil {
			return fmt.Errorf("UpsertAgent %s: %w", a.GetId(), err)
		}
		log.Info("agent registered", "agent", a.GetId(), "role", a.GetRole().String())
	}

	scheduler := schedulerv1.NewSchedulerServiceClient(schedulerConn)
	exists, err := policyExists(ctx, scheduler, "instant")
	if err != nil {
		return err
	}
	if exists {
		log.Info("policy instant already exists")
	} else {
		req := &schedulerv1.CreatePolicyRequest{}
		if err := protojson.Unmarshal([]byte(stack.InstantPolicy), req); err != nil {
			return fmt.Errorf("instant policy: %w", err)
		}
		resp, err := scheduler.CreatePolicy(ctx, req)
		switch {
		case status.Code(err) == codes.AlreadyExists:
			log.Info("policy instant already exists")
		case err != nil:
			return fmt.Errorf("CreatePolicy instant: %w", err)
		default:
			log.Info("policy instant created: a phone follow-up as soon as a repair is done", "id", resp.GetPolicy().GetId())
		}
	}

	nc, err := nats.Connect(natsURL, nats.Name("huifang-dev"))
	if err != nil {
		return fmt.Errorf("connect to NATS: %w", err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return err
	}
	run := time.Now().UTC()
	for i, ev := range demoEvents(run) {
		msg := &nats.Msg{Subject: stream.SubjectIngressServiceCompleted, Data: []byte(ev), Header: nats.Header{}}
		msg.Header.Set(stream.HeaderContentType, stream.ContentTypeJSON)
		ack, err := js.PublishMsg(ctx, msg)
		if err != nil {
			return fmt.Errorf("publish demo event %d: %w", i+1, err)
		}
		// The event names a (made-up) customer: the log says which event,
		// never who (docs/privacy.md).
		var ids struct {
			SourceEventID string `json:"source_event_id"`
			ServiceType   string `json:"service_type"`
		}
		_ = json.Unmarshal([]byte(ev), &ids)
		log.Info("demo event published", "seq", ack.Sequence, "source_event_id", ids.SourceEventID, "service_type", ids.ServiceType)
	}
	return nil
}

func policyExists(ctx context.Context, c schedulerv1.SchedulerServiceClient, name string) (bool, error) {
	token := ""
	for {
		resp, err := c.ListPolicies(ctx, &schedulerv1.ListPoliciesRequest{TenantId: "default", PageSize: 500, PageToken: token})
		if err != nil {
			return false, fmt.Errorf("ListPolicies: %w", err)
		}
		for _, p := range resp.GetPolicies() {
			if p.GetName() == name {
				return true, nil
			}
		}
		token = resp.GetNextPageToken()
		if token == "" {
			return false, nil
		}
	}
}

// demoEvents are completed services of several kinds, as an ERP would send
// them; their source event ids are unique to this run.
func demoEvents(now time.Time) []string {
	type customer struct{ id, name, phone string }
	events := []struct {
		kind    string
		ago     time.Duration
		c       customer
		org     string
		product string
	}{
		{"purchase", 48 * time.Hour, customer{"c-1001", "张伟", "+8613800138001"}, "shanghai-pudong", `,"product":{"sku":"AC-3520","category":"air_conditioner"}`},
		{"installation", 72 * time.Hour, customer{"c-1002", "王芳", "+8613800138002"}, "shanghai-pudong", `,"product":{"sku":"WH-60L","category":"water_heater"}`},
		{"repair", 0, customer{"c-1003", "刘洋", "+8613900139003"}, "beijing-chaoyang", `,"product":{"sku":"FR-450","category":"refrigerator"}`},
		{"repair", 10 * time.Minute, customer{"c-1004", "陈静", "+8615000150004"}, "beijing-chaoyang", ""},
		{"complaint_closed", 24 * time.Hour, customer{"c-1005", "赵磊", "+8618600186005"}, "shanghai-pudong", ""},
		{"discharge", 2 * time.Hour, customer{"c-1006", "孙丽", "+8613700137006"}, "guangzhou-tianhe", ""},
	}
	out := make([]string, len(events))
	for i, e := range events {
		out[i] = fmt.Sprintf(`{"source_system":"erp-demo","source_event_id":"demo-%d-%d","service_type":%q,"completed_at":%q,`+
			`"org_unit":%q,"customer":{"external_id":%q,"name":%q,"phone":%q}%s}`,
			now.Unix(), i+1, e.kind, now.Add(-e.ago).Format(time.RFC3339), e.org, e.c.id, e.c.name, e.c.phone, e.product)
	}
	return out
}

// consoleBanner says where the console is and whom to sign in as.
func consoleBanner(url, logDir string) string {
	if url == "" {
		return ""
	}
	return fmt.Sprintf(`
The console (the web pages): open %s in a browser and pick who you are at the
development issuer's sign-in page:
  agent     李娜, agent a-1: the workbench (claim a follow-up, log the visit)
  leader    王强, leader l-1: the desk (queue, wallboard, complaints, QA, figures)
  director  陈静: the desk, the monthly report, policy approval
  owner     赵磊, owner of after_sales: the department's complaints
  qa        刘洋: quality reviews        admin: the tenant's administrator
Its log: %s/console.log (docs/console.md)
`, url, logDir)
}

func printNext(w io.Writer, st *stack.Stack, natsURL, logDir, consoleURL string) {
	g := st.GRPCAddr
	fmt.Fprintf(w, `
Huifang is running. Services (gRPC, reflection on; HTTP /healthz /readyz /metrics):
  intake    %s  http://%s
  scheduler %s  http://%s
  dispatch  %s  http://%s
  feedback  %s  http://%s
  analytics %s  http://%s
NATS: %s
%s
Every gRPC call needs a bearer token: ready ones for the demo tenant's people are in
.dev/tokens/ (agent a-1, leader, director, qa, owner, auditor, admin, integrator, operator).
What to try next:
  # claim the next follow-up task as agent a-1 (the token says who; the repairs are due at once)
  grpcurl -plaintext -H "authorization: Bearer $(cat .dev/tokens/agent.jwt)" -d '{}' %s huifang.dispatch.v1.DispatchService/ClaimNextTask
  # log the visit with the task's visit_id
  grpcurl -plaintext -H "authorization: Bearer $(cat .dev/tokens/agent.jwt)" -d '{"visit_id":"VISIT_ID","answers":[{"aspect":"overall","rating":"RATING_SATISFIED"}]}' %s huifang.feedback.v1.FeedbackService/LogVisit
  # the seed-003 satisfaction rate
  grpcurl -plaintext -H "authorization: Bearer $(cat .dev/tokens/director.jwt)" -d '{"aspect":"overall"}' %s huifang.analytics.v1.AnalyticsService/GetSatisfaction
  # the follow-ups the policies planned in one of the leader's org units
  grpcurl -plaintext -H "authorization: Bearer $(cat .dev/tokens/leader.jwt)" -d '{"org_unit":"shanghai-pudong"}' %s huifang.scheduler.v1.SchedulerService/ListPlannedVisits
  # inputs intake refused, with the reason
  grpcurl -plaintext -H "authorization: Bearer $(cat .dev/tokens/admin.jwt)" -d '{}' %s huifang.intake.v1.IntakeService/ListRejectedEvents
  # publish another completed service
  go run ./scripts/cmd/huifang-publish -nats %s '{"source_system":"erp-demo","source_event_id":"my-1","service_type":"repair","completed_at":"%s","customer":{"external_id":"c-2001","name":"周杰","phone":"+8613600136001"}}'

Logs: %s/<service>.log    Ctrl-C stops everything.
`,
		g("intake"), st.HTTPAddr("intake"), g("scheduler"), st.HTTPAddr("scheduler"), g("dispatch"), st.HTTPAddr("dispatch"),
		g("feedback"), st.HTTPAddr("feedback"), g("analytics"), st.HTTPAddr("analytics"), natsURL, consoleBanner(consoleURL, logDir),
		g("dispatch"), g("feedback"), g("analytics"), g("scheduler"), g("intake"),
		natsURL, time.Now().UTC().Format(time.RFC3339), logDir)
}
