package web

import (
	"fmt"
	"html/template"
	"math"
	"strconv"
	"strings"
)

// The console's charts are drawn on the server as SVG: attributes only (the
// Content-Security-Policy allows no inline style), every number rounded to
// one decimal so that the same data draws the same bytes, and the values
// repeated in <title> elements for a screen reader and a hover.

// chartPoint is one value of a chart: a period of a trend or a bar.
type chartPoint struct {
	// Label names the point on the x axis (a day, a group).
	Label string
	// Value is the point's value (0–1 for a percent chart).
	Value float64
	// Missing leaves the point out (nothing in its denominator).
	Missing bool
	// Title is the point's tooltip, e.g. the figure's formula.
	Title string
}

// chartTarget is a horizontal dashed line with its label.
type chartTarget struct {
	Value float64
	Label string
}

// lineChart is a trend: points joined by a line over y from 0 to 100 %
// (Percent) or to the largest value, with an optional target.
type lineChart struct {
	// ID is the chart's data-testid; Title its accessible name.
	ID, Title string
	Points    []chartPoint
	Percent   bool
	Target    *chartTarget
}

// barChart is a column per point (a day's or a group's load).
type barChart struct {
	ID, Title string
	Bars      []chartPoint
}

// The drawing area of both kinds of chart, in SVG units.
const (
	chartW, chartH                                 = 640, 240
	chartLeft, chartRight, chartTop, chartBottom   = 48, 16, 14, 40
	chartPlotW, chartPlotH                         = chartW - chartLeft - chartRight, chartH - chartTop - chartBottom
	chartFont                                      = "11"
	chartLineColour, chartTargetColour, chartAxisC = "#0b5fae", "#b3261e", "#5b6676"
)

// chartNum writes v with at most one decimal, the same for the same v.
func chartNum(v float64) string {
	return strconv.FormatFloat(math.Round(v*10)/10, 'f', -1, 64)
}

func chartEsc(s string) string { return template.HTMLEscapeString(s) }

// chartPercent writes a fraction as a percent without needless decimals.
func chartPercent(v float64) string {
	return strconv.FormatFloat(math.Round(v*1000)/10, 'f', -1, 64) + "%"
}

// chartNiceMax is the top of a count axis: max rounded up to 1, 2 or 5 × 10^n
// (at least 1), so the four grid lines fall on round numbers.
func chartNiceMax(max float64) float64 {
	if max <= 1 {
		return 1
	}
	p := math.Pow(10, math.Floor(math.Log10(max)))
	for _, m := range []float64{1, 2, 2.5, 5, 10} {
		if m*p >= max {
			return m * p
		}
	}
	return 10 * p
}

// chartAxes writes the frame, the horizontal grid lines and their labels for y
// from 0 to top.
func chartAxes(b *strings.Builder, top float64, percent bool) {
	for i := 0; i <= 4; i++ {
		v := top * float64(i) / 4
		y := float64(chartTop) + float64(chartPlotH)*(1-float64(i)/4)
		label := chartNum(v)
		if percent {
			label = chartPercent(v)
		}
		fmt.Fprintf(b, `<line x1="%d" y1="%s" x2="%d" y2="%s" stroke="#d9dee5" stroke-width="1"/>`, chartLeft, chartNum(y), chartW-chartRight, chartNum(y))
		fmt.Fprintf(b, `<text x="%d" y="%s" font-size="%s" text-anchor="end" fill="%s">%s</text>`, chartLeft-6, chartNum(y+4), chartFont, chartAxisC, chartEsc(label))
	}
	fmt.Fprintf(b, `<line x1="%d" y1="%d" x2="%d" y2="%d" stroke="%s" stroke-width="1"/>`, chartLeft, chartTop, chartLeft, chartTop+chartPlotH, chartAxisC)
	fmt.Fprintf(b, `<line x1="%d" y1="%d" x2="%d" y2="%d" stroke="%s" stroke-width="1"/>`, chartLeft, chartTop+chartPlotH, chartW-chartRight, chartTop+chartPlotH, chartAxisC)
}

// chartXLabels writes the labels under the x axis, every step-th one so that
// they do not overlap (about 10 at most).
func chartXLabels(b *strings.Builder, labels []string, x func(int) float64) {
	step := (len(labels) + 9) / 10
	if step < 1 {
		step = 1
	}
	for i, l := range labels {
		if i%step != 0 && i != len(labels)-1 {
			continue
		}
		fmt.Fprintf(b, `<text x="%s" y="%d" font-size="%s" text-anchor="middle" fill="%s">%s</text>`, chartNum(x(i)), chartTop+chartPlotH+16, chartFont, chartAxisC, chartEsc(l))
	}
}

func chartOpen(b *strings.Builder, id, title string) {
	fmt.Fprintf(b, `<svg xmlns="http://www.w3.org/2000/svg" class="chart" viewBox="0 0 %d %d" width="%d" height="%d" role="img" aria-label="%s" data-testid="%s">`,
		chartW, chartH, chartW, chartH, chartEsc(title), chartEsc(id))
	fmt.Fprintf(b, `<title>%s</title>`, chartEsc(title))
}

// SVG draws the trend.
func (c lineChart) SVG() template.HTML {
	var b strings.Builder
	chartOpen(&b, c.ID, c.Title)
	top := 1.0
	if !c.Percent {
		m := 0.0
		for _, p := range c.Points {
			if !p.Missing {
				m = math.Max(m, p.Value)
			}
		}
		if c.Target != nil {
			m = math.Max(m, c.Target.Value)
		}
		top = chartNiceMax(m)
	}
	chartAxes(&b, top, c.Percent)
	x := func(i int) float64 {
		if len(c.Points) < 2 {
			return chartLeft + chartPlotW/2
		}
		return chartLeft + 10 + float64(i)*float64(chartPlotW-20)/float64(len(c.Points)-1)
	}
	y := func(v float64) float64 {
		v = math.Max(0, math.Min(v, top))
		return chartTop + float64(chartPlotH)*(1-v/top)
	}
	labels := make([]string, len(c.Points))
	for i, p := range c.Points {
		labels[i] = p.Label
	}
	chartXLabels(&b, labels, x)
	if t := c.Target; t != nil {
		ty := chartNum(y(t.Value))
		fmt.Fprintf(&b, `<line data-testid="target-line" x1="%d" y1="%s" x2="%d" y2="%s" stroke="%s" stroke-width="1.5" stroke-dasharray="6 4"/>`,
			chartLeft, ty, chartW-chartRight, ty, chartTargetColour)
		fmt.Fprintf(&b, `<text data-testid="target-label" x="%d" y="%s" font-size="%s" text-anchor="end" fill="%s">%s</text>`,
			chartW-chartRight-4, chartNum(y(t.Value)-5), chartFont, chartTargetColour, chartEsc(t.Label))
	}
	// The line breaks where a period has no value.
	var runs [][]string
	var run []string
	for i, p := range c.Points {
		if p.Missing {
			if len(run) > 0 {
				runs = append(runs, run)
			}
			run = nil
			continue
		}
		run = append(run, chartNum(x(i))+","+chartNum(y(p.Value)))
	}
	if len(run) > 0 {
		runs = append(runs, run)
	}
	for _, r := range runs {
		fmt.Fprintf(&b, `<polyline fill="none" stroke="%s" stroke-width="2" points="%s"/>`, chartLineColour, strings.Join(r, " "))
	}
	for i, p := range c.Points {
		if p.Missing {
			continue
		}
		v := chartNum(p.Value)
		if c.Percent {
			v = chartPercent(p.Value)
		}
		title := p.Label + ": " + v
		if p.Title != "" {
			title += " (" + p.Title + ")"
		}
		fmt.Fprintf(&b, `<circle data-testid="point" cx="%s" cy="%s" r="3.5" fill="%s"><title>%s</title></circle>`, chartNum(x(i)), chartNum(y(p.Value)), chartLineColour, chartEsc(title))
	}
	b.WriteString(`</svg>`)
	return template.HTML(b.String())
}

// SVG draws the columns, each with its value above it.
func (c barChart) SVG() template.HTML {
	var b strings.Builder
	chartOpen(&b, c.ID, c.Title)
	m := 0.0
	for _, p := range c.Bars {
		m = math.Max(m, p.Value)
	}
	top := chartNiceMax(m)
	chartAxes(&b, top, false)
	n := max(len(c.Bars), 1)
	slot := float64(chartPlotW) / float64(n)
	w := math.Max(1, math.Min(slot*0.7, 60))
	x := func(i int) float64 { return chartLeft + slot*(float64(i)+0.5) }
	labels := make([]string, len(c.Bars))
	for i, p := range c.Bars {
		labels[i] = p.Label
	}
	chartXLabels(&b, labels, x)
	for i, p := range c.Bars {
		h := float64(chartPlotH) * p.Value / top
		title := p.Label + ": " + chartNum(p.Value)
		if p.Title != "" {
			title = p.Title
		}
		fmt.Fprintf(&b, `<rect data-testid="bar" x="%s" y="%s" width="%s" height="%s" fill="%s"><title>%s</title></rect>`,
			chartNum(x(i)-w/2), chartNum(chartTop+float64(chartPlotH)-h), chartNum(w), chartNum(h), chartLineColour, chartEsc(title))
		if n <= 31 {
			fmt.Fprintf(&b, `<text x="%s" y="%s" font-size="%s" text-anchor="middle" fill="%s">%s</text>`,
				chartNum(x(i)), chartNum(chartTop+float64(chartPlotH)-h-3), chartFont, "#1d2430", chartEsc(chartNum(p.Value)))
		}
	}
	b.WriteString(`</svg>`)
	return template.HTML(b.String())
}
