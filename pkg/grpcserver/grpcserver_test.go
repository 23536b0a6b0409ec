package grpcserver_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"

	"github.com/huifang/huifang/pkg/grpcserver"
	"github.com/huifang/huifang/pkg/httpserver"
	"github.com/huifang/huifang/pkg/invalid"
)

func quiet() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func TestStatusMapsInvalidInputToFieldViolations(t *testing.T) {
	var l invalid.List
	l.Add("agent.id", "is required")
	l.Add("agent.name", "is required")
	st := status.Convert(grpcserver.Status(context.Background(), quiet(), l.Err()))
	require.Equal(t, codes.InvalidArgument, st.Code())
	require.Len(t, st.Details(), 1)
	br := st.Details()[0].(*errdetails.BadRequest)
	require.Equal(t, "agent.id", br.FieldViolations[0].Field)
	require.Equal(t, "is required", br.FieldViolations[0].Description)
	require.Equal(t, "agent.name", br.FieldViolations[1].Field)
}

func TestStatusHidesInternalErrors(t *testing.T) {
	err := grpcserver.Status(context.Background(), quiet(), errors.New("password=secret in a driver error"))
	st := status.Convert(err)
	require.Equal(t, codes.Internal, st.Code())
	require.NotContains(t, st.Message(), "secret")
	require.Equal(t, codes.NotFound, status.Code(grpcserver.Status(context.Background(), quiet(), status.Error(codes.NotFound, "x"))))
}

func freeAddr(t *testing.T) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer l.Close()
	return l.Addr().String()
}

// Health and readiness follow SetReady and go false on shutdown.
func TestHealthAndReadiness(t *testing.T) {
	grpcAddr, httpAddr := freeAddr(t), freeAddr(t)
	s := grpcserver.New(quiet(), grpcAddr, httpAddr)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- s.Serve(ctx, time.Second) }()
	require.Eventually(t, func() bool {
		resp, err := http.Get("http://" + httpAddr + "/healthz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	}, 60*time.Second, 10*time.Millisecond)
	readyz := func() int {
		resp, err := http.Get("http://" + httpAddr + "/readyz")
		require.NoError(t, err)
		resp.Body.Close()
		return resp.StatusCode
	}
	require.Equal(t, http.StatusServiceUnavailable, readyz())
	s.SetReady(true)
	require.Equal(t, http.StatusOK, readyz())

	conn, err := grpc.NewClient(grpcAddr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	require.NoError(t, err)
	defer conn.Close()
	hc, err := healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{})
	require.NoError(t, err)
	require.Equal(t, healthpb.HealthCheckResponse_SERVING, hc.Status)

	resp, err := http.Get("http://" + httpAddr + "/metrics")
	require.NoError(t, err)
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	require.Contains(t, string(body), "go_goroutines")

	cancel()
	require.NoError(t, <-done)
}

// StartHTTP serves health and metrics before gRPC exists (a service waiting
// for its dependencies is alive and not ready); ServeGRPC leaves the HTTP
// server to its owner, and a gRPC port that cannot be bound is an error.
func TestHTTPComesUpBeforeGRPC(t *testing.T) {
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer taken.Close()
	s := grpcserver.New(quiet(), taken.Addr().String(), "127.0.0.1:0")
	require.NoError(t, s.StartHTTP())
	require.NoError(t, s.StartHTTP(), "a second call does nothing")
	addr := s.HTTPAddr()
	require.NotEqual(t, "127.0.0.1:0", addr, "the port the kernel chose")
	get := func(path string) int {
		resp, err := http.Get("http://" + addr + path)
		if err != nil {
			return 0
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	require.Equal(t, http.StatusOK, get("/healthz"))
	require.Equal(t, http.StatusServiceUnavailable, get("/readyz"))

	require.ErrorContains(t, s.ServeGRPC(context.Background(), time.Second), "listen")
	require.False(t, s.Ready())
	require.Equal(t, http.StatusOK, get("/healthz"), "the HTTP server stays up until its owner closes it")
	require.NoError(t, s.CloseHTTP(context.Background()))
	require.Equal(t, 0, get("/healthz"))
}

// Handlers added with Handle are served beside /healthz, whether added
// before StartHTTP or after (a service adds its own once its dependencies are up).
func TestHandleAddsHTTPEndpoints(t *testing.T) {
	s := grpcserver.New(quiet(), freeAddr(t), freeAddr(t))
	s.Handle("GET /before", http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("before")) }))
	require.NoError(t, s.StartHTTP())
	t.Cleanup(func() { require.NoError(t, s.CloseHTTP(context.Background())) })
	s.Handle("POST /after", http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("after")) }))
	get := func(method, path string) (int, string) {
		req, err := http.NewRequest(method, "http://"+s.HTTPAddr()+path, nil)
		require.NoError(t, err)
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		require.NoError(t, err)
		return resp.StatusCode, string(b)
	}
	code, body := get(http.MethodGet, "/before")
	require.Equal(t, http.StatusOK, code)
	require.Equal(t, "before", body)
	code, body = get(http.MethodPost, "/after")
	require.Equal(t, http.StatusOK, code)
	require.Equal(t, "after", body)
	code, _ = get(http.MethodGet, "/healthz")
	require.Equal(t, http.StatusOK, code)
	code, _ = get(http.MethodGet, "/missing")
	require.Equal(t, http.StatusNotFound, code)
	require.Panics(t, func() { s.Handle("/healthz", http.NotFoundHandler()) })
}

// The HTTP side is bounded as SetHTTPLimits says: a route added by Handle
// is answered 503 with Retry-After while MaxConcurrent of its requests are
// handled, /healthz still answers, and a client that never finishes its
// headers is cut off after ReadHeaderTimeout.
func TestHTTPSideIsBounded(t *testing.T) {
	s := grpcserver.New(quiet(), "127.0.0.1:0", "127.0.0.1:0")
	l := httpserver.Defaults()
	l.MaxConcurrent, l.ReadHeaderTimeout = 1, 300*time.Millisecond
	s.SetHTTPLimits(l)
	entered, release := make(chan struct{}), make(chan struct{})
	s.Handle("POST /v1/slow", http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		entered <- struct{}{}
		<-release
		w.WriteHeader(http.StatusNoContent)
	}))
	s.Handle("POST /v1/quick", http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusNoContent) }))
	require.NoError(t, s.StartHTTP())
	defer func() { require.NoError(t, s.CloseHTTP(context.Background())) }()
	base := "http://" + s.HTTPAddr()

	first := make(chan int, 1)
	go func() {
		resp, err := http.Post(base+"/v1/slow", "text/plain", nil)
		if err != nil {
			first <- 0
			return
		}
		resp.Body.Close()
		first <- resp.StatusCode
	}()
	<-entered
	resp, err := http.Post(base+"/v1/quick", "text/plain", nil)
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusServiceUnavailable, resp.StatusCode, "the one slot is taken")
	require.Equal(t, "1", resp.Header.Get("Retry-After"))
	resp, err = http.Get(base + "/healthz")
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode, "the probes are not counted")
	close(release)
	require.Equal(t, http.StatusNoContent, <-first)

	conn, err := net.Dial("tcp", s.HTTPAddr())
	require.NoError(t, err)
	defer conn.Close()
	_, err = io.WriteString(conn, "GET /healthz HTTP/1.1\r\nHost: x\r\n")
	require.NoError(t, err)
	require.NoError(t, conn.SetReadDeadline(time.Now().Add(30*time.Second)))
	_, err = io.ReadAll(conn)
	require.NoError(t, err, "the server closed the connection (EOF) before the test's deadline")
}
