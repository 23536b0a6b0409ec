package issuer

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"fmt"
	"html/template"
	"net/http"
	"net/url"
	"slices"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
)

// Person is somebody who can sign in at the issuer's /authorize page (the
// authorization-code flow of a browser application such as the console):
// the development issuer offers its people to pick from instead of asking
// for a password.
type Person struct {
	// Login names the person on the page and in links (login_hint).
	Login string
	// Name is shown, and goes into the ID token (name).
	Name string
	// Locale ("zh-CN", "en") and ZoneInfo ("Asia/Shanghai") go into the
	// ID token; the console shows its pages in them.
	Locale, ZoneInfo string
	// Token is the access token the person gets.
	Token Token
}

// AddPerson offers p at /authorize; a later person with the same login
// replaces the earlier one.
func (is *Issuer) AddPerson(p Person) {
	is.mu.Lock()
	defer is.mu.Unlock()
	is.people = slices.DeleteFunc(is.people, func(q Person) bool { return q.Login == p.Login })
	is.people = append(is.people, p)
}

// AddPublicClient registers a public OAuth 2.0 client (no secret: it proves
// itself with PKCE) that may sign people in and be sent back to one of
// redirects.
func (is *Issuer) AddPublicClient(id string, redirects ...string) {
	is.mu.Lock()
	defer is.mu.Unlock()
	if is.apps == nil {
		is.apps = map[string][]string{}
	}
	is.apps[id] = append(is.apps[id], redirects...)
}

// AuthorizeURL is the authorization endpoint.
func (is *Issuer) AuthorizeURL() string { return is.url + "/authorize" }

// grant is an authorization code waiting to be exchanged at /token.
type grant struct {
	client, redirect, challenge, nonce string
	person                             Person
	expires                            time.Time
}

// codeTTL is how long an authorization code may wait for its exchange.
const codeTTL = time.Minute

// authRequest is the query of an authorization request (OpenID Connect
// Core 3.1.2.1, PKCE RFC 7636) checked against the registered clients.
type authRequest struct {
	client, redirect, state, nonce, challenge string
}

// parseAuthRequest checks an authorization request. Errors that make the
// redirect untrustworthy (an unknown client or redirect) come back as err
// and are shown to the user; the others are sent back to the client.
func (is *Issuer) parseAuthRequest(q url.Values) (authRequest, string, error) {
	req := authRequest{client: q.Get("client_id"), redirect: q.Get("redirect_uri"), state: q.Get("state"), nonce: q.Get("nonce"), challenge: q.Get("code_challenge")}
	is.mu.Lock()
	redirects, known := is.apps[req.client]
	is.mu.Unlock()
	switch {
	case !known:
		return req, "", fmt.Errorf("unknown client_id %q", req.client)
	case !slices.Contains(redirects, req.redirect):
		return req, "", fmt.Errorf("redirect_uri %q is not registered for client %q", req.redirect, req.client)
	case q.Get("response_type") != "code":
		return req, "unsupported_response_type", nil
	case req.challenge == "" || q.Get("code_challenge_method") != "S256":
		return req, "invalid_request", nil // PKCE with S256 is required
	}
	return req, "", nil
}

var pickPage = template.Must(template.New("pick").Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Sign in · Huifang development issuer</title><link rel="icon" href="data:,">
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>body{font:16px system-ui,sans-serif;max-width:32rem;margin:3rem auto;padding:0 1rem}
button{display:block;width:100%;margin:.4rem 0;padding:.7rem;font-size:1rem;text-align:left;cursor:pointer}</style></head>
<body><h1>Sign in</h1><p>Development issuer: pick who you are. A deployment signs people in at the company's identity provider.</p>
<form method="post" action="authorize">
{{range $k, $v := .Query}}{{range $v}}<input type="hidden" name="{{$k}}" value="{{.}}">{{end}}{{end}}
{{range .People}}<button type="submit" name="login" value="{{.Login}}" data-login="{{.Login}}">{{.Name}} <small>({{.Login}})</small></button>{{end}}
</form></body></html>`))

// authorize shows the people to sign in as (GET) and, once one is picked
// (POST), sends the browser back to the client with a code.
func (is *Issuer) authorize(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, 64<<10)
	if err := r.ParseForm(); err != nil {
		http.Error(w, "the form does not parse", http.StatusBadRequest)
		return
	}
	q := r.Form
	req, oauthErr, err := is.parseAuthRequest(q)
	if err != nil {
		http.Error(w, "sign-in refused: "+err.Error(), http.StatusBadRequest)
		return
	}
	back := func(params url.Values) {
		u, _ := url.Parse(req.redirect)
		v := u.Query()
		for k, vs := range params {
			v[k] = vs
		}
		if req.state != "" {
			v.Set("state", req.state)
		}
		u.RawQuery = v.Encode()
		http.Redirect(w, r, u.String(), http.StatusSeeOther)
	}
	if oauthErr != "" {
		back(url.Values{"error": {oauthErr}})
		return
	}
	login := q.Get("login")
	if login == "" && r.Method == http.MethodGet {
		login = q.Get("login_hint")
	}
	if login == "" {
		is.mu.Lock()
		people := slices.Clone(is.people)
		is.mu.Unlock()
		query := url.Values{}
		for k, v := range q {
			if k != "login" {
				query[k] = v
			}
		}
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.Header().Set("Cache-Control", "no-store")
		_ = pickPage.Execute(w, map[string]any{"Query": query, "People": people})
		return
	}
	is.mu.Lock()
	i := slices.IndexFunc(is.people, func(p Person) bool { return p.Login == login })
	var p Person
	if i >= 0 {
		p = is.people[i]
	}
	is.mu.Unlock()
	if i < 0 {
		back(url.Values{"error": {"access_denied"}, "error_description": {"unknown login"}})
		return
	}
	code, err := randomString()
	if err != nil {
		back(url.Values{"error": {"server_error"}})
		return
	}
	is.mu.Lock()
	if is.grants == nil {
		is.grants = map[string]grant{}
	}
	now := time.Now()
	for c, g := range is.grants {
		if now.After(g.expires) {
			delete(is.grants, c)
		}
	}
	is.grants[code] = grant{client: req.client, redirect: req.redirect, challenge: req.challenge, nonce: req.nonce, person: p, expires: now.Add(codeTTL)}
	is.mu.Unlock()
	back(url.Values{"code": {code}})
}

// exchange answers the authorization-code grant (RFC 6749 4.1.3) of a
// public client with its PKCE verifier: the person's access token and an
// ID token. A code is good once.
func (is *Issuer) exchange(w http.ResponseWriter, r *http.Request) {
	code := r.PostForm.Get("code")
	is.mu.Lock()
	g, ok := is.grants[code]
	delete(is.grants, code)
	is.mu.Unlock()
	switch {
	case !ok || time.Now().After(g.expires):
		oauthError(w, http.StatusBadRequest, "invalid_grant", "unknown, used or expired code")
		return
	case r.PostForm.Get("client_id") != g.client || r.PostForm.Get("redirect_uri") != g.redirect:
		oauthError(w, http.StatusBadRequest, "invalid_grant", "the code was given to another client or redirect_uri")
		return
	}
	sum := sha256.Sum256([]byte(r.PostForm.Get("code_verifier")))
	if subtle.ConstantTimeCompare([]byte(base64.RawURLEncoding.EncodeToString(sum[:])), []byte(g.challenge)) != 1 {
		oauthError(w, http.StatusBadRequest, "invalid_grant", "code_verifier does not match the code_challenge")
		return
	}
	tok := g.person.Token
	if tok.TTL == 0 {
		tok.TTL = 8 * time.Hour
	}
	access, err := is.Mint(tok)
	if err != nil {
		oauthError(w, http.StatusInternalServerError, "server_error", "the token could not be signed")
		return
	}
	id, err := is.idToken(g, tok)
	if err != nil {
		oauthError(w, http.StatusInternalServerError, "server_error", "the ID token could not be signed")
		return
	}
	w.Header().Set("Cache-Control", "no-store")
	writeJSON(w, map[string]any{"access_token": access, "id_token": id, "token_type": "Bearer", "expires_in": int(tok.TTL.Seconds())})
}

// idToken signs the OpenID Connect ID token of a grant: for the client, with
// its nonce and the person's profile claims.
func (is *Issuer) idToken(g grant, tok Token) (string, error) {
	is.mu.Lock()
	key := is.keys[len(is.keys)-1]
	is.mu.Unlock()
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.ES256, Key: key}, (&jose.SignerOptions{}).WithType("JWT"))
	if err != nil {
		return "", fmt.Errorf("issuer: signer: %w", err)
	}
	now := time.Now()
	std := jwt.Claims{Issuer: is.url, Subject: tok.Subject, Audience: jwt.Audience{g.client},
		IssuedAt: jwt.NewNumericDate(now), Expiry: jwt.NewNumericDate(now.Add(tok.TTL))}
	profile := map[string]any{"nonce": g.nonce, "name": g.person.Name, "locale": g.person.Locale, "zoneinfo": g.person.ZoneInfo}
	raw, err := jwt.Signed(signer).Claims(std).Claims(profile).Serialize()
	if err != nil {
		return "", fmt.Errorf("issuer: sign: %w", err)
	}
	return raw, nil
}

func randomString() (string, error) {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("issuer: random: %w", err)
	}
	return base64.RawURLEncoding.EncodeToString(b), nil
}
