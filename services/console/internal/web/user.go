package web

import (
	"errors"
	"net/http"
	"net/url"
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

// page wraps a GET handler: an unsigned visitor is sent to sign in and back.
func (s *Server) page(h handler) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		u, err := s.user(r)
		if errors.Is(err, session.ErrNone) {
			http.Redirect(w, r, "/signin?next="+url.QueryEscape(r.URL.RequestURI()), http.StatusSeeOther)
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
		if tok == "" || tok != u.CSRF {
			http.Error(w, "refused: the form is stale or forged (no matching anti-forgery token); reload the page", http.StatusForbidden)
			return
		}
		h(w, r, u)
	})
}
