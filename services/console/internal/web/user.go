package web

import (
	"crypto/subtle"
	"errors"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/huifang/huifang/pkg/auth"
	"github.com/huifang/huifang/services/console/internal/backend"
	"github.com/huifang/huifang/services/console/internal/session"
)

// User is the signed-in user of a request: the session and the principal
// its access token names (checked on every request, as the services do).
type User struct {
	session.Session
	auth.Principal
	// Loc is the user's time zone.
	Loc *time.Location
}

// Is tells whether the user holds one of roles.
func (u *User) Is(roles ...string) bool {
	for _, r := range roles {
		if u.Has(auth.Role(r)) {
			return true
		}
	}
	return false
}

// handler is a page or action of a signed-in user.
type handler func(w http.ResponseWriter, r *http.Request, u *User)

// user reads and checks the request's session.
func (s *Server) user(r *http.Request) (*User, error) {
	sess, err := s.sessions.Load(r, s.now())
	if err != nil {
		return nil, err
	}
	p, err := s.verifier.Verify(r.Context(), sess.Token)
	if err != nil {
		if errors.Is(err, auth.ErrUnauthenticated) {
			return nil, session.ErrNone
		}
		return nil, err // the identity provider's keys are away: an outage
	}
	loc, err := time.LoadLocation(sess.Zone)
	if err != nil || sess.Zone == "" {
		loc = time.UTC
	}
	return &User{Session: sess, Principal: p, Loc: loc}, nil
}

// page wraps a GET handler: an unsigned visitor (or one whose access token
// expired) is sent to sign in and back.
func (s *Server) page(h handler) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		u, err := s.user(r)
		if errors.Is(err, session.ErrNone) {
			s.signInAgain(w, r)
			return
		}
		if err != nil {
			s.log.Warn("the identity provider's keys cannot be read", "err", err)
			http.Error(w, "the sign-in service is unavailable; try again in a moment", http.StatusServiceUnavailable)
			return
		}
		h(w, r.WithContext(backend.WithToken(r.Context(), u.Token)), u)
	}
}

// action wraps a POST handler: it needs a session and the session's
// anti-forgery token in the form (csrf) or the X-CSRF-Token header.
func (s *Server) action(h handler) http.HandlerFunc {
	return s.page(func(w http.ResponseWriter, r *http.Request, u *User) {
		r.Body = http.MaxBytesReader(w, r.Body, 1<<20)
		if err := r.ParseForm(); err != nil {
			http.Error(w, "the form does not parse", http.StatusBadRequest)
			return
		}
		tok := r.PostForm.Get("csrf")
		if tok == "" {
			tok = r.Header.Get("X-CSRF-Token")
		}
		if tok == "" || subtle.ConstantTimeCompare([]byte(tok), []byte(u.CSRF)) != 1 {
			http.Error(w, "refused: the form is stale or forged (no matching anti-forgery token); reload the page", http.StatusForbidden)
			return
		}
		h(w, r, u)
	})
}

// signInAgain answers a request without a valid session (none, or its
// access token expired or was refused by a service). A page is sent to sign
// in and back to itself; a form posted is sent back to the page it was on
// (its Referer, when that is a page of this site), since its answer would
// be lost; a live part or stream (X-Fragment, EventSource) gets 401, and
// console.js reloads the whole page, which then signs in.
func (s *Server) signInAgain(w http.ResponseWriter, r *http.Request) {
	if r.Header.Get("X-Fragment") != "" || strings.Contains(r.Header.Get("Accept"), "text/event-stream") {
		w.Header().Set("Cache-Control", "no-store")
		http.Error(w, "signed out: reload the page to sign in again", http.StatusUnauthorized)
		return
	}
	next := r.URL.RequestURI()
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		next = s.sameSite(r.Referer())
	}
	http.Redirect(w, r, "/signin?next="+url.QueryEscape(next), http.StatusSeeOther)
}

// sameSite is the path and query of ref when it is a page of this console
// (PublicURL's origin), else "/".
func (s *Server) sameSite(ref string) string {
	u, err := url.Parse(ref)
	pub, perr := url.Parse(s.cfg.PublicURL)
	if err != nil || perr != nil || u.Scheme != pub.Scheme || u.Host != pub.Host {
		return "/"
	}
	if p := localPath(u.RequestURI()); p != "" {
		return p
	}
	return "/"
}
