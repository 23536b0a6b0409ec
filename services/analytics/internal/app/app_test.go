package app_test

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	eventsv1 "github.com/huifang/huifang/proto/huifang/events/v1"
	typesv1 "github.com/huifang/huifang/proto/huifang/types/v1"

	"github.com/huifang/huifang/pkg/inbox"
	"github.com/huifang/huifang/pkg/invalid"
	"github.com/huifang/huifang/pkg/servicetest"
	"github.com/huifang/huifang/pkg/stream"
	"github.com/huifang/huifang/services/analytics/internal/app"
	"github.com/huifang/huifang/services/analytics/internal/figures"
	"github.com/huifang/huifang/services/analytics/internal/scenario"
	"github.com/huifang/huifang/services/analytics/internal/store"
	"github.com/huifang/huifang/services/analytics/migrations"
)

// notifier counts the relay's wake-ups.
type notifier struct{ n atomic.Int64 }

func (n *notifier) Notify() { n.n.Add(1) }

type bundle struct {
	pool  *pgxpool.Pool
	app   *app.App
	relay *notifier
}

func setup(t *testing.T) bundle {
	t.Helper()
	pool := servicetest.Pool(t, "analytics", migrations.FS)
	relay := &notifier{}
	return bundle{pool: pool, relay: relay, app: &app.App{DB: pool, Relay: relay, Breaches: app.NewBreachesCounter()}}
}

func (b bundle) count(t *testing.T, sql string, args ...any) int {
	t.Helper()
	var n int
	require.NoError(t, b.pool.QueryRow(context.Background(), sql, args...).Scan(&n))
	return n
}

func (b bundle) applyScenario(t *testing.T) {
	t.Helper()
	for _, e := range scenario.Events() {
		require.NoError(t, b.app.ApplyEvent(context.Background(), e.Msg), e.ID)
	}
}

func at(d int) *timestamppb.Timestamp {
	return timestamppb.New(time.Date(2025, 3, d, 10, 0, 0, 0, time.UTC))
}

// ApplyEventTx joins the caller's transaction (the consumer's, holding the
// inbox row): the counters and ledger entries it writes commit and roll back
// with the caller's.
func TestApplyEventTxJoinsCallerTransaction(t *testing.T) {
	b := setup(t)
	ctx := context.Background()
	due := &eventsv1.VisitDue{VisitId: "v1", ServiceId: "s1", Customer: &typesv1.Customer{Id: "c1"}, DueAt: at(1), OrgUnit: "north"}
	logged := &eventsv1.VisitLogged{VisitId: "v1", RecordId: "r1", LoggedAt: at(1),
		Answers: []*typesv1.Answer{{Aspect: "overall", Rating: typesv1.Rating_RATING_SATISFIED}}}
	errLater := errors.New("the caller fails after the use case")
	err := pgx.BeginFunc(ctx, b.pool, func(tx pgx.Tx) error {
		require.NoError(t, b.app.ApplyEventTx(ctx, tx, due))
		require.NoError(t, b.app.ApplyEventTx(ctx, tx, logged))
		var n int
		require.NoError(t, tx.QueryRow(ctx, `SELECT count(*) FROM daily`).Scan(&n))
		require.NotZero(t, n, "visible inside the caller's transaction")
		return errLater
	})
	require.ErrorIs(t, err, errLater)
	for _, table := range []string{"daily", "monthly", "daily_tenant", "monthly_tenant", "visits", "service_coverage", "customer_members", "customer_coverage"} {
		require.Zero(t, b.count(t, `SELECT count(*) FROM `+table), "%s rolled back with the caller", table)
	}

	require.NoError(t, pgx.BeginFunc(ctx, b.pool, func(tx pgx.Tx) error {
		if err := b.app.ApplyEventTx(ctx, tx, due); err != nil {
			return err
		}
		return b.app.ApplyEventTx(ctx, tx, logged)
	}))
	sat, err := b.app.Satisfaction(ctx, app.Scope{Tenant: "default"}, "overall")
	require.NoError(t, err)
	require.Equal(t, [2]int64{1, 1}, [2]int64{sat.Aspect.Rate.Num, sat.Aspect.Rate.Den}, "committed with the caller")
	require.Equal(t, 1, b.count(t, `SELECT count(*) FROM visits`))
}

// An event that breaks a rule is refused with an *invalid.Error (the
// consumer dead-letters it) and changes nothing, not even the part of it
// that would have been valid.
func TestApplyEventRefusesBrokenEvents(t *testing.T) {
	b := setup(t)
	ctx := context.Background()
	nps := int32(11)
	for _, tc := range []struct {
		name  string
		ev    proto.Message
		field string
	}{
		{"NPS above 10", &eventsv1.VisitLogged{VisitId: "v", LoggedAt: at(1), Nps: &nps, Answers: []*typesv1.Answer{{Aspect: "overall", Rating: typesv1.Rating_RATING_SATISFIED}}}, "nps"},
		{"visit event without a visit", &eventsv1.VisitDue{DueAt: at(1)}, "visit_id"},
		{"complaint event without a complaint", &eventsv1.ComplaintEscalated{VisitId: "v", EscalatedAt: at(1)}, "complaint_id"},
		{"service without its time", &eventsv1.ServiceCompleted{ServiceId: "s", Customer: &typesv1.Customer{Id: "c"}}, "completed_at"},
		{"review with a score above 100", &eventsv1.ReviewSubmitted{ReviewId: "q", At: at(1), Score: 101}, "score"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := b.app.ApplyEvent(ctx, tc.ev)
			bad, ok := invalid.As(err)
			require.True(t, ok, "%v", err)
			require.Equal(t, tc.field, bad.Violations[0].Field)
		})
	}
	for _, table := range []string{"daily", "visits", "complaints", "services", "customers"} {
		require.Zero(t, b.count(t, `SELECT count(*) FROM `+table), table)
	}
}

// One round of the target-check loop checks every tenant with counters:
// the scenario's seven breaches are recorded, published through the outbox
// and counted once; the next round finds nothing new.
func TestCheckAllTargets(t *testing.T) {
	b := setup(t)
	ctx := context.Background()
	b.applyScenario(t)
	b.app.Now = func() time.Time { return scenario.To }
	n, err := b.app.CheckAllTargets(ctx)
	require.NoError(t, err)
	// Seed 003 line 69 (item rate over the questionnaires returned): north's
	// staff attitude is 1 / 2 (v2 returned without rating it) < 80 %, an
	// eighth breach beside coverage, overall and staff attitude of the tenant
	// and south, and the 30-day improvement.
	require.Equal(t, 8, n)
	require.Equal(t, 1, b.count(t, `SELECT count(*) FROM breaches WHERE figure = 'satisfaction.staff_attitude' AND org_unit = 'north'`))
	require.Equal(t, 8, b.count(t, `SELECT count(*) FROM outbox WHERE subject = $1`, stream.SubjectTargetBreached))
	require.Equal(t, 8, b.count(t, `SELECT count(*) FROM breaches`))
	require.InDelta(t, 2, testutil.ToFloat64(b.app.Breaches.WithLabelValues(figures.Coverage)), 0)
	require.EqualValues(t, 1, b.relay.n.Load(), "the relay is woken once per check that wrote")

	n, err = b.app.CheckAllTargets(ctx)
	require.NoError(t, err)
	require.Zero(t, n, "one breach per figure, org unit and period")
	require.Equal(t, 8, b.count(t, `SELECT count(*) FROM outbox WHERE subject = $1`, stream.SubjectTargetBreached))
	require.InDelta(t, 2, testutil.ToFloat64(b.app.Breaches.WithLabelValues(figures.Coverage)), 0)
	require.EqualValues(t, 1, b.relay.n.Load())

	page, err := b.app.ListBreaches(ctx, "default", nil, 4)
	require.NoError(t, err)
	require.Len(t, page, 4)
	cur := app.CursorOf(page[3])
	rest, err := b.app.ListBreaches(ctx, "default", &cur, 10)
	require.NoError(t, err)
	require.Len(t, rest, 4)
}

// A tenant without its own incentive rule has seed 000's auto-dealer rule.
func TestIncentiveRule(t *testing.T) {
	b := setup(t)
	ctx := context.Background()
	r, err := b.app.IncentiveRule(ctx, "acme")
	require.NoError(t, err)
	require.Equal(t, figures.AutoDealerRule, r)
	own := figures.IncentiveRule{AgentRewardFen: 100}
	require.NoError(t, b.app.SetIncentiveRule(ctx, "acme", own))
	r, err = b.app.IncentiveRule(ctx, "acme")
	require.NoError(t, err)
	require.Equal(t, own, r)
	r, err = b.app.IncentiveRule(ctx, "default")
	require.NoError(t, err)
	require.Equal(t, figures.AutoDealerRule, r, "per tenant")
}

// The aspect asked for comes with its target even when nobody rated it.
func TestSatisfactionOfAnUnratedAspect(t *testing.T) {
	b := setup(t)
	b.applyScenario(t)
	sat, err := b.app.Satisfaction(context.Background(), app.Scope{Tenant: "default"}, "parking")
	require.NoError(t, err)
	require.Equal(t, "parking", sat.Aspect.Aspect)
	require.Equal(t, "satisfaction.parking", sat.Aspect.Rate.Figure)
	// Seed 003 line 69: Σ(A + B votes on the item) / 回收票数: the 3
	// questionnaires returned did not rate parking, so 0 / 3; the second
	// figure has no questionnaire that rated it.
	require.Equal(t, [2]int64{0, 3}, [2]int64{sat.Aspect.Rate.Num, sat.Aspect.Rate.Den})
	require.Zero(t, sat.Aspect.RatedRate.Den)
	require.EqualValues(t, 80, sat.Aspect.Rate.TargetPercent, "seed 003: any specific item ≥ 80 %")
	require.Len(t, sat.Aspects, 2, "overall and staff_attitude were rated")
}

func TestTrendRefusals(t *testing.T) {
	b := setup(t)
	ctx := context.Background()
	_, err := b.app.Trend(ctx, app.Scope{Tenant: "default", From: scenario.From.AddDate(-2, 0, 0), To: scenario.From}, figures.Coverage, figures.Day)
	bad, ok := invalid.As(err)
	require.True(t, ok, "%v", err)
	require.Equal(t, "to", bad.Violations[0].Field)
	_, err = b.app.Trend(ctx, app.Scope{Tenant: "default", From: scenario.From, To: scenario.To}, figures.CustomerCoverage, figures.Day)
	bad, ok = invalid.As(err)
	require.True(t, ok, "%v", err)
	require.Equal(t, "figure", bad.Violations[0].Field)
}

func TestRebuildNeedsTheGate(t *testing.T) {
	_, err := (&app.App{}).Rebuild(context.Background())
	require.ErrorIs(t, err, app.ErrNoRebuild)
}

// ApplyEventTx is fenced by the leader's term its context carries: while
// the term holds the lease the event applies; once the lease was taken over
// (the term's token is stale), even a bad event is refused with a transient
// ErrLeaseLost (retried by whoever leads, never dead-lettered), nothing is
// written, and the term is told it lost the lease (it stands down).
func TestApplyEventTxIsFencedByTheTerm(t *testing.T) {
	b := setup(t)
	ctx := context.Background()
	lease, ok, err := store.TakeLease(ctx, b.pool, "consumer", "replica-a", time.Hour)
	require.NoError(t, err)
	require.True(t, ok)
	var lost atomic.Int64
	term := app.WithTerm(ctx, app.Term{Lease: lease, Lost: func(error) { lost.Add(1) }})
	due := &eventsv1.VisitDue{VisitId: "v1", DueAt: at(1), OrgUnit: "north"}
	require.NoError(t, b.app.ApplyEvent(term, due))
	require.Equal(t, 1, b.count(t, `SELECT count(*) FROM visits`))

	// Another replica takes the lease over (it expired).
	_, err = b.pool.Exec(ctx, `UPDATE leases SET expires_at = now() WHERE name = 'consumer'`)
	require.NoError(t, err)
	_, ok, err = store.TakeLease(ctx, b.pool, "consumer", "replica-b", time.Hour)
	require.NoError(t, err)
	require.True(t, ok)
	counters := b.count(t, `SELECT count(*) FROM daily`)
	for _, ev := range []proto.Message{
		&eventsv1.VisitDue{VisitId: "v2", DueAt: at(1), OrgUnit: "north"},
		&eventsv1.VisitDue{DueAt: at(1)}, // bad input, but the fence comes first
	} {
		err = b.app.ApplyEvent(term, ev)
		require.ErrorIs(t, err, app.ErrLeaseLost)
		require.True(t, inbox.IsTransient(err))
		_, isBad := invalid.As(err)
		require.False(t, isBad, "never dead-lettered for it")
	}
	require.EqualValues(t, 2, lost.Load())
	require.Equal(t, 1, b.count(t, `SELECT count(*) FROM visits`), "nothing written")
	require.Equal(t, counters, b.count(t, `SELECT count(*) FROM daily`))
	// Without a term (tests, tools) nothing is checked.
	require.NoError(t, b.app.ApplyEvent(ctx, &eventsv1.VisitDue{VisitId: "v3", DueAt: at(1)}))
}

// The rule of a rebuild's stream (checked before anything is touched): its
// first sequence must be 1 (or 0: it never held a message), nothing removed
// from inside it, and it must be the stream the figures were built from.
func TestCheckHistory(t *testing.T) {
	b := setup(t)
	ctx := context.Background()
	created := time.Date(2026, 1, 2, 3, 4, 5, 123456789, time.UTC)
	first := time.Date(2026, 6, 1, 0, 0, 0, 0, time.UTC)
	h := app.StreamHistory{Stream: "HUIFANG_EVENTS", Created: created, FirstSeq: 1, LastSeq: 40, FirstTime: first}
	require.NoError(t, b.app.CheckHistory(ctx, h))
	require.NoError(t, b.app.CheckHistory(ctx, app.StreamHistory{Stream: "HUIFANG_EVENTS", Created: created}), "never held a message")
	for _, tc := range []struct {
		name string
		h    func(h app.StreamHistory) app.StreamHistory
		msg  string
	}{
		{"start removed", func(h app.StreamHistory) app.StreamHistory { h.FirstSeq = 11; return h },
			"holds events from 2026-06-01T00:00:00Z on only: its first message is sequence 11, the 10 before it were removed"},
		{"all removed", func(h app.StreamHistory) app.StreamHistory { h.FirstSeq = 41; return h }, "holds no event any more: all 40 were removed"},
		{"inside removed", func(h app.StreamHistory) app.StreamHistory { h.Deleted = 2; return h }, "2 messages were removed from inside stream HUIFANG_EVENTS"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := b.app.CheckHistory(ctx, tc.h(h))
			require.ErrorIs(t, err, app.ErrStreamIncomplete)
			require.Contains(t, err.Error(), tc.msg)
		})
	}
	require.NoError(t, b.app.RecordStreamOrigin(ctx, h))
	require.NoError(t, b.app.CheckHistory(ctx, h), "the same stream (to the microsecond Postgres keeps)")
	again := h
	again.Created = created.Add(time.Hour)
	err := b.app.CheckHistory(ctx, again)
	require.ErrorIs(t, err, app.ErrStreamIncomplete)
	require.Contains(t, err.Error(), "was created again at 2026-01-02T04:04:05Z (the figures are built from the one created at 2026-01-02T03:04:05Z)")
}
