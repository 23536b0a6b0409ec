package app

import (
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/huifang/huifang/pkg/ports"
)

// PPROF_ADDR serves the runtime profiles on a loopback address and refuses
// any other: a profile shows the process's memory.
func TestProfilesOnlyOnLoopback(t *testing.T) {
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	for _, addr := range []string{":6060", "0.0.0.0:6060", "10.0.0.1:6060", "example.com:6060", "6060"} {
		_, err := profiler(log, addr)
		require.ErrorContains(t, err, "PPROF_ADDR", addr)
	}

	free, err := ports.Free(1)
	require.NoError(t, err)
	srv, err := profiler(log, fmt.Sprintf("127.0.0.1:%d", free[0]))
	require.NoError(t, err)
	t.Cleanup(func() { _ = srv.Close() })
	for path, want := range map[string]int{"/debug/pprof/": http.StatusOK, "/debug/pprof/goroutine?debug=1": http.StatusOK, "/metrics": http.StatusNotFound} {
		resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d%s", free[0], path))
		require.NoError(t, err, path)
		body, err := io.ReadAll(resp.Body)
		require.NoError(t, err)
		require.NoError(t, resp.Body.Close())
		require.Equal(t, want, resp.StatusCode, "%s: %s", path, body)
	}
}
