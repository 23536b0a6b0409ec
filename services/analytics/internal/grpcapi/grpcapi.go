// Package grpcapi serves huifang.analytics.v1.AnalyticsService: it checks
// the shape of each request, calls one use case of package app, and turns
// its result into the response message (errors through statusOf).
package grpcapi

import (
	"context"
	"strings"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	analyticsv1 "github.com/huifang/huifang/proto/huifang/analytics/v1"
	typesv1 "github.com/huifang/huifang/proto/huifang/types/v1"

	"github.com/huifang/huifang/pkg/invalid"
	"github.com/huifang/huifang/pkg/page"
	"github.com/huifang/huifang/pkg/tenant"
	"github.com/huifang/huifang/services/analytics/internal/app"
	"github.com/huifang/huifang/services/analytics/internal/figures"
	"github.com/huifang/huifang/services/analytics/internal/rollup"
	"github.com/huifang/huifang/services/analytics/internal/satisfaction"
)

// Server implements AnalyticsService.
type Server struct {
	analyticsv1.UnimplementedAnalyticsServiceServer
	App *app.App
}

// New returns a server of a's use cases.
func New(a *app.App) *Server { return &Server{App: a} }

const maxDimLen = 200

// scope reads the common request fields: tenant, the period of whole UTC
// days and the filter.
func scope(bad *invalid.List, tenantID string, from, to *timestamppb.Timestamp, f *analyticsv1.Filter, required bool) app.Scope {
	s := app.Scope{Tenant: tenant.Parse(bad, "tenant_id", tenantID)}
	var fromOK, toOK bool
	s.From, fromOK = day(bad, "from", from, required)
	s.To, toOK = day(bad, "to", to, required)
	if fromOK && toOK && !s.From.IsZero() && !s.To.IsZero() && s.From.After(s.To) {
		bad.Add("from", "must not be after to")
	}
	s.Filter = dims(bad, f)
	return s
}

// scopeOf is scope for a request with only the common fields.
func scopeOf(tenantID string, from, to *timestamppb.Timestamp, f *analyticsv1.Filter) (app.Scope, error) {
	var bad invalid.List
	s := scope(&bad, tenantID, from, to, f, false)
	return s, bad.Err()
}

func dims(bad *invalid.List, f *analyticsv1.Filter) rollup.Dims {
	d := rollup.Dims{
		OrgUnit:         strings.TrimSpace(f.GetOrgUnit()),
		PolicyID:        strings.TrimSpace(f.GetPolicyId()),
		ServiceType:     strings.TrimSpace(f.GetServiceType()),
		ProductCategory: strings.TrimSpace(f.GetProductCategory()),
		AgentID:         strings.TrimSpace(f.GetAgentId()),
	}
	// At most 200 bytes each and a known channel: analytics.proto's rules
	// on Filter.
	if c := f.GetChannel(); c != typesv1.Channel_CHANNEL_UNSPECIFIED {
		// The counters keep the channel's full name (CHANNEL_PHONE).
		d.Channel = c.String()
	}
	return d
}

// day reads one bound of the period. Rollups are whole UTC days, so a bound
// must be midnight UTC; an unset bound is the zero time.
func day(bad *invalid.List, field string, ts *timestamppb.Timestamp, required bool) (time.Time, bool) {
	if ts == nil {
		if required {
			bad.Add(field, "is required")
			return time.Time{}, false
		}
		return time.Time{}, true
	}
	if err := ts.CheckValid(); err != nil {
		bad.Add(field, "must be a valid timestamp")
		return time.Time{}, false
	}
	t := ts.AsTime()
	if !t.Equal(rollup.Day(t)) {
		bad.Add(field, "must be 00:00 UTC: the figures are kept per whole UTC day")
		return time.Time{}, false
	}
	return t, true
}

func ratio(r figures.Ratio) *analyticsv1.Ratio {
	return &analyticsv1.Ratio{
		Figure: r.Figure, Numerator: r.Num, Denominator: r.Den, Value: r.Value(),
		HasTarget: r.HasTarget, Target: r.Target(), MeetsTarget: r.MeetsTarget(), Formula: r.Formula(),
	}
}

// GetSatisfaction returns seed 003's figures of one aspect, every aspect and
// the NPS, summed from the rollups that match the request.
func (s *Server) GetSatisfaction(ctx context.Context, req *analyticsv1.GetSatisfactionRequest) (*analyticsv1.GetSatisfactionResponse, error) {
	var bad invalid.List
	sc := scope(&bad, req.GetTenantId(), req.GetFrom(), req.GetTo(), req.GetFilter(), false)
	aspect := strings.TrimSpace(req.GetAspect())
	if aspect == "" {
		aspect = satisfaction.Overall
	} else if !satisfaction.ValidAspect(aspect) {
		bad.Add("aspect", satisfaction.AspectRule)
	}
	org := strings.TrimSpace(req.GetOrgUnit())
	switch {
	case len(org) > maxDimLen:
		bad.Add("org_unit", "must be at most 200 bytes")
	case org != "" && sc.Filter.OrgUnit != "" && org != sc.Filter.OrgUnit:
		bad.Add("org_unit", "must equal filter.org_unit when both are set")
	case org != "":
		sc.Filter.OrgUnit = org
	}
	if err := bad.Err(); err != nil {
		return nil, err
	}
	sat, err := s.App.Satisfaction(ctx, sc, aspect)
	if err != nil {
		return nil, statusOf(err)
	}
	one := sat.Aspect
	resp := &analyticsv1.GetSatisfactionResponse{Aspect: aspect,
		Satisfied: one.Satisfied, FairlySatisfied: one.FairlySatisfied, Unsatisfied: one.Unsatisfied, Returned: one.Rate.Den,
		Rate: one.Rate.Value(), Target: one.Rate.Target(), MeetsTarget: one.Rate.MeetsTarget(),
		Rated: one.Votes.Rated(), RatedRate: ratio(one.RatedRate)}
	for _, a := range sat.Aspects {
		resp.Aspects = append(resp.Aspects, &analyticsv1.AspectSatisfaction{Aspect: a.Aspect, Satisfied: a.Satisfied, FairlySatisfied: a.FairlySatisfied, Unsatisfied: a.Unsatisfied, Rate: ratio(a.Rate), RatedRate: ratio(a.RatedRate)})
	}
	n := sat.NPS
	resp.Nps = &analyticsv1.Nps{Promoters: n.Promoters, Passives: n.Passives, Detractors: n.Detractors, Answered: n.Answered(), Score: n.Score()}
	return resp, nil
}

// GetCoverage returns coverage (per service, and per customer for one
// calendar month or year), response rate, unreachable rate and contact success.
func (s *Server) GetCoverage(ctx context.Context, req *analyticsv1.GetCoverageRequest) (*analyticsv1.GetCoverageResponse, error) {
	sc, err := scopeOf(req.GetTenantId(), req.GetFrom(), req.GetTo(), req.GetFilter())
	if err != nil {
		return nil, err
	}
	c, err := s.App.Coverage(ctx, sc)
	if err != nil {
		return nil, statusOf(err)
	}
	resp := &analyticsv1.GetCoverageResponse{
		Coverage: ratio(c.Coverage), VisitCompletion: ratio(c.VisitCompletion), ResponseRate: ratio(c.ResponseRate), UnreachableRate: ratio(c.UnreachableRate),
		ContactSuccess: ratio(c.ContactSuccess), WonBack: c.WonBack, Services: c.Services,
	}
	if c.HasCustomerCoverage {
		resp.CustomerCoverage = ratio(c.CustomerCoverage)
	}
	return resp, nil
}

// GetTimeliness returns the policy-deadline and 48-hour timeliness.
func (s *Server) GetTimeliness(ctx context.Context, req *analyticsv1.GetTimelinessRequest) (*analyticsv1.GetTimelinessResponse, error) {
	sc, err := scopeOf(req.GetTenantId(), req.GetFrom(), req.GetTo(), req.GetFilter())
	if err != nil {
		return nil, err
	}
	tm, err := s.App.Timeliness(ctx, sc)
	if err != nil {
		return nil, statusOf(err)
	}
	return &analyticsv1.GetTimelinessResponse{PolicyDeadline: ratio(tm.PolicyDeadline), Within_48H: ratio(tm.Within48h), Late: ratio(tm.Late)}, nil
}

// GetAgentScorecards returns the agents' scorecards and the incentive ledger.
func (s *Server) GetAgentScorecards(ctx context.Context, req *analyticsv1.GetAgentScorecardsRequest) (*analyticsv1.GetAgentScorecardsResponse, error) {
	sc, err := scopeOf(req.GetTenantId(), req.GetFrom(), req.GetTo(), req.GetFilter())
	if err != nil {
		return nil, err
	}
	cards, err := s.App.Scorecards(ctx, sc)
	if err != nil {
		return nil, statusOf(err)
	}
	resp := &analyticsv1.GetAgentScorecardsResponse{Rule: ruleMsg(cards.Rule)}
	for _, c := range cards.Cards {
		resp.Scorecards = append(resp.Scorecards, &analyticsv1.AgentScorecard{
			AgentId: c.AgentID, Due: c.Due, Done: c.Done, Timeliness: ratio(c.Timeliness), ContactSuccess: ratio(c.ContactSuccess),
			Satisfaction: ratio(c.Satisfaction), Reviews: c.Reviews, ReviewScore: c.ReviewScore, IncentiveFen: c.IncentiveFen,
		})
	}
	for _, l := range cards.Ledger {
		resp.Incentives = append(resp.Incentives, &analyticsv1.IncentiveLine{Role: l.Role, Who: l.Who, OnTime: l.OnTime, MissedOrLate: l.Missed, AmountFen: l.AmountFen, Explanation: l.Explanation})
	}
	return resp, nil
}

func ruleMsg(r figures.IncentiveRule) *analyticsv1.IncentiveRule {
	return &analyticsv1.IncentiveRule{
		AgentRewardFen: r.AgentRewardFen, AgentPenaltyFen: r.AgentPenaltyFen, ManagerRewardFen: r.ManagerRewardFen,
		ManagerPenaltyFen: r.ManagerPenaltyFen, DirectorRewardFen: r.DirectorRewardFen, DirectorPenaltyFen: r.DirectorPenaltyFen,
	}
}

// GetTrend returns one figure per period.
func (s *Server) GetTrend(ctx context.Context, req *analyticsv1.GetTrendRequest) (*analyticsv1.GetTrendResponse, error) {
	var bad invalid.List
	sc := scope(&bad, req.GetTenantId(), req.GetFrom(), req.GetTo(), req.GetFilter(), true)
	figure := strings.TrimSpace(req.GetFigure())
	if !figures.Trendable(figure) {
		bad.Add("figure", figures.TrendableRule)
	}
	g := figures.Day
	switch req.GetGranularity() {
	case analyticsv1.Granularity_GRANULARITY_UNSPECIFIED, analyticsv1.Granularity_GRANULARITY_DAY:
	case analyticsv1.Granularity_GRANULARITY_WEEK:
		g = figures.Week
	case analyticsv1.Granularity_GRANULARITY_MONTH:
		g = figures.Month
	}
	if err := bad.Err(); err != nil {
		return nil, err
	}
	pts, err := s.App.Trend(ctx, sc, figure, g)
	if err != nil {
		return nil, statusOf(err)
	}
	resp := &analyticsv1.GetTrendResponse{}
	for _, p := range pts {
		resp.Points = append(resp.Points, &analyticsv1.TrendPoint{Start: timestamppb.New(p.Start), End: timestamppb.New(p.End), Value: ratio(p.Ratio)})
	}
	return resp, nil
}

// GetProblemBreakdown returns problems by category and product and complaint resolution.
func (s *Server) GetProblemBreakdown(ctx context.Context, req *analyticsv1.GetProblemBreakdownRequest) (*analyticsv1.GetProblemBreakdownResponse, error) {
	sc, err := scopeOf(req.GetTenantId(), req.GetFrom(), req.GetTo(), req.GetFilter())
	if err != nil {
		return nil, err
	}
	p, err := s.App.Problems(ctx, sc)
	if err != nil {
		return nil, statusOf(err)
	}
	resp := &analyticsv1.GetProblemBreakdownResponse{
		ResolutionRate: ratio(p.Resolution), Improvement: ratio(p.Improvement), MeanResolutionHours: p.MeanResolutionHours, Closed: p.Closed,
		Acknowledged: p.Acknowledged, MeanAcknowledgeHours: p.MeanAcknowledgeHours,
	}
	for _, c := range p.Counts {
		resp.Problems = append(resp.Problems, &analyticsv1.ProblemCount{Category: c.Category, ProductCategory: c.ProductCategory, Count: c.Count})
	}
	for _, pr := range p.Products {
		resp.Products = append(resp.Products, &analyticsv1.ProductProblems{ProductCategory: pr.Category, ComplaintRate: ratio(pr.Rate), PeersRate: ratio(pr.Peers), Flagged: pr.Flagged})
	}
	for _, n := range p.NoShows {
		resp.NoShows = append(resp.NoShows, &analyticsv1.NoShowCount{Reason: n.Reason, Count: n.Count})
	}
	return resp, nil
}

// GenerateReport renders the report of a period and org unit.
func (s *Server) GenerateReport(ctx context.Context, req *analyticsv1.GenerateReportRequest) (*analyticsv1.GenerateReportResponse, error) {
	var bad invalid.List
	sc := scope(&bad, req.GetTenantId(), req.GetFrom(), req.GetTo(), &analyticsv1.Filter{OrgUnit: req.GetOrgUnit()}, true)
	if sc.From.Equal(sc.To) && !sc.From.IsZero() {
		bad.Add("to", "must be after from")
	}
	// previous_periods is 0 to 24 and format a known one: analytics.proto's rules.
	prev := int(req.GetPreviousPeriods())
	if prev == 0 {
		prev = 5
	}
	if err := bad.Err(); err != nil {
		return nil, err
	}
	format := "html"
	if req.GetFormat() == analyticsv1.ReportFormat_REPORT_FORMAT_CSV {
		format = "csv"
	}
	r, err := s.App.Report(ctx, app.ReportOf{Tenant: sc.Tenant, OrgUnit: sc.Filter.OrgUnit, From: sc.From, To: sc.To, Previous: prev, Format: format})
	if err != nil {
		return nil, statusOf(err)
	}
	if req.GetFormat() == analyticsv1.ReportFormat_REPORT_FORMAT_CSV {
		b, err := r.CSV()
		if err != nil {
			return nil, statusOf(err)
		}
		return &analyticsv1.GenerateReportResponse{ContentType: "text/csv; charset=utf-8", Filename: r.Name() + ".csv", Content: b}, nil
	}
	b, err := r.HTML()
	if err != nil {
		return nil, statusOf(err)
	}
	return &analyticsv1.GenerateReportResponse{ContentType: "text/html; charset=utf-8", Filename: r.Name() + ".html", Content: b}, nil
}

// GenerateRoundReport renders the written report of one round of delivery
// confirmations (seed 000, cement logistics).
func (s *Server) GenerateRoundReport(ctx context.Context, req *analyticsv1.GenerateRoundReportRequest) (*analyticsv1.GenerateRoundReportResponse, error) {
	var bad invalid.List
	tn := tenant.Parse(&bad, "tenant_id", req.GetTenantId())
	// policy_id and day_start are required and format a known one:
	// analytics.proto's rules.
	var start time.Time
	if ts := req.GetDayStart(); ts.CheckValid() != nil {
		bad.Add("day_start", "must be a valid timestamp")
	} else {
		start = ts.AsTime().UTC()
	}
	format := "html"
	if req.GetFormat() == analyticsv1.ReportFormat_REPORT_FORMAT_CSV {
		format = "csv"
	}
	if err := bad.Err(); err != nil {
		return nil, err
	}
	r, err := s.App.RoundReport(ctx, app.RoundOf{Tenant: tn, OrgUnit: req.GetOrgUnit(), PolicyID: req.GetPolicyId(), DayStart: start, Format: format})
	if err != nil {
		return nil, statusOf(err)
	}
	if format == "csv" {
		b, err := r.CSV()
		if err != nil {
			return nil, statusOf(err)
		}
		return &analyticsv1.GenerateRoundReportResponse{ContentType: "text/csv; charset=utf-8", Filename: r.Name() + ".csv", Content: b}, nil
	}
	b, err := r.HTML()
	if err != nil {
		return nil, statusOf(err)
	}
	return &analyticsv1.GenerateRoundReportResponse{ContentType: "text/html; charset=utf-8", Filename: r.Name() + ".html", Content: b}, nil
}

// SetTarget sets a tenant's target for a figure.
func (s *Server) SetTarget(ctx context.Context, req *analyticsv1.SetTargetRequest) (*analyticsv1.SetTargetResponse, error) {
	var bad invalid.List
	tn := tenant.Parse(&bad, "tenant_id", req.GetTenantId())
	f := strings.TrimSpace(req.GetTarget().GetFigure())
	if !figures.ValidFigure(f) {
		bad.Add("target.figure", "must be coverage, customer_coverage, visit_completion, response_rate, contact_success, timeliness, timeliness_48h, resolution_rate, improvement, satisfaction.* or satisfaction.<aspect>")
	}
	p := req.GetTarget().GetPercent() // 0 to 100: analytics.proto's rule
	if err := bad.Err(); err != nil {
		return nil, err
	}
	if err := s.App.SetTarget(ctx, tn, f, int64(p)); err != nil {
		return nil, statusOf(err)
	}
	return &analyticsv1.SetTargetResponse{Target: &analyticsv1.Target{Figure: f, Percent: p, Source: "tenant"}}, nil
}

// ListTargets returns the targets in force.
func (s *Server) ListTargets(ctx context.Context, req *analyticsv1.ListTargetsRequest) (*analyticsv1.ListTargetsResponse, error) {
	tn := tenant.Or(req.GetTenantId())
	if err := tenant.Check("tenant_id", tn); err != nil {
		return nil, err
	}
	t, err := s.App.Targets(ctx, tn)
	if err != nil {
		return nil, statusOf(err)
	}
	resp := &analyticsv1.ListTargetsResponse{}
	for _, x := range t.All() {
		resp.Targets = append(resp.Targets, &analyticsv1.Target{Figure: x.Figure, Percent: int32(x.Percent), Source: x.Source})
	}
	return resp, nil
}

func breachMsg(b figures.Breach) *analyticsv1.Breach {
	return &analyticsv1.Breach{Id: b.ID, TenantId: b.Tenant, Figure: b.Figure, OrgUnit: b.OrgUnit, PeriodStart: timestamppb.New(b.PeriodStart),
		PeriodEnd: timestamppb.New(b.PeriodEnd), Value: b.Value, Target: b.Target, DetectedAt: timestamppb.New(b.DetectedAt)}
}

// ListBreaches lists breaches newest first.
func (s *Server) ListBreaches(ctx context.Context, req *analyticsv1.ListBreachesRequest) (*analyticsv1.ListBreachesResponse, error) {
	tn := tenant.Or(req.GetTenantId())
	if err := tenant.Check("tenant_id", tn); err != nil {
		return nil, err
	}
	size, err := page.Size(req.GetPageSize())
	if err != nil {
		return nil, err
	}
	var cur *app.BreachCursor
	if req.GetPageToken() != "" {
		cur = &app.BreachCursor{}
		if err := page.Cursor(req.GetPageToken(), cur); err != nil {
			return nil, err
		}
	}
	bs, err := s.App.ListBreaches(ctx, tn, cur, size+1)
	if err != nil {
		return nil, statusOf(err)
	}
	resp := &analyticsv1.ListBreachesResponse{}
	bs, resp.NextPageToken = page.Trim(bs, size, func(last figures.Breach) any { return app.CursorOf(last) })
	for _, b := range bs {
		resp.Breaches = append(resp.Breaches, breachMsg(b))
	}
	return resp, nil
}

// CheckTargets evaluates the targets now (or as of as_of).
func (s *Server) CheckTargets(ctx context.Context, req *analyticsv1.CheckTargetsRequest) (*analyticsv1.CheckTargetsResponse, error) {
	var bad invalid.List
	tn := tenant.Parse(&bad, "tenant_id", req.GetTenantId())
	var asOf time.Time // now
	if ts := req.GetAsOf(); ts != nil {
		if ts.CheckValid() != nil {
			bad.Add("as_of", "must be a valid timestamp")
		} else {
			asOf = ts.AsTime()
		}
	}
	if err := bad.Err(); err != nil {
		return nil, err
	}
	bs, err := s.App.CheckTargets(ctx, tn, asOf)
	if err != nil {
		return nil, statusOf(err)
	}
	resp := &analyticsv1.CheckTargetsResponse{}
	for _, b := range bs {
		resp.NewBreaches = append(resp.NewBreaches, breachMsg(b))
	}
	return resp, nil
}

// SetIncentiveRule sets the tenant's incentive rule.
func (s *Server) SetIncentiveRule(ctx context.Context, req *analyticsv1.SetIncentiveRuleRequest) (*analyticsv1.SetIncentiveRuleResponse, error) {
	var bad invalid.List
	tn := tenant.Parse(&bad, "tenant_id", req.GetTenantId())
	r := req.GetRule() // required, each amount 0 to 100000000 fen: analytics.proto's rules
	if err := bad.Err(); err != nil {
		return nil, err
	}
	rule := figures.IncentiveRule{
		AgentRewardFen: r.GetAgentRewardFen(), AgentPenaltyFen: r.GetAgentPenaltyFen(), ManagerRewardFen: r.GetManagerRewardFen(),
		ManagerPenaltyFen: r.GetManagerPenaltyFen(), DirectorRewardFen: r.GetDirectorRewardFen(), DirectorPenaltyFen: r.GetDirectorPenaltyFen(),
	}
	if err := s.App.SetIncentiveRule(ctx, tn, rule); err != nil {
		return nil, statusOf(err)
	}
	return &analyticsv1.SetIncentiveRuleResponse{Rule: ruleMsg(rule)}, nil
}

// Rebuild replays the stream into new rollup tables and swaps them in.
func (s *Server) Rebuild(ctx context.Context, _ *analyticsv1.RebuildRequest) (*analyticsv1.RebuildResponse, error) {
	seq, err := s.App.Rebuild(ctx)
	if err != nil {
		return nil, statusOf(err)
	}
	return &analyticsv1.RebuildResponse{StreamLastSequence: seq}, nil
}
