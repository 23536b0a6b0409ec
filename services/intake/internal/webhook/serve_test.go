package webhook_test

import (
	"context"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/proto"

	"github.com/huifang/huifang/pkg/auth"
	"github.com/huifang/huifang/pkg/httpserver"
	"github.com/huifang/huifang/pkg/servicetest"
	"github.com/huifang/huifang/services/intake/internal/webhook"
)

// heldGuard holds every post in authentication until release is closed.
type heldGuard struct{ entered, release chan struct{} }

func (g heldGuard) AuthenticateHTTP(*http.Request) (auth.Principal, error) {
	g.entered <- struct{}{}
	<-g.release
	return auth.Principal{}, auth.ErrUnauthenticated
}

func (heldGuard) Admit(auth.Principal) (time.Duration, bool) { return 0, true }

func (heldGuard) Authorize(auth.Principal, string, proto.Message) error { return nil }

// The webhook's own server (WEBHOOK_ADDR) is bounded by the limits it is
// given: while HTTP_MAX_CONCURRENT posts are handled another is answered 503
// with Retry-After, and a client that never finishes its headers is cut off
// after HTTP_READ_HEADER_TIMEOUT.
func TestServeIsBounded(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := ln.Addr().String()
	require.NoError(t, ln.Close())
	l := httpserver.Defaults()
	l.MaxConcurrent, l.ReadHeaderTimeout = 1, 300*time.Millisecond
	guard := heldGuard{entered: make(chan struct{}, 2), release: make(chan struct{})}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- webhook.Serve(ctx, servicetest.Logger(), addr, l, nil, guard) }()
	defer func() {
		cancel()
		require.NoError(t, <-done)
	}()
	base := "http://" + addr
	require.Eventually(t, func() bool {
		resp, err := http.Get(base + "/openapi.json")
		if err != nil {
			return false
		}
		// Read to the end: the server's handler (and its slot) is done then.
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	}, 60*time.Second, 10*time.Millisecond)

	first := make(chan int, 1)
	go func() {
		resp, err := http.Post(base+"/v1/services", "application/json", strings.NewReader("{}"))
		if err != nil {
			first <- 0
			return
		}
		resp.Body.Close()
		first <- resp.StatusCode
	}()
	select {
	case <-guard.entered:
	case code := <-first:
		t.Fatalf("the first post was answered %d before it reached the guard", code)
	}
	// Bounded, so that a second post let in (held by the guard) fails the test.
	client := &http.Client{Timeout: 30 * time.Second}
	resp, err := client.Post(base+"/v1/services", "application/json", strings.NewReader("{}"))
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusServiceUnavailable, resp.StatusCode)
	require.Equal(t, "1", resp.Header.Get("Retry-After"))
	close(guard.release)
	require.Equal(t, http.StatusUnauthorized, <-first)

	conn, err := net.Dial("tcp", addr)
	require.NoError(t, err)
	defer conn.Close()
	_, err = io.WriteString(conn, "POST /v1/services HTTP/1.1\r\nHost: x\r\n")
	require.NoError(t, err)
	require.NoError(t, conn.SetReadDeadline(time.Now().Add(30*time.Second)))
	_, err = io.ReadAll(conn)
	require.NoError(t, err, "the server closed the connection (EOF) before the test's deadline")
}
