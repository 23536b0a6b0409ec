package web

import (
	"errors"
	"net/http"
	"strings"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"

	"github.com/huifang/huifang/services/console/internal/session"
)

// signIn sends the browser to the identity provider (authorization code
// flow with PKCE), remembering the verifier, state, nonce and where to
// come back to in a short-lived encrypted cookie.
func (s *Server) signIn(w http.ResponseWriter, r *http.Request) {
	state, err1 := session.Random()
	nonce, err2 := session.Random()
	if err := errors.Join(err1, err2); err != nil {
		http.Error(w, "sign-in is unavailable", http.StatusInternalServerError)
		return
	}
	verifier := oauth2.GenerateVerifier()
	in := session.SignIn{State: state, Nonce: nonce, Verifier: verifier, Next: localPath(r.URL.Query().Get("next"))}
	if err := s.sessions.SaveSignIn(w, r, in, s.now()); err != nil {
		http.Error(w, "sign-in is unavailable", http.StatusInternalServerError)
		return
	}
	opts := []oauth2.AuthCodeOption{oauth2.S256ChallengeOption(verifier), oidc.Nonce(nonce)}
	if hint := r.URL.Query().Get("login_hint"); hint != "" {
		opts = append(opts, oauth2.SetAuthURLParam("login_hint", hint))
	}
	http.Redirect(w, r, s.oauth.AuthCodeURL(state, opts...), http.StatusSeeOther)
}

// callback takes the browser back from the identity provider: it checks
// the state, exchanges the code with the PKCE verifier, checks the ID
// token (signature, audience, nonce) and the access token (as the
// services will), and starts the session.
func (s *Server) callback(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	in, err := s.sessions.TakeSignIn(w, r, q.Get("state"))
	switch {
	case err != nil && q.Get("state") != "" && s.sessions.SignInUnderWay(r):
		s.signInFailed(w, r, "the answer does not belong to this browser's sign-in (state)")
		return
	case err != nil:
		s.signInFailed(w, r, "no sign-in was under way in this browser (or it took over ten minutes)")
		return
	case q.Get("error") != "":
		s.signInFailed(w, r, "the identity provider refused: "+q.Get("error"))
		return
	}
	tok, err := s.oauth.Exchange(r.Context(), q.Get("code"), oauth2.VerifierOption(in.Verifier))
	if err != nil {
		s.log.Warn("sign-in: code exchange failed", "err", err)
		s.signInFailed(w, r, "the identity provider did not accept the code")
		return
	}
	rawID, _ := tok.Extra("id_token").(string)
	id, err := s.idCheck.Verify(r.Context(), rawID)
	if err != nil {
		s.log.Warn("sign-in: ID token refused", "err", err)
		s.signInFailed(w, r, "the identity provider's ID token does not verify")
		return
	}
	var profile struct {
		Nonce    string `json:"nonce"`
		Name     string `json:"name"`
		Locale   string `json:"locale"`
		ZoneInfo string `json:"zoneinfo"`
	}
	if err := id.Claims(&profile); err != nil || profile.Nonce != in.Nonce {
		s.signInFailed(w, r, "the ID token was not issued for this sign-in (nonce)")
		return
	}
	p, err := s.verifier.Verify(r.Context(), tok.AccessToken)
	if err != nil {
		s.log.Warn("sign-in: access token refused", "err", err)
		s.signInFailed(w, r, "the access token is not one Huifang accepts")
		return
	}
	expires := tok.Expiry
	if expires.IsZero() || expires.After(s.now().Add(12*time.Hour)) {
		expires = s.now().Add(12 * time.Hour)
	}
	sess := session.Session{Token: tok.AccessToken, Name: profile.Name, Lang: langOf(profile.Locale, r), Zone: profile.ZoneInfo, Expires: expires}
	if err := s.sessions.Save(w, sess); err != nil {
		http.Error(w, "sign-in is unavailable", http.StatusInternalServerError)
		return
	}
	s.log.Info("signed in", "subject", p.Subject, "tenant", p.Tenant)
	next := in.Next
	if next == "" {
		next = "/"
	}
	http.Redirect(w, r, next, http.StatusSeeOther)
}

func (s *Server) signInFailed(w http.ResponseWriter, r *http.Request, why string) {
	w.WriteHeader(http.StatusBadRequest)
	s.render(w, r, nil, "signin_failed", map[string]any{"Why": why})
}

// signOut ends the session.
func (s *Server) signOut(w http.ResponseWriter, r *http.Request, u *User) {
	s.sessions.Clear(w)
	s.log.Info("signed out", "subject", u.Subject, "tenant", u.Tenant)
	http.Redirect(w, r, "/signedout", http.StatusSeeOther)
}

func (s *Server) signedOut(w http.ResponseWriter, r *http.Request) {
	s.render(w, r, nil, "signedout", nil)
}

// localPath keeps next only when it is a path of this site (no open
// redirect): it starts with one slash, and holds no backslash or control
// character (browsers read "/\evil.example" and "/<tab>/evil.example" as
// "//evil.example", another site).
func localPath(next string) string {
	if !strings.HasPrefix(next, "/") || strings.HasPrefix(next, "//") {
		return ""
	}
	for _, c := range next {
		if c == '\\' || c < 0x20 || c == 0x7f {
			return ""
		}
	}
	return next
}
