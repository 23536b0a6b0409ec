package web

import (
	"bytes"
	"encoding/csv"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

	analyticsv1 "github.com/huifang/huifang/proto/huifang/analytics/v1"
)

// reportColumns are the columns of analytics' CSV report, in order; the
// catalog names them "report.col.<column>".
var reportColumns = []string{"section", "name", "numerator", "denominator", "value", "target", "meets_target", "explanation"}

// reportMonth reads ?month=YYYY-MM (this month, UTC, when empty): the
// report's period [the 1st, the 1st of the next month) in UTC, as analytics
// keeps its figures per whole UTC day.
func reportMonth(r *http.Request, now time.Time) (string, time.Time, time.Time, error) {
	m := strings.TrimSpace(r.URL.Query().Get("month"))
	if m == "" {
		m = now.UTC().Format("2006-01")
	}
	from, err := time.Parse("2006-01", m)
	if err != nil {
		st, _ := status.New(codes.InvalidArgument, "month: must be a month as YYYY-MM").WithDetails(&errdetails.BadRequest{
			FieldViolations: []*errdetails.BadRequest_FieldViolation{{Field: "month", Description: "must be a month as YYYY-MM, e.g. 2026-05"}}})
		return m, time.Time{}, time.Time{}, st.Err()
	}
	return m, from, from.AddDate(0, 1, 0), nil
}

// reportSection is one part of the report: a table of its rows.
type reportSection struct {
	// Key names the section in the catalog (report.section.<key>).
	Key  string
	Rows [][]string
}

// reportFigure is one row of the figures: the figure's name in the
// user's language and the report's row.
type reportFigure struct {
	Label string
	Row   []string
}

// reportData is the monthly report page.
type reportData struct {
	Month   string
	Scope   figuresScope
	Period  string
	Columns []string
	// Figures are the figures against their targets; Sections the rest,
	// in the report's order; Trends the trend rows drawn as charts.
	Figures  []reportFigure
	Sections []reportSection
	Trends   []figuresTrend
	// CSV and HTML are the downloads' links.
	CSV, HTML string
}

// reportRequest is the GenerateReport request of the page's month and org
// unit.
func reportRequest(from, to time.Time, sc figuresScope, format analyticsv1.ReportFormat) *analyticsv1.GenerateReportRequest {
	return &analyticsv1.GenerateReportRequest{From: timestamppb.New(from), To: timestamppb.New(to), OrgUnit: sc.OrgUnit, Format: format}
}

// reportPage shows the monthly report as analytics produces it (its CSV
// form, laid out as tables and charts), with the downloads.
func (s *Server) reportPage(w http.ResponseWriter, r *http.Request, u *User) {
	d := &reportData{Scope: figuresScopeOf(r, u), Columns: reportColumns}
	month, from, to, err := reportMonth(r, s.now())
	d.Month = month
	q := url.Values{"month": {month}}
	if d.Scope.OrgUnit != "" {
		q.Set("org_unit", d.Scope.OrgUnit)
	}
	d.CSV, d.HTML = "/reports/monthly.csv?"+q.Encode(), "/reports/monthly.html?"+q.Encode()
	if err == nil && !u.Is("leader", "director") {
		err = status.Error(codes.PermissionDenied, s.figuresText(r, u, "figures.forbidden"))
	}
	if err != nil {
		s.fail(w, r, u, "report", d, err)
		return
	}
	d.Period = from.Format(time.DateOnly) + " – " + to.AddDate(0, 0, -1).Format(time.DateOnly)
	resp, err := s.api.Analytics.GenerateReport(r.Context(), reportRequest(from, to, d.Scope, analyticsv1.ReportFormat_REPORT_FORMAT_CSV))
	if err != nil {
		s.fail(w, r, u, "report", d, err)
		return
	}
	rows, err := csv.NewReader(bytes.NewReader(resp.GetContent())).ReadAll()
	if err != nil {
		s.log.Error("analytics' report does not parse as CSV", "err", err)
		s.fail(w, r, u, "report", d, status.Error(codes.Internal, "the report could not be read"))
		return
	}
	s.reportLayout(r, u, d, rows)
	s.render(w, r, u, "report", d)
}

// reportLayout sorts the report's rows into the page's parts: the figures
// (and satisfaction per aspect), a chart per trend figure, and a table per
// other section in the order the report gives them.
func (s *Server) reportLayout(r *http.Request, u *User, d *reportData, rows [][]string) {
	trends := map[string][]chartPoint{}
	var trendOrder []string
	bySection := map[string]int{}
	for i, row := range rows {
		if i == 0 || len(row) < len(reportColumns) {
			continue // the header
		}
		section := row[0]
		switch {
		case section == "report":
			continue
		case section == "figure" || section == "satisfaction":
			d.Figures = append(d.Figures, reportFigure{Label: s.figureName(r, u, row[1]), Row: row})
		case strings.HasPrefix(section, "trend "):
			figure := row[1]
			if _, ok := trends[figure]; !ok {
				trendOrder = append(trendOrder, figure)
			}
			den, _ := strconv.ParseInt(row[3], 10, 64)
			v, _ := strconv.ParseFloat(strings.TrimSuffix(row[4], "%"), 64)
			label := strings.TrimPrefix(section, "trend ")
			if len(label) == len("2006-01-02") && strings.HasSuffix(label, "-01") {
				label = label[:len("2006-01")] // a month's trend: its months
			}
			trends[figure] = append(trends[figure], chartPoint{Label: label, Value: v / 100, Missing: den == 0, Title: row[7]})
			if t, err := strconv.ParseFloat(strings.TrimSuffix(row[5], "%"), 64); err == nil && row[5] != "" {
				trends[figure+"\x00target"] = []chartPoint{{Value: t / 100}}
			}
		default:
			key := section
			if strings.HasPrefix(section, "incentive ") {
				key = "incentive"
			}
			i, ok := bySection[key]
			if !ok {
				i = len(d.Sections)
				bySection[key] = i
				d.Sections = append(d.Sections, reportSection{Key: key})
			}
			d.Sections[i].Rows = append(d.Sections[i].Rows, row)
		}
	}
	for _, f := range trendOrder {
		c := lineChart{ID: "report-trend-" + f, Title: s.figuresText(r, u, "figures.trend.title", s.figureName(r, u, f)), Percent: true, Points: trends[f]}
		if t, ok := trends[f+"\x00target"]; ok {
			c.Target = &chartTarget{Value: t[0].Value, Label: s.figuresText(r, u, "figures.target", chartPercent(t[0].Value))}
		}
		d.Trends = append(d.Trends, figuresTrend{Figure: f, Chart: c})
	}
}

// reportCSV downloads the monthly report as CSV for a spreadsheet: UTF-8
// with a byte order mark (so that Excel reads Chinese right), the header
// row in the user's language, named in the user's language.
func (s *Server) reportCSV(w http.ResponseWriter, r *http.Request, u *User) {
	s.reportDownload(w, r, u, analyticsv1.ReportFormat_REPORT_FORMAT_CSV)
}

// reportHTML downloads the monthly report as analytics renders it: one
// self-contained HTML page with its charts.
func (s *Server) reportHTML(w http.ResponseWriter, r *http.Request, u *User) {
	s.reportDownload(w, r, u, analyticsv1.ReportFormat_REPORT_FORMAT_HTML)
}

func (s *Server) reportDownload(w http.ResponseWriter, r *http.Request, u *User, format analyticsv1.ReportFormat) {
	sc := figuresScopeOf(r, u)
	month, from, to, err := reportMonth(r, s.now())
	if err == nil && !u.Is("leader", "director") {
		err = status.Error(codes.PermissionDenied, s.figuresText(r, u, "figures.forbidden"))
	}
	var resp *analyticsv1.GenerateReportResponse
	if err == nil {
		resp, err = s.api.Analytics.GenerateReport(r.Context(), reportRequest(from, to, sc, format))
	}
	if err != nil {
		d := &reportData{Month: month, Scope: sc, Columns: reportColumns}
		s.fail(w, r, u, "report", d, err)
		return
	}
	content, ext, ctype := resp.GetContent(), "html", "text/html; charset=utf-8"
	if format == analyticsv1.ReportFormat_REPORT_FORMAT_CSV {
		ext, ctype = "csv", "text/csv; charset=utf-8"
		content, err = s.reportLocalCSV(r, u, content)
		if err != nil {
			s.log.Error("analytics' report does not parse as CSV", "err", err)
			s.fail(w, r, u, "report", &reportData{Month: month, Scope: sc}, status.Error(codes.Internal, "the report could not be read"))
			return
		}
	}
	name, fallback := s.figuresText(r, u, "report.filename", month), "huifang-monthly-report-"+month
	if sc.OrgUnit != "" {
		name += "-" + sc.OrgUnit
		fallback += "-" + sc.OrgUnit
	}
	h := w.Header()
	h.Set("Content-Type", ctype)
	h.Set("Content-Disposition", reportDisposition(name+"."+ext, fallback+"."+ext))
	h.Set("Cache-Control", "no-store")
	h.Set("Content-Length", strconv.Itoa(len(content)))
	_, _ = w.Write(content)
}

// reportLocalCSV is analytics' CSV with its header row in the user's
// language and a UTF-8 byte order mark before it.
func (s *Server) reportLocalCSV(r *http.Request, u *User, in []byte) ([]byte, error) {
	rows, err := csv.NewReader(bytes.NewReader(in)).ReadAll()
	if err != nil {
		return nil, fmt.Errorf("report csv: %w", err)
	}
	if len(rows) > 0 {
		for i, c := range rows[0] {
			rows[0][i] = s.figuresText(r, u, "report.col."+c)
		}
	}
	var buf bytes.Buffer
	buf.WriteString("\uFEFF")
	cw := csv.NewWriter(&buf)
	cw.UseCRLF = true // as Excel writes it
	if err := cw.WriteAll(rows); err != nil {
		return nil, fmt.Errorf("report csv: %w", err)
	}
	return buf.Bytes(), nil
}

// reportDisposition is an attachment's Content-Disposition: an ASCII
// fallback name and the real one in UTF-8 (RFC 6266, RFC 8187).
func reportDisposition(name, fallback string) string {
	ascii := strings.Map(func(r rune) rune {
		if r < 0x20 || r > 0x7e || r == '"' || r == '\\' || r == '/' || r == ';' {
			return '_'
		}
		return r
	}, fallback)
	var enc strings.Builder
	for _, b := range []byte(name) {
		switch {
		case b >= 'A' && b <= 'Z', b >= 'a' && b <= 'z', b >= '0' && b <= '9', b == '-', b == '.', b == '_', b == '~':
			enc.WriteByte(b)
		default:
			fmt.Fprintf(&enc, "%%%02X", b)
		}
	}
	return fmt.Sprintf(`attachment; filename="%s"; filename*=UTF-8''%s`, ascii, enc.String())
}
