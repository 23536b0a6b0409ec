package webhook_test

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/huifang/huifang/pkg/httpserver"
	"github.com/huifang/huifang/pkg/servicetest"
	"github.com/huifang/huifang/services/dispatch/internal/app"
	"github.com/huifang/huifang/services/dispatch/internal/webhook"
)

// The receipts server (RECEIPT_ADDR) is bounded by the limits it is given:
// while HTTP_MAX_CONCURRENT posts are handled (one trickling its body),
// another is answered 503 with Retry-After, and a client that never
// finishes its headers is cut off after HTTP_READ_HEADER_TIMEOUT.
func TestServeIsBounded(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := ln.Addr().String()
	require.NoError(t, ln.Close())
	l := httpserver.Defaults()
	l.MaxConcurrent, l.ReadHeaderTimeout = 1, 300*time.Millisecond
	r := &webhook.Receipts{App: &app.App{}, Log: servicetest.Logger()}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Serve(ctx, addr, l) }()
	defer func() {
		cancel()
		require.ErrorIs(t, <-done, context.Canceled)
	}()
	var held net.Conn
	require.Eventually(t, func() bool {
		held, err = net.Dial("tcp", addr)
		return err == nil
	}, 60*time.Second, 10*time.Millisecond)
	defer held.Close()
	// A post whose body never ends holds the one slot.
	_, err = io.WriteString(held, "POST /receipts/telnyx HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{")
	require.NoError(t, err)
	client := &http.Client{Timeout: 30 * time.Second}
	require.Eventually(t, func() bool {
		resp, err := client.Post("http://"+addr+"/receipts/telnyx", "application/json", strings.NewReader(`{}`))
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusServiceUnavailable && resp.Header.Get("Retry-After") == "1"
	}, 60*time.Second, 10*time.Millisecond, "the held post takes the slot")

	conn, err := net.Dial("tcp", addr)
	require.NoError(t, err)
	defer conn.Close()
	_, err = io.WriteString(conn, "POST /receipts/telnyx HTTP/1.1\r\nHost: x\r\n")
	require.NoError(t, err)
	require.NoError(t, conn.SetReadDeadline(time.Now().Add(30*time.Second)))
	_, err = io.ReadAll(conn)
	var ne net.Error
	require.False(t, errors.As(err, &ne) && ne.Timeout(), "the server closed the connection before the test's deadline")
}
