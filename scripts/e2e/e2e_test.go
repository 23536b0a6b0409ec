// Package e2e tests the whole Huifang system: the five services run as real
// processes on a fresh database and a NATS server process (or, in
// TestMultiReplicaCluster, a three-node JetStream cluster with several
// replicas of a service), and the tests drive them only through their public
// interfaces (NATS ingress, gRPC, the event streams), reading the databases
// directly only to observe a crash or to count.
package e2e

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	analyticsv1 "github.com/huifang/huifang/proto/huifang/analytics/v1"
	dispatchv1 "github.com/huifang/huifang/proto/huifang/dispatch/v1"
	eventsv1 "github.com/huifang/huifang/proto/huifang/events/v1"
	feedbackv1 "github.com/huifang/huifang/proto/huifang/feedback/v1"
	intakev1 "github.com/huifang/huifang/proto/huifang/intake/v1"
	schedulerv1 "github.com/huifang/huifang/proto/huifang/scheduler/v1"
	typesv1 "github.com/huifang/huifang/proto/huifang/types/v1"

	"github.com/huifang/huifang/pkg/issuer"
	"github.com/huifang/huifang/pkg/pgtest"
	"github.com/huifang/huifang/pkg/stream"
	"github.com/huifang/huifang/scripts/internal/stack"
)

// binDir holds the binaries TestMain builds once for all tests: the five
// services and huifang-nats.
var binDir string

func TestMain(m *testing.M) {
	os.Exit(runTests(m))
}

func runTests(m *testing.M) int {
	root, err := stack.Root(".")
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		return 1
	}
	dir, err := os.MkdirTemp("", "huifang-e2e-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		return 1
	}
	defer os.RemoveAll(dir)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	if err := stack.Build(ctx, root, dir, "huifang-nats"); err != nil {
		fmt.Fprintln(os.Stderr, "e2e: build the services:", err)
		return 1
	}
	binDir = dir
	return m.Run()
}

const (
	tenant = "default"
	agent  = "a-1"
	// taskDeadline bounds ingress → task: the scheduler fires a zero-offset
	// visit within 2 s, the rest is event hops. It is generous on purpose:
	// on a loaded machine (CI, other tests beside) hops take many seconds,
	// and a passing run never waits for the bound.
	taskDeadline = 2 * time.Minute
)

// system is a running Huifang with clients for its interfaces (of the first
// replica of each service).
type system struct {
	t    testing.TB
	st   *stack.Stack
	conn func(instance string) *grpc.ClientConn
	db   *pgxpool.Pool
	js   jetstream.JetStream
	// issuer signs the tokens the services accept; the clients call as
	// staff of the tenant a request names (issuer.StaffCalls) unless the
	// call carries a token of its own.
	issuer    *issuer.Issuer
	natsURL   string
	intake    intakev1.IntakeServiceClient
	scheduler schedulerv1.SchedulerServiceClient
	dispatch  dispatchv1.DispatchServiceClient
	feedback  feedbackv1.FeedbackServiceClient
	analytics analyticsv1.AnalyticsServiceClient
}

// setup starts the five services on a fresh database and NATS server, each
// with the extra environment given for it.
func setup(t *testing.T, env map[string][]string) *system {
	t.Helper()
	return setupWith(t, topology{env: env})
}

// topology says how to run the system.
type topology struct {
	// env holds extra variables per service or instance.
	env map[string][]string
	// replicas is how many processes of a service run (1 when unset).
	replicas map[string]int
	// cluster, when set, runs NATS as that many nodes of one JetStream
	// cluster (with STREAM_REPLICAS=3 for the services) instead of one server.
	cluster int
	// cl receives the cluster when one runs.
	cl **stack.NATSCluster
	// natsUsers runs the single NATS server with Huifang's users: each
	// service connects as its own, the test as admin.
	natsUsers bool
}

func setupWith(t testing.TB, topo topology) *system {
	t.Helper()
	dbURL := pgtest.NewDatabase(t)
	// NATS runs as its own process, like the services: inside this
	// race-instrumented binary the race detector flags a race within
	// nats-server itself (stream update vs. consumer creation) when the
	// services start together.
	natsCtx, cancelNATS := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancelNATS()
	env := map[string][]string{}
	for k, v := range topo.env {
		env[k] = slices.Clone(v)
	}
	var natsURL string
	if topo.cluster > 1 {
		cl, err := stack.RunNATSCluster(natsCtx, filepath.Join(binDir, "huifang-nats"), t.TempDir(), topo.cluster)
		require.NoError(t, err)
		t.Cleanup(cl.Stop)
		natsURL = cl.URL()
		if topo.cl != nil {
			*topo.cl = cl
		}
		for _, svc := range stack.Services() {
			env[svc] = append([]string{"STREAM_REPLICAS=3"}, env[svc]...)
		}
	} else {
		var extra []string
		if topo.natsUsers {
			extra = append(extra, "-users")
		}
		ns, err := stack.RunNATS(natsCtx, filepath.Join(binDir, "huifang-nats"), t.TempDir(), extra...)
		require.NoError(t, err)
		t.Cleanup(ns.Stop)
		natsURL = ns.URL
	}
	ports, err := stack.FreePortsFor(stack.Instances(topo.replicas)...)
	require.NoError(t, err)
	is, err := issuer.Listen("127.0.0.1:0", "huifang")
	require.NoError(t, err)
	t.Cleanup(func() { _ = is.Close() })
	st, err := stack.New(stack.Config{
		Auth: is.Config(), ClientSecrets: stack.RegisterClients(is),
		NATSUsers:    topo.natsUsers,
		BinDir:       binDir,
		DatabaseURL:  dbURL,
		NATSURL:      natsURL,
		Ports:        ports,
		Replicas:     topo.replicas,
		Env:          env,
		LogLevel:     "debug",
		LogDir:       t.TempDir(),
		ReadyTimeout: 30 * time.Second,
		StopGrace:    10 * time.Second,
		Log:          slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelWarn})),
	})
	require.NoError(t, err)
	t.Cleanup(func() {
		if err := st.StopAll(context.Background()); err != nil {
			t.Errorf("services did not shut down cleanly on SIGTERM: %v", err)
		}
		if t.Failed() {
			for _, s := range st.Instances() {
				t.Logf("--- last lines of %s's log:\n%s", s, st.LogTail(s, 30))
			}
		}
	})
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	require.NoError(t, st.StartAll(ctx))

	db, err := pgxpool.New(t.Context(), dbURL)
	require.NoError(t, err)
	t.Cleanup(db.Close)
	nc, err := nats.Connect(natsURL)
	require.NoError(t, err)
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	require.NoError(t, err)

	conn := func(svc string) *grpc.ClientConn {
		c, err := grpc.NewClient(st.GRPCAddr(svc), grpc.WithTransportCredentials(insecure.NewCredentials()),
			grpc.WithUnaryInterceptor(callTimeout), is.StaffCalls())
		require.NoError(t, err)
		t.Cleanup(func() { _ = c.Close() })
		return c
	}
	return &system{
		t: t, st: st, db: db, js: js, conn: conn, issuer: is, natsURL: natsURL,
		intake:    intakev1.NewIntakeServiceClient(conn("intake")),
		scheduler: schedulerv1.NewSchedulerServiceClient(conn("scheduler")),
		dispatch:  dispatchv1.NewDispatchServiceClient(conn("dispatch")),
		feedback:  feedbackv1.NewFeedbackServiceClient(conn("feedback")),
		analytics: analyticsv1.NewAnalyticsServiceClient(conn("analytics")),
	}
}

// callTimeout bounds each gRPC call, so that a hung service fails the test
// with a clear error instead of the whole run timing out.
func callTimeout(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	return invoker(ctx, method, req, reply, cc, opts...)
}

// prepare creates the instant policy and agent a-1, and returns the policy's id.
func (s *system) prepare() string {
	s.t.Helper()
	req := &schedulerv1.CreatePolicyRequest{}
	require.NoError(s.t, protojson.Unmarshal([]byte(stack.InstantPolicy), req))
	resp, err := s.scheduler.CreatePolicy(s.t.Context(), req)
	require.NoError(s.t, err, "CreatePolicy instant")
	require.NotEmpty(s.t, resp.GetPolicy().GetId())
	require.Equal(s.t, "instant", resp.GetPolicy().GetName())

	_, err = s.dispatch.UpsertAgent(s.t.Context(), &dispatchv1.UpsertAgentRequest{
		Agent: &dispatchv1.Agent{Id: agent, TenantId: tenant, Name: "李娜", Groups: []string{"default"}},
	})
	require.NoError(s.t, err, "UpsertAgent a-1")
	return resp.GetPolicy().GetId()
}

// ingress is a completed service as the upstream ERP sends it.
func ingress(sourceEventID, serviceType, customerID, name, phone string, completedAt time.Time) string {
	return fmt.Sprintf(`{"source_system":"erp-demo","source_event_id":%q,"service_type":%q,"completed_at":%q,"customer":{"external_id":%q,"name":%q,"phone":%q}}`,
		sourceEventID, serviceType, completedAt.UTC().Format(time.RFC3339), customerID, name, phone)
}

// publish puts raw bytes on the ingress subject as JSON.
func (s *system) publish(data string) {
	s.t.Helper()
	msg := &nats.Msg{Subject: stream.SubjectIngressServiceCompleted, Data: []byte(data), Header: nats.Header{}}
	msg.Header.Set(stream.HeaderContentType, stream.ContentTypeJSON)
	_, err := s.js.PublishMsg(s.t.Context(), msg)
	require.NoError(s.t, err)
}

// waitFor calls f every 100 ms until it reports done, and fails the test
// with what and f's last error when timeout passes first.
func waitFor[T any](t testing.TB, timeout time.Duration, what string, f func() (T, bool, error)) T {
	t.Helper()
	deadline := time.Now().Add(timeout)
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		v, done, err := f()
		if done {
			return v
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s (last error: %v)", timeout, what, err)
		}
		select {
		case <-t.Context().Done():
			t.Fatalf("test ended while waiting for %s", what)
		case <-tick.C:
		}
	}
}

// claim polls ClaimNextTask for agent a-1 until it hands out a task.
func (s *system) claim() *dispatchv1.Task {
	s.t.Helper()
	return waitFor(s.t, taskDeadline, "a task for agent a-1", func() (*dispatchv1.Task, bool, error) {
		resp, err := s.dispatch.ClaimNextTask(s.t.Context(), &dispatchv1.ClaimNextTaskRequest{TenantId: tenant, AgentId: agent})
		if err != nil {
			return nil, false, err
		}
		return resp.GetTask(), resp.GetTask() != nil, nil
	})
}

// logVisit records a visit, retrying briefly while feedback has not yet
// consumed the VisitDue that tells it about the visit.
func (s *system) logVisit(req *feedbackv1.LogVisitRequest) *feedbackv1.VisitRecord {
	s.t.Helper()
	return waitFor(s.t, taskDeadline, "LogVisit "+req.GetVisitId(), func() (*feedbackv1.VisitRecord, bool, error) {
		resp, err := s.feedback.LogVisit(s.t.Context(), req)
		if status.Code(err) == codes.NotFound {
			return nil, false, err
		}
		require.NoError(s.t, err, "LogVisit")
		return resp.GetRecord(), true, nil
	})
}

// serviceID waits until intake has stored the service of a source event id.
func (s *system) serviceID(sourceEventID string) string {
	s.t.Helper()
	return waitFor(s.t, taskDeadline, "intake.services row of "+sourceEventID, func() (string, bool, error) {
		var id string
		err := s.db.QueryRow(s.t.Context(), `SELECT id FROM intake.services WHERE source_system = 'erp-demo' AND source_event_id = $1`, sourceEventID).Scan(&id)
		return id, err == nil, err
	})
}

// plannedVisits lists the planned visits of a service.
func (s *system) plannedVisits(serviceID string) []*schedulerv1.PlannedVisit {
	s.t.Helper()
	resp, err := s.scheduler.ListPlannedVisits(s.t.Context(), &schedulerv1.ListPlannedVisitsRequest{TenantId: tenant, ServiceId: serviceID, PageSize: 500})
	require.NoError(s.t, err)
	return resp.GetVisits()
}

// tasks lists all tasks of the tenant.
func (s *system) tasks() []*dispatchv1.Task {
	s.t.Helper()
	var all []*dispatchv1.Task
	token := ""
	for {
		resp, err := s.dispatch.ListTasks(s.t.Context(), &dispatchv1.ListTasksRequest{TenantId: tenant, PageSize: 500, PageToken: token})
		require.NoError(s.t, err)
		all = append(all, resp.GetTasks()...)
		if token = resp.GetNextPageToken(); token == "" {
			return all
		}
	}
}

// messages returns every message on subject stored so far. A read that
// fails (a NATS node gone, its streams electing) is tried again whole.
func (s *system) messages(streamName, subject string) []jetstream.Msg {
	s.t.Helper()
	return waitFor(s.t, taskDeadline, "reading "+subject+" from "+streamName, func() ([]jetstream.Msg, bool, error) {
		msgs, err := s.readMessages(streamName, subject)
		return msgs, err == nil, err
	})
}

func (s *system) readMessages(streamName, subject string) ([]jetstream.Msg, error) {
	ctx := s.t.Context()
	str, err := s.js.Stream(ctx, streamName)
	if err != nil {
		return nil, err
	}
	info, err := str.Info(ctx, jetstream.WithSubjectFilter(subject))
	if err != nil {
		return nil, err
	}
	want := info.State.Subjects[subject]
	if want == 0 {
		return nil, nil
	}
	cons, err := s.js.OrderedConsumer(ctx, streamName, jetstream.OrderedConsumerConfig{FilterSubjects: []string{subject}})
	if err != nil {
		return nil, err
	}
	var msgs []jetstream.Msg
	for uint64(len(msgs)) < want {
		batch, err := cons.Fetch(int(want)-len(msgs), jetstream.FetchMaxWait(2*time.Second))
		if err != nil {
			return nil, err
		}
		n := len(msgs)
		for m := range batch.Messages() {
			msgs = append(msgs, m)
		}
		if err := batch.Error(); err != nil {
			return nil, err
		}
		if len(msgs) == n {
			return nil, fmt.Errorf("no progress reading %s", subject)
		}
	}
	return msgs, nil
}

// drained waits until the system is at rest: every outbox published, every
// service's durable consumer of the ingress and events streams with nothing pending or
// unacknowledged, and the streams' last sequences unchanged since the poll
// before (so nothing was published between the checks).
func (s *system) drained() {
	s.t.Helper()
	ctx := s.t.Context()
	var last [2]uint64
	waitFor(s.t, taskDeadline, "every outbox published and every consumer drained", func() (bool, bool, error) {
		var unpublished int
		err := s.db.QueryRow(ctx, `SELECT
  (SELECT count(*) FROM intake.outbox WHERE published_at IS NULL) +
  (SELECT count(*) FROM scheduler.outbox WHERE published_at IS NULL) +
  (SELECT count(*) FROM dispatch.outbox WHERE published_at IS NULL) +
  (SELECT count(*) FROM feedback.outbox WHERE published_at IS NULL)`).Scan(&unpublished)
		if err != nil || unpublished > 0 {
			return false, false, err
		}
		var seqs [2]uint64
		for i, name := range []string{stream.IngressStream, stream.EventsStream} {
			str, err := s.js.Stream(ctx, name)
			if err != nil {
				return false, false, err
			}
			info, err := str.Info(ctx)
			if err != nil {
				return false, false, err
			}
			seqs[i] = info.State.LastSeq
			consumers := str.ListConsumers(ctx)
			for c := range consumers.Info() {
				if c.Config.Durable == "" {
					continue // a reader's ordered consumer (messages), not a service's
				}
				if c.NumPending > 0 || c.NumAckPending > 0 {
					return false, false, fmt.Errorf("%s: %d pending, %d unacknowledged", c.Name, c.NumPending, c.NumAckPending)
				}
			}
			if err := consumers.Err(); err != nil {
				return false, false, err
			}
		}
		stable := seqs == last
		last = seqs
		return true, stable, nil
	})
}

// serviceCompleted counts the ServiceCompleted events on the stream for a service.
func (s *system) serviceCompleted(serviceID string) int {
	s.t.Helper()
	n := 0
	for _, m := range s.messages(stream.EventsStream, stream.SubjectServiceCompleted) {
		ev := &eventsv1.ServiceCompleted{}
		require.NoError(s.t, proto.Unmarshal(m.Data(), ev))
		if ev.GetServiceId() == serviceID {
			n++
		}
	}
	return n
}

// byPolicy keeps the visits a policy planned, and checks that no policy
// step was planned twice.
func byPolicy(t *testing.T, visits []*schedulerv1.PlannedVisit, policyID string) []*schedulerv1.PlannedVisit {
	t.Helper()
	seen := map[string]bool{}
	var out []*schedulerv1.PlannedVisit
	for _, v := range visits {
		key := fmt.Sprintf("%s/%d", v.GetPolicyId(), v.GetStep())
		require.False(t, seen[key], "policy step %s planned twice for service %s", key, v.GetServiceId())
		seen[key] = true
		if v.GetPolicyId() == policyID {
			out = append(out, v)
		}
	}
	return out
}

// TestFollowUpCycle runs one repair through the whole system: ingress →
// service → planned visit → due (zero offset) → task → logged visit →
// satisfaction rate (seed 003: rate = (satisfied + fairly satisfied) / returned).
func TestFollowUpCycle(t *testing.T) {
	s := setup(t, nil)
	s.prepare()
	completed := time.Now().UTC().Truncate(time.Second)
	s.publish(ingress("e-1", "repair", "c-1", "王芳", "+8613800138000", completed))

	task := s.claim()
	require.NotEmpty(t, task.GetVisitId())
	require.Equal(t, "王*", task.GetCustomer().GetNameMasked(), "the task shows the customer masked")
	require.Equal(t, "*******8000", task.GetCustomer().GetPhoneMasked())
	require.Empty(t, task.GetCustomer().GetName())
	require.Empty(t, task.GetCustomer().GetPhone())

	// Click-to-dial: the agent holding the task gets the number, audited in
	// dispatch and in intake.
	asAgent, err := s.issuer.Context(t.Context(), issuer.Staff(tenant, agent))
	require.NoError(t, err)
	dial, err := s.dispatch.RevealTaskContact(asAgent, &dispatchv1.RevealTaskContactRequest{TenantId: tenant, TaskId: task.GetId(),
		LeaseToken: task.GetLeaseToken(), Purpose: "follow-up call"})
	require.NoError(t, err)
	require.Equal(t, "+8613800138000", dial.GetAddress())
	require.Equal(t, "王芳", dial.GetName())
	_, err = s.dispatch.RevealTaskContact(asAgent, &dispatchv1.RevealTaskContactRequest{TenantId: tenant, TaskId: task.GetId(),
		LeaseToken: task.GetLeaseToken() + 1})
	require.Equal(t, codes.FailedPrecondition, status.Code(err), "only the current claim")
	for _, svc := range []string{"dispatch", "intake"} {
		var n int
		require.NoError(t, s.db.QueryRow(t.Context(), `SELECT count(*) FROM `+svc+`.audit_log WHERE action IN ('task.contact_reveal', 'contact.reveal')`).Scan(&n))
		require.Equal(t, 1, n, "%s's audit log records the reveal", svc)
	}
	require.Equal(t, typesv1.Channel_CHANNEL_PHONE, task.GetChannel())
	require.Equal(t, agent, task.GetAgentId())
	require.Equal(t, "repair", task.GetServiceType())
	require.True(t, task.GetDueAt().AsTime().Equal(completed), "a zero-offset step is due at completion: due %s, completed %s", task.GetDueAt().AsTime(), completed)

	rec := s.logVisit(&feedbackv1.LogVisitRequest{
		TenantId: tenant, VisitId: task.GetVisitId(), AgentId: agent,
		Answers: []*typesv1.Answer{{Aspect: "overall", Rating: typesv1.Rating_RATING_SATISFIED}},
	})
	require.Equal(t, task.GetVisitId(), rec.GetVisitId())
	require.Equal(t, typesv1.Channel_CHANNEL_PHONE, rec.GetChannel(), "the planned channel when none is given")

	sat := waitFor(t, taskDeadline, "analytics to count the questionnaire", func() (*analyticsv1.GetSatisfactionResponse, bool, error) {
		resp, err := s.analytics.GetSatisfaction(s.t.Context(), &analyticsv1.GetSatisfactionRequest{TenantId: tenant, Aspect: "overall"})
		return resp, err == nil && resp.GetReturned() == 1, err
	})
	require.EqualValues(t, 1, sat.GetSatisfied())
	require.InDelta(t, 1.0, sat.GetRate(), 1e-9)
	require.InDelta(t, 0.85, sat.GetTarget(), 1e-9, "seed 003: overall satisfaction ≥ 85%")
	require.True(t, sat.GetMeetsTarget())

	s.checkMetrics()
	s.checkNoPersonalData("13800138000", "王芳")
}

// checkNoPersonalData: no service's log holds the given phone numbers or
// names, and no table of any schema holds them in clear (every row of every
// table, as text, and its bytes as hex): intake keeps them sealed, the
// others not at all.
func (s *system) checkNoPersonalData(secrets ...string) {
	t := s.t
	for _, name := range s.st.Instances() {
		log, err := os.ReadFile(s.st.LogPath(name))
		require.NoError(t, err)
		for _, secret := range secrets {
			require.NotContains(t, string(log), secret, "%s's log holds personal data", name)
		}
	}
	rows, err := s.db.Query(t.Context(), `SELECT table_schema, table_name FROM information_schema.tables
WHERE table_type = 'BASE TABLE' AND table_schema NOT IN ('pg_catalog', 'information_schema')`)
	require.NoError(t, err)
	tables, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) ([2]string, error) {
		var st [2]string
		return st, r.Scan(&st[0], &st[1])
	})
	require.NoError(t, err)
	require.NotEmpty(t, tables)
	for _, st := range tables {
		for _, secret := range secrets {
			var n int
			// Bytes (an outbox payload in protobuf) show as hex in a row's text.
			q := fmt.Sprintf(`SELECT count(*) FROM %s.%s AS r WHERE r::text LIKE '%%' || $1 || '%%'
  OR r::text LIKE '%%' || encode(convert_to($1, 'UTF8'), 'hex') || '%%'`, pgx.Identifier{st[0]}.Sanitize(), pgx.Identifier{st[1]}.Sanitize())
			err := s.db.QueryRow(t.Context(), q, secret).Scan(&n)
			if pgErr := (*pgconn.PgError)(nil); errors.As(err, &pgErr) && pgErr.Code == "42P01" {
				break // dropped since it was listed (analytics' rebuild tables come and go)
			}
			require.NoError(t, err)
			require.Zero(t, n, "%s.%s holds personal data in clear", st[0], st[1])
		}
	}
}

// checkMetrics scrapes every service's /metrics as Prometheus would, after
// traffic: each answers 200 and parses as the text format, and every
// durable consumer on the server (named for its service, e.g.
// dispatch-visit-due) appears exactly once, with its lag, in its own
// service's scrape and in no other.
func (s *system) checkMetrics() {
	t := s.t
	var durables []string
	for _, name := range []string{stream.IngressStream, stream.EventsStream} {
		str, err := s.js.Stream(t.Context(), name)
		require.NoError(t, err)
		infos := str.ListConsumers(t.Context())
		for c := range infos.Info() {
			if c.Config.Durable != "" { // not the ordered consumers of tools and rebuilds
				durables = append(durables, c.Config.Durable)
			}
		}
		require.NoError(t, infos.Err())
	}
	require.NotEmpty(t, durables)
	seen := map[string][]string{} // durable → services whose scrape has it
	for _, svc := range stack.Services() {
		families := scrape(t, s.st.HTTPAddr(svc))
		for _, name := range []string{"huifang_ready", "huifang_outbox_pending", "huifang_build_info", "huifang_retention_seconds", "huifang_retention_purged_total"} {
			require.Contains(t, families, name, "%s's /metrics lacks %s", svc, name)
		}
		classes := map[string]float64{}
		for _, m := range families["huifang_retention_seconds"].GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "class" {
					classes[l.GetValue()] = m.GetGauge().GetValue()
				}
			}
		}
		want := map[string]float64{"inbox": 168 * 3600, "outbox": 24 * 3600, "rejected_events": 720 * 3600}
		switch svc {
		case "dispatch":
			want["messages"] = 2160 * 3600
		case "feedback":
			want["records"] = 0 // RECORD_RETENTION: kept unless set
		}
		require.Equal(t, want, classes, "%s's retention per class of data", svc)
		lag := map[string]int{}
		for _, metric := range []string{"huifang_consumer_pending", "huifang_consumer_ack_pending", "huifang_consumer_redelivered"} {
			for _, m := range families[metric].GetMetric() {
				for _, l := range m.GetLabel() {
					if l.GetName() == "consumer" {
						if metric == "huifang_consumer_pending" {
							seen[l.GetValue()] = append(seen[l.GetValue()], svc)
						}
						lag[l.GetValue()+" "+metric]++
					}
				}
			}
		}
		for key, n := range lag {
			require.Equal(t, 1, n, "%s: %s exported %d times", svc, key, n)
		}
	}
	for _, d := range durables {
		owner, _, _ := strings.Cut(d, "-")
		require.Equal(t, []string{owner}, seen[d], "durable %s must be exported once, by %s", d, owner)
	}
}

// scrape GETs /metrics and parses it as Prometheus text.
func scrape(t testing.TB, addr string) map[string]*dto.MetricFamily {
	t.Helper()
	resp, err := http.Get("http://" + addr + "/metrics")
	require.NoError(t, err)
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, resp.StatusCode, "GET %s/metrics: %s", addr, body)
	p := expfmt.NewTextParser(model.UTF8Validation)
	families, err := p.TextToMetricFamilies(bytes.NewReader(body))
	require.NoError(t, err, "/metrics of %s must parse as Prometheus text", addr)
	return families
}

// TestUnsatisfiedVisitEscalatesComplaint: an unsatisfied answer with a
// problem opens a complaint routed to its department (seed 001, seed 004
// tracking) and publishes ComplaintEscalated.
func TestUnsatisfiedVisitEscalatesComplaint(t *testing.T) {
	s := setup(t, nil)
	s.prepare()
	escalated, err := s.js.OrderedConsumer(s.t.Context(), stream.EventsStream, jetstream.OrderedConsumerConfig{
		FilterSubjects: []string{stream.SubjectComplaintEscalated},
	})
	require.NoError(t, err)

	s.publish(ingress("e-2", "repair", "c-2", "刘洋", "+8613900139000", time.Now()))
	task := s.claim()
	rec := s.logVisit(&feedbackv1.LogVisitRequest{
		TenantId: tenant, VisitId: task.GetVisitId(), AgentId: agent,
		Answers:  []*typesv1.Answer{{Aspect: "overall", Rating: typesv1.Rating_RATING_UNSATISFIED, Comment: "师傅迟到两个小时"}},
		Problems: []*typesv1.Problem{{Category: "service_quality", Description: "维修师傅迟到两个小时，没有提前通知"}},
	})
	require.Len(t, rec.GetComplaintIds(), 1)

	ev := waitFor(t, taskDeadline, "ComplaintEscalated for visit "+task.GetVisitId(), func() (*eventsv1.ComplaintEscalated, bool, error) {
		batch, err := escalated.Fetch(10, jetstream.FetchMaxWait(500*time.Millisecond))
		if err != nil {
			return nil, false, err
		}
		for m := range batch.Messages() {
			ev := &eventsv1.ComplaintEscalated{}
			if err := proto.Unmarshal(m.Data(), ev); err != nil {
				return nil, false, err
			}
			if ev.GetVisitId() == task.GetVisitId() {
				return ev, true, nil
			}
		}
		return nil, false, batch.Error()
	})
	require.Equal(t, rec.GetComplaintIds()[0], ev.GetComplaintId())
	require.Equal(t, "service_quality", ev.GetCategory())
	require.Equal(t, task.GetCustomer().GetId(), ev.GetCustomerId())
	require.NotEmpty(t, ev.GetDepartment(), "seed 001: a problem goes to its owning department")
	require.NotNil(t, ev.GetDeadline(), "seed 004: the department answers within a set time")
}

// TestDuplicateUpstreamEvent: an upstream resend, byte for byte or
// re-serialised, yields one service, one planned visit and one task.
func TestDuplicateUpstreamEvent(t *testing.T) {
	s := setup(t, nil)
	policyID := s.prepare()
	completed := time.Now().Add(-time.Minute)
	ev := ingress("e-dup", "repair", "c-3", "陈静", "+8615000150000", completed)
	s.publish(ev)
	s.publish(ev)
	s.publish(strings.Replace(ev, `{"source_system"`, `{ "source_system"`, 1))
	// A later event is a barrier: once its task exists, the resends before it were handled.
	s.publish(ingress("e-barrier", "repair", "c-4", "赵磊", "+8618600186000", time.Now()))
	barrierID := s.serviceID("e-barrier")
	waitFor(t, taskDeadline, "the barrier's task", func() (bool, bool, error) {
		for _, task := range s.tasks() {
			if task.GetCustomer().GetExternalId() == "c-4" {
				return true, true, nil
			}
		}
		return false, false, nil
	})
	require.NotEmpty(t, barrierID)
	// Ingress workers run side by side, so the barrier is no proof on its
	// own: wait until every consumer has handled all it was given.
	s.drained()

	var services int
	require.NoError(t, s.db.QueryRow(s.t.Context(), `SELECT count(*) FROM intake.services WHERE source_system = 'erp-demo' AND source_event_id = 'e-dup'`).Scan(&services))
	require.Equal(t, 1, services, "one service record")
	serviceID := s.serviceID("e-dup")
	require.Equal(t, 1, s.serviceCompleted(serviceID), "one ServiceCompleted event")

	visits := byPolicy(t, s.plannedVisits(serviceID), policyID)
	require.Len(t, visits, 1, "one planned visit of the instant policy")
	// The visit fires on the scheduler's next round, which may come after
	// the rest was at rest: wait for its task, then for rest again.
	waitFor(t, taskDeadline, "the visit's task", func() (bool, bool, error) {
		for _, task := range s.tasks() {
			if task.GetVisitId() == visits[0].GetId() {
				return true, true, nil
			}
		}
		return false, false, nil
	})
	s.drained()
	perVisit := map[string]int{}
	for _, task := range s.tasks() {
		perVisit[task.GetVisitId()]++
	}
	for visit, n := range perVisit {
		require.Equal(t, 1, n, "tasks of visit %s", visit)
	}
	require.Equal(t, 1, perVisit[visits[0].GetId()], "one task for the visit")
}

// TestRejectedIngress: input intake cannot take is listed with the field it
// breaks and dead-lettered, and does not block the events after it. Intake
// lists refused payloads with their contacts masked; the dead letter names
// the rejected row and carries no payload (it may hold contacts).
func TestRejectedIngress(t *testing.T) {
	s := setup(t, nil)
	s.prepare()
	now := time.Now().UTC().Format(time.RFC3339)
	bad := []struct{ payload, field string }{
		{`{"source_system":"erp-demo","source_event_id":"bad-1","service_type":"repair",`, "payload"},
		{`{"source_system":"erp-demo","source_event_id":"bad-2","service_type":"repair","completed_at":"` + now + `","customer":{"name":"周杰","phone":"+8613600136000"}}`, "customer.external_id"},
		{`{"source_system":"erp-demo","source_event_id":"bad-3","service_type":"teleportation","completed_at":"` + now + `","customer":{"external_id":"c-5","name":"孙丽","phone":"+8613700137000"}}`, "service_type"},
	}
	for _, b := range bad {
		s.publish(b.payload)
	}
	s.publish(ingress("e-after", "repair", "c-6", "吴敏", "+8613500135000", time.Now()))

	task := s.claim()
	require.Equal(t, "吴*", task.GetCustomer().GetNameMasked(), "a valid event after the bad ones is still processed")

	rejected := waitFor(t, taskDeadline, "three rejected events", func() ([]*intakev1.RejectedEvent, bool, error) {
		resp, err := s.intake.ListRejectedEvents(s.t.Context(), &intakev1.ListRejectedEventsRequest{TenantId: tenant})
		return resp.GetRejectedEvents(), err == nil && len(resp.GetRejectedEvents()) >= len(bad), err
	})
	require.Len(t, rejected, len(bad))
	dead := s.messages(stream.DLQStream, stream.DeadLetterSubject("intake"))
	require.Len(t, dead, len(bad))
	for k, b := range bad {
		i := slices.IndexFunc(rejected, func(r *intakev1.RejectedEvent) bool {
			return strings.Contains(string(r.GetPayload()), fmt.Sprintf("bad-%d", k+1))
		})
		require.GreaterOrEqual(t, i, 0, "rejected event with payload %s", b.payload)
		r := rejected[i]
		require.True(t, r.GetMasked())
		for _, phone := range []string{"13600136000", "13700137000"} {
			require.NotContains(t, string(r.GetPayload()), phone, "listed masked")
		}
		require.Equal(t, b.field, r.GetField())
		require.Contains(t, r.GetReason(), b.field)
		require.Equal(t, stream.SubjectIngressServiceCompleted, r.GetSource())
		require.Equal(t, stream.ContentTypeJSON, r.GetContentType())

		// The dead letter names the row; the payload, which may hold
		// contacts, is only there, sealed.
		j := slices.IndexFunc(dead, func(m jetstream.Msg) bool { return m.Headers().Get(stream.HeaderRejectedID) == r.GetId() })
		require.GreaterOrEqual(t, j, 0, "dead letter of rejected event %s", r.GetId())
		require.Empty(t, dead[j].Data())
		require.Contains(t, dead[j].Headers().Get(stream.HeaderReason), b.field)
		require.Equal(t, b.field, dead[j].Headers().Get(stream.HeaderField))
	}
}

// TestCrashBetweenCommitAndPublish: intake stores a service and its event in
// one transaction and dies before relaying it; after a restart the event is
// published exactly once and the scheduler plans one visit.
func TestCrashBetweenCommitAndPublish(t *testing.T) {
	s := setup(t, map[string][]string{"intake": {"INTAKE_OUTBOX_RELAY=false"}})
	policyID := s.prepare()
	s.publish(ingress("e-crash", "repair", "c-7", "郑强", "+8613300133000", time.Now()))

	serviceID := s.serviceID("e-crash")
	outboxed := func(published bool) func() (bool, bool, error) {
		return func() (bool, bool, error) {
			rows, err := s.db.Query(s.t.Context(), `SELECT payload FROM intake.outbox WHERE subject = $1 AND (published_at IS NOT NULL) = $2`,
				stream.SubjectServiceCompleted, published)
			if err != nil {
				return false, false, err
			}
			defer rows.Close()
			for rows.Next() {
				var payload []byte
				if err := rows.Scan(&payload); err != nil {
					return false, false, err
				}
				ev := &eventsv1.ServiceCompleted{}
				if err := proto.Unmarshal(payload, ev); err != nil {
					return false, false, err
				}
				if ev.GetServiceId() == serviceID {
					return true, true, nil
				}
			}
			return false, false, rows.Err()
		}
	}
	waitFor(t, taskDeadline, "the unpublished ServiceCompleted in intake.outbox", outboxed(false))
	require.Zero(t, s.serviceCompleted(serviceID), "the relay is off: nothing published yet")

	s.st.Kill("intake")
	s.st.SetEnv("intake")
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	require.NoError(t, s.st.StartService(ctx, "intake"))

	waitFor(t, taskDeadline, "the outbox row marked published", outboxed(true))
	require.Equal(t, 1, s.serviceCompleted(serviceID), "ServiceCompleted published exactly once")

	task := s.claim()
	require.Equal(t, "郑*", task.GetCustomer().GetNameMasked())
	visits := byPolicy(t, s.plannedVisits(serviceID), policyID)
	require.Len(t, visits, 1, "one planned visit")
	require.Equal(t, visits[0].GetId(), task.GetVisitId())
}
