package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"

	"github.com/huifang/huifang/pkg/issuer"
	"github.com/huifang/huifang/pkg/ports"
)

// The request counter keeps few series: a method a client makes up counts
// as "other", and the status is the one the page wrote.
func TestCountedKeepsFewSeries(t *testing.T) {
	c := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "huifang_console_requests_total"}, []string{"method", "code"})
	h := counted(c, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPost {
			w.WriteHeader(http.StatusForbidden)
			return
		}
		_, _ = w.Write([]byte("ok"))
	}))
	for _, m := range []string{"GET", "POST", "PROPFIND", "X-MADE-UP"} {
		h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest(m, "/", nil))
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(c)
	families, err := reg.Gather()
	require.NoError(t, err)
	require.Len(t, families, 1)
	got := map[string]float64{}
	for _, m := range families[0].GetMetric() {
		key := ""
		for _, l := range m.GetLabel() {
			key += l.GetName() + "=" + l.GetValue() + " "
		}
		got[key] = m.GetCounter().GetValue()
	}
	require.Equal(t, map[string]float64{"code=200 method=GET ": 1, "code=403 method=POST ": 1, "code=200 method=other ": 2}, got)
}

// SESSION_KEY is read as hex or base64, and refused when short or missing.
func TestDecodeKey(t *testing.T) {
	_, err := decodeKey("")
	require.ErrorContains(t, err, "required")
	_, err = decodeKey("abcd")
	require.ErrorContains(t, err, "at least 32 bytes")
	k, err := decodeKey("000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f")
	require.NoError(t, err)
	require.Len(t, k, 32)
}

// TestRunServesProbesMetricsAndPages: the process answers /healthz, turns
// ready once the identity provider is discovered, exports
// huifang_console_requests_total on /metrics from the start, sends an
// unsigned visitor to sign in, and stops cleanly; its log holds no secret.
func TestRunServesProbesMetricsAndPages(t *testing.T) {
	is, err := issuer.Listen("127.0.0.1:0", "huifang")
	require.NoError(t, err)
	t.Cleanup(func() { _ = is.Close() })
	free, err := ports.Free(1)
	require.NoError(t, err)
	addr := fmt.Sprintf("127.0.0.1:%d", free[0])
	key := "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f"
	t.Setenv("HTTP_ADDR", addr)
	t.Setenv("PUBLIC_URL", "http://localhost:"+fmt.Sprint(free[0]))
	t.Setenv("AUTH_ISSUER", is.URL())
	t.Setenv("AUTH_JWKS_URL", is.JWKSURL())
	t.Setenv("SESSION_KEY", key)
	logPath := filepath.Join(t.TempDir(), "console.log")
	logFile, err := os.Create(logPath)
	require.NoError(t, err)
	t.Cleanup(func() { _ = logFile.Close() })
	log := slog.New(slog.NewJSONHandler(logFile, nil))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- run(ctx, log) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			require.NoError(t, err)
		case <-time.After(time.Minute):
			t.Error("run did not return after its context ended")
		}
	})

	get := func(path string) (int, string) {
		c := &http.Client{Timeout: 10 * time.Second, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
		res, err := c.Get("http://" + addr + path)
		if err != nil {
			return 0, err.Error()
		}
		defer res.Body.Close()
		b, _ := io.ReadAll(res.Body)
		return res.StatusCode, string(b)
	}
	require.Eventually(t, func() bool { code, _ := get("/readyz"); return code == http.StatusOK }, time.Minute, 50*time.Millisecond, "ready")
	code, _ := get("/healthz")
	require.Equal(t, http.StatusOK, code)
	code, metrics := get("/metrics")
	require.Equal(t, http.StatusOK, code)
	require.Contains(t, metrics, "huifang_console_requests_total")
	code, _ = get("/")
	require.Equal(t, http.StatusSeeOther, code, "an unsigned visitor is sent to sign in")
	_, metrics = get("/metrics")
	require.Contains(t, metrics, `huifang_console_requests_total{code="303",method="GET"} 1`)
	logs, err := os.ReadFile(logPath)
	require.NoError(t, err)
	require.Contains(t, string(logs), "console ready")
	require.NotContains(t, string(logs), key, "SESSION_KEY is never logged")
}
