package web

import (
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/huifang/huifang/pkg/auth"
	"github.com/huifang/huifang/services/console/assets"
	"github.com/huifang/huifang/services/console/internal/session"
)

func reportServer(t *testing.T) *Server {
	t.Helper()
	p, err := loadPages(assets.FS)
	require.NoError(t, err)
	return &Server{pages: p}
}

// analyticsCSV is a report as analytics writes it (shortened).
const analyticsCSV = "section,name,numerator,denominator,value,target,meets_target,explanation\n" +
	"report,period,,,2026-12-01 – 2027-01-01,,,\"tenant default, org unit all\"\n" +
	"figure,coverage,2,2,100.00%,90.00%,true,services followed up / eligible services = 2 / 2 = 100.00% (target ≥ 90%)\n" +
	"satisfaction,satisfaction.overall,1,2,50.00%,85.00%,false,(satisfied + fairly satisfied) / questionnaires returned = 1 / 2\n" +
	"trend 2026-11-01,satisfaction.overall,0,0,0.00%,85.00%,false,0 / 0\n" +
	"trend 2026-12-01,satisfaction.overall,1,2,50.00%,85.00%,false,1 / 2\n" +
	"overdue_complaint,c-1,,,,,,\"unsatisfied, escalated …\"\n" +
	"incentive agent,a-1,2,2,1.00,,,2 on time\n" +
	"incentive director,default,2,2,200.00,,,all on time\n"

// TestReportCSVForExcel: the download is analytics' CSV with a byte order
// mark and the header in the user's language, the rest as it was.
func TestReportCSVForExcel(t *testing.T) {
	s := reportServer(t)
	r := httptest.NewRequest("GET", "/reports/monthly.csv", nil)
	u := &User{Session: session.Session{Lang: "zh"}}
	b, err := s.reportLocalCSV(r, u, []byte(analyticsCSV))
	require.NoError(t, err)
	out := string(b)
	require.True(t, strings.HasPrefix(out, "\uFEFF部分,名称,分子,分母,数值,目标,是否达标,说明\r\n"), out)
	require.Contains(t, out, "\r\nreport,period,,,2026-12-01 – 2027-01-01,,,\"tenant default, org unit all\"\r\n")
	require.Equal(t, strings.Count(analyticsCSV, "\n"), strings.Count(out, "\r\n"))

	u.Lang = "en"
	b, err = s.reportLocalCSV(r, u, []byte(analyticsCSV))
	require.NoError(t, err)
	require.True(t, strings.HasPrefix(string(b), "\uFEFFSection,Name,Numerator,Denominator,Value,Target,Meets the target,Explanation\r\n"))
}

// TestReportLayout: the page shows the figures with their names, a chart
// per trend figure (a month without a denominator left out, the target
// drawn) and a table per other section.
func TestReportLayout(t *testing.T) {
	s := reportServer(t)
	r := httptest.NewRequest("GET", "/reports/monthly", nil)
	u := &User{Session: session.Session{Lang: "en"}, Principal: auth.Principal{}}
	d := &reportData{}
	s.reportLayout(r, u, d, append([][]string{reportColumns},
		[]string{"report", "period", "", "", "2026-12-01 – 2027-01-01", "", "", "tenant default, org unit all"},
		[]string{"figure", "coverage", "2", "2", "100.00%", "90.00%", "true", "2 / 2"},
		[]string{"satisfaction", "satisfaction.overall", "1", "2", "50.00%", "85.00%", "false", "1 / 2"},
		[]string{"trend 2026-11-01", "satisfaction.overall", "0", "0", "0.00%", "85.00%", "false", "0 / 0"},
		[]string{"trend 2026-12-01", "satisfaction.overall", "1", "2", "50.00%", "85.00%", "false", "1 / 2"},
		[]string{"overdue_complaint", "c-1", "", "", "", "", "", "late"},
		[]string{"incentive agent", "a-1", "2", "2", "1.00", "", "", "2 on time"},
		[]string{"incentive director", "default", "2", "2", "200.00", "", "", "all on time"},
	))
	require.Len(t, d.Figures, 2, "the figures and satisfaction; not the header or the period")
	require.Equal(t, "Coverage (services followed up)", d.Figures[0].Label)
	require.Equal(t, "Overall satisfaction", d.Figures[1].Label)
	require.Len(t, d.Trends, 1)
	c := d.Trends[0].Chart
	require.Equal(t, "report-trend-satisfaction.overall", c.ID)
	require.Len(t, c.Points, 2)
	require.Equal(t, "2026-11", c.Points[0].Label)
	require.True(t, c.Points[0].Missing)
	require.InDelta(t, 0.5, c.Points[1].Value, 1e-9)
	require.InDelta(t, 0.85, c.Target.Value, 1e-9)
	require.Equal(t, "Target 85%", c.Target.Label)
	require.Len(t, d.Sections, 2)
	require.Equal(t, "overdue_complaint", d.Sections[0].Key)
	require.Equal(t, "incentive", d.Sections[1].Key)
	require.Len(t, d.Sections[1].Rows, 2)
}

func TestReportDisposition(t *testing.T) {
	require.Equal(t, `attachment; filename="huifang-monthly-report-2026-12.csv"; filename*=UTF-8''%E5%9B%9E%E8%AE%BF%E6%9C%88%E6%8A%A5-2026-12.csv`,
		reportDisposition("回访月报-2026-12.csv", "huifang-monthly-report-2026-12.csv"))
	require.Equal(t, `attachment; filename="a_b_c.csv"; filename*=UTF-8''a%3Bb%22c.csv`, reportDisposition(`a;b"c.csv`, `a;b"c.csv`))
}
