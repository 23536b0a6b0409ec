package e2e

import (
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/stretchr/testify/require"
)

// TestConsoleAFollowUpClosesTheLoop plays issue 18's day in the browser,
// through the console only: a purchase completed a day ago comes in on
// the NATS ingress; agent a-1 signs in, sees the follow-up in its live
// queue, claims it and logs the visit with one aspect unsatisfied and a
// service problem (seed 001: the customer rates each aspect; seed 000: a
// problem goes to the department that owns it, here after_sales); the
// owner of after_sales resolves the complaint; the confirmation visit the
// closed loop asks for appears in the agent's live queue without a
// reload; the director's satisfaction figure changes (seed 003).
func TestConsoleAFollowUpClosesTheLoop(t *testing.T) {
	s := setup(t, nil)
	s.prepare()
	url := s.console("default")

	director := browser(t, url)
	director.signIn("/figures", "director")
	before := director.text(`[data-testid="satisfaction-overall"]`)

	agent := browser(t, url)
	agent.signIn("/agent", "agent")
	agent.do("switch to English", chromedp.SetValue(chromedp.CSS(`#lang`), "en"), chromedp.Submit(chromedp.CSS(`#lang`)))
	agent.eventually("h1", "Workbench")
	agent.until("the queue follows its watch", `document.querySelector('[data-testid="queue"]').dataset.following === "1"`)

	completed := time.Now().UTC().Add(-25 * time.Hour).Truncate(time.Second)
	s.publish(purchase("e-day-1", "c-day-1", "王芳", "+8613800138001", completed))
	agent.until("the follow-up in the live queue", `document.querySelectorAll('[data-testid="queue-task"][data-state="waiting"]').length === 1`)

	first, _ := agent.claimTask()
	agent.do("log the visit: overall satisfied, the installation's service not",
		chromedp.SetValue(chromedp.CSS(`select[name="rating.overall"]`), "RATING_SATISFIED"),
		chromedp.SetValue(chromedp.CSS(`select[name="rating.product_quality"]`), "RATING_UNSATISFIED"),
		chromedp.SetValue(chromedp.CSS(`#problem-category`), "service_quality"),
		chromedp.SetValue(chromedp.CSS(`#problem-description`), "the installer left the old unit in the garden"),
		chromedp.Click(chromedp.CSS(`[data-testid="log-visit"]`)))
	agent.eventually(".note", "The visit is logged")
	agent.do("back to the workbench", chromedp.Navigate(agent.url+"/agent"), chromedp.WaitVisible(chromedp.CSS(`[data-testid="queue"]`)))
	agent.until("the queue is empty and follows its watch", `document.querySelector('[data-testid="queue"]').dataset.following === "1" && document.querySelectorAll('[data-testid="queue-task"]').length === 0`)
	agent.until("mark the page", `(window.dayMark = 1) === 1`)

	// The department owner resolves the complaint.
	owner := browser(t, url)
	owner.signIn("/complaints", "owner")
	owner.until("the complaint is listed", `document.querySelector('[data-testid="complaint-row"] [data-testid="complaint-link"]') !== null`)
	require.Contains(t, owner.text(`[data-testid="complaint-row"]`), "after_sales")
	owner.do("open the complaint", chromedp.Click(chromedp.CSS(`[data-testid="complaint-row"] [data-testid="complaint-link"]`)))
	owner.until("the complaint's page", `document.querySelector('[data-testid="resolve-form"]') !== null`)
	owner.do("resolve it",
		chromedp.SendKeys(chromedp.CSS(`#root_cause`), "安装流程没有回收旧机"),
		chromedp.SendKeys(chromedp.CSS(`#action`), "已上门回收旧机"),
		chromedp.Click(chromedp.CSS(`[data-testid="resolve-form"] [data-testid="resolve"]`)))
	owner.until("resolved", `(() => { const e = document.querySelector('[data-testid="complaint"] [data-testid="complaint-status"]'); return !!e && e.dataset.status === "resolved"; })()`)

	// The confirmation visit reaches the agent's queue, live.
	agent.until("the confirmation visit in the live queue, without a reload",
		`window.dayMark === 1 && document.querySelectorAll('[data-testid="queue-task"][data-state="waiting"]').length === 1`)
	second, _ := agent.claimTask()
	require.NotEqual(t, first, second, "the confirmation is a new task")

	// The director's figure moved.
	director.reloadUntil("/figures", "the satisfaction figure changed", func(text string) bool {
		return strings.TrimSpace(text) != strings.TrimSpace(before)
	}, `[data-testid="satisfaction-overall"]`)
	require.Contains(t, director.text(`[data-testid="satisfaction-overall"]`), "100.0%")
}

// reloadUntil opens path again and again (every half second, for up to
// three minutes) until the text of sel satisfies ok: for figures that
// follow the events a little later and have no live part.
func (p *page) reloadUntil(path, what string, ok func(string) bool, sel string) {
	p.t.Helper()
	deadline := time.Now().Add(3 * time.Minute)
	tick := time.NewTicker(500 * time.Millisecond)
	defer tick.Stop()
	for {
		p.do("open "+path, chromedp.Navigate(p.url+path), chromedp.WaitVisible(chromedp.CSS(sel)))
		if ok(p.text(sel)) {
			return
		}
		if time.Now().After(deadline) {
			p.t.Fatalf("timed out waiting for %s; %s shows %q", what, sel, p.text(sel))
		}
		select {
		case <-p.ctx.Done():
			p.t.Fatalf("the browser ended while waiting for %s", what)
		case <-tick.C:
		}
	}
}
