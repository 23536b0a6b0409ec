package app_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/proto"

	eventsv1 "github.com/huifang/huifang/proto/huifang/events/v1"
	typesv1 "github.com/huifang/huifang/proto/huifang/types/v1"

	"github.com/huifang/huifang/pkg/servicetest"
	"github.com/huifang/huifang/pkg/stream"
	"github.com/huifang/huifang/services/scheduler/internal/app"
	"github.com/huifang/huifang/services/scheduler/internal/policy"
	"github.com/huifang/huifang/services/scheduler/internal/store"
	"github.com/huifang/huifang/services/scheduler/internal/visit"
	"github.com/huifang/huifang/services/scheduler/migrations"
)

var t0 = time.Date(2026, 11, 28, 10, 0, 0, 0, time.UTC)

const day = 24 * time.Hour

// clock is the app's clock in a test: it stands where the test sets it.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = t
}

type bundle struct {
	ctx   context.Context
	a     *app.App
	pool  *pgxpool.Pool
	clock *clock
}

// setup runs the use cases against a fresh database with the built-ins, on a clock standing at t0.
func setup(t *testing.T) bundle {
	t.Helper()
	ctx := context.Background()
	pool := servicetest.Pool(t, "scheduler", migrations.FS)
	c := &clock{t: t0}
	a := &app.App{DB: pool, Now: c.Now}
	require.NoError(t, a.EnsureBuiltins(ctx))
	return bundle{ctx: ctx, a: a, pool: pool, clock: c}
}

// customer is the customer snapshot a ServiceCompleted carries.
func customer(t *testing.T, c *typesv1.Customer) app.Customer {
	t.Helper()
	out, err := app.CustomerFrom(c)
	require.NoError(t, err)
	return out
}

// completed is a service completed by customer cust-<id>, as the ServiceCompleted consumer reads it.
func completed(t *testing.T, id, serviceType string, at time.Time) app.Completed {
	return app.Completed{
		Service:  policy.Service{Tenant: "default", ID: id, Type: serviceType, CompletedAt: at, CustomerID: "cust-" + id},
		Customer: customer(t, &typesv1.Customer{Id: "cust-" + id, ExternalId: "c-" + id, Name: "王芳", Phone: "+8613800138000"}),
	}
}

func plan(t *testing.T, b bundle, in app.Completed) int {
	t.Helper()
	n, err := b.a.PlanService(b.ctx, in)
	require.NoError(t, err)
	return n
}

func fire(t *testing.T, b bundle, at time.Time) int {
	t.Helper()
	b.clock.set(at)
	n, err := b.a.FireDue(b.ctx, 500)
	require.NoError(t, err)
	return n
}

func visits(t *testing.T, b bundle, q app.VisitQuery) []visit.Visit {
	t.Helper()
	q.Tenant, q.Limit = "default", 500
	vs, err := b.a.ListVisits(b.ctx, q)
	require.NoError(t, err)
	return vs
}

func outboxCount(t *testing.T, b bundle, subject string) int {
	t.Helper()
	var n int
	require.NoError(t, b.pool.QueryRow(b.ctx, `SELECT count(*) FROM outbox WHERE subject = $1`, subject).Scan(&n))
	return n
}

// dueEvents reads the VisitDue events in the outbox, in the order they were written.
func dueEvents(t *testing.T, b bundle) []*eventsv1.VisitDue {
	t.Helper()
	rows, err := b.pool.Query(b.ctx, `SELECT payload FROM outbox WHERE subject = $1 ORDER BY seq`, stream.SubjectVisitDue)
	require.NoError(t, err)
	defer rows.Close()
	var out []*eventsv1.VisitDue
	for rows.Next() {
		var payload []byte
		require.NoError(t, rows.Scan(&payload))
		due := &eventsv1.VisitDue{}
		require.NoError(t, proto.Unmarshal(payload, due))
		out = append(out, due)
	}
	require.NoError(t, rows.Err())
	return out
}

// Seed 001: purchase → phone follow-up 1–3 days later; the visit fires when it falls due, once.
func TestPurchaseVisitFiresOnceWhenDue(t *testing.T) {
	b := setup(t)
	require.Equal(t, 1, plan(t, b, completed(t, "s-1", "purchase", t0)))
	require.Equal(t, 1, outboxCount(t, b, stream.SubjectVisitPlanned))

	require.Zero(t, fire(t, b, t0.Add(24*time.Hour-time.Second)), "not due before one day has passed")
	require.Equal(t, 1, fire(t, b, t0.Add(24*time.Hour)))
	require.Zero(t, fire(t, b, t0.Add(48*time.Hour)), "a fired visit never fires again")

	dues := dueEvents(t, b)
	require.Len(t, dues, 1)
	due := dues[0]
	require.Equal(t, "s-1", due.ServiceId)
	require.Equal(t, "builtin-appliance-purchase", due.PolicyId)
	require.Equal(t, typesv1.Channel_CHANNEL_PHONE, due.Channel)
	require.Equal(t, t0.Add(24*time.Hour), due.DueAt.AsTime())
	require.Equal(t, t0.Add(72*time.Hour), due.Deadline.AsTime())
	require.Empty(t, due.Customer.GetName(), "no clear contact passes through the scheduler")
	require.True(t, due.Customer.GetHasPhone())
	require.NotEmpty(t, due.EventId)
	require.Nil(t, due.ContactCalendar, "a tenant without a contact policy sends no calendar")
}

func TestPlanningIsIdempotentPerServiceAndStep(t *testing.T) {
	b := setup(t)
	in := completed(t, "s-1", "purchase", t0)
	require.Equal(t, 1, plan(t, b, in))
	require.Equal(t, 0, plan(t, b, in), "planning the same service again plans nothing")
	require.Len(t, visits(t, b, app.VisitQuery{ServiceID: "s-1"}), 1)
	require.Equal(t, 1, outboxCount(t, b, stream.SubjectVisitPlanned))
}

func TestServiceTypeWithoutPolicyPlansNothing(t *testing.T) {
	b := setup(t)
	require.Zero(t, plan(t, b, completed(t, "s-1", "discharge", t0)))
}

// Seed 000 (property) line 71: repairs "回访率达30%" is a minimum: the quota
// plans exactly ceil(0.3 × n) of n repairs; the left-out ones are kept as
// suppressed with their place in the quota.
func TestSampledOutVisitsAreSuppressedWithTheirQuota(t *testing.T) {
	b := setup(t)
	p := policy.Policy{ID: "p-repairs", Tenant: "default", Name: "repairs-30", Version: 1, Active: true, CreatedAt: t0,
		Trigger: policy.Trigger{ServiceTypes: []string{"repair"}},
		Steps:   []policy.Step{{Offset: policy.Duration(time.Hour), Channel: policy.ChannelPhone, SampleRate: 0.3}}}
	require.NoError(t, store.InsertPolicy(b.ctx, b.pool, p))
	planned := 0
	for i := range 200 {
		planned += plan(t, b, completed(t, fmt.Sprintf("r-%d", i), "repair", t0))
	}
	vs := visits(t, b, app.VisitQuery{Status: "suppressed"})
	require.Equal(t, 200, planned+len(vs))
	require.Equal(t, 60, planned, "ceil(0.3 × 200)")
	for _, v := range vs {
		require.Contains(t, v.Reason, "sampled out: the quota is met")
	}
	require.Equal(t, planned, fire(t, b, t0.Add(2*time.Hour)), "suppressed visits never fire")
}

// Seed 000 (property) line 69: closed complaints "回访率达50%". Planners
// running at once (consumers, scheduler replicas) count in one row per
// stratum, locked by each planning transaction: after 101 complaints of an
// org unit in a month, exactly 51 are planned, whatever the interleaving; a
// complaint sent twice counts once; another org unit and the next month
// have quotas of their own.
func TestQuotaHoldsExactlyUnderConcurrentPlanners(t *testing.T) {
	b := setup(t)
	p := policy.Policy{ID: "p-closed", Tenant: "default", Name: "closed-50", Version: 1, Active: true, CreatedAt: t0,
		Trigger: policy.Trigger{ServiceTypes: []string{"complaint_closed"}},
		Steps:   []policy.Step{{Within: policy.Duration(3 * day), Channel: policy.ChannelPhone, SampleRate: 0.5}}}
	require.NoError(t, store.InsertPolicy(b.ctx, b.pool, p))
	svc := func(id, unit string, at time.Time) app.Completed {
		c := completed(t, id, "complaint_closed", at)
		c.Service.OrgUnit = unit
		return c
	}
	const n, planners = 101, 6
	work := make(chan app.Completed, 2*n+2)
	for i := range n {
		work <- svc(fmt.Sprintf("north-%d", i), "north", t0)
		work <- svc(fmt.Sprintf("south-%d", i), "south", t0.Add(time.Minute))
	}
	work <- svc("north-0", "north", t0) // sent twice
	work <- svc("north-7", "north", t0)
	close(work)
	var wg sync.WaitGroup
	for range planners {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for c := range work {
				if _, err := b.a.PlanService(b.ctx, c); err != nil {
					t.Error(err)
				}
			}
		}()
	}
	wg.Wait()
	count := func(unit, status string) int {
		var k int
		require.NoError(t, b.pool.QueryRow(b.ctx, `SELECT count(*) FROM planned_visits WHERE policy_id = 'p-closed' AND org_unit = $1 AND status = $2`, unit, status).Scan(&k))
		return k
	}
	for _, unit := range []string{"north", "south"} {
		require.Equal(t, 51, count(unit, "planned"), "%s: ceil(0.5 × 101)", unit)
		require.Equal(t, 50, count(unit, "suppressed"), unit)
	}
	var eligible, sampled int64
	require.NoError(t, b.pool.QueryRow(b.ctx, `SELECT eligible, sampled FROM sample_quotas WHERE policy_id = 'p-closed' AND org_unit = 'north' AND period = '2026-11'`).Scan(&eligible, &sampled))
	require.Equal(t, []int64{101, 51}, []int64{eligible, sampled}, "the complaints sent twice count once")

	n0, err := b.a.PlanService(b.ctx, svc("north-december", "north", time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)))
	require.NoError(t, err)
	require.Equal(t, 1, n0, "December's quota starts afresh")
}

// Several scheduler replicas firing at once never fire a visit twice.
func TestConcurrentFiringFiresEachVisitOnce(t *testing.T) {
	b := setup(t)
	const services = 600
	for i := range services {
		plan(t, b, completed(t, fmt.Sprintf("s-%d", i), "purchase", t0))
	}
	b.clock.set(t0.Add(25 * time.Hour))
	var wg sync.WaitGroup
	var mu sync.Mutex
	total := 0
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				n, err := b.a.FireDue(b.ctx, 50)
				if err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				total += n
				mu.Unlock()
				if n == 0 {
					return
				}
			}
		}()
	}
	wg.Wait()
	require.Equal(t, services, total)
	var events, distinct int
	require.NoError(t, b.pool.QueryRow(b.ctx, `SELECT count(*), count(DISTINCT payload) FROM outbox WHERE subject = $1`, stream.SubjectVisitDue).Scan(&events, &distinct))
	require.Equal(t, services, events)
	require.Equal(t, services, distinct)
}

// A tenant's policy names are its own: a second policy of the same name is refused.
func TestCreatePolicyRefusesADuplicateName(t *testing.T) {
	b := setup(t)
	p := policy.Policy{Name: "instant", Trigger: policy.Trigger{ServiceTypes: []string{"repair"}}, Steps: []policy.Step{{Channel: 1, SampleRate: 1}}}
	got, err := b.a.CreatePolicy(b.ctx, "default", p)
	require.NoError(t, err)
	require.Equal(t, 1, got.Version)
	require.True(t, got.Active)
	_, err = b.a.CreatePolicy(b.ctx, "default", p)
	require.ErrorIs(t, err, store.ErrConflict)
	ps, err := b.a.ListPolicies(b.ctx, "default", "", 10)
	require.NoError(t, err)
	require.Len(t, ps, 3, "the tenant's policy and the two built-ins")
}

// The due lag is how long the oldest due visit has waited; firing clears it.
func TestDueLag(t *testing.T) {
	b := setup(t)
	lag := func(at time.Time) time.Duration {
		b.clock.set(at)
		d, err := b.a.DueLag(b.ctx)
		require.NoError(t, err)
		return d
	}
	require.Zero(t, lag(t0), "nothing planned")
	plan(t, b, completed(t, "s-1", "purchase", t0))
	require.Zero(t, lag(t0.Add(24*time.Hour-time.Minute)), "planned but not yet due")
	require.Equal(t, 90*time.Second, lag(t0.Add(24*time.Hour+90*time.Second)))
	fire(t, b, t0.Add(24*time.Hour+90*time.Second))
	require.Zero(t, lag(t0.Add(25*time.Hour)), "fired visits do not count")
}

// A visit due at once is fired before it is stored, and stored after a
// look at the visits planned before. When a concurrent transaction plans
// the same visit (the same service, policy, step and occurrence) after
// that look, the planning fails and nothing of it stays: no visit fired
// twice, no event. Planned again, the service finds its visit planned.
func TestVisitPlannedMeanwhileFailsThePlanning(t *testing.T) {
	b := setup(t)
	b.a.DueNow = func() {}
	p, err := b.a.CreatePolicy(b.ctx, "default", policy.Policy{Name: "instant", Trigger: policy.Trigger{ServiceTypes: []string{"repair"}},
		Steps: []policy.Step{{Channel: 1, SampleRate: 1}}})
	require.NoError(t, err)
	in := completed(t, "s-1", "repair", t0)

	// Another transaction plans the service's visit and holds it, uncommitted.
	other, err := b.pool.Begin(b.ctx)
	require.NoError(t, err)
	defer func() { _ = other.Rollback(b.ctx) }()
	v := visit.New("v-other", policy.Visit{PolicyID: p.ID, PolicyVersion: p.Version, Channel: 1, Nominal: t0, DueAt: t0, Deadline: t0.Add(day),
		Planned: true, SampleRate: 1}, in.Service, nil, nil, "", 0)
	made, err := store.InsertVisit(b.ctx, other, v)
	require.NoError(t, err)
	require.True(t, made)

	planned := make(chan error, 1)
	go func() {
		tx, err := b.pool.Begin(b.ctx)
		if err != nil {
			planned <- err
			return
		}
		defer func() { _ = tx.Rollback(b.ctx) }()
		_, err = b.a.PlanServiceTx(b.ctx, tx, in)
		if err == nil {
			err = tx.Commit(b.ctx)
		}
		planned <- err
	}()
	// The planning looked, found nothing, fired the visit and now waits on
	// the other transaction's key.
	require.Eventually(t, func() bool {
		var waiting int
		require.NoError(t, b.pool.QueryRow(b.ctx, `SELECT count(*) FROM pg_stat_activity
WHERE datname = current_database() AND wait_event_type = 'Lock' AND query LIKE 'INSERT INTO planned_visits%'`).Scan(&waiting))
		return waiting == 1
	}, time.Minute, 10*time.Millisecond)
	require.NoError(t, other.Commit(b.ctx))
	err = <-planned
	require.ErrorContains(t, err, "planned by a concurrent transaction meanwhile")

	require.Zero(t, outboxCount(t, b, stream.SubjectVisitPlanned))
	require.Zero(t, outboxCount(t, b, stream.SubjectVisitDue))
	n, err := b.a.PlanService(b.ctx, in)
	require.NoError(t, err)
	require.Zero(t, n, "planned before")
	vs := visits(t, b, app.VisitQuery{})
	require.Len(t, vs, 1)
	require.Equal(t, "v-other", vs[0].ID)
	require.Equal(t, visit.StatusPlanned, vs[0].Status, "as the other transaction stored it")
	require.Zero(t, outboxCount(t, b, stream.SubjectVisitDue))
}
