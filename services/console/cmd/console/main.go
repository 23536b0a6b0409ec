// Command console serves Huifang's console: the web pages of the agent's
// workbench, the leader's and director's desk and the policy desk. It signs
// users in at the identity provider (OpenID Connect, authorization code
// with PKCE) and calls the five services with each user's own token; it
// keeps no data of its own.
package main

import (
	"context"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/huifang/huifang/pkg/app"
	"github.com/huifang/huifang/pkg/auth"
	"github.com/huifang/huifang/pkg/grpcserver"
	"github.com/huifang/huifang/pkg/httpserver"
	"github.com/huifang/huifang/services/console/internal/backend"
	"github.com/huifang/huifang/services/console/internal/web"
)

func main() { app.Main("console", run) }

type config struct {
	// HTTPAddr serves the pages, /healthz, /readyz and /metrics.
	HTTPAddr string `env:"HTTP_ADDR" default:":8006"`
	// PublicURL is where users reach the console; the identity provider
	// sends them back to PublicURL/auth/callback.
	PublicURL string `env:"PUBLIC_URL,url" default:"http://localhost:8006"`
	// AuthIssuer is the OpenID Connect provider users sign in at; its
	// access tokens (audience AuthAudience) are what the services accept.
	AuthIssuer   string `env:"AUTH_ISSUER,url"`
	AuthAudience string `env:"AUTH_AUDIENCE" default:"huifang"`
	AuthJWKSURL  string `env:"AUTH_JWKS_URL,url"`
	// AuthClientID is the console's public client at the provider.
	AuthClientID string `env:"AUTH_CLIENT_ID" default:"huifang-console"`
	// SessionKey (hex or base64, at least 32 bytes) encrypts and signs the
	// session cookies; every replica needs the same one.
	SessionKey string `env:"SESSION_KEY,secret"`
	// The services' gRPC addresses, and the CA of their TLS certificates
	// (unset: plaintext, loopback development only).
	IntakeAddr    string `env:"INTAKE_ADDR" default:"127.0.0.1:7001"`
	SchedulerAddr string `env:"SCHEDULER_ADDR" default:"127.0.0.1:7002"`
	DispatchAddr  string `env:"DISPATCH_ADDR" default:"127.0.0.1:7003"`
	FeedbackAddr  string `env:"FEEDBACK_ADDR" default:"127.0.0.1:7004"`
	AnalyticsAddr string `env:"ANALYTICS_ADDR" default:"127.0.0.1:7005"`
	GRPCCAFile    string `env:"GRPC_CA_FILE"`
	// HTTPMaxConcurrent bounds the requests served at once; each open page
	// with live parts holds one per topic.
	HTTPMaxConcurrent int           `env:"HTTP_MAX_CONCURRENT" default:"1024"`
	ShutdownGrace     time.Duration `env:"SHUTDOWN_GRACE" default:"10s"`
	StartTimeout      time.Duration `env:"START_TIMEOUT" default:"2m"`
}

func run(ctx context.Context, log *slog.Logger) error {
	// Configuration.
	var cfg config
	if err := app.LoadConfig(log, "console", &cfg); err != nil {
		return err
	}
	if cfg.AuthIssuer == "" {
		return errors.New("config: AUTH_ISSUER is required: users sign in at the identity provider")
	}
	key, err := decodeKey(cfg.SessionKey)
	if err != nil {
		return err
	}

	// HTTP side first: /healthz answers while the provider is discovered.
	srv := grpcserver.New(log, "", cfg.HTTPAddr)
	limits := httpserver.Defaults()
	limits.MaxConcurrent = cfg.HTTPMaxConcurrent
	limits.WriteTimeout = time.Minute // live streams lift it for themselves
	srv.SetHTTPLimits(limits)
	if err := srv.StartHTTP(); err != nil {
		return err
	}
	defer func() {
		c, cancel := context.WithTimeout(context.WithoutCancel(ctx), cfg.ShutdownGrace)
		defer cancel()
		_ = srv.CloseHTTP(c)
	}()

	// The five services.
	api, err := backend.Dial(backend.Addrs{Intake: cfg.IntakeAddr, Scheduler: cfg.SchedulerAddr, Dispatch: cfg.DispatchAddr,
		Feedback: cfg.FeedbackAddr, Analytics: cfg.AnalyticsAddr, CAFile: cfg.GRPCCAFile})
	if err != nil {
		return err
	}
	defer api.Close()

	// The pages, once the identity provider answers.
	wcfg := web.Config{PublicURL: cfg.PublicURL, Issuer: cfg.AuthIssuer, ClientID: cfg.AuthClientID, SessionKey: key,
		Auth: auth.Config{Issuer: cfg.AuthIssuer, Audience: cfg.AuthAudience, JWKSURL: cfg.AuthJWKSURL}}
	var pages *web.Server
	deadline := time.Now().Add(cfg.StartTimeout)
	for {
		pages, err = web.New(ctx, log, wcfg, api)
		if err == nil {
			break
		}
		if ctx.Err() != nil || time.Now().After(deadline) {
			return fmt.Errorf("console: %w", err)
		}
		log.Warn("waiting for the identity provider", "err", err)
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(2 * time.Second):
		}
	}
	requests := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "huifang_console_requests_total",
		Help: "Console HTTP requests, by method and status code.",
	}, []string{"method", "code"})
	srv.Registry.MustRegister(requests)
	for _, m := range []string{http.MethodGet, http.MethodPost} {
		requests.WithLabelValues(m, "200") // exported from the start, at zero
	}
	srv.Handle("/", counted(requests, pages))
	srv.SetReady(true)
	log.Info("console ready", "url", cfg.PublicURL, "issuer", cfg.AuthIssuer)

	<-ctx.Done()
	srv.SetReady(false)
	log.Info("stopping")
	return nil
}

// decodeKey reads SESSION_KEY as hex or base64.
func decodeKey(s string) ([]byte, error) {
	if s == "" {
		return nil, errors.New("config: SESSION_KEY is required (32 random bytes, hex or base64: openssl rand -hex 32)")
	}
	for _, dec := range []func(string) ([]byte, error){hex.DecodeString, base64.StdEncoding.DecodeString, base64.RawURLEncoding.DecodeString} {
		if b, err := dec(s); err == nil && len(b) >= 32 {
			return b, nil
		}
	}
	return nil, errors.New("config: SESSION_KEY must be at least 32 bytes, hex or base64")
}

// counted counts the requests by method and status; a method other than
// GET, HEAD and POST counts as "other" (a client chooses it: the series
// stay few).
func counted(c *prometheus.CounterVec, h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rec := &statusRecorder{ResponseWriter: w, code: http.StatusOK}
		h.ServeHTTP(rec, r)
		method := r.Method
		switch method {
		case http.MethodGet, http.MethodHead, http.MethodPost:
		default:
			method = "other"
		}
		c.WithLabelValues(method, fmt.Sprint(rec.code)).Inc()
	})
}

type statusRecorder struct {
	http.ResponseWriter
	code int
}

func (s *statusRecorder) WriteHeader(code int) { s.code = code; s.ResponseWriter.WriteHeader(code) }

// Unwrap lets http.ResponseController reach the connection (flushes and
// deadlines of live streams).
func (s *statusRecorder) Unwrap() http.ResponseWriter { return s.ResponseWriter }
