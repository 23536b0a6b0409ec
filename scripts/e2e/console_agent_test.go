package e2e

import (
	"fmt"
	neturl "net/url"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/stretchr/testify/require"
)

// purchase is a completed appliance purchase of a customer of org unit
// "default" as the upstream ERP sends it (the built-in purchase policy:
// seed 001's questionnaire, the first follow-up a day after).
func purchase(sourceEventID, customerID, name, phone string, completedAt time.Time) string {
	return fmt.Sprintf(`{"source_system":"erp-demo","source_event_id":%q,"service_type":"purchase","completed_at":%q,"org_unit":"default","customer":{"external_id":%q,"name":%q,"phone":%q,"org_unit":"default"}}`,
		sourceEventID, completedAt.UTC().Format(time.RFC3339), customerID, name, phone)
}

// TestConsoleAgentWorkbench: two purchases completed a day ago come in
// through the NATS ingress; agent a-1 signs in to the console in Chromium
// and sees both follow-ups appear in its live queue (no reload), claims
// one, reveals the number with a reason (shown once, not on a reload),
// records a call that was not answered (the task leaves the queue), claims
// the next, is refused a visit without the required overall rating (the
// field violation shown, the form kept), logs it with the product quality
// unsatisfied and a problem (the note, the task gone from the queue, the
// day's figures), finds both customers by surname with their timelines
// and records a complaint one makes by phone; a leader finds one by its
// phone's last digits and reveals its number for a reason.
func TestConsoleAgentWorkbench(t *testing.T) {
	s := setup(t, nil)
	s.prepare()
	url := s.console("default")
	p := browser(t, url)
	p.signIn("/agent", "agent")
	p.do("switch to English", chromedp.SetValue(chromedp.CSS(`#lang`), "en"), chromedp.Submit(chromedp.CSS(`#lang`)))
	p.eventually("h1", "Workbench")
	p.eventually(`[data-testid="queue"]`, "Nothing in the queue")
	p.until("the queue follows its watch", `document.querySelector('[data-testid="queue"]').dataset.following === "1"`)

	p.do("set available", chromedp.Click(chromedp.CSS(`[data-testid="set-presence"]`)))
	p.eventually(".note", "Your presence is set")
	p.eventually(`[data-testid="presence-state"]`, "Available")

	completed := time.Now().UTC().Add(-25 * time.Hour).Truncate(time.Second)
	s.publish(purchase("e-console-1", "c-1", "王芳", "+8613800138001", completed))
	s.publish(purchase("e-console-2", "c-2", "王伟", "+8613800138002", completed))
	p.until("both follow-ups in the live queue", `document.querySelectorAll('[data-testid="queue-task"][data-state="waiting"]').length === 2`)
	require.Contains(t, p.text(`[data-testid="queue-task"]`), "purchase")
	require.Contains(t, p.text(`[data-testid="queue-task"]`), "builtin-appliance-purchase")
	require.Contains(t, p.text(`[data-testid="queue-task"]`), "王*")
	p.screenshot("agent-workbench")

	// The first: the number revealed for a reason, a call not answered.
	first, firstLease := p.claimTask()
	p.do("reveal the number", chromedp.SetValue(chromedp.CSS(`[data-testid="reveal-purpose"]`), "follow-up call"),
		chromedp.Click(chromedp.CSS(`[data-testid="reveal"]`)))
	p.eventually(`[data-testid="revealed-phone"]`, "1380013800")
	p.do("open the task again", chromedp.Navigate(p.url+"/agent/task/"+first+"?lease="+firstLease), chromedp.WaitVisible(chromedp.CSS(`[data-testid="visit-form"]`)))
	p.until("the number shown once only", `!document.querySelector('[data-testid="revealed-phone"]') && document.body.innerText.indexOf("13800138") < 0`)
	p.do("record no answer", chromedp.SetValue(chromedp.CSS(`[data-testid="disposition"]`), "DISPOSITION_NO_ANSWER"),
		chromedp.Click(chromedp.CSS(`[data-testid="record-attempt"]`)))
	p.eventually(".note", "The attempt is recorded")
	p.until("the first task left the queue", fmt.Sprintf(`!document.querySelector('[data-testid="queue-task"][data-task=%q]')`, first))

	// The second: refused without the required rating, then logged.
	second, _ := p.claimTask()
	require.NotEqual(t, first, second)
	p.eventually(`[data-testid="script"]`, "王*")
	p.eventually(`[data-testid="questionnaire"]`, "overall")
	p.screenshot("agent-task")
	p.until("skip the browser's own check", `(() => { document.querySelector('[data-testid="visit-form"]').noValidate = true; return true; })()`)
	p.do("log without the overall rating", chromedp.SetValue(chromedp.CSS(`select[name="rating.product_quality"]`), "RATING_UNSATISFIED"),
		chromedp.SetValue(chromedp.CSS(`#comments`), "the door seal leaks"),
		chromedp.Click(chromedp.CSS(`[data-testid="log-visit"]`)))
	p.refused(400)
	p.eventually(`[data-testid="problem"]`, "answers")
	require.Contains(t, p.text(`[data-testid="problem"]`), "overall")
	require.Equal(t, "RATING_UNSATISFIED", p.value(`select[name="rating.product_quality"]`), "the form keeps what was typed")
	require.Equal(t, "the door seal leaks", p.value(`#comments`))

	p.do("log the visit", chromedp.SetValue(chromedp.CSS(`select[name="rating.overall"]`), "RATING_FAIRLY_SATISFIED"),
		chromedp.SetValue(chromedp.CSS(`#problem-category`), "product_quality"),
		chromedp.SetValue(chromedp.CSS(`#problem-description`), "the door seal leaks"),
		chromedp.Click(chromedp.CSS(`[data-testid="log-visit"]`)))
	p.eventually(".note", "The visit is logged")
	p.until("the second task left the queue", fmt.Sprintf(`!document.querySelector('[data-testid="queue-task"][data-task=%q]')`, second))
	p.eventually(`[data-testid="fig-logged"]`, "1")
	p.eventually(`[data-testid="fig-unsatisfied"]`, "1")

	// Both customers, found by surname, masked; the second's history.
	p.do("find the customers", chromedp.Navigate(p.url+"/customers"), chromedp.WaitVisible(chromedp.CSS(`[data-testid="customer-q"]`)),
		chromedp.SetValue(chromedp.CSS(`[data-testid="customer-q"]`), "王"), chromedp.Click(chromedp.CSS(`[data-testid="search"]`)))
	p.until("two customers found", `document.querySelectorAll('[data-testid="customer-row"]').length === 2`)
	require.NotContains(t, p.text(`[data-testid="customer-results"]`), "王芳", "masked")
	p.screenshot("customer-search")
	p.do("open a customer", chromedp.Click(chromedp.CSS(`[data-testid="customer-open"]`)))
	p.eventually(`[data-testid="timeline"]`, "Service")
	p.until("an agent reveals no customer's contacts here", `!document.querySelector('[data-testid="customer-card"] [data-testid="reveal-form"]')`)
	p.do("record a complaint by phone", chromedp.SetValue(chromedp.CSS(`#complaint-category`), "service_quality"),
		chromedp.SetValue(chromedp.CSS(`#complaint-description`), "the installer was late twice"),
		chromedp.Click(chromedp.CSS(`[data-testid="create-complaint"]`)))
	p.eventually(".note", "The complaint is recorded")

	// A leader finds the first customer by a link (?q=), reads its card and
	// reveals its number for a reason (intake RevealContact, audited).
	l := browser(t, url)
	l.signIn("/customers?q=8001", "leader")
	l.until("the leader's search found one", `document.querySelectorAll('[data-testid="customer-row"]').length === 1`)
	l.do("open the customer", chromedp.Click(chromedp.CSS(`[data-testid="customer-open"]`)))
	l.eventually(`[data-testid="customer-phone"]`, "*******8001")
	l.do("reveal", chromedp.SetValue(chromedp.CSS(`[data-testid="reveal-purpose"]`), "call back about the purchase"),
		chromedp.Click(chromedp.CSS(`[data-testid="reveal"]`)))
	l.eventually(`[data-testid="revealed-phone"]`, "13800138001")
}

// claimTask presses "next follow-up" on the workbench and returns the id
// of the task it opens and the claim's lease token.
func (p *page) claimTask() (id, lease string) {
	p.t.Helper()
	p.do("claim", chromedp.Navigate(p.url+"/agent"), chromedp.WaitVisible(chromedp.CSS(`[data-testid="claim"]`)),
		chromedp.Click(chromedp.CSS(`[data-testid="claim"]`)))
	p.until("the claimed task opens", `location.pathname.startsWith("/agent/task/") && !!document.querySelector('[data-testid="visit-form"]')`)
	loc, err := chromedp.Run(p.ctx, chromedp.Location())
	require.NoError(p.t, err)
	u, err := neturl.Parse(loc)
	require.NoError(p.t, err)
	id, ok := strings.CutPrefix(u.Path, "/agent/task/")
	require.True(p.t, ok, "the claim opens the task: %s", loc)
	return id, u.Query().Get("lease")
}

// value is the current value of a form field.
func (p *page) value(sel string) string {
	p.t.Helper()
	v, err := chromedp.Run(p.ctx, chromedp.Evaluate[string](fmt.Sprintf(`document.querySelector(%q).value`, sel)))
	require.NoError(p.t, err)
	return v
}
