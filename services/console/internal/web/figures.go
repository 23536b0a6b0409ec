package web

import (
	"net/http"
	"slices"
	"strings"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

	analyticsv1 "github.com/huifang/huifang/proto/huifang/analytics/v1"
)

// figuresRoutes are the dashboards (coverage, timeliness, satisfaction per
// aspect, trends with the targets) and the monthly report.
func (s *Server) figuresRoutes() {
	s.mux.HandleFunc("GET /figures", s.page(s.figuresPage))
	s.mux.HandleFunc("GET /reports/monthly", s.page(s.reportPage))
	s.mux.HandleFunc("GET /reports/monthly.csv", s.page(s.reportCSV))
	s.mux.HandleFunc("GET /reports/monthly.html", s.page(s.reportHTML))
}

// figuresPeriods are the periods the dashboard offers, in days back from
// the end of today (UTC: analytics keeps its figures per whole UTC day).
var figuresPeriods = []struct {
	Key  string
	Days int
}{{"7d", 7}, {"30d", 30}, {"90d", 90}}

// figuresTrends are the figures the dashboard draws a trend of.
var figuresTrends = []string{"satisfaction.overall", "coverage", "timeliness_48h", "response_rate"}

// figuresScope is what the dashboard and the report are about: a period
// of whole UTC days and an org unit ("" for all, which a leader may not
// ask: it names one it leads).
type figuresScope struct {
	Period   string
	From, To time.Time
	OrgUnit  string
	// Units are the org units to choose from (the user's); AllUnits
	// whether "all" is a choice (not for a leader).
	Units    []string
	AllUnits bool
}

// figuresScopeOf reads ?org_unit= for u: a leader names one it leads (its
// first by default).
func figuresScopeOf(r *http.Request, u *User) figuresScope {
	sc := figuresScope{OrgUnit: strings.TrimSpace(r.URL.Query().Get("org_unit")), Units: u.OrgUnits, AllUnits: u.Is("director", "tenant_admin")}
	if !sc.AllUnits && sc.OrgUnit == "" && len(u.OrgUnits) > 0 {
		sc.OrgUnit = u.OrgUnits[0]
	}
	return sc
}

// figuresFigure is one ratio as the page shows it.
type figuresFigure struct {
	Key string
	R   *analyticsv1.Ratio
}

// figuresTrend is one trend chart.
type figuresTrend struct {
	Figure string
	Chart  lineChart
}

// figuresData is the dashboard.
type figuresData struct {
	Scope      figuresScope
	Periods    []string
	Coverage   []figuresFigure
	Timeliness []figuresFigure
	Sat        *analyticsv1.GetSatisfactionResponse
	Trends     []figuresTrend
	Targets    []*analyticsv1.Target
	Aspect     string
}

// figuresPage shows coverage, timeliness and satisfaction per aspect of a
// period, and the trends with their targets.
func (s *Server) figuresPage(w http.ResponseWriter, r *http.Request, u *User) {
	q := r.URL.Query()
	d := &figuresData{Scope: figuresScopeOf(r, u), Aspect: strings.TrimSpace(q.Get("aspect"))}
	for _, p := range figuresPeriods {
		d.Periods = append(d.Periods, p.Key)
	}
	d.Scope.Period = "30d"
	days := 30
	for _, p := range figuresPeriods {
		if p.Key == q.Get("period") {
			d.Scope.Period, days = p.Key, p.Days
		}
	}
	today := s.now().UTC().Truncate(24 * time.Hour)
	d.Scope.To = today.AddDate(0, 0, 1)
	d.Scope.From = d.Scope.To.AddDate(0, 0, -days)
	if !u.Is("leader", "director") {
		s.fail(w, r, u, "figures", d, status.Error(codes.PermissionDenied, s.figuresText(r, u, "figures.forbidden")))
		return
	}
	ctx := r.Context()
	from, to := timestamppb.New(d.Scope.From), timestamppb.New(d.Scope.To)
	filter := &analyticsv1.Filter{OrgUnit: d.Scope.OrgUnit}
	sat, err := s.api.Analytics.GetSatisfaction(ctx, &analyticsv1.GetSatisfactionRequest{Aspect: "overall", From: from, To: to, Filter: filter})
	if err != nil {
		s.fail(w, r, u, "figures", d, err)
		return
	}
	d.Sat = sat
	cov, err := s.api.Analytics.GetCoverage(ctx, &analyticsv1.GetCoverageRequest{From: from, To: to, Filter: filter})
	if err != nil {
		s.fail(w, r, u, "figures", d, err)
		return
	}
	for _, f := range []figuresFigure{{"coverage", cov.GetCoverage()}, {"customer_coverage", cov.GetCustomerCoverage()},
		{"visit_completion", cov.GetVisitCompletion()}, {"response_rate", cov.GetResponseRate()},
		{"unreachable_rate", cov.GetUnreachableRate()}, {"contact_success", cov.GetContactSuccess()}} {
		if f.R != nil {
			d.Coverage = append(d.Coverage, f)
		}
	}
	tim, err := s.api.Analytics.GetTimeliness(ctx, &analyticsv1.GetTimelinessRequest{From: from, To: to, Filter: filter})
	if err != nil {
		s.fail(w, r, u, "figures", d, err)
		return
	}
	for _, f := range []figuresFigure{{"timeliness", tim.GetPolicyDeadline()}, {"timeliness_48h", tim.GetWithin_48H()}, {"late", tim.GetLate()}} {
		if f.R != nil {
			d.Timeliness = append(d.Timeliness, f)
		}
	}
	// The targets' sources label the dashed lines; a caller that may not
	// read them still sees each point's target.
	if t, err := s.api.Analytics.ListTargets(ctx, &analyticsv1.ListTargetsRequest{}); err == nil {
		d.Targets = t.GetTargets()
	}
	trends := slices.Clone(figuresTrends)
	if d.Aspect != "" && d.Aspect != "overall" {
		trends = append([]string{"satisfaction." + d.Aspect}, trends...)
	}
	gran := analyticsv1.Granularity_GRANULARITY_DAY
	if days > 31 {
		gran = analyticsv1.Granularity_GRANULARITY_WEEK
	}
	for _, f := range trends {
		tr, err := s.api.Analytics.GetTrend(ctx, &analyticsv1.GetTrendRequest{Figure: f, From: from, To: to, Granularity: gran, Filter: filter})
		if err != nil {
			s.fail(w, r, u, "figures", d, err)
			return
		}
		d.Trends = append(d.Trends, figuresTrend{Figure: f, Chart: s.figuresTrendChart(r, u, f, tr.GetPoints(), d.Targets)})
	}
	s.render(w, r, u, "figures", d)
}

// figuresTrendChart draws a figure's trend with its target as a dashed line,
// labelled with the percent and where it comes from (seed 003 or the
// tenant).
func (s *Server) figuresTrendChart(r *http.Request, u *User, figure string, points []*analyticsv1.TrendPoint, targets []*analyticsv1.Target) lineChart {
	c := lineChart{ID: "trend-" + figure, Title: s.figuresText(r, u, "figures.trend.title", s.figureName(r, u, figure)), Percent: true}
	for _, p := range points {
		v := p.GetValue()
		c.Points = append(c.Points, chartPoint{
			Label:   p.GetStart().AsTime().UTC().Format("01-02"),
			Value:   v.GetValue(),
			Missing: v.GetDenominator() == 0,
			Title:   v.GetFormula(),
		})
		if v.GetHasTarget() && c.Target == nil {
			c.Target = &chartTarget{Value: v.GetTarget()}
		}
	}
	source := ""
	for _, t := range targets {
		if t.GetFigure() == figure || (t.GetFigure() == "satisfaction.*" && strings.HasPrefix(figure, "satisfaction.") && figure != "satisfaction.overall" && source == "") {
			source = t.GetSource()
			if c.Target == nil {
				c.Target = &chartTarget{Value: float64(t.GetPercent()) / 100}
			}
			if t.GetFigure() == figure {
				break
			}
		}
	}
	if c.Target != nil {
		if source != "" {
			c.Target.Label = s.figuresText(r, u, "figures.target.from", chartPercent(c.Target.Value), source)
		} else {
			c.Target.Label = s.figuresText(r, u, "figures.target", chartPercent(c.Target.Value))
		}
	}
	return c
}

// figureName is a figure's name in the user's language: the catalog's
// "figure.<name>", or "satisfaction: <aspect>" for an aspect the catalog
// does not know.
func (s *Server) figureName(r *http.Request, u *User, figure string) string {
	if n := s.figuresText(r, u, "figure."+figure); n != "figure."+figure {
		return n
	}
	if a, ok := strings.CutPrefix(figure, "satisfaction."); ok {
		return s.figuresText(r, u, "figure.satisfaction.aspect", a)
	}
	return figure
}

// figuresText is a message of the user's catalog (the key when it has none),
// formatted with args.
func (s *Server) figuresText(r *http.Request, u *User, key string, args ...any) string {
	lang := langOf("", r)
	if u != nil && u.Lang != "" {
		lang = u.Lang
	}
	return funcs(&env{cat: s.pages.catalogs[lang]})["t"].(func(string, ...any) string)(key, args...)
}
