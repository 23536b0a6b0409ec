// Package grpcserver builds the gRPC server every service runs (health,
// reflection, tracing, panic recovery, one error mapping) and the small HTTP
// server beside it for /healthz, /readyz and /metrics.
package grpcserver

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"runtime/debug"
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

	"github.com/huifang/huifang/pkg/invalid"
)

// Server is a gRPC server and its HTTP side.
type Server struct {
	GRPC     *grpc.Server
	Registry *prometheus.Registry
	health   *health.Server
	log      *slog.Logger
	ready    atomic.Bool
	grpcAddr string
	httpAddr string
	http     *http.Server
	requests *prometheus.CounterVec
}

// New returns a server for the given addresses; register services on GRPC
// before Serve.
func New(log *slog.Logger, grpcAddr, httpAddr string) *Server {
	s := &Server{
		Registry: prometheus.NewRegistry(),
		health:   health.NewServer(),
		log:      log,
		grpcAddr: grpcAddr,
		httpAddr: httpAddr,
	}
	s.Registry.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	s.requests = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "huifang_grpc_requests_total",
		Help: "gRPC requests handled, by method and code.",
	}, []string{"method", "code"})
	s.Registry.MustRegister(s.requests)
	s.GRPC = grpc.NewServer(
		grpc.StatsHandler(otelgrpc.NewServerHandler()),
		grpc.ChainUnaryInterceptor(s.recoverUnary, s.errorsUnary),
	)
	healthpb.RegisterHealthServer(s.GRPC, s.health)
	reflection.Register(s.GRPC)
	s.health.SetServingStatus("", healthpb.HealthCheckResponse_NOT_SERVING)
	return s
}

// SetReady switches readiness: the gRPC health status and /readyz.
func (s *Server) SetReady(ready bool) {
	s.ready.Store(ready)
	st := healthpb.HealthCheckResponse_NOT_SERVING
	if ready {
		st = healthpb.HealthCheckResponse_SERVING
	}
	s.health.SetServingStatus("", st)
	for name := range s.GRPC.GetServiceInfo() {
		s.health.SetServingStatus(name, st)
	}
}

// Serve listens on both addresses and serves until ctx ends, then stops
// readiness first, drains in-flight calls for up to grace, and returns.
func (s *Server) Serve(ctx context.Context, grace time.Duration) error {
	gl, err := net.Listen("tcp", s.grpcAddr)
	if err != nil {
		return fmt.Errorf("grpcserver: listen %s: %w", s.grpcAddr, err)
	}
	hl, err := net.Listen("tcp", s.httpAddr)
	if err != nil {
		gl.Close()
		return fmt.Errorf("grpcserver: listen %s: %w", s.httpAddr, err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.WriteHeader(http.StatusOK)
		_, _ = w.Write([]byte("ok\n"))
	})
	mux.HandleFunc("/readyz", func(w http.ResponseWriter, _ *http.Request) {
		if !s.ready.Load() {
			http.Error(w, "not ready", http.StatusServiceUnavailable)
			return
		}
		_, _ = w.Write([]byte("ready\n"))
	})
	mux.Handle("/metrics", promhttp.HandlerFor(s.Registry, promhttp.HandlerOpts{}))
	s.http = &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}

	errc := make(chan error, 2)
	go func() { errc <- s.GRPC.Serve(gl) }()
	go func() {
		if err := s.http.Serve(hl); !errors.Is(err, http.ErrServerClosed) {
			errc <- err
			return
		}
		errc <- nil
	}()
	s.log.InfoContext(ctx, "serving", "grpc", gl.Addr().String(), "http", hl.Addr().String())

	select {
	case <-ctx.Done():
	case err := <-errc:
		return fmt.Errorf("grpcserver: %w", err)
	}
	s.SetReady(false)
	stopped := make(chan struct{})
	go func() { s.GRPC.GracefulStop(); close(stopped) }()
	select {
	case <-stopped:
	case <-time.After(grace):
		s.GRPC.Stop()
	}
	shutCtx, cancel := context.WithTimeout(context.Background(), grace)
	defer cancel()
	return s.http.Shutdown(shutCtx)
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

func (s *Server) errorsUnary(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	resp, err := handler(ctx, req)
	err = Status(ctx, s.log, err)
	s.requests.WithLabelValues(info.FullMethod, status.Code(err).String()).Inc()
	return resp, err
}

// Status turns an error into a gRPC status error: *invalid.Error becomes
// InvalidArgument with field violations, an error that already carries a
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
	case errors.Is(err, context.Canceled):
		return status.Error(codes.Canceled, err.Error())
	case errors.Is(err, context.DeadlineExceeded):
		return status.Error(codes.DeadlineExceeded, err.Error())
	}
	log.ErrorContext(ctx, "request failed", "err", err)
	return status.Error(codes.Internal, "internal error")
}
