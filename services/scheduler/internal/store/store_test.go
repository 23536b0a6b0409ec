package store_test

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
	"google.golang.org/protobuf/types/known/timestamppb"

	eventsv1 "github.com/huifang/huifang/proto/huifang/events/v1"
	typesv1 "github.com/huifang/huifang/proto/huifang/types/v1"

	"github.com/huifang/huifang/pkg/servicetest"
	"github.com/huifang/huifang/pkg/stream"
	"github.com/huifang/huifang/services/scheduler/internal/policy"
	"github.com/huifang/huifang/services/scheduler/internal/store"
	"github.com/huifang/huifang/services/scheduler/migrations"
)

var t0 = time.Date(2026, 11, 28, 10, 0, 0, 0, time.UTC)

func setup(t *testing.T) (context.Context, *store.Store) {
	t.Helper()
	ctx := context.Background()
	st := &store.Store{Pool: servicetest.Pool(t, "scheduler", migrations.FS)}
	require.NoError(t, st.EnsureBuiltins(ctx))
	return ctx, st
}

func completed(id, serviceType string, at time.Time) *eventsv1.ServiceCompleted {
	return &eventsv1.ServiceCompleted{
		TenantId: "default", ServiceId: id, ServiceType: serviceType, CompletedAt: timestamppb.New(at),
		Customer: &typesv1.Customer{Id: "cust-" + id, ExternalId: "c-" + id, Name: "王芳", Phone: "+8613800138000"},
	}
}

func plan(t *testing.T, ctx context.Context, pool *pgxpool.Pool, ev *eventsv1.ServiceCompleted) int {
	t.Helper()
	var n int
	require.NoError(t, pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		var err error
		n, err = store.PlanService(ctx, tx, ev)
		return err
	}))
	return n
}

func outboxCount(t *testing.T, ctx context.Context, pool *pgxpool.Pool, subject string) int {
	t.Helper()
	var n int
	require.NoError(t, pool.QueryRow(ctx, `SELECT count(*) FROM outbox WHERE subject = $1`, subject).Scan(&n))
	return n
}

// Seed 001: purchase → phone follow-up 1–3 days later; the visit fires when it falls due, once.
func TestPurchaseVisitFiresOnceWhenDue(t *testing.T) {
	ctx, st := setup(t)
	require.Equal(t, 1, plan(t, ctx, st.Pool, completed("s-1", "purchase", t0)))
	require.Equal(t, 1, outboxCount(t, ctx, st.Pool, stream.SubjectVisitPlanned))

	n, err := st.FireDue(ctx, t0.Add(24*time.Hour-time.Second), 100)
	require.NoError(t, err)
	require.Zero(t, n, "not due before one day has passed")

	n, err = st.FireDue(ctx, t0.Add(24*time.Hour), 100)
	require.NoError(t, err)
	require.Equal(t, 1, n)
	n, err = st.FireDue(ctx, t0.Add(48*time.Hour), 100)
	require.NoError(t, err)
	require.Zero(t, n, "a fired visit never fires again")

	var payload []byte
	require.NoError(t, st.Pool.QueryRow(ctx, `SELECT payload FROM outbox WHERE subject = $1`, stream.SubjectVisitDue).Scan(&payload))
	due := &eventsv1.VisitDue{}
	require.NoError(t, proto.Unmarshal(payload, due))
	require.Equal(t, "s-1", due.ServiceId)
	require.Equal(t, "builtin-appliance-purchase", due.PolicyId)
	require.Equal(t, typesv1.Channel_CHANNEL_PHONE, due.Channel)
	require.Equal(t, t0.Add(24*time.Hour), due.DueAt.AsTime())
	require.Equal(t, t0.Add(72*time.Hour), due.Deadline.AsTime())
	require.Equal(t, "王芳", due.Customer.GetName())
	require.NotEmpty(t, due.EventId)
}

func TestPlanningIsIdempotentPerServiceAndStep(t *testing.T) {
	ctx, st := setup(t)
	ev := completed("s-1", "purchase", t0)
	require.Equal(t, 1, plan(t, ctx, st.Pool, ev))
	require.Equal(t, 0, plan(t, ctx, st.Pool, ev), "planning the same service again plans nothing")
	vs, err := st.ListVisits(ctx, store.VisitFilter{Tenant: "default", ServiceID: "s-1", Limit: 10})
	require.NoError(t, err)
	require.Len(t, vs, 1)
	require.Equal(t, 1, outboxCount(t, ctx, st.Pool, stream.SubjectVisitPlanned))
}

func TestServiceTypeWithoutPolicyPlansNothing(t *testing.T) {
	ctx, st := setup(t)
	require.Zero(t, plan(t, ctx, st.Pool, completed("s-1", "discharge", t0)))
}

// Seed 000: repairs are followed up for at least 30%; the left-out ones are
// kept as suppressed with the draw that decided it.
func TestSampledOutVisitsAreSuppressedWithTheirDraw(t *testing.T) {
	ctx, st := setup(t)
	p := policy.Policy{ID: "p-repairs", Tenant: "default", Name: "repairs-30", Version: 1, Active: true, CreatedAt: t0,
		Trigger: policy.Trigger{ServiceTypes: []string{"repair"}},
		Steps:   []policy.Step{{Offset: policy.Duration(time.Hour), Channel: policy.ChannelPhone, SampleRate: 0.3}}}
	require.NoError(t, st.CreatePolicy(ctx, p))
	planned := 0
	for i := range 200 {
		planned += plan(t, ctx, st.Pool, completed(fmt.Sprintf("r-%d", i), "repair", t0))
	}
	vs, err := st.ListVisits(ctx, store.VisitFilter{Tenant: "default", Status: "suppressed", Limit: 500})
	require.NoError(t, err)
	require.Equal(t, 200, planned+len(vs))
	require.InDelta(t, 60, planned, 20)
	for _, v := range vs {
		require.Contains(t, v.Reason, "sample draw")
	}
	n, err := st.FireDue(ctx, t0.Add(2*time.Hour), 1000)
	require.NoError(t, err)
	require.Equal(t, planned, n, "suppressed visits never fire")
}

// Several scheduler replicas firing at once never fire a visit twice.
func TestConcurrentFiringFiresEachVisitOnce(t *testing.T) {
	ctx, st := setup(t)
	const services = 600
	for i := range services {
		plan(t, ctx, st.Pool, completed(fmt.Sprintf("s-%d", i), "purchase", t0))
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	total := 0
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				n, err := st.FireDue(ctx, t0.Add(25*time.Hour), 50)
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
	require.NoError(t, st.Pool.QueryRow(ctx, `SELECT count(*), count(DISTINCT payload) FROM outbox WHERE subject = $1`, stream.SubjectVisitDue).Scan(&events, &distinct))
	require.Equal(t, services, events)
	require.Equal(t, services, distinct)
}

func TestCreatePolicyRefusesADuplicateName(t *testing.T) {
	ctx, st := setup(t)
	p := policy.Policy{ID: "p1", Tenant: "default", Name: "instant", Version: 1, Active: true, CreatedAt: t0,
		Trigger: policy.Trigger{ServiceTypes: []string{"repair"}}, Steps: []policy.Step{{Channel: 1, SampleRate: 1}}}
	require.NoError(t, st.CreatePolicy(ctx, p))
	p.ID = "p2"
	require.ErrorIs(t, st.CreatePolicy(ctx, p), store.ErrNameTaken)
	ps, err := st.ListPolicies(ctx, "default", "", 10)
	require.NoError(t, err)
	require.Len(t, ps, 3, "the tenant's policy and the two built-ins")
}

// The due lag is how long the oldest due visit has waited; firing clears it.
func TestDueLag(t *testing.T) {
	ctx, st := setup(t)
	lag, err := st.DueLag(ctx, t0)
	require.NoError(t, err)
	require.Zero(t, lag, "nothing planned")
	plan(t, ctx, st.Pool, completed("s-1", "purchase", t0))
	lag, err = st.DueLag(ctx, t0.Add(24*time.Hour-time.Minute))
	require.NoError(t, err)
	require.Zero(t, lag, "planned but not yet due")
	lag, err = st.DueLag(ctx, t0.Add(24*time.Hour+90*time.Second))
	require.NoError(t, err)
	require.Equal(t, 90*time.Second, lag)
	_, err = st.FireDue(ctx, t0.Add(24*time.Hour+90*time.Second), 10)
	require.NoError(t, err)
	lag, err = st.DueLag(ctx, t0.Add(25*time.Hour))
	require.NoError(t, err)
	require.Zero(t, lag, "fired visits do not count")
}
