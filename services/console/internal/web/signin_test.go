package web_test

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/huifang/huifang/pkg/auth"
	"github.com/huifang/huifang/pkg/issuer"
	"github.com/huifang/huifang/services/console/internal/backend"
	"github.com/huifang/huifang/services/console/internal/web"
)

// console is a console served on a test server, signing in at a
// development issuer, with services nowhere (pages that call none work).
type console struct {
	url    string
	issuer *issuer.Issuer
}

func startConsole(t *testing.T, opts ...func(*web.Config)) console {
	t.Helper()
	is, err := issuer.Listen("127.0.0.1:0", "huifang")
	require.NoError(t, err)
	t.Cleanup(func() { _ = is.Close() })
	ts := httptest.NewUnstartedServer(nil)
	pub := "http://" + ts.Listener.Addr().String()
	is.AddPublicClient("huifang-console", pub+"/auth/callback")
	is.AddPerson(issuer.Person{Login: "agent", Name: "Agent Wang", Locale: "en", ZoneInfo: "Asia/Shanghai",
		Token: issuer.Token{Subject: "agent-a-1", Claims: auth.Claims{Tenant: "default", Roles: []string{"agent"}, AgentID: "a-1"}}})
	api, err := backend.Dial(backend.Addrs{Intake: "127.0.0.1:1", Scheduler: "127.0.0.1:1", Dispatch: "127.0.0.1:1", Feedback: "127.0.0.1:1", Analytics: "127.0.0.1:1"})
	require.NoError(t, err)
	t.Cleanup(api.Close)
	cfg := web.Config{
		PublicURL: pub, Issuer: is.URL(), ClientID: "huifang-console", Auth: is.Config(),
		SessionKey: []byte("0123456789abcdef0123456789abcdef"),
	}
	for _, o := range opts {
		o(&cfg)
	}
	srv, err := web.New(context.Background(), slog.New(slog.NewTextHandler(io.Discard, nil)), cfg, api)
	require.NoError(t, err)
	ts.Config.Handler = srv
	ts.Start()
	t.Cleanup(ts.Close)
	return console{url: pub, issuer: is}
}

// secureJar keeps Secure cookies over plain HTTP to the loopback test
// server, as browsers do for localhost.
type secureJar struct{ *cookiejar.Jar }

func https(u *url.URL) *url.URL { c := *u; c.Scheme = "https"; return &c }

func (j secureJar) SetCookies(u *url.URL, cs []*http.Cookie) { j.Jar.SetCookies(https(u), cs) }
func (j secureJar) Cookies(u *url.URL) []*http.Cookie        { return j.Jar.Cookies(https(u)) }

func browser(t *testing.T) *http.Client {
	jar, err := cookiejar.New(nil)
	require.NoError(t, err)
	return &http.Client{Jar: secureJar{jar}, Timeout: 30 * time.Second}
}

func body(t *testing.T, res *http.Response) string {
	t.Helper()
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	require.NoError(t, err)
	return string(b)
}

// signIn follows the whole flow from a page to the issuer's picker and
// back, as a browser does, and returns the page reached.
func signIn(t *testing.T, c console, b *http.Client, page, login string) (*http.Response, string) {
	t.Helper()
	res, err := b.Get(c.url + page)
	require.NoError(t, err)
	picker := body(t, res)
	require.Equal(t, c.issuer.AuthorizeURL(), res.Request.URL.Scheme+"://"+res.Request.URL.Host+res.Request.URL.Path, "an unsigned visitor is sent to the identity provider")
	require.Contains(t, picker, `value="`+login+`"`)
	form := res.Request.URL.Query()
	form.Set("login", login)
	res, err = b.PostForm(c.issuer.AuthorizeURL(), form)
	require.NoError(t, err)
	return res, body(t, res)
}

// TestSignInWithPKCEAndBack: an unsigned visitor goes to the identity
// provider with a PKCE challenge, comes back to the page asked for, signed
// in with the name and language of the ID token.
func TestSignInWithPKCEAndBack(t *testing.T) {
	c := startConsole(t)
	b := browser(t)
	res, err := b.Get(c.url + "/?x=1")
	require.NoError(t, err)
	q := res.Request.URL.Query()
	body(t, res)
	require.Equal(t, "S256", q.Get("code_challenge_method"))
	require.NotEmpty(t, q.Get("code_challenge"))
	require.NotEmpty(t, q.Get("nonce"))
	require.NotEmpty(t, q.Get("state"))

	res, page := signIn(t, c, b, "/?x=1", "agent")
	require.Equal(t, http.StatusOK, res.StatusCode, page)
	require.Equal(t, "/", res.Request.URL.Path)
	require.Equal(t, "x=1", res.Request.URL.RawQuery, "back to the page asked for")
	require.Contains(t, page, "Hello, Agent Wang")
	require.Contains(t, page, "Asia/Shanghai")

	// The cookie is Secure, HttpOnly and SameSite=Lax, and holds no readable token.
	for _, h := range res.Request.Response.Header.Values("Set-Cookie") {
		if strings.HasPrefix(h, "huifang_session=") {
			require.Contains(t, h, "Secure")
			require.Contains(t, h, "HttpOnly")
			require.Contains(t, h, "SameSite=Lax")
			require.NotContains(t, h, "eyJ", "the access token is encrypted in the cookie")
		}
	}
}

// TestSignOut ends the session: the next page asks to sign in again.
func TestSignOut(t *testing.T) {
	c := startConsole(t)
	b := browser(t)
	_, page := signIn(t, c, b, "/", "agent")
	csrf := between(page, `name="csrf" value="`, `"`)
	require.NotEmpty(t, csrf)
	res, err := b.PostForm(c.url+"/signout", url.Values{"csrf": {csrf}})
	require.NoError(t, err)
	require.Equal(t, "/signedout", res.Request.URL.Path)
	body(t, res)
	res, err = b.Get(c.url + "/")
	require.NoError(t, err)
	body(t, res)
	require.Equal(t, c.issuer.AuthorizeURL(), res.Request.URL.Scheme+"://"+res.Request.URL.Host+res.Request.URL.Path)
}

// TestFormsNeedTheAntiForgeryToken: a signed-in user's POST without the
// session's token, or from another origin, changes nothing.
func TestFormsNeedTheAntiForgeryToken(t *testing.T) {
	c := startConsole(t)
	b := browser(t)
	_, page := signIn(t, c, b, "/", "agent")
	csrf := between(page, `name="csrf" value="`, `"`)

	res, err := b.PostForm(c.url+"/settings", url.Values{"lang": {"zh"}})
	require.NoError(t, err)
	require.Equal(t, http.StatusForbidden, res.StatusCode)
	require.Contains(t, body(t, res), "anti-forgery")

	req, _ := http.NewRequest(http.MethodPost, c.url+"/settings", strings.NewReader(url.Values{"lang": {"zh"}, "csrf": {csrf}}.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Origin", "https://evil.example")
	req.Header.Set("Sec-Fetch-Site", "cross-site")
	res, err = b.Do(req)
	require.NoError(t, err)
	require.Equal(t, http.StatusForbidden, res.StatusCode)
	body(t, res)

	res, err = b.Get(c.url + "/")
	require.NoError(t, err)
	require.Contains(t, body(t, res), "Hello, Agent Wang", "still in English")

	// With the token, the language changes.
	res, err = b.PostForm(c.url+"/settings", url.Values{"lang": {"zh"}, "csrf": {csrf}, "next": {"/"}})
	require.NoError(t, err)
	require.Contains(t, body(t, res), "您好，Agent Wang")
}

// TestSignInRefusals: an answer that does not belong to the browser's
// sign-in, and a tampered session cookie, sign nobody in; next never
// leads off the site.
func TestSignInRefusals(t *testing.T) {
	c := startConsole(t)
	b := browser(t)
	res, err := b.Get(c.url + "/auth/callback?code=x&state=y")
	require.NoError(t, err)
	require.Equal(t, http.StatusBadRequest, res.StatusCode)
	require.Contains(t, body(t, res), "no sign-in was under way")

	// A state that differs from the browser's.
	res, err = b.Get(c.url + "/")
	require.NoError(t, err)
	body(t, res)
	res, err = b.Get(c.url + "/auth/callback?code=x&state=forged")
	require.NoError(t, err)
	require.Equal(t, http.StatusBadRequest, res.StatusCode)
	require.Contains(t, body(t, res), "state")

	// A tampered cookie is no session.
	u, _ := url.Parse(c.url)
	b.Jar.SetCookies(u, []*http.Cookie{{Name: "huifang_session", Value: "forged", Path: "/"}})
	res, err = b.Get(c.url + "/")
	require.NoError(t, err)
	body(t, res)
	require.NotEqual(t, c.url+"/", res.Request.URL.String())

	// next=//elsewhere is dropped: the user lands on the home page.
	b = browser(t)
	res, _ = signIn(t, c, b, "/signin?next=//evil.example/x", "agent")
	require.Equal(t, c.url+"/", res.Request.URL.String())
}

func between(s, from, to string) string {
	i := strings.Index(s, from)
	if i < 0 {
		return ""
	}
	s = s[i+len(from):]
	j := strings.Index(s, to)
	if j < 0 {
		return ""
	}
	return s[:j]
}
