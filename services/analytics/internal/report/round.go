package report

import (
	"bytes"
	"cmp"
	"encoding/csv"
	"fmt"
	"html/template"
	"slices"
	"strconv"
	"time"

	"github.com/huifang/huifang/services/analytics/internal/rollup"
)

// MaxRound bounds the deliveries a round report lists.
const MaxRound = 2000

// Round is the written report of one round of delivery confirmations
// (seed 000, cement logistics: 每轮回访后书面报告总经理): the deliveries of
// one policy due in one day, for the general manager.
type Round struct {
	Tenant, OrgUnit, PolicyID string
	// From is the start of the round's day; To is 24 hours later.
	From, To time.Time
	// Visits are the round's deliveries, by due time.
	Visits []rollup.RoundVisit
}

// RoundCounts are the round's totals.
type RoundCounts struct {
	Due, Reached, Confirmed, Mismatches, Unconfirmed, Unreachable, NotMade int
}

// Caller is one agent's calls in the round: Due is how many deliveries
// were the agent's.
type Caller struct {
	AgentID string
	RoundCounts
}

// add counts v.
func (c *RoundCounts) add(v rollup.RoundVisit) {
	c.Due++
	if v.Reached() {
		c.Reached++
	}
	switch v.Status() {
	case rollup.RoundConfirmed:
		c.Confirmed++
	case rollup.RoundMismatch:
		c.Mismatches++
	case rollup.RoundUnconfirmed:
		c.Unconfirmed++
	case rollup.RoundUnreachable:
		c.Unreachable++
	case rollup.RoundNotMade:
		c.NotMade++
	}
}

// Counts are the round's totals: due, reached (a record was logged),
// confirmed, mismatches, reached without both answers, unreachable and
// not made.
func (r *Round) Counts() RoundCounts {
	var c RoundCounts
	for _, v := range r.Visits {
		c.add(v)
	}
	return c
}

// Of returns the round's deliveries of these statuses, in due order.
func (r *Round) Of(statuses ...string) []rollup.RoundVisit {
	var out []rollup.RoundVisit
	for _, v := range r.Visits {
		if slices.Contains(statuses, v.Status()) {
			out = append(out, v)
		}
	}
	return out
}

// Callers are who called: per agent (the one the visit is assigned to or
// who logged it; "" for none), the deliveries and what came of them, by agent.
func (r *Round) Callers() []Caller {
	by := map[string]*Caller{}
	for _, v := range r.Visits {
		c := by[v.AgentID]
		if c == nil {
			c = &Caller{AgentID: v.AgentID}
			by[v.AgentID] = c
		}
		c.add(v)
	}
	out := make([]Caller, 0, len(by))
	for _, c := range by {
		out = append(out, *c)
	}
	slices.SortFunc(out, func(a, b Caller) int { return cmp.Compare(a.AgentID, b.AgentID) })
	return out
}

// Name is the round report's file name without extension.
func (r *Round) Name() string {
	return fmt.Sprintf("huifang-round-%s-%s-%s-%s", r.Tenant, orAll(r.OrgUnit), r.PolicyID, r.From.UTC().Format("20060102T1504Z"))
}

// answer is a yes/no answer as the report shows it.
func answer(b *bool) string {
	switch {
	case b == nil:
		return "-"
	case *b:
		return "yes"
	}
	return "no"
}

// CSV renders the round report as one CSV table: section, name (masked),
// status, delivery (service id), product matches, quantity matches,
// complaint, complaint state, agent, visit; the summary and the callers
// use the first columns.
func (r *Round) CSV() ([]byte, error) {
	var buf bytes.Buffer
	w := csv.NewWriter(&buf)
	c := r.Counts()
	rows := [][]string{
		{"section", "name", "status", "delivery", "product_matches", "quantity_matches", "complaint", "complaint_state", "agent", "visit"},
		{"round", r.PolicyID, r.From.Format(time.RFC3339) + " – " + r.To.Format(time.RFC3339), "", "", "", "", "", "", "tenant " + r.Tenant + ", org unit " + orAll(r.OrgUnit)},
	}
	for _, x := range []struct {
		name string
		n    int
	}{{"due", c.Due}, {"reached", c.Reached}, {"confirmed", c.Confirmed}, {"mismatches", c.Mismatches}, {"unconfirmed", c.Unconfirmed}, {"unreachable", c.Unreachable}, {"not_made", c.NotMade}} {
		rows = append(rows, []string{"count", x.name, strconv.Itoa(x.n), "", "", "", "", "", "", ""})
	}
	for _, v := range r.Visits {
		rows = append(rows, []string{"delivery", v.NameMasked, v.Status(), v.ServiceID, answer(v.ProductMatches), answer(v.QuantityMatches), v.ComplaintID, v.ComplaintState, v.AgentID, v.VisitID})
	}
	for _, k := range r.Callers() {
		rows = append(rows, []string{"caller", dash(k.AgentID), fmt.Sprintf("assigned %d; reached %d; confirmed %d; mismatches %d", k.Due, k.Reached, k.Confirmed, k.Mismatches), "", "", "", "", "", k.AgentID, ""})
	}
	if err := w.WriteAll(rows); err != nil {
		return nil, fmt.Errorf("report: round csv: %w", err)
	}
	return buf.Bytes(), nil
}

var roundPage = template.Must(template.New("round").Funcs(template.FuncMap{
	"all": orAll, "dash": dash, "answer": answer, "rfc": func(t time.Time) string { return t.Format(time.RFC3339) },
}).Parse(`<!DOCTYPE html>
<html lang="zh-CN"><head><meta charset="utf-8"><title>回访书面报告 {{.R.Tenant}} {{all .R.OrgUnit}} {{rfc .R.From}}</title>
<style>body{font-family:sans-serif;margin:2em;max-width:60em}table{border-collapse:collapse;margin-bottom:1.5em}td,th{border:1px solid #ddd;padding:.25em .6em;text-align:left}.bad{color:#c00;font-weight:bold}.ok{color:#2e7d32}</style></head>
<body><h1>Delivery confirmation round 送货回访书面报告</h1>
<p>To the general manager 总经理. Tenant <b>{{.R.Tenant}}</b>, org unit <b>{{all .R.OrgUnit}}</b>, policy <b>{{.R.PolicyID}}</b>, the calls due from <b>{{rfc .R.From}}</b> to <b>{{rfc .R.To}}</b> (the previous day's deliveries). Names are masked; complaint states are as of this report.</p>
<table><tr><th>deliveries to confirm</th><th>reached</th><th>confirmed</th><th>mismatches</th><th>reached, not answered</th><th>unreachable</th><th>not made</th></tr>
<tr><td>{{.C.Due}}</td><td>{{.C.Reached}}</td><td class="ok">{{.C.Confirmed}}</td><td class="{{if .C.Mismatches}}bad{{end}}">{{.C.Mismatches}}</td><td>{{.C.Unconfirmed}}</td><td>{{.C.Unreachable}}</td><td>{{.C.NotMade}}</td></tr></table>
<h2>Mismatches 品种或数量不符</h2>
<table><tr><th>name 客户</th><th>delivery 送货单</th><th>product 品种</th><th>quantity 数量</th><th>complaint</th><th>state</th><th>agent</th></tr>
{{range .Mismatches}}<tr><td>{{.NameMasked}}</td><td>{{.ServiceID}}</td><td class="{{if eq (answer .ProductMatches) "no"}}bad{{end}}">{{answer .ProductMatches}}</td><td class="{{if eq (answer .QuantityMatches) "no"}}bad{{end}}">{{answer .QuantityMatches}}</td><td>{{dash .ComplaintID}}</td><td>{{dash .ComplaintState}}</td><td>{{dash .AgentID}}</td></tr>
{{end}}</table>
<h2>Not reached 未回访</h2>
<table><tr><th>name 客户</th><th>delivery 送货单</th><th>status</th><th>attempted</th><th>agent</th></tr>
{{range .NotReached}}<tr><td>{{.NameMasked}}</td><td>{{.ServiceID}}</td><td>{{.Status}}</td><td>{{if .Attempted}}yes{{else}}no{{end}}</td><td>{{dash .AgentID}}</td></tr>
{{end}}</table>
<h2>Who called 回访人</h2>
<table><tr><th>agent</th><th>deliveries</th><th>reached</th><th>confirmed</th><th>mismatches</th></tr>
{{range .Callers}}<tr><td>{{dash .AgentID}}</td><td>{{.Due}}</td><td>{{.Reached}}</td><td>{{.Confirmed}}</td><td>{{.Mismatches}}</td></tr>
{{end}}</table>
<h2>All deliveries 全部送货</h2>
<table><tr><th>name 客户</th><th>delivery 送货单</th><th>status</th><th>product</th><th>quantity</th><th>agent</th><th>visit</th></tr>
{{range .R.Visits}}<tr><td>{{.NameMasked}}</td><td>{{.ServiceID}}</td><td>{{.Status}}</td><td>{{answer .ProductMatches}}</td><td>{{answer .QuantityMatches}}</td><td>{{dash .AgentID}}</td><td>{{.VisitID}}</td></tr>
{{end}}</table>
</body></html>
`))

// HTML renders the round report as one self-contained HTML page.
func (r *Round) HTML() ([]byte, error) {
	var buf bytes.Buffer
	if err := roundPage.Execute(&buf, struct {
		R          *Round
		C          RoundCounts
		Mismatches []rollup.RoundVisit
		NotReached []rollup.RoundVisit
		Callers    []Caller
	}{R: r, C: r.Counts(), Mismatches: r.Of(rollup.RoundMismatch), NotReached: r.Of(rollup.RoundUnreachable, rollup.RoundNotMade), Callers: r.Callers()}); err != nil {
		return nil, fmt.Errorf("report: round html: %w", err)
	}
	return buf.Bytes(), nil
}
