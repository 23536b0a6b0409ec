package web_test

import (
	"net/http"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/huifang/huifang/services/console/internal/web"
)

// TestNextNeverLeavesTheSite: whatever next a link carries, the user lands
// on a page of the console after signing in (browsers read a backslash as a
// slash and drop tabs and newlines, so "/\evil" and "/<tab>/evil" lead away).
func TestNextNeverLeavesTheSite(t *testing.T) {
	c := startConsole(t)
	for _, next := range []string{"//evil.example/x", "/\\evil.example/x", "/\t/evil.example/x", "/\n/evil.example",
		"https://evil.example/x", "evil.example", "/%09/evil.example"} {
		t.Run(next, func(t *testing.T) {
			b := browser(t)
			res, _ := signIn(t, c, b, "/signin?next="+url.QueryEscape(next), "agent")
			require.True(t, strings.HasPrefix(res.Request.URL.String(), c.url+"/"), "landed on %s", res.Request.URL)
		})
	}
}

// TestSecurityHeaders: every page forbids inline scripts and styles,
// plugins, <base>, framing and sniffing; HSTS only over HTTPS.
func TestSecurityHeaders(t *testing.T) {
	c := startConsole(t)
	res, err := browser(t).Get(c.url + "/signedout")
	require.NoError(t, err)
	body(t, res)
	csp := res.Header.Get("Content-Security-Policy")
	for _, want := range []string{"default-src 'self'", "script-src 'self'", "style-src 'self'", "object-src 'none'", "base-uri 'none'", "frame-ancestors 'none'"} {
		require.Contains(t, csp, want)
	}
	require.NotContains(t, csp, "unsafe-inline")
	require.Equal(t, "nosniff", res.Header.Get("X-Content-Type-Options"))
	require.Equal(t, "DENY", res.Header.Get("X-Frame-Options"))
	require.Empty(t, res.Header.Get("Strict-Transport-Security"), "no HSTS on http://localhost")
}

// TestHTTPSCookiesAreHostPrefixed: behind https the session and sign-in
// cookies are __Host- (this host only, Secure, path /), and HSTS is on.
func TestHTTPSCookiesAreHostPrefixed(t *testing.T) {
	c := startConsole(t, func(cfg *web.Config) { cfg.PublicURL = "https://console.example.com" })
	res, err := noRedirects().Get(c.url + "/signin?next=/")
	require.NoError(t, err)
	body(t, res)
	require.Equal(t, http.StatusSeeOther, res.StatusCode)
	cookies := res.Header.Values("Set-Cookie")
	require.Len(t, cookies, 1)
	require.True(t, strings.HasPrefix(cookies[0], "__Host-huifang_signin_"), cookies[0])
	for _, want := range []string{"Path=/", "Secure", "HttpOnly", "SameSite=Lax"} {
		require.Contains(t, cookies[0], want)
	}
	require.NotContains(t, cookies[0], "Domain=")
	require.Contains(t, res.Header.Get("Strict-Transport-Security"), "max-age=")
	loc, err := url.Parse(res.Header.Get("Location"))
	require.NoError(t, err)
	require.Equal(t, "https://console.example.com/auth/callback", loc.Query().Get("redirect_uri"))
}

func noRedirects() *http.Client {
	b := &http.Client{Timeout: 30 * time.Second}
	b.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	return b
}

// TestExpiredSessionSignsInAgain: once the access token expires, a page
// sends the user to sign in and back to it, a form posted goes back to
// the page it was on, and a live part answers 401 (console.js then reloads
// the page); after signing in again the user is where they were.
func TestExpiredSessionSignsInAgain(t *testing.T) {
	var skew atomic.Int64
	c := startConsole(t, func(cfg *web.Config) {
		cfg.Now = func() time.Time { return time.Now().Add(time.Duration(skew.Load())) }
	})
	b := browser(t)
	_, page := signIn(t, c, b, "/", "agent")
	csrf := between(page, `name="csrf" value="`, `"`)
	require.NotEmpty(t, csrf)

	skew.Store(int64(9 * time.Hour)) // past the token's eight hours
	quiet := &http.Client{Jar: b.Jar, Timeout: 30 * time.Second, CheckRedirect: noRedirects().CheckRedirect}

	res, err := quiet.Get(c.url + "/?x=2")
	require.NoError(t, err)
	body(t, res)
	require.Equal(t, http.StatusSeeOther, res.StatusCode)
	require.Equal(t, "/signin?next="+url.QueryEscape("/?x=2"), res.Header.Get("Location"))

	req, _ := http.NewRequest(http.MethodPost, c.url+"/settings", strings.NewReader(url.Values{"lang": {"zh"}, "csrf": {csrf}}.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Referer", c.url+"/?x=3")
	res, err = quiet.Do(req)
	require.NoError(t, err)
	body(t, res)
	require.Equal(t, http.StatusSeeOther, res.StatusCode)
	require.Equal(t, "/signin?next="+url.QueryEscape("/?x=3"), res.Header.Get("Location"), "back to the form's page")

	req.Header.Set("Referer", "https://evil.example/x")
	req.Body, _ = req.GetBody()
	res, err = quiet.Do(req)
	require.NoError(t, err)
	body(t, res)
	require.Equal(t, "/signin?next=%2F", res.Header.Get("Location"), "another site's page is no place to return to")

	req, _ = http.NewRequest(http.MethodGet, c.url+"/live?topic=queue", nil)
	req.Header.Set("Accept", "text/event-stream")
	res, err = quiet.Do(req)
	require.NoError(t, err)
	body(t, res)
	require.Equal(t, http.StatusUnauthorized, res.StatusCode, "a live stream cannot follow a sign-in")
	req, _ = http.NewRequest(http.MethodGet, c.url+"/", nil)
	req.Header.Set("X-Fragment", "1")
	res, err = quiet.Do(req)
	require.NoError(t, err)
	body(t, res)
	require.Equal(t, http.StatusUnauthorized, res.StatusCode, "a live part cannot follow a sign-in")

	// Signing in again (the clock back to the token's time before the
	// callback, so the new token is current) leads back to the page.
	res, err = b.Get(c.url + "/?x=2")
	require.NoError(t, err)
	require.Contains(t, body(t, res), `value="agent"`, "at the identity provider's picker")
	form := res.Request.URL.Query()
	form.Set("login", "agent")
	skew.Store(0)
	res, err = b.PostForm(c.issuer.AuthorizeURL(), form)
	require.NoError(t, err)
	page = body(t, res)
	require.Equal(t, http.StatusOK, res.StatusCode, page)
	require.Equal(t, c.url+"/?x=2", res.Request.URL.String())
	require.Contains(t, page, "Hello, Agent Wang")
}

// TestTwoSignInsInOneBrowser: two tabs sent to sign in at once (a session
// that expired in both) each come back to their own page.
func TestTwoSignInsInOneBrowser(t *testing.T) {
	c := startConsole(t)
	b := browser(t)
	start := func(page string) url.Values {
		res, err := b.Get(c.url + page)
		require.NoError(t, err)
		require.Contains(t, body(t, res), `value="agent"`, "at the identity provider's picker")
		form := res.Request.URL.Query()
		form.Set("login", "agent")
		return form
	}
	first, second := start("/?tab=1"), start("/?tab=2")
	require.NotEqual(t, first.Get("state"), second.Get("state"))
	for tab, form := range map[string]url.Values{"1": first, "2": second} {
		res, err := b.PostForm(c.issuer.AuthorizeURL(), form)
		require.NoError(t, err)
		page := body(t, res)
		require.Equal(t, http.StatusOK, res.StatusCode, page)
		require.Equal(t, c.url+"/?tab="+tab, res.Request.URL.String())
	}
}

// TestSignInsUnderWayAreBounded: a browser that starts many sign-ins keeps
// a few of their cookies, not all (they go with every request).
func TestSignInsUnderWayAreBounded(t *testing.T) {
	c := startConsole(t)
	b := browser(t)
	b.CheckRedirect = noRedirects().CheckRedirect
	for range 10 {
		res, err := b.Get(c.url + "/signin?next=/")
		require.NoError(t, err)
		body(t, res)
		require.Equal(t, http.StatusSeeOther, res.StatusCode)
	}
	u, _ := url.Parse(c.url)
	pending := 0
	for _, ck := range b.Jar.Cookies(u) {
		if strings.HasPrefix(ck.Name, "huifang_signin_") {
			pending++
		}
	}
	require.Positive(t, pending)
	require.LessOrEqual(t, pending, 4)
}
