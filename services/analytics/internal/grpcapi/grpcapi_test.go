package grpcapi_test

import (
	"bytes"
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/require"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/types/known/timestamppb"

	analyticsv1 "github.com/huifang/huifang/proto/huifang/analytics/v1"

	"github.com/huifang/huifang/pkg/audit"
	"github.com/huifang/huifang/pkg/grpcserver"
	"github.com/huifang/huifang/pkg/servicetest"
	"github.com/huifang/huifang/pkg/stream"
	"github.com/huifang/huifang/services/analytics/internal/app"
	"github.com/huifang/huifang/services/analytics/internal/consumer"
	"github.com/huifang/huifang/services/analytics/internal/grpcapi"
	"github.com/huifang/huifang/services/analytics/internal/scenario"
	"github.com/huifang/huifang/services/analytics/migrations"
)

func march(d int) time.Time { return time.Date(2025, 3, d, 0, 0, 0, 0, time.UTC) }

var ts = timestamppb.New

// setup applies the scenario's events (as the consumer does, in stream
// order) and serves AnalyticsService through the shared gRPC server,
// interceptors included.
func setup(t *testing.T) (analyticsv1.AnalyticsServiceClient, *pgxpool.Pool) {
	t.Helper()
	client, pool, _ := setupCounted(t)
	return client, pool
}

// setupCounted is setup that also returns the checker's breach counter.
func setupCounted(t *testing.T) (analyticsv1.AnalyticsServiceClient, *pgxpool.Pool, *prometheus.CounterVec) {
	t.Helper()
	ctx := context.Background()
	pool := servicetest.Pool(t, "analytics", migrations.FS)
	breaches := app.NewBreachesCounter()
	a := &app.App{DB: pool, Breaches: breaches}
	for _, e := range scenario.Events() {
		require.NoError(t, a.ApplyEvent(ctx, e.Msg), e.ID)
	}
	srv := grpcserver.New(servicetest.Logger(), "", "")
	analyticsv1.RegisterAnalyticsServiceServer(srv.GRPC, grpcapi.New(a))
	conn := servicetest.Serve(t, srv)
	return analyticsv1.NewAnalyticsServiceClient(conn), pool, breaches
}

func nd(r *analyticsv1.Ratio) [2]int64 { return [2]int64{r.GetNumerator(), r.GetDenominator()} }

func TestGetSatisfaction(t *testing.T) {
	client, _ := setup(t)
	ctx := context.Background()

	// The request as a caller types it: grpcurl -d '{"aspect":"overall"}'.
	req := &analyticsv1.GetSatisfactionRequest{}
	require.NoError(t, protojson.Unmarshal([]byte(`{"aspect":"overall"}`), req))
	got, err := client.GetSatisfaction(ctx, req)
	require.NoError(t, err)
	// Seed 003: (satisfied + fairly satisfied) / returned = (1 + 1) / 3; target 85 %.
	require.Equal(t, "overall", got.GetAspect())
	require.Equal(t, [4]int64{3, 1, 1, 1}, [4]int64{got.GetReturned(), got.GetSatisfied(), got.GetFairlySatisfied(), got.GetUnsatisfied()})
	require.InDelta(t, 2.0/3, got.GetRate(), 1e-12)
	require.InDelta(t, 0.85, got.GetTarget(), 1e-12)
	require.False(t, got.GetMeetsTarget())
	require.Len(t, got.GetAspects(), 2)
	require.Equal(t, "staff_attitude", got.GetAspects()[1].GetAspect())
	// Seed 003 line 69: Σ(A + B on the item) / 回收票数 = 1 / 3 (v2 returned without
	// rating staff attitude); the second figure, over those that rated it, 1 / 2.
	require.Equal(t, [2]int64{1, 3}, nd(got.GetAspects()[1].GetRate()))
	require.InDelta(t, 0.80, got.GetAspects()[1].GetRate().GetTarget(), 1e-12, "seed 003: any specific item ≥ 80 %")
	require.Equal(t, "(satisfied + fairly satisfied) / questionnaires returned = 1 / 3 = 33.33% (target ≥ 80%)", got.GetAspects()[1].GetRate().GetFormula())
	require.Equal(t, [2]int64{1, 2}, nd(got.GetAspects()[1].GetRatedRate()))
	require.Equal(t, "satisfaction_rated.staff_attitude", got.GetAspects()[1].GetRatedRate().GetFigure())
	require.False(t, got.GetAspects()[1].GetRatedRate().GetHasTarget())
	require.Equal(t, [2]int64{2, 3}, nd(got.GetRatedRate()))
	require.EqualValues(t, 3, got.GetRated())
	// NPS: v5 answered 3 (detractor), v6 10 (promoter): (1 − 1) / 2 × 100 = 0.
	require.Equal(t, &analyticsv1.Nps{Promoters: 1, Detractors: 1, Answered: 2}, got.GetNps())

	north, err := client.GetSatisfaction(ctx, &analyticsv1.GetSatisfactionRequest{OrgUnit: "north"})
	require.NoError(t, err)
	require.Equal(t, int64(2), north.GetReturned())
	require.True(t, north.GetMeetsTarget())

	// The period is half-open and by the day the visit was logged: 2 March only is v2's B.
	day2, err := client.GetSatisfaction(ctx, &analyticsv1.GetSatisfactionRequest{From: ts(march(2)), To: ts(march(3))})
	require.NoError(t, err)
	require.Equal(t, [2]int64{1, 1}, [2]int64{got.GetFairlySatisfied(), day2.GetReturned()})

	byAgent, err := client.GetSatisfaction(ctx, &analyticsv1.GetSatisfactionRequest{Aspect: "staff_attitude", Filter: &analyticsv1.Filter{AgentId: "a2"}})
	require.NoError(t, err)
	require.Equal(t, [2]int64{0, 1}, [2]int64{byAgent.GetSatisfied(), byAgent.GetUnsatisfied()})

	none, err := client.GetSatisfaction(ctx, &analyticsv1.GetSatisfactionRequest{Aspect: "parking", TenantId: "acme"})
	require.NoError(t, err)
	require.Equal(t, "parking", none.GetAspect())
	require.Zero(t, none.GetReturned())
	require.InDelta(t, 0.8, none.GetTarget(), 1e-12)
}

func TestCoverageAndTimeliness(t *testing.T) {
	client, _ := setup(t)
	ctx := context.Background()
	cov, err := client.GetCoverage(ctx, &analyticsv1.GetCoverageRequest{From: ts(scenario.From), To: ts(scenario.To)})
	require.NoError(t, err)
	// Seed 003, per served service: s1, s2, s3 followed up; s4 (only v3, unreachable) not.
	require.Equal(t, [2]int64{3, 4}, nd(cov.GetCoverage()))
	require.False(t, cov.GetCoverage().GetMeetsTarget(), "seed 003: coverage ≥ 90 %")
	// Per visit: due in March v1, v2, v3, v5, v6 (v4 was cancelled); made: all but v3.
	require.Equal(t, [2]int64{4, 5}, nd(cov.GetVisitCompletion()))
	require.False(t, cov.GetVisitCompletion().GetHasTarget(), "seed 003's 90 % is per served customer, not per visit")
	require.Equal(t, [2]int64{3, 5}, nd(cov.GetResponseRate()), "v6 returned no rating")
	require.Equal(t, [2]int64{1, 5}, nd(cov.GetUnreachableRate()))
	require.Equal(t, [2]int64{1, 2}, nd(cov.GetContactSuccess()))
	require.Equal(t, [2]int64{0, 1}, [2]int64{cov.GetWonBack(), cov.GetServices()}, "cu1 came back in February")
	// Seed 003, per served customer, for March (one calendar month): cu1, cu2, cu3 all followed up.
	require.Equal(t, [2]int64{3, 3}, nd(cov.GetCustomerCoverage()))
	require.True(t, cov.GetCustomerCoverage().GetMeetsTarget(), "seed 003: coverage ≥ 90 %% of served customers")
	require.Equal(t, "customer_coverage", cov.GetCustomerCoverage().GetFigure())
	south, err := client.GetCoverage(ctx, &analyticsv1.GetCoverageRequest{From: ts(scenario.From), To: ts(scenario.To), Filter: &analyticsv1.Filter{OrgUnit: "south"}})
	require.NoError(t, err)
	require.Equal(t, [2]int64{1, 2}, nd(south.GetCustomerCoverage()), "south: cu1's s4 never followed up, cu3's s3 was")
	days, err := client.GetCoverage(ctx, &analyticsv1.GetCoverageRequest{From: ts(march(1)), To: ts(march(8))})
	require.NoError(t, err)
	require.Nil(t, days.GetCustomerCoverage(), "given only for one calendar month or year")
	require.NotNil(t, days.GetCoverage())

	all, err := client.GetCoverage(ctx, &analyticsv1.GetCoverageRequest{})
	require.NoError(t, err)
	require.Equal(t, [2]int64{1, 4}, [2]int64{all.GetWonBack(), all.GetServices()})

	a2, err := client.GetCoverage(ctx, &analyticsv1.GetCoverageRequest{Filter: &analyticsv1.Filter{AgentId: "a2", Channel: 1}})
	require.NoError(t, err)
	require.Equal(t, [2]int64{1, 2}, nd(a2.GetCoverage()), "s4 (v3) and s3 (first eligible v5) are a2's")
	require.Equal(t, [2]int64{1, 2}, nd(a2.GetVisitCompletion()))

	tm, err := client.GetTimeliness(ctx, &analyticsv1.GetTimelinessRequest{From: ts(scenario.From), To: ts(scenario.To)})
	require.NoError(t, err)
	require.Equal(t, [2]int64{3, 5}, nd(tm.GetPolicyDeadline()), "v1, v5, v6 by their deadline")
	require.Equal(t, [2]int64{2, 3}, nd(tm.GetWithin_48H()), "v1 24 h and v5 33 h after the service; v2 4.5 days")
	require.False(t, tm.GetWithin_48H().GetHasTarget())

	_, err = client.SetTarget(ctx, &analyticsv1.SetTargetRequest{Target: &analyticsv1.Target{Figure: "coverage", Percent: 75}})
	require.NoError(t, err)
	cov, err = client.GetCoverage(ctx, &analyticsv1.GetCoverageRequest{From: ts(scenario.From), To: ts(scenario.To)})
	require.NoError(t, err)
	require.True(t, cov.GetCoverage().GetMeetsTarget(), "the tenant's 75 %% replaces seed 003's 90 %%")
	_, err = client.SetTarget(ctx, &analyticsv1.SetTargetRequest{Target: &analyticsv1.Target{Figure: "customer_coverage", Percent: 60}})
	require.NoError(t, err)
	south, err = client.GetCoverage(ctx, &analyticsv1.GetCoverageRequest{From: ts(scenario.From), To: ts(scenario.To), Filter: &analyticsv1.Filter{OrgUnit: "south"}})
	require.NoError(t, err)
	require.False(t, south.GetCustomerCoverage().GetMeetsTarget(), "1 / 2 = 50 %% < the tenant's 60 %%")
	require.InDelta(t, 0.60, south.GetCustomerCoverage().GetTarget(), 1e-9)
	lt, err := client.ListTargets(ctx, &analyticsv1.ListTargetsRequest{})
	require.NoError(t, err)
	require.Equal(t, "coverage", lt.GetTargets()[0].GetFigure())
	require.Equal(t, "tenant", lt.GetTargets()[0].GetSource())
}

func TestAgentScorecards(t *testing.T) {
	client, _ := setup(t)
	got, err := client.GetAgentScorecards(context.Background(), &analyticsv1.GetAgentScorecardsRequest{From: ts(scenario.From), To: ts(scenario.To)})
	require.NoError(t, err)
	require.Len(t, got.GetScorecards(), 2)
	a1, a2 := got.GetScorecards()[0], got.GetScorecards()[1]
	require.Equal(t, "a1", a1.GetAgentId())
	require.Equal(t, [2]int64{3, 3}, [2]int64{a1.GetDue(), a1.GetDone()})
	require.Equal(t, [2]int64{2, 3}, nd(a1.GetTimeliness()), "v2 was late")
	require.Equal(t, [2]int64{2, 2}, nd(a1.GetSatisfaction()))
	require.Equal(t, [2]int64{1, 1}, nd(a1.GetContactSuccess()))
	require.Equal(t, int64(2), a1.GetReviews())
	require.InDelta(t, 80.0, a1.GetReviewScore(), 1e-12, "(90 + 70) / 2")
	// Seed 000: 2 in time × 0.5 yuan − 1 late × 0.5 yuan = 0.5 yuan.
	require.Equal(t, int64(50), a1.GetIncentiveFen())
	require.Equal(t, [2]int64{2, 1}, [2]int64{a2.GetDue(), a2.GetDone()})
	require.Equal(t, int64(0), a2.GetIncentiveFen(), "1 in time, 1 missed (unreachable)")
	ledger := map[string]int64{}
	for _, l := range got.GetIncentives() {
		ledger[l.GetRole()+" "+l.GetWho()] = l.GetAmountFen()
	}
	require.Equal(t, map[string]int64{"agent a1": 50, "agent a2": 0, "manager north": -10000, "manager south": -10000, "director default": -20000}, ledger)

	_, err = client.SetIncentiveRule(context.Background(), &analyticsv1.SetIncentiveRuleRequest{Rule: &analyticsv1.IncentiveRule{AgentRewardFen: 100}})
	require.NoError(t, err)
	got, err = client.GetAgentScorecards(context.Background(), &analyticsv1.GetAgentScorecardsRequest{From: ts(scenario.From), To: ts(scenario.To)})
	require.NoError(t, err)
	require.Equal(t, int64(200), got.GetScorecards()[0].GetIncentiveFen(), "2 × 1 yuan, no penalty")
}

func TestTrend(t *testing.T) {
	client, _ := setup(t)
	got, err := client.GetTrend(context.Background(), &analyticsv1.GetTrendRequest{Figure: "coverage", From: ts(march(1)), To: ts(march(5))})
	require.NoError(t, err)
	var pts [][2]int64
	for _, p := range got.GetPoints() {
		pts = append(pts, nd(p.GetValue()))
	}
	// Services by the day of their first due follow-up: s1 and s2 on 1 March, s4 on the 2nd, s3 on the 3rd.
	require.Equal(t, [][2]int64{{2, 2}, {0, 1}, {1, 1}, {0, 0}}, pts)
	got, err = client.GetTrend(context.Background(), &analyticsv1.GetTrendRequest{Figure: "visit_completion", From: ts(march(1)), To: ts(march(5))})
	require.NoError(t, err)
	pts = nil
	for _, p := range got.GetPoints() {
		pts = append(pts, nd(p.GetValue()))
	}
	require.Equal(t, [][2]int64{{2, 2}, {0, 1}, {1, 1}, {1, 1}}, pts, "visits by the day they fell due")

	got, err = client.GetTrend(context.Background(), &analyticsv1.GetTrendRequest{Figure: "satisfaction.overall", From: ts(march(1).AddDate(0, -1, 0)), To: ts(scenario.To), Granularity: analyticsv1.Granularity_GRANULARITY_MONTH})
	require.NoError(t, err)
	require.Len(t, got.GetPoints(), 2)
	require.Equal(t, [2]int64{0, 0}, nd(got.GetPoints()[0].GetValue()))
	require.Equal(t, [2]int64{2, 3}, nd(got.GetPoints()[1].GetValue()))
}

func TestProblemBreakdown(t *testing.T) {
	client, _ := setup(t)
	got, err := client.GetProblemBreakdown(context.Background(), &analyticsv1.GetProblemBreakdownRequest{From: ts(scenario.From), To: ts(scenario.To)})
	require.NoError(t, err)
	require.Len(t, got.GetProblems(), 2)
	require.Equal(t, "product_quality", got.GetProblems()[0].GetCategory())
	require.Equal(t, "washer", got.GetProblems()[0].GetProductCategory(), "from the service the visit was about")
	require.Len(t, got.GetProducts(), 2)
	fridge, washer := got.GetProducts()[0], got.GetProducts()[1]
	// Seed 001: fridges 1 problem in 1 visit against washers' 1 in 3: flagged.
	require.Equal(t, [2]int64{1, 1}, nd(fridge.GetComplaintRate()))
	require.Equal(t, [2]int64{1, 3}, nd(fridge.GetPeersRate()))
	require.True(t, fridge.GetFlagged())
	require.False(t, washer.GetFlagged())
	require.Equal(t, [2]int64{1, 2}, nd(got.GetResolutionRate()))
	require.Equal(t, [2]int64{0, 2}, nd(got.GetImprovement()), "no improvement plan: none improved (seed 003)")
	require.Nil(t, got.GetImprovement_30D(), "deprecated, never set")
	require.InDelta(t, 48.0, got.GetMeanResolutionHours(), 1e-12)
	require.Equal(t, int64(1), got.GetClosed())
	// Seed 004 (timeliness): c1 escalated 2 March 12:00, acknowledged 18:00; c2 never.
	require.Equal(t, int64(1), got.GetAcknowledged())
	require.InDelta(t, 6.0, got.GetMeanAcknowledgeHours(), 1e-12)
}

func TestGenerateReportIsReproducible(t *testing.T) {
	client, _ := setup(t)
	ctx := context.Background()
	req := &analyticsv1.GenerateReportRequest{From: ts(scenario.From), To: ts(scenario.To), Format: analyticsv1.ReportFormat_REPORT_FORMAT_CSV, PreviousPeriods: 2}
	first, err := client.GenerateReport(ctx, req)
	require.NoError(t, err)
	second, err := client.GenerateReport(ctx, req)
	require.NoError(t, err)
	require.Equal(t, first.GetContent(), second.GetContent())
	require.Equal(t, "huifang-default-all-2025-03-01-2025-04-01.csv", first.GetFilename())
	csv := string(first.GetContent())
	for _, want := range []string{
		"figure,coverage,3,4,75.00%,90.00%,false,services followed up / eligible services = 3 / 4 = 75.00% (target ≥ 90%)",
		"figure,visit_completion,4,5,80.00%,",
		"figure,mean_acknowledge_hours,1,,6.00,",
		"trend 2025-01-01,coverage,0,0,0.00%,90.00%,false",
		"overdue_complaint,c2,",
		"incentive agent,a1,2,3,0.50,",
		"product,fridge,1,1,100.00%,,,",
	} {
		require.Contains(t, csv, want)
	}
	require.NotContains(t, csv, "overdue_complaint,c1", "c1 was resolved before its deadline")

	html, err := client.GenerateReport(ctx, &analyticsv1.GenerateReportRequest{From: ts(scenario.From), To: ts(scenario.To), OrgUnit: "south"})
	require.NoError(t, err)
	require.Equal(t, "text/html; charset=utf-8", html.GetContentType())
	require.True(t, bytes.Contains(html.GetContent(), []byte("<svg")))
	require.True(t, bytes.Contains(html.GetContent(), []byte("c2")))
}

func TestCheckTargetsPublishesBreachesOnce(t *testing.T) {
	client, pool, counter := setupCounted(t)
	ctx := context.Background()
	asOf := ts(scenario.To)
	got, err := client.CheckTargets(ctx, &analyticsv1.CheckTargetsRequest{AsOf: asOf})
	require.NoError(t, err)
	var found []string
	for _, b := range got.GetNewBreaches() {
		found = append(found, b.GetOrgUnit()+" "+b.GetFigure())
		require.True(t, b.GetPeriodStart().AsTime().Equal(scenario.From))
	}
	// Seed 003: coverage 3/4 services < 90 %, overall 2/3 < 85 %, staff attitude 1/3 < 80 %
	// (line 69: over the 3 questionnaires returned); north meets coverage and overall but
	// not staff attitude (1/2: v2 returned without rating it), south (1/2, 0/1, 0/1) none. Per customer (checked
	// over March, the last whole month before 1 April): all 3/3 and north 2/2
	// meet 90 %, south 1/2 does not.
	require.ElementsMatch(t, []string{" coverage", " satisfaction.overall", " satisfaction.staff_attitude",
		"north satisfaction.staff_attitude",
		"south coverage", "south satisfaction.overall", "south satisfaction.staff_attitude", "south customer_coverage"}, found)
	var events int
	require.NoError(t, pool.QueryRow(ctx, `SELECT count(*) FROM outbox WHERE subject = $1`, stream.SubjectTargetBreached).Scan(&events))
	require.Equal(t, 8, events)
	// The deploy's alerts read huifang_target_breaches_total{figure}.
	require.InDelta(t, 2, testutil.ToFloat64(counter.WithLabelValues("coverage")), 0)
	require.InDelta(t, 2, testutil.ToFloat64(counter.WithLabelValues("satisfaction.overall")), 0)
	require.Equal(t, 4, testutil.CollectAndCount(counter, app.BreachesMetricName))

	again, err := client.CheckTargets(ctx, &analyticsv1.CheckTargetsRequest{AsOf: asOf})
	require.NoError(t, err)
	require.Empty(t, again.GetNewBreaches(), "one alert per figure, org unit and period")
	require.NoError(t, pool.QueryRow(ctx, `SELECT count(*) FROM outbox WHERE subject = $1`, stream.SubjectTargetBreached).Scan(&events))
	require.Equal(t, 8, events)
	require.InDelta(t, 2, testutil.ToFloat64(counter.WithLabelValues("coverage")), 0, "counted once, as published")

	page1, err := client.ListBreaches(ctx, &analyticsv1.ListBreachesRequest{PageSize: 5})
	require.NoError(t, err)
	require.Len(t, page1.GetBreaches(), 5)
	page2, err := client.ListBreaches(ctx, &analyticsv1.ListBreachesRequest{PageSize: 5, PageToken: page1.GetNextPageToken()})
	require.NoError(t, err)
	require.Len(t, page2.GetBreaches(), 3)
	require.Empty(t, page2.GetNextPageToken())
}

func TestInvalidRequests(t *testing.T) {
	client, _ := setup(t)
	ctx := context.Background()
	for _, tc := range []struct {
		name  string
		call  func() error
		field string
	}{
		{"aspect in capitals", func() error {
			_, err := client.GetSatisfaction(ctx, &analyticsv1.GetSatisfactionRequest{Aspect: "Overall"})
			return err
		}, "aspect"},
		{"tenant with a space", func() error {
			_, err := client.GetSatisfaction(ctx, &analyticsv1.GetSatisfactionRequest{TenantId: "a b"})
			return err
		}, "tenant_id"},
		{"from not at midnight UTC", func() error {
			_, err := client.GetCoverage(ctx, &analyticsv1.GetCoverageRequest{From: ts(march(1).Add(time.Hour))})
			return err
		}, "from"},
		{"to at midnight in Shanghai, not UTC", func() error {
			_, err := client.GetTimeliness(ctx, &analyticsv1.GetTimelinessRequest{To: ts(time.Date(2025, 3, 2, 0, 0, 0, 0, time.FixedZone("CST", 8*3600)))})
			return err
		}, "to"},
		{"from after to", func() error {
			_, err := client.GetSatisfaction(ctx, &analyticsv1.GetSatisfactionRequest{From: ts(march(3)), To: ts(march(2))})
			return err
		}, "from"},
		{"org_unit and filter.org_unit disagree", func() error {
			_, err := client.GetSatisfaction(ctx, &analyticsv1.GetSatisfactionRequest{OrgUnit: "north", Filter: &analyticsv1.Filter{OrgUnit: "south"}})
			return err
		}, "org_unit"},
		{"unknown channel", func() error {
			_, err := client.GetCoverage(ctx, &analyticsv1.GetCoverageRequest{Filter: &analyticsv1.Filter{Channel: 42}})
			return err
		}, "filter.channel"},
		{"trend without a period", func() error {
			_, err := client.GetTrend(ctx, &analyticsv1.GetTrendRequest{Figure: "coverage", To: ts(march(2))})
			return err
		}, "from"},
		{"trend of an unknown figure", func() error {
			_, err := client.GetTrend(ctx, &analyticsv1.GetTrendRequest{Figure: "happiness", From: ts(march(1)), To: ts(march(2))})
			return err
		}, "figure"},
		{"trend of too many days", func() error {
			_, err := client.GetTrend(ctx, &analyticsv1.GetTrendRequest{Figure: "coverage", From: ts(march(1).AddDate(-2, 0, 0)), To: ts(march(1))})
			return err
		}, "to"},
		{"report of an empty period", func() error {
			_, err := client.GenerateReport(ctx, &analyticsv1.GenerateReportRequest{From: ts(march(1)), To: ts(march(1))})
			return err
		}, "to"},
		{"target above 100 %", func() error {
			_, err := client.SetTarget(ctx, &analyticsv1.SetTargetRequest{Target: &analyticsv1.Target{Figure: "coverage", Percent: 101}})
			return err
		}, "target.percent"},
		{"target of an unknown figure", func() error {
			_, err := client.SetTarget(ctx, &analyticsv1.SetTargetRequest{Target: &analyticsv1.Target{Figure: "joy", Percent: 50}})
			return err
		}, "target.figure"},
		{"negative penalty", func() error {
			_, err := client.SetIncentiveRule(ctx, &analyticsv1.SetIncentiveRuleRequest{Rule: &analyticsv1.IncentiveRule{AgentPenaltyFen: -1}})
			return err
		}, "rule.agent_penalty_fen"},
		{"bad page token", func() error {
			_, err := client.ListBreaches(ctx, &analyticsv1.ListBreachesRequest{PageToken: "x"})
			return err
		}, "page_token"},
		{"round report without a policy", func() error {
			_, err := client.GenerateRoundReport(ctx, &analyticsv1.GenerateRoundReportRequest{DayStart: ts(march(1))})
			return err
		}, "policy_id"},
		{"round report without its day", func() error {
			_, err := client.GenerateRoundReport(ctx, &analyticsv1.GenerateRoundReportRequest{PolicyId: "p-1"})
			return err
		}, "day_start"},
		{"round report in an unknown format", func() error {
			_, err := client.GenerateRoundReport(ctx, &analyticsv1.GenerateRoundReportRequest{PolicyId: "p-1", DayStart: ts(march(1)), Format: 42})
			return err
		}, "format"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.call()
			st, ok := status.FromError(err)
			require.True(t, ok)
			require.Equal(t, codes.InvalidArgument, st.Code(), st.Message())
			var fields []string
			for _, d := range st.Details() {
				if br, ok := d.(*errdetails.BadRequest); ok {
					for _, v := range br.GetFieldViolations() {
						fields = append(fields, v.GetField())
					}
				}
			}
			require.Equal(t, []string{tc.field}, fields)
		})
	}
}

// Only the replica that consumes rebuilds; a standby says so with
// UNAVAILABLE, so the caller tries again and reaches the leader.
func TestRebuildOnStandbyIsUnavailable(t *testing.T) {
	a := &app.App{}
	a.Rebuilder = consumer.NewGate(a, nil, nil, servicetest.Logger())
	srv := grpcapi.New(a)
	_, err := srv.Rebuild(context.Background(), &analyticsv1.RebuildRequest{})
	require.Equal(t, codes.Unavailable, status.Code(err))
	require.Contains(t, status.Convert(err).Message(), "standing by")

	// A process without a consumer cannot rebuild either.
	_, err = grpcapi.New(&app.App{}).Rebuild(context.Background(), &analyticsv1.RebuildRequest{})
	require.Equal(t, codes.Unavailable, status.Code(err))
	require.Contains(t, status.Convert(err).Message(), "not configured")
}

type refusingRebuilder struct{ err error }

func (r refusingRebuilder) Rebuild(context.Context, audit.Actor) (uint64, error) { return 0, r.err }

// A rebuild refused because the stream no longer holds the whole history
// is FAILED_PRECONDITION, with the reason naming the first time it holds.
func TestRebuildOnAStreamMissingHistoryIsFailedPrecondition(t *testing.T) {
	refused := fmt.Errorf("%w: stream HUIFANG_EVENTS holds events from 2026-06-01T00:00:00Z on only", app.ErrStreamIncomplete)
	_, err := grpcapi.New(&app.App{Rebuilder: refusingRebuilder{refused}}).Rebuild(context.Background(), &analyticsv1.RebuildRequest{})
	require.Equal(t, codes.FailedPrecondition, status.Code(err))
	require.Contains(t, status.Convert(err).Message(), "from 2026-06-01T00:00:00Z on only")
}
