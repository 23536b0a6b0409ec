// Package grpcserver builds the gRPC server every service runs (health,
// reflection, tracing, panic recovery, the request rules of the .proto
// files, one error mapping) and the HTTP server beside it for /healthz,
// /readyz, /metrics and the HTTP/JSON gateway (Gateway).
package grpcserver

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"go.opentelemetry.io/contrib/instrumentation/google.golang.org/grpc/otelgrpc"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/reflection"
	"google.golang.org/grpc/status"

	"github.com/huifang/huifang/pkg/auth"
	"github.com/huifang/huifang/pkg/httpserver"
	"github.com/huifang/huifang/pkg/invalid"
	"github.com/huifang/huifang/pkg/postgres"
)

// Server is a gRPC server and its HTTP side.
type Server struct {
	GRPC     *grpc.Server
	Registry *prometheus.Registry
	health   *health.Server
	log      *slog.Logger
	ready    atomic.Bool
	// degraded says why the service cannot serve for the moment (a
	// dependency away); empty when it can.
	degraded atomic.Pointer[string]
	grpcAddr string
	httpAddr string
	requests *prometheus.CounterVec
	// mux routes the HTTP side: the built-in endpoints and those added by Handle.
	mux *http.ServeMux
	// limits bound the HTTP side (SetHTTPLimits); limiter holds the routes
	// added by Handle to limits.MaxConcurrent at once.
	limits  httpserver.Limits
	limiter atomic.Pointer[httpserver.Limiter]

	mu        sync.Mutex
	grpcLis   net.Listener // set by ListenGRPC
	http      *http.Server // set by StartHTTP
	httpBound string
	httpErr   chan error
	// gatewayConns are the gateway's connections to the gRPC listener
	// (Gateway), closed by CloseHTTP.
	gatewayConns []*grpc.ClientConn
}

// New returns a server for the given addresses; register services on GRPC
// before Serve or ServeGRPC. It starts not ready.
func New(log *slog.Logger, grpcAddr, httpAddr string, opts ...grpc.ServerOption) *Server {
	s := &Server{
		Registry: prometheus.NewRegistry(),
		health:   health.NewServer(),
		log:      log,
		grpcAddr: grpcAddr,
		httpAddr: httpAddr,
		httpErr:  make(chan error, 1),
		mux:      http.NewServeMux(),
		limits:   httpserver.Defaults(),
	}
	s.limiter.Store(httpserver.NewLimiter(s.limits.MaxConcurrent))
	s.mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.WriteHeader(http.StatusOK)
		_, _ = w.Write([]byte("ok\n"))
	})
	s.mux.HandleFunc("/readyz", func(w http.ResponseWriter, _ *http.Request) {
		if !s.ready.Load() {
			http.Error(w, "not ready", http.StatusServiceUnavailable)
			return
		}
		if why := s.Degraded(); why != "" {
			http.Error(w, "not ready: "+why, http.StatusServiceUnavailable)
			return
		}
		_, _ = w.Write([]byte("ready\n"))
	})
	s.mux.Handle("/metrics", promhttp.HandlerFor(s.Registry, promhttp.HandlerOpts{}))
	s.Registry.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	s.requests = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "huifang_grpc_requests_total",
		Help: "gRPC requests handled, by method and code.",
	}, []string{"method", "code"})
	s.Registry.MustRegister(s.requests)
	// The request rules of the .proto files (validation) are checked last,
	// after the interceptors of opts (the guard): the caller is known first.
	rules, err := newValidation(log)
	if err != nil {
		// protovalidate.New fails only on a bad option, none given here.
		panic(err)
	}
	all := append([]grpc.ServerOption{
		grpc.StatsHandler(otelgrpc.NewServerHandler()),
		grpc.ChainUnaryInterceptor(s.recoverUnary, s.errorsUnary),
		grpc.ChainStreamInterceptor(s.recoverStream, s.errorsStream),
	}, opts...)
	all = append(all, grpc.ChainUnaryInterceptor(rules.unary), grpc.ChainStreamInterceptor(rules.stream))
	s.GRPC = grpc.NewServer(all...)
	healthpb.RegisterHealthServer(s.GRPC, s.health)
	reflection.Register(s.GRPC)
	s.health.SetServingStatus("", healthpb.HealthCheckResponse_NOT_SERVING)
	return s
}

// SetReady switches readiness: the gRPC health status and /readyz.
func (s *Server) SetReady(ready bool) {
	s.ready.Store(ready)
	s.publishHealth()
}

// SetDegraded says the service cannot serve for the moment and why (a
// dependency is away): /readyz answers 503 with the reason and gRPC health
// NOT_SERVING until SetDegraded(""), while the process stays live.
func (s *Server) SetDegraded(why string) {
	if why == "" {
		s.degraded.Store(nil)
	} else {
		s.degraded.Store(&why)
	}
	s.publishHealth()
}

// Degraded returns why the service cannot serve for the moment, "" when it can.
func (s *Server) Degraded() string {
	if p := s.degraded.Load(); p != nil {
		return *p
	}
	return ""
}

func (s *Server) publishHealth() {
	st := healthpb.HealthCheckResponse_NOT_SERVING
	if s.Ready() {
		st = healthpb.HealthCheckResponse_SERVING
	}
	s.health.SetServingStatus("", st)
	for name := range s.GRPC.GetServiceInfo() {
		s.health.SetServingStatus(name, st)
	}
}

// Ready tells whether the server reports itself ready: started, not
// draining, and not degraded.
func (s *Server) Ready() bool { return s.ready.Load() && s.Degraded() == "" }

// SetHTTPLimits sets the bounds of the HTTP side (httpserver.Defaults until
// then): its timeouts and header bound, and how many requests of the routes
// added by Handle are handled at once (one more is answered 503 with
// Retry-After). /healthz, /readyz and /metrics are not counted: a flood of
// posts must not fail the liveness probe. Call it before StartHTTP.
func (s *Server) SetHTTPLimits(l httpserver.Limits) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.limits = l
	s.limiter.Store(httpserver.NewLimiter(l.MaxConcurrent))
}

// ListenGRPC binds the gRPC address, so that the port takes connections
// before the server says it is ready; ServeGRPC then serves on it (and binds
// it itself when ListenGRPC was not called). Calling it again does nothing.
func (s *Server) ListenGRPC() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.grpcLis != nil {
		return nil
	}
	gl, err := net.Listen("tcp", s.grpcAddr)
	if err != nil {
		return fmt.Errorf("grpcserver: listen %s: %w", s.grpcAddr, err)
	}
	s.grpcLis = gl
	return nil
}

// StartHTTP listens on the HTTP address and serves /healthz, /readyz and
// /metrics in the background. A service calls it first, before it waits for
// its dependencies: /healthz answers (the process is alive) while /readyz
// says 503 until SetReady(true), so an orchestrator neither kills a service
// that waits for Postgres nor sends it traffic. Calling it again does
// nothing; CloseHTTP stops it.
func (s *Server) StartHTTP() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.http != nil {
		return nil
	}
	hl, err := net.Listen("tcp", s.httpAddr)
	if err != nil {
		return fmt.Errorf("grpcserver: listen %s: %w", s.httpAddr, err)
	}
	srv := httpserver.WithTimeouts(s.mux, s.limits)
	s.http = srv
	s.httpBound = hl.Addr().String()
	go func() {
		if err := srv.Serve(hl); !errors.Is(err, http.ErrServerClosed) {
			s.httpErr <- fmt.Errorf("grpcserver: http: %w", err)
		}
	}()
	return nil
}

// Handle adds a handler to the HTTP side for pattern (http.ServeMux
// patterns, e.g. "POST /v1/things" or "/openapi.json"), beside /healthz,
// /readyz and /metrics. It may be called before or after StartHTTP (the
// server is usually already answering /healthz while the service waits for
// its dependencies, so a service adds its handlers once they can work). The
// routes added share the HTTP side's concurrency limit (SetHTTPLimits). Like
// http.ServeMux.Handle it panics on a pattern that is taken or invalid.
func (s *Server) Handle(pattern string, h http.Handler) {
	s.mux.Handle(pattern, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.limiter.Load().Wrap(h).ServeHTTP(w, r)
	}))
}

// HTTPAddr is the address the HTTP server listens on once started (with
// port 0 in the configuration, the port the kernel chose).
func (s *Server) HTTPAddr() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.httpBound
}

// CloseHTTP stops the HTTP server, letting requests in flight finish until
// ctx ends. It does nothing when the server was not started.
func (s *Server) CloseHTTP(ctx context.Context) error {
	s.mu.Lock()
	srv := s.http
	conns := s.gatewayConns
	s.gatewayConns = nil
	s.mu.Unlock()
	defer func() {
		for _, c := range conns {
			_ = c.Close()
		}
	}()
	if srv == nil {
		return nil
	}
	if err := srv.Shutdown(ctx); err != nil {
		return fmt.Errorf("grpcserver: http shutdown: %w", err)
	}
	return nil
}

// Serve runs both servers until ctx ends, then stops readiness, drains
// in-flight gRPC calls for up to grace, stops the HTTP server and returns.
func (s *Server) Serve(ctx context.Context, grace time.Duration) error {
	if err := s.StartHTTP(); err != nil {
		return err
	}
	err := s.ServeGRPC(ctx, grace)
	shutCtx, cancel := context.WithTimeout(context.Background(), grace)
	defer cancel()
	return errors.Join(err, s.CloseHTTP(shutCtx))
}

// ServeGRPC listens on the gRPC address and serves until ctx ends (or the
// HTTP server started by StartHTTP fails); then it sets readiness false,
// stops taking new calls, lets the calls in flight finish for up to grace
// and cuts off the rest. The HTTP server keeps running: the owner closes it
// with CloseHTTP once the rest of its work has drained.
func (s *Server) ServeGRPC(ctx context.Context, grace time.Duration) error {
	if err := s.ListenGRPC(); err != nil {
		s.SetReady(false)
		return err
	}
	s.mu.Lock()
	gl := s.grpcLis
	s.mu.Unlock()
	grpcErr := make(chan error, 1)
	go func() { grpcErr <- s.GRPC.Serve(gl) }()
	s.log.InfoContext(ctx, "serving", "grpc", gl.Addr().String(), "http", s.HTTPAddr())

	var failed error
	select {
	case <-ctx.Done():
	case err := <-grpcErr:
		s.SetReady(false)
		return fmt.Errorf("grpcserver: %w", err)
	case failed = <-s.httpErr:
	}
	s.SetReady(false)
	stopped := make(chan struct{})
	go func() { s.GRPC.GracefulStop(); close(stopped) }()
	timer := time.NewTimer(grace)
	defer timer.Stop()
	select {
	case <-stopped:
	case <-timer.C:
		s.log.Warn("gRPC calls still running after the grace period; cutting them off", "grace", grace)
		s.GRPC.Stop()
		<-stopped
	}
	return failed
}

func (s *Server) recoverUnary(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (resp any, err error) {
	defer func() {
		if r := recover(); r != nil {
			s.log.ErrorContext(ctx, "panic in handler", "method", info.FullMethod, "panic", fmt.Sprint(r), "stack", string(debug.Stack()))
			err = status.Error(codes.Internal, "internal error")
		}
	}()
	return handler(ctx, req)
}

func (s *Server) recoverStream(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) (err error) {
	defer func() {
		if r := recover(); r != nil {
			s.log.ErrorContext(ss.Context(), "panic in handler", "method", info.FullMethod, "panic", fmt.Sprint(r), "stack", string(debug.Stack()))
			err = status.Error(codes.Internal, "internal error")
		}
	}()
	return handler(srv, ss)
}

// errorsStream maps a streaming handler's error as errorsUnary does.
func (s *Server) errorsStream(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
	err := Status(ss.Context(), s.log, handler(srv, ss))
	s.requests.WithLabelValues(info.FullMethod, status.Code(err).String()).Inc()
	return err
}

func (s *Server) errorsUnary(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	resp, err := handler(ctx, req)
	err = Status(ctx, s.log, err)
	s.requests.WithLabelValues(info.FullMethod, status.Code(err).String()).Inc()
	return resp, err
}

// Status turns an error into a gRPC status error: *invalid.Error becomes
// InvalidArgument with field violations, auth.ErrPermissionDenied (a scope
// check of the application) PermissionDenied, an error that already carries a
// status keeps it, context errors keep their meaning, and anything else is
// logged and answered as Internal without details.
func Status(ctx context.Context, log *slog.Logger, err error) error {
	if err == nil {
		return nil
	}
	if bad, ok := invalid.As(err); ok {
		st := status.New(codes.InvalidArgument, bad.Error())
		br := &errdetails.BadRequest{}
		for _, v := range bad.Violations {
			br.FieldViolations = append(br.FieldViolations, &errdetails.BadRequest_FieldViolation{Field: v.Field, Description: v.Rule})
		}
		if withDetails, derr := st.WithDetails(br); derr == nil {
			st = withDetails
		}
		return st.Err()
	}
	if _, ok := status.FromError(err); ok {
		return err
	}
	switch {
	case errors.Is(err, auth.ErrPermissionDenied):
		// A scope check of the application: the caller may not act on this.
		return status.Error(codes.PermissionDenied, err.Error())
	case errors.Is(err, context.Canceled):
		return status.Error(codes.Canceled, err.Error())
	case errors.Is(err, context.DeadlineExceeded):
		return status.Error(codes.DeadlineExceeded, err.Error())
	case postgres.IsTransient(err):
		log.WarnContext(ctx, "request failed: the database is away or busy", "err", err)
		return status.Error(codes.Unavailable, "the database is not reachable for the moment; retry")
	}
	log.ErrorContext(ctx, "request failed", "err", err)
	return status.Error(codes.Internal, "internal error")
}
