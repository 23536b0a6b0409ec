// Package httpserver builds every HTTP server of Huifang with the same
// bounds: how long a client may take to send its headers and its body, how
// long the answer may take, how long an idle connection stays open, how
// large the headers may be, and how many requests are handled at once (one
// more is answered 503 with Retry-After). A slow or flooding client costs a
// bounded number of goroutines and bytes.
package httpserver

import (
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Limits bound an HTTP server. The zero value of a field keeps no bound
// (net/http's own behaviour); Defaults gives every field its value.
type Limits struct {
	// ReadHeaderTimeout is how long a client may take to send a request's
	// headers (a slow-loris client is cut off after it).
	ReadHeaderTimeout time.Duration
	// ReadTimeout is how long a client may take to send a whole request,
	// headers and body.
	ReadTimeout time.Duration
	// WriteTimeout is how long the answer may take, from the end of the
	// headers to the last byte written.
	WriteTimeout time.Duration
	// IdleTimeout is how long a kept-alive connection waits for its next
	// request.
	IdleTimeout time.Duration
	// MaxHeaderBytes bounds a request's headers.
	MaxHeaderBytes int
	// MaxConcurrent is how many requests are handled at once; 0: no bound.
	MaxConcurrent int
}

// Defaults are the bounds of a Huifang HTTP server unless configured
// otherwise (app.Base's HTTP_* variables). ReadTimeout and WriteTimeout
// leave room for intake's largest post (a 16 MiB batch) on a slow link.
func Defaults() Limits {
	return Limits{
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       60 * time.Second,
		WriteTimeout:      60 * time.Second,
		IdleTimeout:       120 * time.Second,
		MaxHeaderBytes:    64 << 10,
		MaxConcurrent:     64,
	}
}

// Check refuses limits that would leave a server unbounded by mistake: every
// timeout must be positive, MaxConcurrent not negative.
func (l Limits) Check() error {
	var errs []error
	for name, d := range map[string]time.Duration{"HTTP_READ_HEADER_TIMEOUT": l.ReadHeaderTimeout, "HTTP_READ_TIMEOUT": l.ReadTimeout,
		"HTTP_WRITE_TIMEOUT": l.WriteTimeout, "HTTP_IDLE_TIMEOUT": l.IdleTimeout} {
		if d <= 0 {
			errs = append(errs, fmt.Errorf("%s must be positive, got %s", name, d))
		}
	}
	if l.MaxConcurrent < 0 {
		errs = append(errs, fmt.Errorf("HTTP_MAX_CONCURRENT must not be negative, got %d", l.MaxConcurrent))
	}
	if len(errs) > 0 {
		slices.SortFunc(errs, func(a, b error) int { return strings.Compare(a.Error(), b.Error()) })
		return fmt.Errorf("httpserver: %w", errors.Join(errs...))
	}
	return nil
}

// New returns a server of h with the limits' timeouts and header bound, and
// h behind a Limiter of MaxConcurrent. Set Addr, or call Serve with a
// listener.
func New(h http.Handler, l Limits) *http.Server {
	return WithTimeouts(NewLimiter(l.MaxConcurrent).Wrap(h), l)
}

// WithTimeouts returns a server of h with the limits' timeouts and header
// bound only: the caller puts a Limiter in front of the routes it bounds
// (grpcserver leaves its probes and metrics out, so that a flood of posts
// does not fail the liveness probe).
func WithTimeouts(h http.Handler, l Limits) *http.Server {
	return &http.Server{
		Handler:           h,
		ReadHeaderTimeout: l.ReadHeaderTimeout,
		ReadTimeout:       l.ReadTimeout,
		WriteTimeout:      l.WriteTimeout,
		IdleTimeout:       l.IdleTimeout,
		MaxHeaderBytes:    l.MaxHeaderBytes,
	}
}

// Limiter lets a number of requests be handled at once and answers the
// others at once with 503 and Retry-After, without queueing them.
type Limiter struct {
	slots chan struct{} // nil: no bound
}

// NewLimiter returns a limiter of n requests at once; n <= 0 bounds nothing.
func NewLimiter(n int) *Limiter {
	if n <= 0 {
		return &Limiter{}
	}
	return &Limiter{slots: make(chan struct{}, n)}
}

// RetryAfter is what a refused client is told to wait.
const RetryAfter = time.Second

// Wrap returns h behind the limiter. Handlers wrapped by one limiter share
// its slots.
func (l *Limiter) Wrap(h http.Handler) http.Handler {
	if l.slots == nil {
		return h
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case l.slots <- struct{}{}:
		default:
			w.Header().Set("Retry-After", strconv.Itoa(int(RetryAfter/time.Second)))
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusServiceUnavailable)
			_, _ = w.Write([]byte(`{"error":"too many requests at once; retry"}` + "\n"))
			return
		}
		defer func() { <-l.slots }()
		h.ServeHTTP(w, r)
	})
}
