package chaos

import (
	"context"
	"errors"
	"fmt"

	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/encoding/protojson"

	analyticsv1 "github.com/huifang/huifang/proto/huifang/analytics/v1"
	dispatchv1 "github.com/huifang/huifang/proto/huifang/dispatch/v1"
	feedbackv1 "github.com/huifang/huifang/proto/huifang/feedback/v1"
	schedulerv1 "github.com/huifang/huifang/proto/huifang/scheduler/v1"

	"github.com/huifang/huifang/pkg/issuer"
	"github.com/huifang/huifang/pkg/stream"
	"github.com/huifang/huifang/scripts/internal/pgcluster"
	"github.com/huifang/huifang/scripts/internal/stack"
)

// Tenants are the tenants of the load and their org units.
var Tenants = map[string][]string{
	"default": {"north", "south", "east"},
	"acme":    {"hq", "branch-1"},
}

// Agents work each tenant's phone tasks.
var Agents = []string{"agent-1", "agent-2"}

// PhoneTypes are the service types the chaos-phone policy follows up by
// phone at once; SMSTypes the ones chaos-sms follows up by SMS at once
// (dispatch's sender, under its send lease).
var (
	PhoneTypes = []string{"repair", "maintenance", "purchase", "complaint_closed", "discharge"}
	SMSTypes   = []string{"installation", "delivery"}
)

// ServiceTypes are every type the load sends.
func ServiceTypes() []string { return append(slices.Clone(PhoneTypes), SMSTypes...) }

// Policies are the scenario's own policies, each a follow-up as soon as the
// service is done (like scripts/e2e's instantPolicy, for every type of the load).
var Policies = []string{"chaos-phone", "chaos-sms"}

// System is one running Huifang: its database on the suite's Postgres, its
// NATS server or cluster, the five services, and clients.
type System struct {
	PG      *pgcluster.Cluster
	DBName  string
	DBURL   string
	NATS    *stack.NATSProcess
	Cluster *stack.NATSCluster
	NATSURL string
	Stack   *stack.Stack
	LogDir  string

	DB *pgxpool.Pool
	NC *nats.Conn
	JS jetstream.JetStream

	// Issuer signs the tokens the services accept; the clients call as staff
	// of the tenant a request names (issuer.StaffCalls).
	Issuer *issuer.Issuer

	conns map[string]*grpc.ClientConn
	log   *slog.Logger
}

// SystemConfig says how to start a System.
type SystemConfig struct {
	BinDir    string
	PG        *pgcluster.Cluster
	DBName    string
	Dir       string
	NATSNodes int
	Replicas  map[string]int
	Env       map[string][]string
	Log       *slog.Logger
}

// StartSystem starts NATS, creates the database and starts the services,
// then prepares the policies and agents.
func StartSystem(ctx context.Context, cfg SystemConfig) (_ *System, err error) {
	s := &System{PG: cfg.PG, DBName: cfg.DBName, LogDir: filepath.Join(cfg.Dir, "logs"), conns: map[string]*grpc.ClientConn{}, log: cfg.Log}
	defer func() {
		if err != nil {
			s.Close()
		}
	}()
	if s.DBURL, err = cfg.PG.CreateDatabase(ctx, cfg.DBName); err != nil {
		return nil, err
	}
	natsBin := filepath.Join(cfg.BinDir, "huifang-nats")
	env := map[string][]string{}
	for k, v := range cfg.Env {
		env[k] = slices.Clone(v)
	}
	natsCtx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	if cfg.NATSNodes > 1 {
		if s.Cluster, err = stack.RunNATSCluster(natsCtx, natsBin, filepath.Join(cfg.Dir, "nats"), cfg.NATSNodes); err != nil {
			return nil, err
		}
		s.NATSURL = s.Cluster.URL()
		for _, svc := range stack.Services() {
			env[svc] = append([]string{"STREAM_REPLICAS=3"}, env[svc]...)
		}
	} else {
		if s.NATS, err = stack.RunNATS(natsCtx, natsBin, filepath.Join(cfg.Dir, "nats")); err != nil {
			return nil, err
		}
		s.NATSURL = s.NATS.URL
	}
	ports, err := stack.FreePortsFor(stack.Instances(cfg.Replicas)...)
	if err != nil {
		return nil, err
	}
	if s.Issuer, err = issuer.Listen("127.0.0.1:0", "huifang"); err != nil {
		return nil, err
	}
	s.Stack, err = stack.New(stack.Config{
		Auth: s.Issuer.Config(), ClientSecrets: stack.RegisterClients(s.Issuer),
		BinDir: cfg.BinDir, DatabaseURL: s.DBURL, NATSURL: s.NATSURL, Ports: ports, Replicas: cfg.Replicas,
		Env: env, LogLevel: logLevel(), LogDir: s.LogDir, ReadyTimeout: 120 * time.Second, StopGrace: 15 * time.Second,
		Log: cfg.Log,
	})
	if err != nil {
		return nil, err
	}
	startCtx, cancel2 := context.WithTimeout(ctx, 3*time.Minute)
	defer cancel2()
	if err := s.Stack.StartAll(startCtx); err != nil {
		return nil, err
	}
	if s.DB, err = pgxpool.New(ctx, s.DBURL); err != nil {
		return nil, err
	}
	s.NC, err = nats.Connect(s.NATSURL, nats.MaxReconnects(-1), nats.ReconnectWait(200*time.Millisecond),
		nats.RetryOnFailedConnect(true), nats.Name("chaos"))
	if err != nil {
		return nil, err
	}
	if s.JS, err = jetstream.New(s.NC); err != nil {
		return nil, err
	}
	for _, inst := range s.Stack.Instances() {
		c, err := grpc.NewClient(s.Stack.GRPCAddr(inst), grpc.WithTransportCredentials(insecure.NewCredentials()), s.Issuer.StaffCalls())
		if err != nil {
			return nil, err
		}
		s.conns[inst] = c
	}
	if err := s.waitStreams(ctx); err != nil {
		return nil, err
	}
	return s, s.prepare(ctx)
}

// logLevel is the services' LOG_LEVEL: CHAOS_LOG_LEVEL, info by default
// (debug shows every retry of a message, at a cost in disk and CPU).
func logLevel() string {
	if l := os.Getenv("CHAOS_LOG_LEVEL"); l != "" {
		return l
	}
	return "info"
}

// Conn is the gRPC connection to an instance.
func (s *System) Conn(instance string) *grpc.ClientConn { return s.conns[instance] }

// Instances of a service ("dispatch", "dispatch-2", ...).
func (s *System) InstancesOf(service string) []string {
	var out []string
	for _, inst := range s.Stack.Instances() {
		if svc, _ := stack.ServiceOf(inst); svc == service {
			out = append(out, inst)
		}
	}
	return out
}

// Analytics is the client of analytics' first instance.
func (s *System) Analytics() analyticsv1.AnalyticsServiceClient {
	return analyticsv1.NewAnalyticsServiceClient(s.conns["analytics"])
}

// waitStreams waits until every stream has a leader and answers.
func (s *System) waitStreams(ctx context.Context) error {
	return waitUntil(ctx, 60*time.Second, "the three streams to answer with a leader", func() (bool, error) {
		for _, name := range []string{stream.IngressStream, stream.EventsStream, stream.DLQStream} {
			cctx, cancel := context.WithTimeout(ctx, 2*time.Second)
			str, err := s.JS.Stream(cctx, name)
			cancel()
			if err != nil {
				return false, fmt.Errorf("stream %s: %w", name, err)
			}
			if c := str.CachedInfo().Cluster; c != nil && c.Leader == "" {
				return false, fmt.Errorf("stream %s has no leader", name)
			}
		}
		return true, nil
	})
}

// prepare creates each tenant's policies and agents through the public APIs,
// retrying while a service is still settling.
func (s *System) prepare(ctx context.Context) error {
	sched := schedulerv1.NewSchedulerServiceClient(s.conns["scheduler"])
	disp := dispatchv1.NewDispatchServiceClient(s.conns["dispatch"])
	for _, tenant := range sortedTenants() {
		for _, p := range []struct {
			name    string
			types   []string
			channel string
		}{{"chaos-phone", PhoneTypes, "CHANNEL_PHONE"}, {"chaos-sms", SMSTypes, "CHANNEL_SMS"}} {
			js := fmt.Sprintf(`{"policy":{"tenant_id":%q,"name":%q,"trigger":{"service_types":["%s"]},"steps":[{"offset":"0s","channel":%q}]}}`,
				tenant, p.name, strings.Join(p.types, `","`), p.channel)
			req := &schedulerv1.CreatePolicyRequest{}
			if err := protojson.Unmarshal([]byte(js), req); err != nil {
				return fmt.Errorf("chaos: policy %s: %w", p.name, err)
			}
			if err := retry(ctx, "CreatePolicy "+p.name, func(ctx context.Context) error {
				_, err := sched.CreatePolicy(ctx, req)
				return err
			}); err != nil {
				return err
			}
		}
		for _, a := range Agents {
			if err := retry(ctx, "UpsertAgent "+a, func(ctx context.Context) error {
				_, err := disp.UpsertAgent(ctx, &dispatchv1.UpsertAgentRequest{Agent: &dispatchv1.Agent{
					Id: a, TenantId: tenant, Name: "坐席 " + a, Groups: []string{"default"}}})
				return err
			}); err != nil {
				return err
			}
		}
	}
	return nil
}

func sortedTenants() []string {
	var out []string
	for t := range Tenants {
		out = append(out, t)
	}
	slices.Sort(out)
	return out
}

// Feedback is a client of feedback's first instance.
func (s *System) Feedback() feedbackv1.FeedbackServiceClient {
	return feedbackv1.NewFeedbackServiceClient(s.conns["feedback"])
}

// Close stops everything the System started and drops its database.
func (s *System) Close() {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	for _, c := range s.conns {
		_ = c.Close()
	}
	if s.Stack != nil {
		if err := s.Stack.StopAll(ctx); err != nil {
			s.log.Warn("services did not all stop cleanly", "err", err)
		}
	}
	if s.NC != nil {
		s.NC.Close()
	}
	if s.DB != nil {
		s.DB.Close()
	}
	if s.NATS != nil {
		s.NATS.Stop()
	}
	if s.Cluster != nil {
		s.Cluster.Stop()
	}
	if s.Issuer != nil {
		_ = s.Issuer.Close()
	}
	if s.DBName != "" && s.PG != nil && s.PG.Running() {
		_ = s.PG.DropDatabase(ctx, s.DBName)
	}
}

// LogLines returns the lines of an instance's log that contain every one of words.
func (s *System) LogLines(instance string, words ...string) []string {
	b, err := os.ReadFile(s.Stack.LogPath(instance))
	if err != nil {
		return nil
	}
	var out []string
	for line := range strings.SplitSeq(string(b), "\n") {
		ok := line != ""
		for _, w := range words {
			if !strings.Contains(line, w) {
				ok = false
				break
			}
		}
		if ok {
			out = append(out, line)
		}
	}
	return out
}

// retry calls f (each call bounded by 10 s) until it succeeds, for up to 60 s.
func retry(ctx context.Context, what string, f func(ctx context.Context) error) error {
	var last error
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		last = f(cctx)
		cancel()
		if last == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(300 * time.Millisecond):
		}
	}
	return fmt.Errorf("chaos: %s: %w", what, last)
}

// waitUntil calls f every 200 ms until it reports done, for up to timeout.
func waitUntil(ctx context.Context, timeout time.Duration, what string, f func() (bool, error)) error {
	deadline := time.Now().Add(timeout)
	var last error
	for {
		done, err := f()
		if done {
			return nil
		}
		last = err
		if time.Now().After(deadline) {
			return fmt.Errorf("chaos: timed out after %s waiting for %s (last error: %v)", timeout, what, last)
		}
		select {
		case <-ctx.Done():
			return errors.Join(ctx.Err(), last)
		case <-time.After(200 * time.Millisecond):
		}
	}
}
