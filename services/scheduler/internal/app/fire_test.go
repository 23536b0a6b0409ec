package app_test

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"log/slog"
	"maps"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/require"

	"github.com/huifang/huifang/pkg/postgres"
	"github.com/huifang/huifang/pkg/servicetest"
	"github.com/huifang/huifang/pkg/stream"
	"github.com/huifang/huifang/services/scheduler/internal/app"
	"github.com/huifang/huifang/services/scheduler/internal/contact"
	"github.com/huifang/huifang/services/scheduler/internal/policy"
	"github.com/huifang/huifang/services/scheduler/internal/store"
	"github.com/huifang/huifang/services/scheduler/internal/visit"
)

// logBuffer keeps what the app logs, for many goroutines.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

// errors returns the ERROR lines, decoded.
func (l *logBuffer) errors(t *testing.T) []map[string]any {
	t.Helper()
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []map[string]any
	sc := bufio.NewScanner(bytes.NewReader(l.buf.Bytes()))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var line map[string]any
		require.NoError(t, json.Unmarshal(sc.Bytes(), &line))
		if line["level"] == "ERROR" {
			out = append(out, line)
		}
	}
	return out
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

// watched gives the bundle's app a log and a failure counter the test reads.
func watched(b bundle) (*logBuffer, prometheus.Counter) {
	logs := &logBuffer{}
	failures := prometheus.NewCounter(prometheus.CounterOpts{Name: "huifang_scheduler_fire_failures_total"})
	b.a.Log, b.a.FireFailures = slog.New(slog.NewJSONHandler(logs, nil)), failures
	return logs, failures
}

func exec(t *testing.T, b bundle, sql string, args ...any) {
	t.Helper()
	_, err := b.pool.Exec(b.ctx, sql, args...)
	require.NoError(t, err)
}

// visitOf is the one visit of a service (occurrence 0).
func visitOf(t *testing.T, b bundle, tenant, serviceID string) visit.Visit {
	t.Helper()
	vs, err := b.a.ListVisits(b.ctx, app.VisitQuery{Tenant: tenant, ServiceID: serviceID, Limit: 10})
	require.NoError(t, err)
	for _, v := range vs {
		if v.Occurrence == 0 {
			return v
		}
	}
	t.Fatalf("no visit of %s", serviceID)
	return visit.Visit{}
}

// dueVisitIDs are the visits VisitDue was written for.
func dueVisitIDs(t *testing.T, b bundle) []string {
	t.Helper()
	var ids []string
	for _, d := range dueEvents(t, b) {
		ids = append(ids, d.VisitId)
	}
	return ids
}

// The customer's phone number as a broken snapshot quotes it: it must reach
// neither the log nor the visit's reason.
const phone = "13800138000"

// A visit whose customer snapshot cannot be decoded, due first (the head of
// the queue), is marked failed with its reason; the others of its round
// fire in that round; it is not claimed again, it is counted and logged
// once without the customer's data; the API shows it; an operator retries
// it once the snapshot is repaired.
func TestAVisitThatFailsToFireDoesNotHoldUpItsBatch(t *testing.T) {
	b := setup(t)
	logs, failures := watched(b)
	for i := 1; i <= 5; i++ {
		plan(t, b, completed(t, fmt.Sprintf("s-%d", i), "purchase", t0))
	}
	bad := visitOf(t, b, "default", "s-3")
	exec(t, b, `UPDATE planned_visits SET customer = $2, due_at = due_at - interval '1 hour' WHERE id = $1`,
		bad.ID, `{"id":"cust-s-3","name":"王芳","phone":`+phone+`}`)

	at := t0.Add(day)
	require.Equal(t, 5, fire(t, b, at), "the whole batch is handled in one round")
	ids := dueVisitIDs(t, b)
	require.Len(t, ids, 4, "the other four fired in the same round")
	require.NotContains(t, ids, bad.ID, "the failed visit's VisitDue was rolled back with its savepoint")
	for i := range 5 {
		if i+1 != 3 {
			require.Equal(t, visit.StatusDue, visitOf(t, b, "default", fmt.Sprintf("s-%d", i+1)).Status)
		}
	}

	failed := visits(t, b, app.VisitQuery{Status: visit.StatusFailed})
	require.Len(t, failed, 1)
	got := failed[0]
	require.Equal(t, bad.ID, got.ID)
	require.Contains(t, got.Reason, "firing failed: the customer snapshot of visit "+bad.ID+" cannot be decoded")
	require.Contains(t, got.Reason, "invalid value for string field phone")
	require.NotContains(t, got.Reason, phone)
	require.Equal(t, at, got.FailedAt)
	last := got.Decisions[len(got.Decisions)-1]
	require.Equal(t, policy.KindFireFailed, last.Kind)
	require.Equal(t, got.Reason, last.Detail)
	require.Equal(t, 1.0, testutil.ToFloat64(failures))
	lines := logs.errors(t)
	require.Len(t, lines, 1, "one ERROR line for the failed visit")
	require.Equal(t, bad.ID, lines[0]["visit_id"])
	require.Equal(t, "default", lines[0]["tenant_id"])
	require.Equal(t, "builtin-appliance-purchase", lines[0]["policy_id"])
	require.Contains(t, lines[0]["err"], "invalid value for string field phone")
	require.NotContains(t, logs.String(), phone, "no customer data in the log")
	require.NotContains(t, logs.String(), "王芳")

	lag, err := b.a.DueLag(b.ctx)
	require.NoError(t, err)
	require.Zero(t, lag, "a failed visit does not count as waiting to fire")
	require.Zero(t, fire(t, b, at.Add(day)), "a failed visit is not claimed again")
	require.Equal(t, visit.StatusFailed, visitOf(t, b, "default", "s-3").Status)
	require.Equal(t, 1.0, testutil.ToFloat64(failures))
	n, err := b.a.FailedVisits(b.ctx)
	require.NoError(t, err)
	require.Equal(t, 1, n)

	ex, err := b.a.Explain(b.ctx, "default", bad.ID)
	require.NoError(t, err)
	require.Equal(t, visit.StatusFailed, ex.Visit.Status)
	require.Equal(t, policy.KindFireFailed, ex.Visit.Decisions[len(ex.Visit.Decisions)-1].Kind)

	// The operator repairs the snapshot and retries: planned again, fired at the next round.
	exec(t, b, `UPDATE planned_visits SET customer = '{"id":"cust-s-3","name":"王芳"}' WHERE id = $1`, bad.ID)
	retryAt := at.Add(day)
	b.clock.set(retryAt)
	again, err := b.a.Reschedule(b.ctx, "default", bad.ID, retryAt, "snapshot repaired")
	require.NoError(t, err)
	require.Equal(t, visit.StatusPlanned, again.Status)
	require.False(t, again.CustomerChosen, "a retry is not the customer's choice: the contact policy applies again")
	require.Contains(t, again.Reason, "retried by an operator")
	require.Equal(t, policy.KindRetry, again.Decisions[len(again.Decisions)-1].Kind)
	require.Equal(t, 1, fire(t, b, retryAt))
	require.Contains(t, dueVisitIDs(t, b), bad.ID)
	require.Equal(t, visit.StatusDue, visitOf(t, b, "default", "s-3").Status)
	require.Equal(t, 1.0, testutil.ToFloat64(failures))
}

// Every kind of failure of a visit's own, in one round: a stored service
// that cannot be decoded, a policy that cannot be read (after its VisitDue
// was written), a statement the database refuses (the savepoint's
// subtransaction aborted), a tenant whose contact policy cannot be read, a
// panic (a step the policy cannot have).
// Each of those visits is failed with its reason and nothing it wrote stays;
// the others fire, plan their next visit, and keep to the caps within the
// round (each visit then reads its own tenant's contact policy and
// customer, since the batch's could not all be read).
func TestEveryKindOfAVisitsOwnFailureFailsOnlyThatVisit(t *testing.T) {
	b := setup(t)
	logs, failures := watched(b)
	_, err := b.a.SetContactPolicy(b.ctx, "default", contact.Rules{Caps: []contact.Cap{{Channel: policy.ChannelPhone, Max: 1, Per: policy.Duration(3 * day)}}}, "")
	require.NoError(t, err)
	require.NoError(t, store.InsertPolicy(b.ctx, b.pool, weekly("p-care", "care")))
	broken := weekly("p-broken", "broken")
	broken.Trigger.ServiceTypes = []string{"installation"}
	require.NoError(t, store.InsertPolicy(b.ctx, b.pool, broken))

	// Two purchases of one customer: the cap holds the second back.
	for _, id := range []string{"p-1", "p-2"} {
		in := completed(t, id, "purchase", t0)
		in.Service.CustomerID, in.Customer.ID = "cust-shared", "cust-shared"
		plan(t, b, in)
	}
	for _, id := range []string{"d-good", "d-damaged", "d-refused", "d-panic"} {
		plan(t, b, completed(t, id, "delivery", t0))
	}
	plan(t, b, completed(t, "i-1", "installation", t0))
	shop := completed(t, "shop-1", "purchase", t0)
	shop.Service.Tenant = "shop"
	plan(t, b, shop)

	exec(t, b, `UPDATE planned_visits SET service = '{"completed_at":"yesterday"}' WHERE service_id = 'd-damaged'`)
	exec(t, b, `UPDATE policies SET spec = '{"steps":"every week"}' WHERE id = 'p-broken'`)
	exec(t, b, `UPDATE planned_visits SET step = -1 WHERE service_id = 'd-panic'`)
	exec(t, b, `INSERT INTO contact_policies (tenant_id, spec) VALUES ('shop', '{"caps":"many"}')`)
	exec(t, b, `CREATE FUNCTION refuse() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN RAISE EXCEPTION 'refused by the test'; END $$`)
	exec(t, b, `CREATE TRIGGER refuse BEFORE INSERT ON planned_visits FOR EACH ROW
WHEN (NEW.service_id = 'd-refused' AND NEW.occurrence > 0) EXECUTE FUNCTION refuse()`)

	at := t0.Add(7 * day)
	require.Equal(t, 8, fire(t, b, at))

	reasons := map[string]string{}
	for _, tenant := range []string{"default", "shop"} {
		vs, err := b.a.ListVisits(b.ctx, app.VisitQuery{Tenant: tenant, Status: visit.StatusFailed, Limit: 10})
		require.NoError(t, err)
		for _, v := range vs {
			reasons[v.ServiceID] = v.Reason
			require.Equal(t, at, v.FailedAt)
		}
	}
	require.Len(t, reasons, 5, "%v", reasons)
	require.Contains(t, reasons["d-damaged"], "the service it keeps cannot be decoded")
	require.Contains(t, reasons["i-1"], "policy spec")
	require.Contains(t, reasons["d-refused"], "refused by the test")
	require.Contains(t, reasons["shop-1"], "contact policy of shop")
	require.Contains(t, reasons["d-panic"], "panic: runtime error: index out of range [-1]")
	require.Equal(t, 5.0, testutil.ToFloat64(failures))
	lines := logs.errors(t)
	require.Len(t, lines, 5)
	stacks := 0
	for _, l := range lines {
		if l["stack"] != nil {
			stacks++
			require.Contains(t, l["stack"], "engine.Following")
		}
	}
	require.Equal(t, 1, stacks, "the panic is logged with its stack")

	// The two purchases fall due at the same moment: one fires, the cap
	// suppresses the other (which one is not ordered).
	p1, p2 := visitOf(t, b, "default", "p-1"), visitOf(t, b, "default", "p-2")
	if p1.Status == visit.StatusSuppressed {
		p1, p2 = p2, p1
	}
	require.ElementsMatch(t, []string{p1.ID, visitOf(t, b, "default", "d-good").ID}, dueVisitIDs(t, b),
		"VisitDue for the visits that fired, none for the failed ones")
	require.Equal(t, visit.StatusSuppressed, p2.Status, "the cap counts the call fired earlier in the round (and the deadline has passed)")
	require.Contains(t, p2.Reason, "cap 1")

	series := func(service string) []visit.Visit {
		return visits(t, b, app.VisitQuery{ServiceID: service})
	}
	require.Len(t, series("d-good"), 2, "the good series planned its next visit")
	require.Len(t, series("d-refused"), 1, "the refused insert left nothing")
	require.Len(t, series("i-1"), 1)
	require.Len(t, series("d-panic"), 1)
	require.Zero(t, fire(t, b, at), "none of them is claimed again")
}

// An outage is not a visit's failure: a statement timeout, or the
// connection killed under the transaction, fails the whole round; nothing
// is marked failed, not even a visit that did fail for a reason of its own
// earlier in that round, nothing is written, and the next round fires them
// all (and fails that one).
func TestADatabaseErrorFailsTheWholeRound(t *testing.T) {
	for _, tc := range []struct {
		how    string
		broken bool
	}{{"statement timeout", false}, {"connection killed", false}, {"statement timeout", true}, {"connection killed", true}} {
		name := tc.how
		if tc.broken {
			name += " after a visit failed"
		}
		t.Run(name, func(t *testing.T) {
			b := setup(t)
			_, failures := watched(b)
			require.NoError(t, store.InsertPolicy(b.ctx, b.pool, weekly("p-care", "care")))
			for i := 1; i <= 3; i++ {
				plan(t, b, completed(t, fmt.Sprintf("s-%d", i), "purchase", t0))
			}
			plan(t, b, completed(t, "d-1", "delivery", t0))
			planned, failedAfter := 4, 0
			if tc.broken {
				plan(t, b, completed(t, "s-0", "purchase", t0))
				exec(t, b, `UPDATE planned_visits SET customer = '{"phone":1}', due_at = due_at - interval '1 hour' WHERE service_id = 's-0'`)
				planned, failedAfter = 5, 1
			}
			// Firing d-1 (due last) plans its next visit; another transaction
			// holds an uncommitted row with that key, so the insert waits for it.
			blocker, err := b.pool.Begin(b.ctx)
			require.NoError(t, err)
			defer func() { _ = blocker.Rollback(b.ctx) }()
			_, err = blocker.Exec(b.ctx, `INSERT INTO planned_visits (id, tenant_id, service_id, customer_id, policy_id, policy_version, step, occurrence,
  channel, due_at, deadline, status, service_type, service_completed_at)
VALUES ('blocker', 'default', 'd-1', 'cust-d-1', 'p-care', 1, 0, 1, 1, $1, $1, 'planned', 'delivery', $1)`, t0.Add(14*day))
			require.NoError(t, err)

			at := t0.Add(7 * day)
			b.clock.set(at)
			var fireErr error
			switch tc.how {
			case "statement timeout":
				cfg := b.pool.Config()
				cfg.ConnConfig.RuntimeParams = maps.Clone(cfg.ConnConfig.RuntimeParams)
				cfg.ConnConfig.RuntimeParams["statement_timeout"] = "300"
				short, err := pgxpool.NewWithConfig(b.ctx, cfg)
				require.NoError(t, err)
				defer short.Close()
				onShort := &app.App{DB: short, Now: b.clock.Now, Log: b.a.Log, FireFailures: b.a.FireFailures}
				_, fireErr = onShort.FireDue(b.ctx, 500)
				require.Equal(t, "57014", postgres.Code(fireErr), "%v", fireErr)
			case "connection killed":
				done := make(chan error, 1)
				go func() {
					_, err := b.a.FireDue(b.ctx, 500)
					done <- err
				}()
				var pid int
				require.Eventually(t, func() bool {
					err := b.pool.QueryRow(b.ctx, `SELECT pid FROM pg_stat_activity
WHERE datname = current_database() AND wait_event_type = 'Lock' AND query LIKE 'INSERT INTO planned_visits%'`).Scan(&pid)
					return err == nil
				}, 30*time.Second, 10*time.Millisecond, "the round waits on the blocker's row")
				exec(t, b, `SELECT pg_terminate_backend($1)`, pid)
				select {
				case fireErr = <-done:
				case <-time.After(30 * time.Second):
					t.Fatal("the round did not end when its connection was killed")
				}
			}
			require.Error(t, fireErr)
			require.True(t, store.Unavailable(fireErr), "%v", fireErr)
			require.Empty(t, visits(t, b, app.VisitQuery{Status: visit.StatusFailed}), "an outage marks nothing failed")
			require.Empty(t, dueEvents(t, b), "the whole round was rolled back, the visits fired before d-1 too")
			require.Len(t, visits(t, b, app.VisitQuery{Status: visit.StatusPlanned}), planned)
			require.Zero(t, testutil.ToFloat64(failures))

			require.NoError(t, blocker.Rollback(b.ctx))
			require.Eventually(t, func() bool {
				n, err := b.a.FireDue(b.ctx, 500)
				return err == nil && n == planned
			}, 30*time.Second, 10*time.Millisecond, "the next round fires them all")
			require.Len(t, dueEvents(t, b), 4)
			require.Equal(t, visit.StatusDue, visitOf(t, b, "default", "d-1").Status)
			require.Len(t, visits(t, b, app.VisitQuery{ServiceID: "d-1"}), 2, "and plans d-1's next visit")
			require.Len(t, visits(t, b, app.VisitQuery{Status: visit.StatusFailed}), failedAfter)
			require.Equal(t, float64(failedAfter), testutil.ToFloat64(failures))
		})
	}
}

// Replicas firing at once with broken visits among the due ones: every good
// visit fires once, every broken one fails once.
func TestConcurrentFiringWithFailingVisits(t *testing.T) {
	b := setup(t)
	_, failures := watched(b)
	const services, broken = 300, 5
	for i := range services {
		plan(t, b, completed(t, fmt.Sprintf("s-%d", i), "purchase", t0))
	}
	exec(t, b, `UPDATE planned_visits SET customer = '{"phone":1}' WHERE service_id IN ('s-0', 's-60', 's-120', 's-180', 's-240')`)
	b.clock.set(t0.Add(25 * time.Hour))
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for {
				n, err := b.a.FireDue(b.ctx, 20)
				if err != nil {
					t.Error(err)
					return
				}
				if n == 0 {
					return
				}
			}
		})
	}
	wg.Wait()
	var events, distinct int
	require.NoError(t, b.pool.QueryRow(b.ctx, `SELECT count(*), count(DISTINCT payload) FROM outbox WHERE subject = $1`, stream.SubjectVisitDue).Scan(&events, &distinct))
	require.Equal(t, services-broken, events)
	require.Equal(t, services-broken, distinct)
	require.Len(t, visits(t, b, app.VisitQuery{Status: visit.StatusFailed}), broken)
	require.Equal(t, float64(broken), testutil.ToFloat64(failures))
}

// A firing round that finds nothing due wrote nothing and wakes no relay
// (an idle scheduler's relay only looks, issue 15); a round that fired does.
func TestAnIdleFiringRoundWakesNoRelay(t *testing.T) {
	b := setup(t)
	var w servicetest.Wakes
	b.a.Relay = &w
	require.Equal(t, 1, plan(t, b, completed(t, "s-1", "purchase", t0)))
	w.Reset()
	require.Zero(t, fire(t, b, t0.Add(time.Hour)))
	require.Zero(t, w.Count(), "nothing fired, nothing to publish")
	require.Equal(t, 1, fire(t, b, t0.Add(24*time.Hour)))
	require.Positive(t, w.Count(), "VisitDue waits in the outbox")
}
