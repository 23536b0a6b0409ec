package httpserver_test

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/huifang/huifang/pkg/httpserver"
)

// serve runs h on a loopback port behind New(h, l) until the test ends.
func serve(t *testing.T, h http.Handler, l httpserver.Limits) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	srv := httpserver.New(h, l)
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })
	return ln.Addr().String()
}

// closedWithin reads conn until the server closes it and tells whether it
// did within d (a read deadline stands for "never").
func closedWithin(t *testing.T, conn net.Conn, d time.Duration) (string, bool) {
	t.Helper()
	require.NoError(t, conn.SetReadDeadline(time.Now().Add(d)))
	got, err := io.ReadAll(conn)
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return string(got), false
	}
	return string(got), true
}

// A client that sends its headers slowly (slow loris) is cut off after
// ReadHeaderTimeout, while it is still sending.
func TestSlowHeadersAreCutOff(t *testing.T) {
	l := httpserver.Defaults()
	l.ReadHeaderTimeout = 300 * time.Millisecond
	addr := serve(t, http.NotFoundHandler(), l)
	conn, err := net.Dial("tcp", addr)
	require.NoError(t, err)
	defer conn.Close()
	_, err = io.WriteString(conn, "GET / HTTP/1.1\r\nHost: x\r\n")
	require.NoError(t, err)
	// One more header line now and then, never the blank line that ends them.
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			case <-time.After(50 * time.Millisecond):
			}
			if _, err := fmt.Fprintf(conn, "X-Slow-%d: 1\r\n", i); err != nil {
				return
			}
		}
	})
	defer wg.Wait()
	defer close(stop)
	_, closed := closedWithin(t, conn, 30*time.Second)
	require.True(t, closed, "the server closes the connection of a client that never finishes its headers")
}

// A client that sends its body slowly is cut off after ReadTimeout: the
// handler's read fails, and the connection ends.
func TestSlowBodyIsCutOff(t *testing.T) {
	l := httpserver.Defaults()
	l.ReadTimeout = 300 * time.Millisecond
	readErr := make(chan error, 1)
	addr := serve(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, err := io.ReadAll(r.Body)
		readErr <- err
		w.WriteHeader(http.StatusBadRequest)
	}), l)
	conn, err := net.Dial("tcp", addr)
	require.NoError(t, err)
	defer conn.Close()
	_, err = io.WriteString(conn, "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\nfirst bytes")
	require.NoError(t, err)
	select {
	case err := <-readErr:
		require.Error(t, err, "the body never completes")
	case <-time.After(30 * time.Second):
		t.Fatal("the handler is still reading a body that never ends")
	}
	_, closed := closedWithin(t, conn, 30*time.Second)
	require.True(t, closed)
}

// A connection that sends nothing more after an answer is closed after
// IdleTimeout.
func TestIdleConnectionsAreClosed(t *testing.T) {
	l := httpserver.Defaults()
	l.IdleTimeout = 300 * time.Millisecond
	addr := serve(t, http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusNoContent) }), l)
	conn, err := net.Dial("tcp", addr)
	require.NoError(t, err)
	defer conn.Close()
	_, err = io.WriteString(conn, "GET / HTTP/1.1\r\nHost: x\r\n\r\n")
	require.NoError(t, err)
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	require.NoError(t, err)
	require.Equal(t, http.StatusNoContent, resp.StatusCode)
	_, closed := closedWithin(t, conn, 30*time.Second)
	require.True(t, closed)
}

// Headers larger than MaxHeaderBytes are refused (431).
func TestLargeHeadersAreRefused(t *testing.T) {
	l := httpserver.Defaults()
	addr := serve(t, http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusNoContent) }), l)
	req, err := http.NewRequest(http.MethodGet, "http://"+addr+"/", nil)
	require.NoError(t, err)
	req.Header.Set("X-Big", strings.Repeat("x", 2*l.MaxHeaderBytes))
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusRequestHeaderFieldsTooLarge, resp.StatusCode)
}

// With MaxConcurrent requests in their handlers, one more is answered 503
// with Retry-After at once; once one finishes, the next is handled.
func TestConcurrencyLimit(t *testing.T) {
	l := httpserver.Defaults()
	l.MaxConcurrent = 2
	entered, release := make(chan struct{}), make(chan struct{})
	addr := serve(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/hold" {
			entered <- struct{}{}
			<-release
		}
		w.WriteHeader(http.StatusNoContent)
	}), l)
	url := "http://" + addr
	var wg sync.WaitGroup
	codes := make(chan int, 2)
	for range 2 {
		wg.Go(func() {
			resp, err := http.Get(url + "/hold")
			if err != nil {
				codes <- 0
				return
			}
			resp.Body.Close()
			codes <- resp.StatusCode
		})
		<-entered
	}
	resp, err := http.Get(url + "/other")
	require.NoError(t, err)
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	require.Equal(t, http.StatusServiceUnavailable, resp.StatusCode)
	require.Equal(t, "1", resp.Header.Get("Retry-After"))
	require.JSONEq(t, `{"error":"too many requests at once; retry"}`, string(body))

	release <- struct{}{}
	require.Equal(t, http.StatusNoContent, <-codes)
	resp, err = http.Get(url + "/other")
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusNoContent, resp.StatusCode, "a slot is free again")
	release <- struct{}{}
	wg.Wait()
	require.Equal(t, http.StatusNoContent, <-codes)
}

// A limit of 0 bounds nothing: requests beyond any small number are all
// handled at once.
func TestNoLimit(t *testing.T) {
	const n = 8
	var inside sync.WaitGroup
	inside.Add(n)
	h := httpserver.NewLimiter(0).Wrap(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		inside.Done()
		inside.Wait() // every request is in its handler at once
		w.WriteHeader(http.StatusNoContent)
	}))
	codes := make(chan int, n)
	for range n {
		go func() {
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/", nil))
			codes <- rec.Code
		}()
	}
	for range n {
		require.Equal(t, http.StatusNoContent, <-codes)
	}
}

// Limits that would leave a server unbounded by mistake are refused, naming
// the variable.
func TestCheck(t *testing.T) {
	require.NoError(t, httpserver.Defaults().Check())
	l := httpserver.Defaults()
	l.ReadTimeout, l.MaxConcurrent = 0, -1
	err := l.Check()
	require.ErrorContains(t, err, "HTTP_READ_TIMEOUT must be positive, got 0s")
	require.ErrorContains(t, err, "HTTP_MAX_CONCURRENT must not be negative, got -1")
}
