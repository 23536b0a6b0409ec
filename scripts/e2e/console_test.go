package e2e

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/stretchr/testify/require"

	"github.com/huifang/huifang/pkg/ports"
	"github.com/huifang/huifang/scripts/internal/stack"
)

// console starts the console beside the system, its people (the demo
// people of make run, stack.ConsolePeople, the agent and leader in units)
// signing in at the system's issuer, and returns its URL.
func (s *system) console(units ...string) string {
	s.t.Helper()
	free, err := ports.Free(1)
	require.NoError(s.t, err)
	addr := fmt.Sprintf("127.0.0.1:%d", free[0])
	pub := fmt.Sprintf("http://localhost:%d", free[0])
	stack.RegisterConsole(s.issuer, pub, units...)
	key := make([]byte, 32)
	_, _ = rand.Read(key)
	log := filepath.Join(s.t.TempDir(), "console.log")
	c, err := s.st.RunConsole(s.t.Context(), stack.ConsoleConfig{Bin: filepath.Join(binDir, "console"), Addr: addr, PublicURL: pub,
		Auth: s.issuer.Config(), SessionKey: hex.EncodeToString(key), LogPath: log})
	require.NoError(s.t, err)
	s.t.Cleanup(func() {
		c.Stop()
		if s.t.Failed() {
			b, _ := os.ReadFile(log)
			s.t.Logf("--- the console's log:\n%s", tail(string(b), 40))
		}
	})
	return c.URL
}

func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// chromium finds Debian's Chromium (make test installs it).
func chromium(t testing.TB) string {
	for _, p := range []string{os.Getenv("CHROMIUM"), "/usr/bin/chromium", "/usr/bin/chromium-browser"} {
		if p == "" {
			continue
		}
		if _, err := exec.LookPath(p); err == nil {
			return p
		}
	}
	t.Fatal("no Chromium: install Debian's chromium package (make test does: apt-get install -y chromium fonts-noto-cjk)")
	return ""
}

// page is a headless Chromium tab that fails the test on any error of
// the page's console or an exception thrown by its scripts.
type page struct {
	t   testing.TB
	ctx context.Context
	url string

	mu     sync.Mutex
	errors []string
}

// refused waits until Chromium has logged the failed load of a refusal
// (a page answered with a 4xx status, as the console answers a service's
// refusal: "Failed to load resource: the server responded with a status
// of 400") and takes that one message off the page's errors: the test
// asked for the refusal. Any other error still fails the test.
func (p *page) refused(status int) {
	p.t.Helper()
	want := fmt.Sprintf("the server responded with a status of %d", status)
	deadline := time.Now().Add(time.Minute)
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		p.mu.Lock()
		i := slices.IndexFunc(p.errors, func(e string) bool { return strings.Contains(e, want) })
		if i >= 0 {
			p.errors = slices.Delete(p.errors, i, i+1)
		}
		p.mu.Unlock()
		if i >= 0 {
			return
		}
		if time.Now().After(deadline) {
			p.t.Fatalf("Chromium logged no %q", want)
		}
		select {
		case <-p.ctx.Done():
			p.t.Fatalf("the browser ended while waiting for %q", want)
		case <-tick.C:
		}
	}
}

// browser opens a headless Chromium of its own (a fresh profile: no
// cookies) on the console at url, 1280×800.
func browser(t testing.TB, url string) *page {
	t.Helper()
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(chromium(t)),
		chromedp.NoSandbox,
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1280, 800),
	)
	actx, cancelA := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelC := chromedp.NewContext(actx)
	p := &page{t: t, ctx: ctx, url: strings.TrimRight(url, "/")}
	require.NoError(t, chromedp.Do(ctx), "start Chromium")
	messages := chromedp.Console(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for m, err := range messages {
			if err != nil {
				return
			}
			if m.IsException() || m.Type == "error" || m.Type == "assert" {
				p.fail(m.String())
			}
		}
	}()
	t.Cleanup(func() {
		cancelC()
		cancelA()
		<-done
		p.mu.Lock()
		defer p.mu.Unlock()
		for _, e := range p.errors {
			t.Errorf("the page logged an error: %s", e)
		}
	})
	return p
}

func (p *page) fail(msg string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.errors = append(p.errors, msg)
}

// do runs steps with a generous deadline (the machine may be busy).
func (p *page) do(what string, steps ...chromedp.Action[chromedp.Void]) {
	p.t.Helper()
	ctx, cancel := context.WithTimeout(p.ctx, 2*time.Minute)
	defer cancel()
	require.NoError(p.t, chromedp.Do(ctx, steps...), what)
}

// signIn opens path, is sent to the development issuer, picks login and
// comes back signed in.
func (p *page) signIn(path, login string) {
	p.t.Helper()
	p.do("sign in as "+login,
		chromedp.Navigate(p.url+path),
		chromedp.WaitVisible(chromedp.CSS(`button[data-login="`+login+`"]`)),
		chromedp.Click(chromedp.CSS(`button[data-login="`+login+`"]`)),
		chromedp.WaitVisible(chromedp.CSS(`[data-testid="who"]`)),
	)
}

// text is the text of the first element matching the CSS selector sel,
// once it is visible.
func (p *page) text(sel string) string {
	p.t.Helper()
	ctx, cancel := context.WithTimeout(p.ctx, 2*time.Minute)
	defer cancel()
	s, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS(sel), chromedp.NodeVisible))
	require.NoError(p.t, err, "read "+sel)
	return s
}

// eventually waits until the element sel holds want, across page loads
// (a form posted, a live part reloaded).
func (p *page) eventually(sel, want string) {
	p.t.Helper()
	p.until(fmt.Sprintf("%q in %s", want, sel),
		fmt.Sprintf(`(() => { const e = document.querySelector(%q); return !!e && e.innerText.includes(%q); })()`, sel, want))
}

// until waits until the JavaScript expression is true, evaluating it every
// 200 ms for up to three minutes; an evaluation that fails (the page was
// loading) counts as false.
func (p *page) until(what, expr string) {
	p.t.Helper()
	deadline := time.Now().Add(3 * time.Minute)
	tick := time.NewTicker(200 * time.Millisecond)
	defer tick.Stop()
	var last error
	for {
		ctx, cancel := context.WithTimeout(p.ctx, 10*time.Second)
		ok, err := chromedp.Run(ctx, chromedp.Evaluate[bool](expr))
		cancel()
		if err == nil && ok {
			return
		}
		last = err
		if time.Now().After(deadline) {
			html, _ := chromedp.Run(p.ctx, chromedp.Evaluate[string](`document.body ? document.body.innerText : ""`))
			p.t.Fatalf("timed out waiting for %s (last error: %v); the page shows:\n%s", what, last, html)
		}
		select {
		case <-p.ctx.Done():
			p.t.Fatalf("the browser ended while waiting for %s", what)
		case <-tick.C:
		}
	}
}

// screenshot writes the whole page as name.png into SCREENSHOT_DIR (make
// screenshots: docs/console/), or the test's temporary folder.
func (p *page) screenshot(name string) {
	p.t.Helper()
	dir := os.Getenv("SCREENSHOT_DIR")
	if dir == "" {
		dir = p.t.TempDir()
	}
	require.NoError(p.t, os.MkdirAll(dir, 0o755))
	ctx, cancel := context.WithTimeout(p.ctx, 2*time.Minute)
	defer cancel()
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	require.NoError(p.t, err, "screenshot "+name)
	require.NoError(p.t, os.WriteFile(filepath.Join(dir, name+".png"), png, 0o644))
}

// TestConsoleSignIn: a person signs in at the identity provider through the
// console in a real browser, sees its name and roles, switches to English
// and signs out.
func TestConsoleSignIn(t *testing.T) {
	s := setup(t, nil)
	url := s.console("default")
	p := browser(t, url)
	p.signIn("/", "agent")
	require.Contains(t, p.text(`[data-testid="who"]`), "李娜")
	require.Contains(t, p.text("h1"), "您好")
	p.screenshot("home")

	p.do("switch to English", chromedp.SetValue(chromedp.CSS(`#lang`), "en"), chromedp.Submit(chromedp.CSS(`#lang`)))
	p.eventually("h1", "Hello")

	p.do("sign out", chromedp.Click(chromedp.CSS(`[data-testid="signout"]`)), chromedp.WaitVisible(chromedp.CSS(`a.button[href="/signin"]`)))
}
