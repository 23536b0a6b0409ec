package app_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/proto"

	eventsv1 "github.com/huifang/huifang/proto/huifang/events/v1"
	typesv1 "github.com/huifang/huifang/proto/huifang/types/v1"

	"github.com/huifang/huifang/pkg/contact"
	"github.com/huifang/huifang/pkg/invalid"
	"github.com/huifang/huifang/pkg/outbox"
	"github.com/huifang/huifang/pkg/servicetest"
	"github.com/huifang/huifang/pkg/stream"
	"github.com/huifang/huifang/services/dispatch/internal/app"
	"github.com/huifang/huifang/services/dispatch/internal/contacts"
	"github.com/huifang/huifang/services/dispatch/internal/store"
	"github.com/huifang/huifang/services/dispatch/internal/storetest"
	"github.com/huifang/huifang/services/dispatch/internal/task"
)

var t0 = time.Date(2025, 3, 10, 9, 0, 0, 0, time.UTC)

type nop struct{}

func (nop) Notify() {}

type bundle struct {
	pool  *pgxpool.Pool
	clock *storetest.Clock
	a     *app.App
}

func setup(t *testing.T) bundle {
	t.Helper()
	pool := storetest.Pool(t)
	clock := storetest.NewClock(t0)
	a := &app.App{
		DB: pool, Relay: nop{}, Now: clock.Now, Log: servicetest.Logger(), Lease: 15 * time.Minute, Poll: 20 * time.Millisecond,
		Waker: &app.Waker{},
		// The example: no answer → again after 2 h, at most 3 attempts.
		Retry: task.RetryPolicy{typesv1.Channel_CHANNEL_PHONE: {typesv1.Disposition_DISPOSITION_NO_ANSWER: {After: 2 * time.Hour, Max: 3}}},
	}
	return bundle{pool: pool, clock: clock, a: a}
}

func (b bundle) agent(t *testing.T, a task.Agent) {
	t.Helper()
	_, err := b.a.UpsertAgent(context.Background(), a)
	require.NoError(t, err)
}

// record records agent's attempt on taskID with disposition d.
func (b bundle) record(taskID, agent string, d typesv1.Disposition, note string) (app.AttemptResult, error) {
	return b.a.RecordAttempt(context.Background(), app.Attempt{Tenant: "default", TaskID: taskID, AgentID: agent, Disposition: d, Note: note})
}

func (b bundle) add(t *testing.T, visit string, opts ...func(*task.Task)) task.Task {
	t.Helper()
	x := task.Task{ID: outbox.NewEventID(), Tenant: "default", VisitID: visit, Channel: typesv1.Channel_CHANNEL_PHONE,
		Customer: task.Customer{ID: "c-" + visit, NameMasked: "王芳", PhoneMasked: "13800000000", HasPhone: true},
		DueAt:    t0, Deadline: t0.Add(48 * time.Hour), Status: task.StatusOpen, CreatedAt: t0}
	for _, o := range opts {
		o(&x)
	}
	require.NoError(t, pgx.BeginFunc(context.Background(), b.pool, func(tx pgx.Tx) error {
		_, err := store.CreateTask(context.Background(), tx, x)
		return err
	}))
	return x
}

func (b bundle) claim(t *testing.T, agent string) (task.Task, bool) {
	t.Helper()
	got, found, err := b.a.Claim(context.Background(), "default", agent, 0)
	require.NoError(t, err)
	return got, found
}

// events decodes the outbox rows of subject into msgs of type T.
func events[T proto.Message](t *testing.T, pool *pgxpool.Pool, subject string, newT func() T) []T {
	t.Helper()
	rows, err := pool.Query(context.Background(), `SELECT payload FROM outbox WHERE subject = $1 ORDER BY seq`, subject)
	require.NoError(t, err)
	payloads, err := pgx.CollectRows(rows, pgx.RowTo[[]byte])
	require.NoError(t, err)
	var out []T
	for _, p := range payloads {
		m := newT()
		require.NoError(t, proto.Unmarshal(p, m))
		out = append(out, m)
	}
	return out
}

// TestNoAnswerRetryTiming: no answer → the task comes back 2 h later, at
// most 3 attempts, then the visit is unreachable (无效回访) and an event
// tells the scheduler and analytics. The clock is fake.
func TestNoAnswerRetryTiming(t *testing.T) {
	b := setup(t)
	ctx := context.Background()
	b.agent(t, task.Agent{ID: "a-1", Name: "李娜"})
	x := b.add(t, "v-1")

	for attempt := 1; attempt <= 3; attempt++ {
		got, found := b.claim(t, "a-1")
		require.True(t, found, "attempt %d", attempt)
		require.Equal(t, x.ID, got.ID)
		res, err := b.record(x.ID, "a-1", typesv1.Disposition_DISPOSITION_NO_ANSWER, "no one picked up")
		require.NoError(t, err)
		require.Equal(t, attempt, res.Attempt)
		if attempt < 3 {
			require.Equal(t, task.StatusOpen, res.Task.Status)
			require.True(t, res.Next.Equal(b.clock.Now().Add(2*time.Hour)), "next attempt 2 h later, got %s", res.Next)
			b.clock.Advance(2*time.Hour - time.Second)
			_, found := b.claim(t, "a-1")
			require.False(t, found, "not before the retry time")
			b.clock.Advance(time.Second)
			continue
		}
		require.Equal(t, task.StatusUnreachable, res.Task.Status)
		require.True(t, res.Next.IsZero())
	}
	_, found := b.claim(t, "a-1")
	require.False(t, found)

	attempted := events(t, b.pool, stream.SubjectVisitAttempted, func() *eventsv1.VisitAttempted { return &eventsv1.VisitAttempted{} })
	require.Len(t, attempted, 3, "VisitAttempted for each attempt")
	for i, ev := range attempted {
		require.Equal(t, int32(i+1), ev.GetAttempt())
		require.Equal(t, typesv1.Disposition_DISPOSITION_NO_ANSWER, ev.GetDisposition())
		require.Equal(t, "c-v-1", ev.GetCustomerId())
	}
	require.True(t, attempted[0].GetNextAttemptAt().AsTime().Equal(t0.Add(2*time.Hour)))
	require.Nil(t, attempted[2].GetNextAttemptAt())
	unreachable := events(t, b.pool, stream.SubjectVisitUnreachable, func() *eventsv1.VisitUnreachable { return &eventsv1.VisitUnreachable{} })
	require.Len(t, unreachable, 1)
	require.Equal(t, "v-1", unreachable[0].GetVisitId())
	require.Equal(t, int32(3), unreachable[0].GetAttempts())
	require.True(t, unreachable[0].GetAt().AsTime().Equal(t0.Add(4*time.Hour)))

	att, err := b.a.Attempts(ctx, x.ID)
	require.NoError(t, err)
	require.Len(t, att, 3)
}

// TestRetryLandsInContactWindow: seed 002: call at a convenient time; a
// retry two hours after 11:00 waits for the 15:30 window of the tenant's
// calendar the VisitDue brought.
func TestRetryLandsInContactWindow(t *testing.T) {
	b := setup(t)
	ctx := context.Background()
	b.clock.Advance(2 * time.Hour) // 11:00 UTC
	b.agent(t, task.Agent{ID: "a-1", Name: "李娜"})
	created, err := b.a.CreateTask(ctx, task.Due{Tenant: "default", VisitID: "v-1", Channel: typesv1.Channel_CHANNEL_PHONE,
		Customer: task.Customer{ID: "c-v-1", NameMasked: "王芳", PhoneMasked: "13800000000", HasPhone: true}, DueAt: b.clock.Now(),
		Calendar: contact.Calendar{Windows: []contact.Window{{Start: 600, End: 690}, {Start: 930, End: 1020}}}})
	require.NoError(t, err)
	require.True(t, created)
	x, found := b.claim(t, "a-1")
	require.True(t, found)
	res, err := b.record(x.ID, "a-1", typesv1.Disposition_DISPOSITION_NO_ANSWER, "")
	require.NoError(t, err)
	require.True(t, res.Next.Equal(time.Date(2025, 3, 10, 15, 30, 0, 0, time.UTC)), "got %s", res.Next)
}

// TestAskedToStopOptsOut: "asked to stop" closes the task and publishes
// ContactOptedOut for the customer and channel.
func TestAskedToStopOptsOut(t *testing.T) {
	b := setup(t)
	b.agent(t, task.Agent{ID: "a-1", Name: "李娜"})
	x := b.add(t, "v-1")
	same := func(x *task.Task) { x.Customer.ID = "c-v-1"; x.Deadline = t0.Add(72 * time.Hour) }
	otherPhone := b.add(t, "v-2", same)
	sms := b.add(t, "v-3", same, func(x *task.Task) { x.Channel, x.Automatic = typesv1.Channel_CHANNEL_SMS, true })
	got, found := b.claim(t, "a-1")
	require.True(t, found)
	require.Equal(t, x.ID, got.ID)
	res, err := b.record(x.ID, "a-1", typesv1.Disposition_DISPOSITION_ASKED_TO_STOP, "")
	require.NoError(t, err)
	require.Equal(t, task.StatusOptedOut, res.Task.Status)
	for id, want := range map[string]string{otherPhone.ID: task.StatusCancelled, sms.ID: task.StatusOpen} {
		got, err := b.a.Task(context.Background(), "default", id)
		require.NoError(t, err)
		require.Equal(t, want, got.Status, "the customer's other phone visit is withdrawn; the SMS is another channel")
	}

	out := events(t, b.pool, stream.SubjectContactOptedOut, func() *eventsv1.ContactOptedOut { return &eventsv1.ContactOptedOut{} })
	require.Len(t, out, 1)
	require.Equal(t, "c-v-1", out[0].GetCustomerId())
	require.Equal(t, typesv1.Channel_CHANNEL_PHONE, out[0].GetChannel())
	require.Contains(t, out[0].GetSource(), "v-1")
	require.Len(t, events(t, b.pool, stream.SubjectVisitAttempted, func() *eventsv1.VisitAttempted { return &eventsv1.VisitAttempted{} }), 1)

	_, err = b.record(x.ID, "a-1", typesv1.Disposition_DISPOSITION_ANSWERED, "")
	require.ErrorIs(t, err, task.ErrClosed, "a closed task takes no more attempts")
}

func TestHeartbeatReleaseAndHolder(t *testing.T) {
	b := setup(t)
	ctx := context.Background()
	b.agent(t, task.Agent{ID: "a-1", Name: "a"})
	b.agent(t, task.Agent{ID: "a-2", Name: "b"})
	x := b.add(t, "v-1")
	_, found := b.claim(t, "a-1")
	require.True(t, found)

	b.clock.Advance(10 * time.Minute)
	hb, err := b.a.Heartbeat(ctx, "default", x.ID, "a-1", 0)
	require.NoError(t, err)
	require.True(t, hb.LeaseExpiresAt.Equal(b.clock.Now().Add(15*time.Minute)))
	b.clock.Advance(10 * time.Minute) // past the first lease, inside the extended one
	_, found = b.claim(t, "a-2")
	require.False(t, found, "the heartbeat kept the lease")

	_, err = b.a.Heartbeat(ctx, "default", x.ID, "a-2", 0)
	require.ErrorIs(t, err, task.ErrNotHolder)
	_, err = b.record(x.ID, "a-2", typesv1.Disposition_DISPOSITION_ANSWERED, "")
	require.ErrorIs(t, err, task.ErrNotHolder)

	rel, err := b.a.Release(ctx, "default", x.ID, "a-1", 0)
	require.NoError(t, err)
	require.Equal(t, task.StatusOpen, rel.Status)
	got, found := b.claim(t, "a-2")
	require.True(t, found)
	require.Equal(t, x.ID, got.ID)
}

// TestReassignLeaderOnly: seed 004: leaders assign tasks.
func TestReassignLeaderOnly(t *testing.T) {
	b := setup(t)
	ctx := context.Background()
	b.agent(t, task.Agent{ID: "a-1", Name: "a", Groups: []string{"g-1"}})
	b.agent(t, task.Agent{ID: "a-2", Name: "b", Groups: []string{"g-1"}})
	b.agent(t, task.Agent{ID: "lead-1", Name: "l", Role: task.RoleLeader, Groups: []string{"g-1"}})
	b.agent(t, task.Agent{ID: "lead-2", Name: "m", Role: task.RoleLeader, Groups: []string{"g-2"}})
	x := b.add(t, "v-1", func(x *task.Task) { x.Group = "g-1" })
	_, found := b.claim(t, "a-1")
	require.True(t, found)

	_, err := b.a.Reassign(ctx, "default", x.ID, "a-2", "a-2", "")
	require.ErrorIs(t, err, task.ErrNotLeader, "an agent may not reassign")
	_, err = b.a.Reassign(ctx, "default", x.ID, "lead-2", "a-2", "")
	require.ErrorIs(t, err, task.ErrNotLeader, "another group's leader may not")
	got, err := b.a.Reassign(ctx, "default", x.ID, "lead-1", "a-2", "a-1 is sick")
	require.NoError(t, err)
	require.Equal(t, "a-2", got.AgentID)
	require.Equal(t, task.StatusClaimed, got.Status)
	assigned := events(t, b.pool, stream.SubjectVisitAssigned, func() *eventsv1.VisitAssigned { return &eventsv1.VisitAssigned{} })
	require.Len(t, assigned, 2)
	require.Equal(t, "a-2", assigned[1].GetAgentId())
}

// TestWithdraw: VisitCancelled closes an active task; a visit cancelled
// before it fell due gets no task.
func TestWithdraw(t *testing.T) {
	b := setup(t)
	ctx := context.Background()
	b.agent(t, task.Agent{ID: "a-1", Name: "a"})
	x := b.add(t, "v-1")
	_, found := b.claim(t, "a-1")
	require.True(t, found)
	require.NoError(t, pgx.BeginFunc(ctx, b.pool, func(tx pgx.Tx) error {
		if err := b.a.CancelVisitTx(ctx, tx, "default", "v-1", "cancelled by a manager"); err != nil {
			return err
		}
		return b.a.CancelVisitTx(ctx, tx, "default", "v-2", "customer opted out")
	}))
	got, err := b.a.Task(ctx, "default", x.ID)
	require.NoError(t, err)
	require.Equal(t, task.StatusCancelled, got.Status)
	_, err = b.record(x.ID, "a-1", typesv1.Disposition_DISPOSITION_ANSWERED, "")
	require.ErrorIs(t, err, task.ErrClosed)

	created, err := b.a.CreateTask(ctx, task.Due{Tenant: "default", VisitID: "v-2", Channel: typesv1.Channel_CHANNEL_PHONE}) // its VisitDue
	require.NoError(t, err)
	require.False(t, created)
	tasks, err := b.a.ListTasks(ctx, app.TaskQuery{Tenant: "default", Limit: 10})
	require.NoError(t, err)
	require.Len(t, tasks, 1, "the cancelled v-2 made no task")
}

// TestLongPollClaim: a waiting claim returns as soon as a task appears.
func TestLongPollClaim(t *testing.T) {
	b := setup(t)
	b.agent(t, task.Agent{ID: "a-1", Name: "a"})
	type result struct {
		t     task.Task
		found bool
		err   error
	}
	done := make(chan result, 1)
	go func() {
		got, found, err := b.a.Claim(context.Background(), "default", "a-1", 30*time.Second)
		done <- result{got, found, err}
	}()
	x := b.add(t, "v-1")
	b.a.Waker.Notify()
	select {
	case r := <-done:
		require.NoError(t, r.err)
		require.True(t, r.found)
		require.Equal(t, x.ID, r.t.ID)
	case <-time.After(10 * time.Second):
		t.Fatal("the long poll did not return")
	}
	start := time.Now()
	_, found, err := b.a.Claim(context.Background(), "default", "a-1", 100*time.Millisecond)
	require.NoError(t, err)
	require.False(t, found)
	require.GreaterOrEqual(t, time.Since(start), 100*time.Millisecond, "an empty long poll waits its time")
}

// TestConcurrentClaimsWithExpiringLeases: many agents claim while leases
// run out and tasks return to the queue; no task is ever held by two
// agents at once, and each claim writes one VisitAssigned.
func TestConcurrentClaimsWithExpiringLeases(t *testing.T) {
	b := setup(t)
	const tasks, agents = 60, 12
	for i := range agents {
		b.agent(t, task.Agent{ID: fmt.Sprintf("a-%02d", i), Name: "agent"})
	}
	for i := range tasks {
		b.add(t, fmt.Sprintf("v-%02d", i))
	}
	var mu sync.Mutex
	holder := map[string]string{} // task → agent, in this round
	claims := 0
	for round := range 3 {
		clear(holder)
		var wg sync.WaitGroup
		errs := make(chan error, agents)
		for i := range agents {
			wg.Go(func() {
				agent := fmt.Sprintf("a-%02d", i)
				for {
					got, found, err := b.a.Claim(context.Background(), "default", agent, 0)
					if err != nil {
						errs <- err
						return
					}
					if !found {
						return
					}
					mu.Lock()
					if prev, ok := holder[got.ID]; ok {
						errs <- fmt.Errorf("round %d: task %s held by %s and %s", round, got.ID, prev, agent)
					}
					holder[got.ID] = agent
					claims++
					mu.Unlock()
				}
			})
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			require.NoError(t, err)
		}
		require.Len(t, holder, tasks, "round %d: every task claimed once", round)
		b.clock.Advance(15 * time.Minute) // every lease runs out: the tasks go back to the queue
	}
	var assigned int
	require.NoError(t, b.pool.QueryRow(context.Background(), `SELECT count(*) FROM outbox WHERE subject = $1`, stream.SubjectVisitAssigned).Scan(&assigned))
	require.Equal(t, claims, assigned)
	require.Equal(t, 3*tasks, claims)
}

// TestRevealTaskContact (click-to-dial): the agent holding a task gets its
// customer's number from the contact book on its own behalf, and the audit
// log records it; another agent, or a stale claim, gets nothing and asks
// intake nothing.
func TestRevealTaskContact(t *testing.T) {
	b := setup(t)
	book := storetest.NewContacts()
	book.Add("c-v-1", "王芳", "+8613800000000", "")
	b.a.Send.Contacts = book
	b.agent(t, task.Agent{ID: "a-1", Name: "李娜"})
	b.agent(t, task.Agent{ID: "a-2", Name: "张伟"})
	x := b.add(t, "v-1")
	got, ok := b.claim(t, "a-1")
	require.True(t, ok)
	require.Equal(t, x.ID, got.ID)

	ctx := context.Background()
	c, err := b.a.RevealTaskContact(ctx, "default", x.ID, "a-1", got.LeaseToken, typesv1.Channel_CHANNEL_PHONE, "follow-up call")
	require.NoError(t, err)
	require.Equal(t, contacts.Contact{Name: "王芳", Address: "+8613800000000"}, c)
	require.Len(t, book.Asked(), 1)
	require.Equal(t, "agent:a-1 task:"+x.ID, book.Asked()[0].OnBehalfOf)

	_, err = b.a.RevealTaskContact(ctx, "default", x.ID, "a-2", 0, typesv1.Channel_CHANNEL_PHONE, "follow-up call")
	require.ErrorIs(t, err, task.ErrNotHolder)
	_, err = b.a.RevealTaskContact(ctx, "default", x.ID, "a-1", got.LeaseToken+1, typesv1.Channel_CHANNEL_PHONE, "follow-up call")
	require.Error(t, err)
	_, err = b.a.RevealTaskContact(ctx, "default", x.ID, "a-1", got.LeaseToken, typesv1.Channel_CHANNEL_EMAIL, "send the invoice")
	require.Error(t, err, "no email held for the customer")
	require.Len(t, book.Asked(), 1, "refusals ask intake nothing")

	var n int
	require.NoError(t, b.pool.QueryRow(ctx, `SELECT count(*) FROM audit_log WHERE action = 'task.contact_reveal' AND target_id = $1`, x.ID).Scan(&n))
	require.Equal(t, 1, n)
}

// Issue 16: an agent (or a dialler) may record an attempt after the fact,
// saying when it was made (occurred_at): the attempt, its VisitAttempted
// and the next attempt count from then; a time ahead of the clock (beyond
// a small skew) or before the task was made is refused, naming the field,
// and changes nothing.
func TestAttemptRecordedLaterKeepsItsTime(t *testing.T) {
	b := setup(t)
	ctx := context.Background()
	b.agent(t, task.Agent{ID: "a-1", Name: "李娜"})
	x := b.add(t, "v-1")
	b.clock.Advance(time.Hour) // 10:00
	got, found := b.claim(t, "a-1")
	require.True(t, found)
	before := stateOf(t, b.pool, x.ID)

	for _, at := range []time.Time{b.clock.Now().Add(app.AttemptSkew + time.Second), t0.Add(-time.Minute)} {
		_, err := b.a.RecordAttempt(ctx, app.Attempt{Tenant: "default", TaskID: x.ID, AgentID: "a-1", LeaseToken: got.LeaseToken,
			Disposition: typesv1.Disposition_DISPOSITION_NO_ANSWER, OccurredAt: at})
		bad, ok := invalid.As(err)
		require.True(t, ok, "%v", err)
		require.Equal(t, "occurred_at", bad.Violations[0].Field)
		require.Equal(t, before, stateOf(t, b.pool, x.ID), "a refused attempt changes nothing")
	}

	dialled := t0.Add(20 * time.Minute) // 09:20, recorded at 10:00
	res, err := b.a.RecordAttempt(ctx, app.Attempt{Tenant: "default", TaskID: x.ID, AgentID: "a-1", LeaseToken: got.LeaseToken,
		Disposition: typesv1.Disposition_DISPOSITION_NO_ANSWER, OccurredAt: dialled})
	require.NoError(t, err)
	require.True(t, res.Next.Equal(dialled.Add(2*time.Hour)), "the retry counts from the call: %s", res.Next)
	att, err := b.a.Attempts(ctx, x.ID)
	require.NoError(t, err)
	require.Len(t, att, 1)
	require.True(t, att[0].At.Equal(dialled), "the attempt's time: %s", att[0].At)
	ev := events(t, b.pool, stream.SubjectVisitAttempted, func() *eventsv1.VisitAttempted { return &eventsv1.VisitAttempted{} })
	require.Len(t, ev, 1)
	require.True(t, ev[0].GetAttemptedAt().AsTime().Equal(dialled))
}
