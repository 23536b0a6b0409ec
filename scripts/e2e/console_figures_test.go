package e2e

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/stretchr/testify/require"

	analyticsv1 "github.com/huifang/huifang/proto/huifang/analytics/v1"
	feedbackv1 "github.com/huifang/huifang/proto/huifang/feedback/v1"
	schedulerv1 "github.com/huifang/huifang/proto/huifang/scheduler/v1"
	typesv1 "github.com/huifang/huifang/proto/huifang/types/v1"
)

// download is what the browser's fetch of a download link answered.
type download struct {
	Status      int    `json:"status"`
	Type        string `json:"type"`
	Disposition string `json:"disposition"`
	BOM         bool   `json:"bom"`
	Body        string `json:"body"`
}

// fetchLink fetches the href of the link sel with the browser's session
// (its cookies) and returns the response.
func (p *page) fetchLink(sel string) download {
	p.t.Helper()
	ctx, cancel := context.WithTimeout(p.ctx, 2*time.Minute)
	defer cancel()
	d, err := chromedp.Run(ctx, chromedp.Evaluate[download](fmt.Sprintf(`(async () => {
		const r = await fetch(document.querySelector(%q).href, {credentials: "same-origin"});
		const b = new Uint8Array(await r.arrayBuffer());
		return {status: r.status, type: r.headers.get("content-type") || "", disposition: r.headers.get("content-disposition") || "",
			bom: b.length >= 3 && b[0] === 0xEF && b[1] === 0xBB && b[2] === 0xBF, body: new TextDecoder().decode(b)};
	})()`, sel), chromedp.EvalAwaitPromise))
	require.NoError(p.t, err, "fetch "+sel)
	return d
}

// textContent is the text of the first element matching sel, an SVG one
// too (which has no innerText).
func (p *page) textContent(sel string) string {
	p.t.Helper()
	ctx, cancel := context.WithTimeout(p.ctx, 2*time.Minute)
	defer cancel()
	s, err := chromedp.Run(ctx, chromedp.Evaluate[string](fmt.Sprintf(`(() => { const e = document.querySelector(%q); return e ? e.textContent : ""; })()`, sel)))
	require.NoError(p.t, err, "read "+sel)
	return s
}

// TestConsoleFigures: two repairs come in through the NATS ingress and are
// followed up (logged through gRPC), one customer satisfied overall and
// one not; the director sees seed 003's overall satisfaction rate
// ((satisfied + fairly satisfied) / returned = 1 / 2) with its target,
// the trend with the 85 % target drawn as a dashed line, the monthly
// report, and downloads it as CSV (UTF-8 with a BOM, the header in
// Chinese, named in Chinese) and as HTML.
func TestConsoleFigures(t *testing.T) {
	s := setup(t, nil)
	s.prepare()
	now := time.Now().UTC().Truncate(time.Second)
	s.publish(ingress("fig-1", "repair", "c-fig-1", "王芳", "+8613800138001", now))
	s.publish(ingress("fig-2", "repair", "c-fig-2", "李雷", "+8613800138002", now))
	ratings := [][]*typesv1.Answer{
		{{Aspect: "overall", Rating: typesv1.Rating_RATING_SATISFIED}, {Aspect: "cleaning", Rating: typesv1.Rating_RATING_SATISFIED}},
		{{Aspect: "overall", Rating: typesv1.Rating_RATING_UNSATISFIED}, {Aspect: "cleaning", Rating: typesv1.Rating_RATING_FAIRLY_SATISFIED}},
	}
	for _, answers := range ratings {
		task := s.claim()
		s.logVisit(&feedbackv1.LogVisitRequest{TenantId: tenant, VisitId: task.GetVisitId(), AgentId: agent, Answers: answers})
	}
	waitFor(t, taskDeadline, "analytics to count both questionnaires", func() (*analyticsv1.GetSatisfactionResponse, bool, error) {
		resp, err := s.analytics.GetSatisfaction(t.Context(), &analyticsv1.GetSatisfactionRequest{TenantId: tenant, Aspect: "overall"})
		return resp, err == nil && resp.GetReturned() == 2, err
	})

	url := s.console("default")
	p := browser(t, url)
	p.signIn("/figures", "director")
	// Seed 003: overall satisfaction = (satisfied 1 + fairly satisfied 0) / returned 2.
	p.eventually(`[data-testid="satisfaction-overall"]`, "50.0%")
	require.Contains(t, p.text(`[data-testid="satisfaction-formula"]`), "2")
	require.Contains(t, p.text(`[data-testid="aspect-cleaning"]`), "100.0%", "cleaning: (1 + 1) / 2")
	require.Contains(t, p.text(`[data-testid="figure-coverage"]`), "100.0%", "both services followed up")
	// The trend of overall satisfaction with seed 003's target drawn on it.
	trend := `svg[data-testid="trend-satisfaction.overall"]`
	p.until("the trend's point and target line", fmt.Sprintf(`!!document.querySelector(%q) && !!document.querySelector(%q)`,
		trend+` [data-testid="point"]`, trend+` line[data-testid="target-line"][stroke-dasharray]`))
	require.Contains(t, p.textContent(trend+` [data-testid="target-label"]`), "85%")
	require.Contains(t, p.textContent(trend+` [data-testid="target-label"]`), "seed 003")
	p.screenshot("figures")

	p.do("open the monthly report", chromedp.Click(chromedp.CSS(`[data-testid="nav-report"]`)))
	p.eventually(`[data-testid="report-figure-satisfaction.overall"]`, "50.00%")
	p.until("the report's trend chart", `!!document.querySelector('[data-testid="report-trend"] svg')`)
	p.screenshot("report")

	csv := p.fetchLink(`[data-testid="report-csv"]`)
	require.Equal(t, 200, csv.Status, csv.Body)
	require.Equal(t, "text/csv; charset=utf-8", csv.Type)
	month := time.Now().UTC().Format("2006-01")
	require.Contains(t, csv.Disposition, `attachment; filename="huifang-monthly-report-`+month+`.csv"`)
	require.Contains(t, csv.Disposition, "filename*=UTF-8''%E5%9B%9E%E8%AE%BF%E6%9C%88%E6%8A%A5-"+month+".csv", "回访月报-<month>.csv for a Chinese reader")
	require.True(t, csv.BOM, "a byte order mark, so that Excel reads UTF-8")
	require.Contains(t, csv.Body, "部分,名称,分子,分母,数值,目标,是否达标,说明\r\n", "the header row in the director's language")
	require.Contains(t, csv.Body, "satisfaction,satisfaction.overall,1,2,50.00%,85.00%,false,")
	html := p.fetchLink(`[data-testid="report-html"]`)
	require.Equal(t, 200, html.Status)
	require.Equal(t, "text/html; charset=utf-8", html.Type)
	require.Contains(t, html.Disposition, "attachment;")
	require.Contains(t, html.Disposition, ".html")
	require.Contains(t, html.Body, "satisfaction.overall")
}

// TestConsolePolicyDesk: the tenant admin turns approval on, opens the
// instant policy, is refused a sample rate of 1.5 (the scheduler's field
// violation shown beside the field), simulates the policy at 0.5 (the
// visits per day drawn) and submits it; the director approves it
// (docs/policies.md: four eyes, a director other than the proposer) and
// the policy is at version 2 with the new rate.
func TestConsolePolicyDesk(t *testing.T) {
	s := setup(t, nil)
	policyID := s.prepare()
	url := s.console("default")
	p := browser(t, url)
	p.signIn("/policies", "admin")
	p.do("require approval", chromedp.Click(chromedp.CSS(`[data-testid="approval-on"]`)))
	p.eventually(`[data-testid="approval-state"]`, "approval")
	p.eventually(`[data-testid="policies"]`, "instant")
	p.screenshot("policies")

	p.do("open the instant policy", chromedp.Click(chromedp.CSS(`[data-testid="policy-row"][data-name="instant"] [data-testid="open-policy"]`)))
	rate := `input[name="steps[0].sample_rate"]`
	p.do("an invalid sample rate",
		chromedp.WaitVisible(chromedp.CSS(rate)),
		chromedp.SetValue(chromedp.CSS(rate), "1.5"),
		chromedp.SetValue(chromedp.CSS(`input[name="reason"]`), "seed 003: sample half of the repairs"),
		chromedp.Click(chromedp.CSS(`[data-testid="submit"]`)),
	)
	p.eventually(`[data-testid="violation"]`, "at most 1")
	p.refused(400)
	p.eventually(`[data-testid="problem"]`, "sample_rate")
	p.screenshot("policy-edit")

	p.do("simulate at one half",
		chromedp.SetValue(chromedp.CSS(rate), "0.5"),
		chromedp.Click(chromedp.CSS(`[data-testid="simulate"]`)),
	)
	p.until("the simulation's chart", `document.querySelectorAll('svg[data-testid="simulation-per-day"] rect[data-testid="bar"]').length > 0`)
	require.Contains(t, p.text(`[data-testid="simulation-summary"]`), "280", "20 services a day for 14 days")
	p.screenshot("policy-simulation")

	p.do("submit for approval", chromedp.Click(chromedp.CSS(`[data-testid="submit"]`)))
	p.until("the proposal", `!!document.querySelector('[data-testid="change-state"][data-state="proposed"]')`)
	p.eventually(`[data-testid="awaiting-director"]`, "director")

	p.do("sign out", chromedp.Click(chromedp.CSS(`[data-testid="signout"]`)), chromedp.WaitVisible(chromedp.CSS(`a.button[href="/signin"]`)))
	p.signIn("/policies", "director")
	p.do("open the proposal", chromedp.Click(chromedp.CSS(`[data-testid="pending-change"] [data-testid="open-change"]`)))
	p.until("the dry run's chart", `document.querySelectorAll('[data-testid="dry-run"] rect[data-testid="bar"]').length > 0`)
	p.do("approve", chromedp.SetValue(chromedp.CSS(`#note`), "monthly plan"), chromedp.Click(chromedp.CSS(`[data-testid="approve"]`)))
	p.until("the approval", `!!document.querySelector('[data-testid="change-state"][data-state="approved"]')`)
	p.eventually(`[data-testid="change-applied"]`, "v2")
	p.screenshot("policy-change")

	got, err := s.scheduler.GetPolicy(t.Context(), &schedulerv1.GetPolicyRequest{TenantId: tenant, PolicyId: policyID})
	require.NoError(t, err)
	require.EqualValues(t, 2, got.GetPolicy().GetVersion())
	require.InDelta(t, 0.5, got.GetPolicy().GetSteps()[0].GetSampleRate(), 1e-9)
}
