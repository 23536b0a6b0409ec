package report

import (
	"bytes"
	"encoding/csv"
	"fmt"
	"html/template"
	"strconv"
	"strings"
	"time"

	"github.com/huifang/huifang/services/analytics/internal/figures"
	"github.com/huifang/huifang/services/analytics/internal/rollup"
)

func pct(v float64) string { return strconv.FormatFloat(v*100, 'f', 2, 64) + "%" }

func ratioRow(section string, r figures.Ratio) []string {
	target, meets := "", ""
	if r.HasTarget {
		target, meets = pct(r.Target()), strconv.FormatBool(r.MeetsTarget())
	}
	return []string{section, r.Figure, strconv.FormatInt(r.Num, 10), strconv.FormatInt(r.Den, 10), pct(r.Value()), target, meets, r.Formula()}
}

// CSV renders the report as one CSV table: section, name, numerator,
// denominator, value, target, meets target, explanation.
func (r *Report) CSV() ([]byte, error) {
	var buf bytes.Buffer
	w := csv.NewWriter(&buf)
	rows := [][]string{
		{"section", "name", "numerator", "denominator", "value", "target", "meets_target", "explanation"},
		{"report", "period", "", "", r.From.Format(time.DateOnly) + " – " + r.To.Format(time.DateOnly), "", "", "tenant " + r.Tenant + ", org unit " + orAll(r.OrgUnit)},
	}
	for _, f := range r.Figures {
		rows = append(rows, ratioRow("figure", f))
	}
	for _, a := range r.Aspects {
		rows = append(rows, ratioRow("satisfaction", a.Rate))
	}
	n := r.NPS
	rows = append(rows,
		[]string{"figure", "nps", strconv.FormatInt(n.Promoters-n.Detractors, 10), strconv.FormatInt(n.Promoters+n.Passives+n.Detractors, 10), strconv.FormatFloat(n.Score(), 'f', 2, 64), "", "", fmt.Sprintf("(promoters %d − detractors %d) / answered × 100", n.Promoters, n.Detractors)},
		[]string{"figure", "mean_resolution_hours", "", "", strconv.FormatFloat(r.MeanResolutionH, 'f', 2, 64), "", "", "mean hours from escalation to resolution"},
		[]string{"figure", "mean_acknowledge_hours", strconv.FormatInt(r.Acknowledged, 10), "", strconv.FormatFloat(r.MeanAcknowledgeH, 'f', 2, 64), "", "", "mean hours from escalation to the first acknowledgement"},
		[]string{"figure", "won_back", strconv.FormatInt(r.WonBack, 10), "", "", "", "", "customers back after 6+ months without a service (seed 000)"},
		[]string{"figure", "services", strconv.FormatInt(r.Services, 10), "", "", "", "", "services completed"},
	)
	for _, tr := range r.orderedTrend() {
		for i, x := range tr.Points {
			rows = append(rows, ratioRow("trend "+r.Periods[i].From.Format(time.DateOnly), x))
		}
	}
	for _, p := range r.Problems {
		rows = append(rows, []string{"problem", p.Category + " / " + orAll(p.ProductCategory), strconv.FormatInt(p.Count, 10), "", "", "", "", ""})
	}
	for _, p := range r.Products {
		row := ratioRow("product", p.Rate)
		row[1] = p.Category
		row[5], row[6] = "", ""
		row[7] = fmt.Sprintf("%s; peers %s; flagged %t (seed 001)", p.Rate.Formula(), p.Peers.Formula(), p.Flagged)
		rows = append(rows, row)
	}
	for _, c := range r.Overdue {
		rows = append(rows, []string{"overdue_complaint", c.ComplaintID, "", "", "", "", "", fmt.Sprintf("%s %s, escalated %s, deadline %s", c.Category, c.OrgUnit, c.EscalatedAt.Format(time.RFC3339), c.Deadline.Format(time.RFC3339))})
	}
	for _, c := range r.Churn {
		rows = append(rows, []string{"churned_customer", c.NameMasked, "", "", "", "", "", churnLine(c)})
	}
	for _, l := range r.Ledger {
		rows = append(rows, []string{"incentive " + l.Role, l.Who, strconv.FormatInt(l.OnTime, 10), strconv.FormatInt(l.OnTime+l.Missed, 10), fen(l.AmountFen), "", "", l.Explanation})
	}
	if err := w.WriteAll(rows); err != nil {
		return nil, fmt.Errorf("report: csv: %w", err)
	}
	return buf.Bytes(), nil
}

// churnLine is a churn case's columns besides the name, as the CSV
// report's explanation gives them (seed 000: model, plate, last visit,
// advisor, reason, remedy; then who called and the ids to look further).
func churnLine(c rollup.ChurnCase) string {
	return fmt.Sprintf("model %s; plate %s; last visit %s; advisor %s; reason %s; remedy %s; customer %s; agent %s; record %s; visit %s",
		dash(c.Model), dash(c.PlateMasked), dateOr(c.LastVisitAt), dash(c.Advisor), dash(c.Reason), dash(c.Remedy),
		dash(c.CustomerID), dash(c.AgentID), dash(c.RecordID), c.VisitID)
}

// dash is s, or "-" for nothing.
func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// dateOr is t's UTC date, "-" when unknown.
func dateOr(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.UTC().Format(time.DateOnly)
}

type trendRow struct {
	Figure string
	Points []figures.Ratio
}

// orderedTrend returns the trend in TrendFigures order.
func (r *Report) orderedTrend() []trendRow {
	out := make([]trendRow, 0, len(TrendFigures))
	for _, f := range TrendFigures {
		out = append(out, trendRow{Figure: f, Points: r.Trend[f]})
	}
	return out
}

func orAll(s string) string {
	if s == "" {
		return "all"
	}
	return s
}

func fen(f int64) string {
	sign := ""
	if f < 0 {
		sign, f = "-", -f
	}
	return fmt.Sprintf("%s%d.%02d", sign, f/100, f%100)
}

// chart draws one figure's trend as an SVG line chart, 0–100 %, with the
// target as a dashed line; a period with nothing in its denominator has no point.
func chart(periods []Period, points []figures.Ratio) template.HTML {
	const w, h, pad = 480, 160, 30
	var b strings.Builder
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" role="img">`, w, h, w, h)
	fmt.Fprintf(&b, `<rect x="%d" y="%d" width="%d" height="%d" fill="none" stroke="#ccc"/>`, pad, 5, w-pad-5, h-pad-5)
	y := func(v float64) float64 { return 5 + (1-v)*float64(h-pad-5) }
	x := func(i int) float64 {
		if len(points) < 2 {
			return float64(pad + (w-pad-5)/2)
		}
		return float64(pad) + float64(i)*float64(w-pad-15)/float64(len(points)-1) + 5
	}
	if len(points) > 0 && points[0].HasTarget {
		ty := y(points[0].Target())
		fmt.Fprintf(&b, `<line x1="%d" y1="%.1f" x2="%d" y2="%.1f" stroke="#c00" stroke-dasharray="4 3"/>`, pad, ty, w-5, ty)
	}
	var pts []string
	for i, p := range points {
		fmt.Fprintf(&b, `<text x="%.1f" y="%d" font-size="9" text-anchor="middle">%s</text>`, x(i), h-12, periods[i].From.Format("2006-01-02"))
		if p.Den == 0 {
			continue // nothing due: no value to draw
		}
		pts = append(pts, fmt.Sprintf("%.1f,%.1f", x(i), y(p.Value())))
		fmt.Fprintf(&b, `<circle cx="%.1f" cy="%.1f" r="3" fill="#1565c0"><title>%s: %s</title></circle>`, x(i), y(p.Value()), periods[i].From.Format(time.DateOnly), template.HTMLEscapeString(p.Formula()))
	}
	fmt.Fprintf(&b, `<polyline fill="none" stroke="#1565c0" stroke-width="2" points="%s"/>`, strings.Join(pts, " "))
	fmt.Fprintf(&b, `<text x="2" y="12" font-size="9">100%%</text><text x="2" y="%d" font-size="9">0%%</text></svg>`, h-pad)
	return template.HTML(b.String())
}

// bars draws the problem counts as a horizontal SVG bar chart.
func bars(r *Report) template.HTML {
	if len(r.Problems) == 0 {
		return ""
	}
	const w, row = 480, 18
	h := row*len(r.Problems) + 4
	maxN := r.Problems[0].Count
	var b strings.Builder
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" role="img">`, w, h)
	for i, p := range r.Problems {
		bw := float64(p.Count) / float64(max(maxN, 1)) * 250
		fmt.Fprintf(&b, `<text x="0" y="%d" font-size="11">%s</text><rect x="200" y="%d" width="%.1f" height="%d" fill="#ef6c00"/><text x="%.1f" y="%d" font-size="11">%d</text>`,
			i*row+13, template.HTMLEscapeString(p.Category+" / "+orAll(p.ProductCategory)), i*row+2, bw, row-4, 204+bw, i*row+13, p.Count)
	}
	b.WriteString(`</svg>`)
	return template.HTML(b.String())
}

var page = template.Must(template.New("report").Funcs(template.FuncMap{
	"pct": pct, "date": func(t time.Time) string { return t.Format(time.DateOnly) }, "all": orAll, "fen": fen,
	"chart": chart, "bars": bars, "rfc": func(t time.Time) string { return t.Format(time.RFC3339) }, "dateOr": dateOr,
}).Parse(`<!DOCTYPE html>
<html lang="zh-CN"><head><meta charset="utf-8"><title>回访报告 {{.R.Tenant}} {{all .R.OrgUnit}} {{date .R.From}} – {{date .R.To}}</title>
<style>body{font-family:sans-serif;margin:2em;max-width:60em}table{border-collapse:collapse;margin-bottom:1.5em}td,th{border:1px solid #ddd;padding:.25em .6em;text-align:right}td:first-child,th:first-child{text-align:left}.bad{color:#c00;font-weight:bold}.ok{color:#2e7d32}</style></head>
<body><h1>Follow-up report 回访报告</h1>
<p>Tenant <b>{{.R.Tenant}}</b>, org unit <b>{{all .R.OrgUnit}}</b>, period <b>{{date .R.From}}</b> to <b>{{date .R.To}}</b> (exclusive, UTC days).</p>
<h2>Figures against the targets (seed 003)</h2>
<table><tr><th>figure</th><th>numerator</th><th>denominator</th><th>value</th><th>target</th><th>how</th></tr>
{{range .R.Figures}}<tr><td>{{.Figure}}</td><td>{{.Num}}</td><td>{{.Den}}</td><td class="{{if .HasTarget}}{{if .MeetsTarget}}ok{{else}}bad{{end}}{{end}}">{{pct .Value}}</td><td>{{if .HasTarget}}{{pct .Target}}{{end}}</td><td>{{.Formula}}</td></tr>
{{end}}{{range .R.Aspects}}<tr><td>{{.Rate.Figure}}</td><td>{{.Rate.Num}}</td><td>{{.Rate.Den}}</td><td class="{{if .Rate.HasTarget}}{{if .Rate.MeetsTarget}}ok{{else}}bad{{end}}{{end}}">{{pct .Rate.Value}}</td><td>{{if .Rate.HasTarget}}{{pct .Rate.Target}}{{end}}</td><td>A {{.Satisfied}}, B {{.FairlySatisfied}}, C {{.Unsatisfied}}: {{.Rate.Formula}}</td></tr>
{{end}}</table>
<p>NPS {{printf "%.2f" .R.NPS.Score}} ({{.R.NPS.Promoters}} promoters, {{.R.NPS.Passives}} passives, {{.R.NPS.Detractors}} detractors). Mean resolution {{printf "%.2f" .R.MeanResolutionH}} h; {{.R.Acknowledged}} acknowledged, mean {{printf "%.2f" .R.MeanAcknowledgeH}} h after escalation. Services completed {{.R.Services}}; churned customers won back {{.R.WonBack}}.</p>
<h2>Trend</h2>
{{range .Trend}}<h3>{{.Figure}}</h3>{{chart $.R.Periods .Points}}
{{end}}
<h2>Top problems (seed 001)</h2>{{bars .R}}
<table><tr><th>product</th><th>problems</th><th>visits logged</th><th>rate</th><th>peers' rate</th><th>flagged</th></tr>
{{range .R.Products}}<tr><td>{{.Category}}</td><td>{{.Rate.Num}}</td><td>{{.Rate.Den}}</td><td>{{pct .Rate.Value}}</td><td>{{pct .Peers.Value}}</td><td class="{{if .Flagged}}bad{{end}}">{{if .Flagged}}above peers{{end}}</td></tr>
{{end}}</table>
<h2>Overdue complaints at {{date .R.To}}</h2>
<table><tr><th>complaint</th><th>category</th><th>org unit</th><th>department</th><th>escalated</th><th>deadline</th></tr>
{{range .R.Overdue}}<tr><td>{{.ComplaintID}}</td><td>{{.Category}}</td><td>{{.OrgUnit}}</td><td>{{.Department}}</td><td>{{rfc .EscalatedAt}}</td><td>{{rfc .Deadline}}</td></tr>
{{end}}</table>
<h2>Churned customers 流失客户分析 (seed 000)</h2>
<p>The churn calls due in the period (no maintenance or repair for 6 months or more), longest absent first. Names and plates are masked; a person allowed to reveal contacts opens a name with intake's RevealContact for the customer id.</p>
<table><tr><th>name 姓名</th><th>model 车型</th><th>plate 车牌</th><th>last visit 最后进厂</th><th>advisor 服务顾问</th><th>reason 流失原因</th><th>remedy 挽回措施</th><th>customer</th><th>agent</th></tr>
{{range .R.Churn}}<tr><td>{{.NameMasked}}</td><td>{{.Model}}</td><td>{{.PlateMasked}}</td><td>{{dateOr .LastVisitAt}}</td><td>{{.Advisor}}</td><td>{{.Reason}}</td><td>{{.Remedy}}</td><td>{{.CustomerID}}</td><td>{{.AgentID}}</td></tr>
{{end}}</table>
<h2>Agents (seed 004) and incentives (seed 000)</h2>
<table><tr><th>agent</th><th>due</th><th>done</th><th>timeliness</th><th>contact success</th><th>satisfaction</th><th>QA reviews</th><th>QA score</th><th>incentive (yuan)</th></tr>
{{range .R.Agents}}<tr><td>{{all .AgentID}}</td><td>{{.Due}}</td><td>{{.Done}}</td><td>{{pct .Timeliness.Value}}</td><td>{{pct .ContactSuccess.Value}}</td><td>{{pct .Satisfaction.Value}}</td><td>{{.Reviews}}</td><td>{{printf "%.1f" .ReviewScore}}</td><td>{{fen .IncentiveFen}}</td></tr>
{{end}}</table>
<table><tr><th>role</th><th>who</th><th>in time</th><th>late or missed</th><th>amount (yuan)</th><th>how</th></tr>
{{range .R.Ledger}}<tr><td>{{.Role}}</td><td>{{.Who}}</td><td>{{.OnTime}}</td><td>{{.Missed}}</td><td>{{fen .AmountFen}}</td><td>{{.Explanation}}</td></tr>
{{end}}</table>
</body></html>
`))

// HTML renders the report as one self-contained HTML page with SVG charts.
func (r *Report) HTML() ([]byte, error) {
	var buf bytes.Buffer
	if err := page.Execute(&buf, struct {
		R     *Report
		Trend []trendRow
	}{R: r, Trend: r.orderedTrend()}); err != nil {
		return nil, fmt.Errorf("report: html: %w", err)
	}
	return buf.Bytes(), nil
}
