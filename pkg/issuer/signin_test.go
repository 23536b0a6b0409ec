package issuer_test

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/huifang/huifang/pkg/auth"
	"github.com/huifang/huifang/pkg/issuer"
)

const (
	app      = "huifang-console"
	callback = "http://localhost:8006/auth/callback"
)

// signInIssuer is an issuer with the console's public client and one person.
func signInIssuer(t *testing.T) *issuer.Issuer {
	t.Helper()
	is, err := issuer.Listen("127.0.0.1:0", "huifang")
	require.NoError(t, err)
	t.Cleanup(func() { _ = is.Close() })
	is.AddPublicClient(app, callback)
	is.AddPerson(issuer.Person{Login: "agent", Name: "Agent", Locale: "en", ZoneInfo: "Asia/Shanghai",
		Token: issuer.Token{Subject: "agent-a-1", Claims: auth.Claims{Tenant: "default", Roles: []string{"agent"}, AgentID: "a-1"}}})
	return is
}

// noFollow is a client that shows redirects instead of following them.
var noFollow = &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}

func challenge(verifier string) string {
	sum := sha256.Sum256([]byte(verifier))
	return base64.RawURLEncoding.EncodeToString(sum[:])
}

// authorize picks login at /authorize for the request q and returns where
// the issuer sends the browser (a 303), or the refusal it shows.
func authorize(t *testing.T, is *issuer.Issuer, q url.Values) *http.Response {
	t.Helper()
	res, err := noFollow.PostForm(is.AuthorizeURL(), q)
	require.NoError(t, err)
	t.Cleanup(func() { _ = res.Body.Close() })
	return res
}

func authRequest(verifier string) url.Values {
	return url.Values{"client_id": {app}, "redirect_uri": {callback}, "response_type": {"code"}, "scope": {"openid profile"},
		"state": {"s-1"}, "nonce": {"n-1"}, "code_challenge": {challenge(verifier)}, "code_challenge_method": {"S256"}, "login": {"agent"}}
}

// codeOf signs agent in and returns the code the issuer sends back.
func codeOf(t *testing.T, is *issuer.Issuer, verifier string) string {
	t.Helper()
	res := authorize(t, is, authRequest(verifier))
	require.Equal(t, http.StatusSeeOther, res.StatusCode)
	loc, err := url.Parse(res.Header.Get("Location"))
	require.NoError(t, err)
	require.Equal(t, "s-1", loc.Query().Get("state"), "the state comes back")
	require.NotEmpty(t, loc.Query().Get("code"))
	return loc.Query().Get("code")
}

// exchange redeems code at /token and returns the status and the answer.
func exchange(t *testing.T, is *issuer.Issuer, form url.Values) (int, map[string]any) {
	t.Helper()
	form.Set("grant_type", "authorization_code")
	res, err := http.PostForm(is.TokenURL(), form)
	require.NoError(t, err)
	defer res.Body.Close()
	var body map[string]any
	require.NoError(t, json.NewDecoder(res.Body).Decode(&body))
	return res.StatusCode, body
}

// TestAuthorizationCodeFlow: a public client's code, redeemed once with
// its PKCE verifier, gives the person's access token and an ID token.
func TestAuthorizationCodeFlow(t *testing.T) {
	is := signInIssuer(t)
	verifier := strings.Repeat("v", 43)
	code := codeOf(t, is, verifier)
	status, body := exchange(t, is, url.Values{"code": {code}, "client_id": {app}, "redirect_uri": {callback}, "code_verifier": {verifier}})
	require.Equal(t, http.StatusOK, status, body)
	require.NotEmpty(t, body["access_token"])
	require.NotEmpty(t, body["id_token"])
	require.Equal(t, "Bearer", body["token_type"])
}

// TestAuthorizationCodeRefusals: the issuer gives no token for a wrong
// PKCE verifier, a code used twice, or a code redeemed by another client
// or for another redirect_uri; and it sends nobody to an unknown client or
// an unregistered redirect_uri, nor signs in without PKCE.
func TestAuthorizationCodeRefusals(t *testing.T) {
	is := signInIssuer(t)
	verifier := strings.Repeat("v", 43)
	redeem := func(code string) url.Values {
		return url.Values{"code": {code}, "client_id": {app}, "redirect_uri": {callback}, "code_verifier": {verifier}}
	}

	t.Run("wrong code_verifier", func(t *testing.T) {
		form := redeem(codeOf(t, is, verifier))
		form.Set("code_verifier", strings.Repeat("w", 43))
		status, body := exchange(t, is, form)
		require.Equal(t, http.StatusBadRequest, status)
		require.Equal(t, "invalid_grant", body["error"])
		require.Contains(t, body["error_description"], "code_verifier")
		require.NotContains(t, body, "access_token")
		// The code is spent by the failed try: the right verifier is too late.
		form.Set("code_verifier", verifier)
		status, body = exchange(t, is, form)
		require.Equal(t, http.StatusBadRequest, status)
		require.Equal(t, "invalid_grant", body["error"])
	})
	t.Run("no code_verifier", func(t *testing.T) {
		form := redeem(codeOf(t, is, verifier))
		form.Del("code_verifier")
		status, body := exchange(t, is, form)
		require.Equal(t, http.StatusBadRequest, status)
		require.Equal(t, "invalid_grant", body["error"])
	})
	t.Run("reused code", func(t *testing.T) {
		code := codeOf(t, is, verifier)
		status, _ := exchange(t, is, redeem(code))
		require.Equal(t, http.StatusOK, status)
		status, body := exchange(t, is, redeem(code))
		require.Equal(t, http.StatusBadRequest, status)
		require.Equal(t, "invalid_grant", body["error"])
		require.NotContains(t, body, "access_token")
	})
	t.Run("code redeemed by another client", func(t *testing.T) {
		is.AddPublicClient("other", "http://localhost:9999/auth/callback")
		form := redeem(codeOf(t, is, verifier))
		form.Set("client_id", "other")
		status, body := exchange(t, is, form)
		require.Equal(t, http.StatusBadRequest, status)
		require.Equal(t, "invalid_grant", body["error"])
	})
	t.Run("code redeemed for another redirect_uri", func(t *testing.T) {
		form := redeem(codeOf(t, is, verifier))
		form.Set("redirect_uri", "http://localhost:8006/elsewhere")
		status, body := exchange(t, is, form)
		require.Equal(t, http.StatusBadRequest, status)
		require.Equal(t, "invalid_grant", body["error"])
	})
	t.Run("unknown code", func(t *testing.T) {
		status, body := exchange(t, is, redeem("made-up"))
		require.Equal(t, http.StatusBadRequest, status)
		require.Equal(t, "invalid_grant", body["error"])
	})

	// Refusals at /authorize that must not redirect: the redirect itself is
	// not to be trusted.
	for name, change := range map[string]func(url.Values){
		"unknown client":            func(q url.Values) { q.Set("client_id", "stranger") },
		"unregistered redirect_uri": func(q url.Values) { q.Set("redirect_uri", "https://evil.example/cb") },
		"redirect_uri prefix":       func(q url.Values) { q.Set("redirect_uri", callback+"/../../x") },
	} {
		t.Run(name, func(t *testing.T) {
			for _, method := range []string{http.MethodGet, http.MethodPost} {
				q := authRequest(verifier)
				change(q)
				var res *http.Response
				if method == http.MethodGet {
					var err error
					res, err = noFollow.Get(is.AuthorizeURL() + "?" + q.Encode())
					require.NoError(t, err)
					res.Body.Close()
				} else {
					res = authorize(t, is, q)
				}
				require.Equal(t, http.StatusBadRequest, res.StatusCode, method)
				require.Empty(t, res.Header.Get("Location"), "%s: no redirect to an untrusted place", method)
			}
		})
	}

	// Refusals sent back to the client: no code.
	for name, change := range map[string]func(url.Values){
		"no PKCE":        func(q url.Values) { q.Del("code_challenge") },
		"plain PKCE":     func(q url.Values) { q.Set("code_challenge_method", "plain") },
		"implicit flow":  func(q url.Values) { q.Set("response_type", "token") },
		"unknown person": func(q url.Values) { q.Set("login", "nobody") },
	} {
		t.Run(name, func(t *testing.T) {
			q := authRequest(verifier)
			change(q)
			res := authorize(t, is, q)
			require.Equal(t, http.StatusSeeOther, res.StatusCode)
			loc, err := url.Parse(res.Header.Get("Location"))
			require.NoError(t, err)
			require.Equal(t, callback, loc.Scheme+"://"+loc.Host+loc.Path)
			require.NotEmpty(t, loc.Query().Get("error"))
			require.Empty(t, loc.Query().Get("code"))
			require.Equal(t, "s-1", loc.Query().Get("state"))
		})
	}
}
