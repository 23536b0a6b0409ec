package app

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/proto"

	eventsv1 "github.com/huifang/huifang/proto/huifang/events/v1"
	typesv1 "github.com/huifang/huifang/proto/huifang/types/v1"

	"github.com/huifang/huifang/pkg/invalid"
	"github.com/huifang/huifang/pkg/loop"
	"github.com/huifang/huifang/pkg/servicetest"
	"github.com/huifang/huifang/pkg/stream"
	"github.com/huifang/huifang/services/feedback/internal/complaint"
	"github.com/huifang/huifang/services/feedback/internal/questionnaire"
	"github.com/huifang/huifang/services/feedback/internal/record"
	"github.com/huifang/huifang/services/feedback/internal/visit"
	"github.com/huifang/huifang/services/feedback/migrations"
)

// clock is a time tests move by hand.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

type env struct {
	ctx   context.Context
	pool  *pgxpool.Pool
	clock *clock
	app   *App
}

func setup(t *testing.T) *env {
	t.Helper()
	pool := servicetest.Pool(t, "feedback", migrations.FS)
	e := &env{ctx: t.Context(), pool: pool, clock: &clock{t: time.Date(2025, 3, 2, 10, 0, 0, 0, time.UTC)}}
	e.app = &App{DB: pool, Now: e.clock.Now, Rules: complaint.MustRules(complaint.DefaultRulesSpec, complaint.DefaultDeadline)}
	require.NoError(t, e.app.EnsureSeeds(e.ctx))
	return e
}

var due = time.Date(2025, 3, 1, 9, 0, 0, 0, time.UTC)

// seedVisit stores a visit as the VisitDue consumer would.
func (e *env) seedVisit(t *testing.T, id string) visit.Visit {
	t.Helper()
	v := visit.Visit{
		TenantID: "default", VisitID: id, CustomerID: "cust-" + id, ServiceID: "svc-" + id, PolicyID: "policy-repair",
		Channel: typesv1.Channel_CHANNEL_PHONE, DueAt: due, Deadline: due.Add(48 * time.Hour),
		OrgUnit: "branch-north", ServiceType: "repair", ServiceCompletedAt: due.Add(-24 * time.Hour),
	}
	require.NoError(t, e.app.LearnVisit(e.ctx, v))
	return v
}

func draft(visitID string, overall typesv1.Rating, problems ...record.Problem) record.Draft {
	return record.Draft{VisitID: visitID, AgentID: "a-1", Answers: []questionnaire.Answer{{Aspect: "overall", Rating: overall}}, Problems: problems}
}

// unsatisfied logs an unsatisfied visit, which opens one complaint, and returns its id.
func (e *env) unsatisfied(t *testing.T, visitID string) string {
	t.Helper()
	e.seedVisit(t, visitID)
	rec, err := e.app.LogVisit(e.ctx, draft(visitID, typesv1.Rating_RATING_UNSATISFIED))
	require.NoError(t, err)
	require.Len(t, rec.ComplaintIDs, 1)
	return rec.ComplaintIDs[0]
}

type outboxRow struct {
	ID      string
	Subject string
	Payload []byte
}

func (e *env) outbox(t *testing.T) []outboxRow {
	t.Helper()
	rows, err := e.pool.Query(e.ctx, `SELECT id, subject, payload FROM outbox ORDER BY seq`)
	require.NoError(t, err)
	list, err := pgx.CollectRows(rows, pgx.RowToStructByPos[outboxRow])
	require.NoError(t, err)
	return list
}

// last decodes the newest outbox event of subject into m.
func (e *env) last(t *testing.T, subject string, m proto.Message) {
	t.Helper()
	rows := e.outbox(t)
	for i := len(rows) - 1; i >= 0; i-- {
		if rows[i].Subject == subject {
			require.NoError(t, proto.Unmarshal(rows[i].Payload, m))
			return
		}
	}
	t.Fatalf("no %s in the outbox", subject)
}

func (e *env) count(t *testing.T, table string) int {
	t.Helper()
	var n int
	require.NoError(t, e.pool.QueryRow(e.ctx, `SELECT count(*) FROM `+pgx.Identifier{table}.Sanitize()).Scan(&n))
	return n
}

// drain runs rounds of EscalateOverdue as the escalation loop does: again
// at once while a round is full. It returns how many complaints it escalated.
func drain(ctx context.Context, a *App) (int, error) {
	batch := a.EscalationBatch
	if batch <= 0 {
		batch = DefaultEscalationBatch
	}
	total := 0
	for {
		n, err := a.EscalateOverdue(ctx)
		total += n
		if err != nil || n < batch {
			return total, err
		}
	}
}

// Overdue complaints escalate by themselves, one level per missed deadline
// (seed 004: the department answers within the set time).
func TestOverdueComplaintsEscalate(t *testing.T) {
	t.Parallel()
	e := setup(t)
	id := e.unsatisfied(t, "v-1")
	e.app.EscalationBatch = 1

	n, err := drain(e.ctx, e.app)
	require.NoError(t, err)
	require.Zero(t, n, "not before the deadline")
	e.clock.Advance(48*time.Hour + time.Second)
	n, err = drain(e.ctx, e.app)
	require.NoError(t, err)
	require.Equal(t, 1, n)
	n, err = drain(e.ctx, e.app)
	require.NoError(t, err)
	require.Zero(t, n, "once per missed deadline")

	ev := &eventsv1.ComplaintEscalated{}
	e.last(t, stream.SubjectComplaintEscalated, ev)
	require.EqualValues(t, 1, ev.Level)
	require.Equal(t, "urgent", ev.Severity)
	require.Equal(t, e.clock.Now().Add(48*time.Hour), ev.Deadline.AsTime())

	_, err = e.app.AcknowledgeComplaint(e.ctx, Acknowledge{ComplaintID: id, By: "sm-1"})
	require.NoError(t, err)
	e.clock.Advance(49 * time.Hour)
	n, err = drain(e.ctx, e.app)
	require.NoError(t, err)
	require.Equal(t, 1, n, "acknowledged is not answered")
	got, err := e.app.GetComplaint(e.ctx, "", id)
	require.NoError(t, err)
	require.EqualValues(t, 2, got.Complaint.Level)
	require.Equal(t, "major", got.Complaint.Severity)
	last := got.History[len(got.History)-1]
	require.Equal(t, []string{"escalated", "system"}, []string{last.Kind, last.By})
	require.Contains(t, last.Detail, "passed")

	_, err = e.app.ResolveComplaint(e.ctx, Resolve{ComplaintID: id, By: "sm-1", RootCause: "c", Action: "a"})
	require.NoError(t, err)
	e.clock.Advance(30 * 24 * time.Hour)
	n, err = drain(e.ctx, e.app)
	require.NoError(t, err)
	require.Zero(t, n, "a resolved complaint waits for the customer, not the department")
}

// Two escalators at once (two replicas) escalate each overdue complaint once.
func TestConcurrentEscalatorsEscalateOnce(t *testing.T) {
	t.Parallel()
	e := setup(t)
	for i := range 30 {
		e.unsatisfied(t, fmt.Sprintf("v-%d", i))
	}
	e.clock.Advance(49 * time.Hour)
	var wg sync.WaitGroup
	counts := make([]int, 2)
	for r := range counts {
		wg.Go(func() {
			replica := &App{DB: e.pool, Now: e.clock.Now, Rules: e.app.Rules, EscalationBatch: 4}
			n, err := drain(e.ctx, replica)
			assert.NoError(t, err)
			counts[r] = n
		})
	}
	wg.Wait()
	require.Equal(t, 30, counts[0]+counts[1])
	rows, err := e.pool.Query(e.ctx, `SELECT DISTINCT level FROM complaints`)
	require.NoError(t, err)
	levels, err := pgx.CollectRows(rows, pgx.RowTo[int32])
	require.NoError(t, err)
	require.Equal(t, []int32{1}, levels)
}

// The escalator runs as a loop.Loop around EscalateOverdue, as cmd wires
// it: a round at start, and full rounds drain the backlog at once, without
// waiting for the interval.
func TestEscalationLoopDrainsAtOnce(t *testing.T) {
	t.Parallel()
	e := setup(t)
	for i := range 3 {
		e.unsatisfied(t, fmt.Sprintf("v-%d", i))
	}
	e.clock.Advance(49 * time.Hour)
	e.app.EscalationBatch = 1
	woken := loop.NewSignal()
	e.app.Relay = woken
	ctx, cancel := context.WithCancel(e.ctx)
	done := make(chan error, 1)
	l := &loop.Loop{Name: "complaint-escalator", Every: time.Hour, Batch: 1, Round: e.app.EscalateOverdue,
		Log: slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelWarn}))}
	go func() { done <- l.Run(ctx) }()
	require.Eventually(t, func() bool {
		var n int
		require.NoError(t, e.pool.QueryRow(e.ctx, `SELECT count(*) FROM complaints WHERE level = 1`).Scan(&n))
		return n == 3
	}, 60*time.Second, 20*time.Millisecond)
	cancel()
	require.NoError(t, <-done)
	select {
	case <-woken:
	default:
		t.Fatal("the relay was not woken")
	}
}

// A command's Tx form joins the caller's transaction: what it stores and
// the events it writes commit or roll back with the caller's.
func TestLogVisitTxJoinsTheCallersTransaction(t *testing.T) {
	t.Parallel()
	e := setup(t)
	e.seedVisit(t, "v-1")
	e.seedVisit(t, "v-2")
	problem := record.Problem{Category: "service_quality", Description: "late"}

	tx, err := e.pool.Begin(e.ctx)
	require.NoError(t, err)
	rec, err := e.app.LogVisitTx(e.ctx, tx, draft("v-1", typesv1.Rating_RATING_UNSATISFIED, problem))
	require.NoError(t, err)
	require.Len(t, rec.ComplaintIDs, 1)
	require.NoError(t, tx.Rollback(e.ctx))
	require.Zero(t, e.count(t, "visit_records"), "rolled back with the caller")
	require.Zero(t, e.count(t, "complaints"))
	require.Empty(t, e.outbox(t), "and its events with it")

	// An App on the caller's transaction: each command is a savepoint; a
	// refused one leaves the transaction usable, and all commit together.
	tx, err = e.pool.Begin(e.ctx)
	require.NoError(t, err)
	inCaller := &App{DB: tx, Now: e.clock.Now, Rules: e.app.Rules}
	_, err = inCaller.LogVisit(e.ctx, draft("v-unknown", typesv1.Rating_RATING_SATISFIED))
	require.ErrorIs(t, err, ErrNotFound)
	_, err = inCaller.LogVisit(e.ctx, draft("v-1", typesv1.Rating_RATING_UNSATISFIED, problem))
	require.NoError(t, err)
	_, err = inCaller.LogVisit(e.ctx, draft("v-1", typesv1.Rating_RATING_SATISFIED))
	require.ErrorIs(t, err, ErrAlreadyLogged)
	_, err = inCaller.LogVisit(e.ctx, draft("v-2", typesv1.Rating_RATING_SATISFIED))
	require.NoError(t, err)
	require.Zero(t, e.count(t, "visit_records"), "nothing is seen before the caller commits")
	require.NoError(t, tx.Commit(e.ctx))
	require.Equal(t, 2, e.count(t, "visit_records"))
	require.Equal(t, 1, e.count(t, "complaints"))
	var subjects []string
	for _, r := range e.outbox(t) {
		subjects = append(subjects, r.Subject)
	}
	require.Equal(t, []string{stream.SubjectVisitLogged, stream.SubjectComplaintEscalated, stream.SubjectVisitLogged}, subjects)
}

func TestComplaintCommandsJoinTheCallersTransaction(t *testing.T) {
	t.Parallel()
	e := setup(t)
	id := e.unsatisfied(t, "v-1")
	before := len(e.outbox(t))

	tx, err := e.pool.Begin(e.ctx)
	require.NoError(t, err)
	_, err = e.app.AcknowledgeComplaintTx(e.ctx, tx, Acknowledge{ComplaintID: id, By: "sm-1"})
	require.NoError(t, err)
	c, err := e.app.ResolveComplaintTx(e.ctx, tx, Resolve{ComplaintID: id, By: "sm-1", RootCause: "c", Action: "a"})
	require.NoError(t, err)
	require.Equal(t, complaint.StatusResolved, c.Status)
	require.NoError(t, tx.Rollback(e.ctx))

	got, err := e.app.GetComplaint(e.ctx, "default", id)
	require.NoError(t, err)
	require.Equal(t, complaint.StatusOpen, got.Complaint.Status, "rolled back with the caller")
	require.Len(t, got.History, 1)
	require.Len(t, e.outbox(t), before)
}

// A refusal says what was refused, in words the API passes on.
func TestRefusals(t *testing.T) {
	t.Parallel()
	e := setup(t)
	_, err := e.app.LogVisit(e.ctx, draft("v-late", typesv1.Rating_RATING_SATISFIED))
	require.ErrorIs(t, err, ErrNotFound)
	require.Contains(t, err.Error(), "VisitDue")
	_, err = e.app.GetRecord(e.ctx, "", "nope")
	require.ErrorIs(t, err, ErrNotFound)
	require.Equal(t, `no record with id or visit id "nope"`, err.Error())
	_, err = e.app.AcknowledgeComplaint(e.ctx, Acknowledge{ComplaintID: "nope", By: "x"})
	require.ErrorIs(t, err, ErrNotFound)
	require.Equal(t, "complaint nope not found", err.Error())
	_, err = e.app.GetQuestionnaire(e.ctx, "", "nope", 2)
	require.Equal(t, "questionnaire nope version 2 not found", err.Error())
	_, err = e.app.CreateOpenLetter(e.ctx, OpenLetter{Title: "t", Body: "b", By: "m", ComplaintIDs: []string{"nope"}})
	require.Equal(t, "one of the complaints not found", err.Error())
	require.Zero(t, e.count(t, "open_letters"), "nothing of the refused letter is stored")

	id := e.unsatisfied(t, "v-1")
	_, err = e.app.ReopenComplaint(e.ctx, Reopen{ComplaintID: id, By: "m", Reason: "r"})
	var se *complaint.StateError
	require.ErrorAs(t, err, &se)
	_, err = e.app.ResolveComplaint(e.ctx, Resolve{ComplaintID: id})
	bad, ok := invalid.As(err)
	require.True(t, ok)
	require.Len(t, bad.Violations, 3, "by, root_cause, action")
}

// VisitAssigned: the newest assignment wins, whatever order the events
// come in, and it may come before the visit's VisitDue.
func TestAssignVisitKeepsTheNewest(t *testing.T) {
	t.Parallel()
	e := setup(t)
	at := e.clock.Now()
	assign := func(agent string, at time.Time) {
		require.NoError(t, e.app.AssignVisit(e.ctx, visit.Assignment{VisitID: "v-1", AgentID: agent, AssignedAt: at, EventID: agent}))
	}
	agent := func() string {
		var a string
		require.NoError(t, e.pool.QueryRow(e.ctx, `SELECT agent_id FROM visit_assignments WHERE tenant_id = 'default' AND visit_id = 'v-1'`).Scan(&a))
		return a
	}
	assign("a-1", at)
	require.Equal(t, "a-1", agent())
	assign("a-2", at.Add(time.Minute))
	assign("a-1", at)
	require.Equal(t, "a-2", agent(), "an older assignment heard late changes nothing")
	e.seedVisit(t, "v-1")
	_, err := e.app.LogVisit(e.ctx, draft("v-1", typesv1.Rating_RATING_SATISFIED))
	bad, ok := invalid.As(err)
	require.True(t, ok, "%v", err)
	require.Equal(t, "agent_id", bad.Violations[0].Field)
}
