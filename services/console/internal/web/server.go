// Package web serves the console's pages: sign-in through the identity
// provider, the agent's workbench, the leader's and director's desk and
// the policy desk. Pages are rendered on the server from the templates in
// package assets; every action is a form posted back (with the session's
// anti-forgery token) and every read a call to one of the services with
// the user's own token, so each service applies its own rules to the user.
package web

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"

	"github.com/huifang/huifang/pkg/auth"
	"github.com/huifang/huifang/services/console/assets"
	"github.com/huifang/huifang/services/console/internal/backend"
	"github.com/huifang/huifang/services/console/internal/session"
)

// Config is what the server needs to know.
type Config struct {
	// PublicURL is where users reach the console (its redirect URI is
	// PublicURL + "/auth/callback").
	PublicURL string
	// Issuer is the OpenID Connect provider; ClientID the console's public
	// client there (signing in with PKCE, no secret).
	Issuer, ClientID string
	// Auth checks the access tokens as the services do.
	Auth auth.Config
	// SessionKey encrypts and signs the session cookies.
	SessionKey []byte
	// Now is the clock (time.Now when nil).
	Now func() time.Time
}

// Server is the console's HTTP handler.
type Server struct {
	cfg      Config
	log      *slog.Logger
	api      *backend.Clients
	sessions *session.Store
	verifier *auth.Verifier
	provider *oidc.Provider
	idCheck  *oidc.IDTokenVerifier
	oauth    oauth2.Config
	pages    *pages
	mux      *http.ServeMux
	// https: PUBLIC_URL is https (HSTS, __Host- cookies).
	https bool
	now   func() time.Time
	// liveTopics are what GET /live follows (topic).
	liveTopics map[string]watcher
}

// New discovers the identity provider and returns the server.
func New(ctx context.Context, log *slog.Logger, cfg Config, api *backend.Clients) (*Server, error) {
	pub, err := url.Parse(cfg.PublicURL)
	if err != nil || (pub.Scheme != "http" && pub.Scheme != "https") || pub.Host == "" {
		return nil, fmt.Errorf("web: PUBLIC_URL %q must be an http(s) URL", cfg.PublicURL)
	}
	if cfg.ClientID == "" {
		return nil, errors.New("web: AUTH_CLIENT_ID (the console's client at the identity provider) is required")
	}
	store, err := session.NewStore(cfg.SessionKey, pub.Scheme == "https")
	if err != nil {
		return nil, err
	}
	provider, err := oidc.NewProvider(oidc.ClientContext(ctx, &http.Client{Timeout: 10 * time.Second}), cfg.Issuer)
	if err != nil {
		return nil, fmt.Errorf("web: discovering the identity provider %s: %w", cfg.Issuer, err)
	}
	verifier, err := auth.NewVerifier(ctx, cfg.Auth)
	if err != nil {
		return nil, err
	}
	tpl, err := loadPages(assets.FS)
	if err != nil {
		return nil, err
	}
	endpoint := provider.Endpoint()
	endpoint.AuthStyle = oauth2.AuthStyleInParams // a public client: client_id in the form, no secret
	s := &Server{
		cfg: cfg, log: log, api: api, sessions: store, verifier: verifier, provider: provider,
		idCheck: provider.Verifier(&oidc.Config{ClientID: cfg.ClientID}),
		oauth: oauth2.Config{ClientID: cfg.ClientID, Endpoint: endpoint,
			RedirectURL: strings.TrimRight(cfg.PublicURL, "/") + "/auth/callback",
			Scopes:      []string{oidc.ScopeOpenID, "profile"}},
		pages: tpl, mux: http.NewServeMux(), now: cfg.Now, https: pub.Scheme == "https",
	}
	if s.now == nil {
		s.now = time.Now
	}
	s.routes()
	return s, nil
}

// ServeHTTP serves the console behind the cross-origin protection of
// net/http (a state-changing request from another origin is refused) and
// the security headers of every page.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	// Scripts, styles and everything else from this site only (no inline
	// script or style), no plugins, no <base> rewriting links, no framing;
	// forms post here (or to the identity provider).
	h.Set("Content-Security-Policy", "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self' "+s.cfg.Issuer)
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "same-origin")
	h.Set("X-Frame-Options", "DENY")
	h.Set("Cross-Origin-Opener-Policy", "same-origin")
	if s.https {
		h.Set("Strict-Transport-Security", "max-age=31536000")
	}
	s.csrf().ServeHTTP(w, r)
}

func (s *Server) csrf() http.Handler {
	cop := http.NewCrossOriginProtection()
	cop.SetDenyHandler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "refused: a request from another site may not change anything here", http.StatusForbidden)
	}))
	return cop.Handler(s.mux)
}

// routes lists every page and action: the common ones here, each desk's in
// its own file.
func (s *Server) routes() {
	static, _ := fs.Sub(assets.FS, "static")
	s.mux.Handle("GET /static/", http.StripPrefix("/static/", cacheable(http.FileServerFS(static))))
	s.mux.HandleFunc("GET /signin", s.signIn)
	s.mux.HandleFunc("GET /auth/callback", s.callback)
	s.mux.HandleFunc("POST /signout", s.action(s.signOut))
	s.mux.HandleFunc("GET /signedout", s.signedOut)
	s.mux.HandleFunc("POST /settings", s.action(s.settings))
	s.mux.HandleFunc("GET /{$}", s.page(s.home))
	s.mux.HandleFunc("GET /live", s.page(s.live))
	s.agentRoutes()
	s.deskRoutes()
	s.policyRoutes()
	s.figuresRoutes()
}

func cacheable(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "public, max-age=300")
		h.ServeHTTP(w, r)
	})
}
