package web

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestLineChartDrawsTheTargetDashed: a trend is drawn deterministically,
// with one point per period that has a value, the line broken where a
// period has none, and the target as a dashed line with its label; no
// inline style (the Content-Security-Policy forbids it).
func TestLineChartDrawsTheTargetDashed(t *testing.T) {
	c := lineChart{ID: "trend-satisfaction.overall", Title: "Overall <satisfaction>", Percent: true,
		Points: []chartPoint{{Label: "12-01", Value: 0.9, Title: "9 / 10"}, {Label: "12-02", Missing: true}, {Label: "12-03", Value: 0.5}, {Label: "12-04", Value: 0.75}},
		Target: &chartTarget{Value: 0.85, Label: "Target 85% (seed 003)"}}
	svg := string(c.SVG())
	require.Equal(t, svg, string(c.SVG()), "the same data draws the same bytes")
	require.True(t, strings.HasPrefix(svg, `<svg xmlns="http://www.w3.org/2000/svg" class="chart"`))
	require.Contains(t, svg, `data-testid="trend-satisfaction.overall"`)
	require.Contains(t, svg, `aria-label="Overall &lt;satisfaction&gt;"`, "escaped")
	require.Equal(t, 3, strings.Count(svg, `data-testid="point"`), "a point per period with a value")
	require.Equal(t, 2, strings.Count(svg, "<polyline"), "the line breaks at the period without a value")
	require.Contains(t, svg, `stroke-dasharray="6 4"`)
	require.Contains(t, svg, `>Target 85% (seed 003)</text>`)
	require.Contains(t, svg, "<title>12-01: 90% (9 / 10)</title>")
	// y runs from 14 (100 %) to 200 (0 %): 85 % is at 14 + 186 × 0.15 = 41.9.
	require.Contains(t, svg, `<line data-testid="target-line" x1="48" y1="41.9" x2="624" y2="41.9"`)
	require.Contains(t, svg, `>100%</text>`)
	require.NotContains(t, svg, "style=")
}

// TestLineChartWithoutTarget has no target line; a count chart's axis
// rounds up to a round number.
func TestLineChartWithoutTarget(t *testing.T) {
	svg := string(lineChart{ID: "x", Points: []chartPoint{{Label: "a", Value: 7}}}.SVG())
	require.NotContains(t, svg, "target-line")
	require.Contains(t, svg, `>10</text>`, "the axis of a count of 7 ends at 10")
	require.Equal(t, 1, strings.Count(svg, `data-testid="point"`))
}

// TestBarChart draws a column per bar, the largest reaching the axis's
// top, with its value above it.
func TestBarChart(t *testing.T) {
	c := barChart{ID: "simulation-per-day", Title: "Visits per day", Bars: []chartPoint{{Label: "12-07", Value: 10}, {Label: "12-08", Value: 5}, {Label: "12-09", Value: 0}}}
	svg := string(c.SVG())
	require.Equal(t, svg, string(c.SVG()))
	require.Equal(t, 3, strings.Count(svg, `data-testid="bar"`))
	require.Contains(t, svg, `y="14" width="60" height="186"`, "10 of 10: the whole height")
	require.Contains(t, svg, `y="107" width="60" height="93"`, "5 of 10: half")
	require.Contains(t, svg, "<title>12-08: 5</title>")
	require.NotContains(t, svg, "style=")
}

func TestChartNiceMax(t *testing.T) {
	for in, want := range map[float64]float64{0: 1, 0.5: 1, 1: 1, 7: 10, 10: 10, 11: 20, 140: 200, 230: 250, 260: 500, 1001: 2000} {
		require.Equal(t, want, chartNiceMax(in), "niceMax(%v)", in)
	}
}
