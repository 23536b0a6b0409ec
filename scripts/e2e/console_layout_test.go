package e2e

import (
	"fmt"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"
)

// TestConsoleFitsTheScreenAndTheKeyboard: every main page fits the width
// of the screen it is shown on, a laptop's 1280×800 and a tablet's
// 768×1024 (portrait, touch), without a horizontal scroll bar (issue 18:
// "works at 1280×800 and on a tablet"); and the agent claims the next
// follow-up with the keyboard alone (Tab to the button, Enter).
func TestConsoleFitsTheScreenAndTheKeyboard(t *testing.T) {
	s := setup(t, nil)
	s.prepare()
	url := s.console("default")
	s.publish(purchase("e-fit-1", "c-fit-1", "王芳", "+8613800138001", time.Now().UTC().Add(-25*time.Hour).Truncate(time.Second)))

	fits := func(p *page, path, width string) {
		p.t.Helper()
		p.do("open "+path, chromedp.Navigate(p.url+path), chromedp.WaitVisible(chromedp.CSS("main")))
		p.until(path+" fits "+width+" without a horizontal scroll bar",
			`document.readyState === "complete" && document.documentElement.scrollWidth <= window.innerWidth`)
	}
	pages := map[string][]string{
		"agent":    {"/", "/agent", "/customers"},
		"director": {"/desk", "/complaints", "/qa", "/figures", "/reports/monthly", "/policies"},
	}
	for _, login := range []string{"agent", "director"} {
		p := browser(t, url)
		p.signIn("/", login)
		for _, path := range pages[login] {
			fits(p, path, "1280")
		}
		p.do("a tablet, portrait", chromedp.EmulateViewport(768, 1024, chromedp.EmulatePortrait, chromedp.EmulateTouch))
		for _, path := range pages[login] {
			fits(p, path, "768")
		}
		if login == "agent" {
			p.do("the workbench", chromedp.Navigate(p.url+"/agent"), chromedp.WaitVisible(chromedp.CSS(`[data-testid="claim"]`)))
			p.until("the follow-up in the queue", `document.querySelectorAll('[data-testid="queue-task"]').length === 1`)
			p.screenshot("tablet-agent-workbench")
			// Tab until the claim button has the focus (the skip link, the
			// menu and the presence form come first), then Enter.
			for i := 0; i < 40; i++ {
				focused, err := chromedp.Run(p.ctx, chromedp.Evaluate[bool](`document.activeElement && document.activeElement.dataset.testid === "claim"`))
				if err == nil && focused {
					break
				}
				p.do(fmt.Sprintf("Tab (%d)", i+1), chromedp.KeyEvent(kb.Tab))
			}
			p.until("the claim button has the focus", `document.activeElement && document.activeElement.dataset.testid === "claim"`)
			p.do("Enter", chromedp.KeyEvent(kb.Enter))
			p.until("the claimed task opens", `location.pathname.startsWith("/agent/task/") && !!document.querySelector('[data-testid="visit-form"]')`)
		}
	}
}
