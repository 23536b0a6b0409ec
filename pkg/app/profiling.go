package app

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"time"
)

// profiler serves Go's runtime profiles (net/http/pprof) on addr, which
// must be a loopback address: a profile shows the process's code paths and
// a heap dump its memory, so they are reached from the machine itself (or
// through `kubectl port-forward`), never from the network. The caller
// closes the server it returns.
func profiler(log *slog.Logger, addr string) (*http.Server, error) {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, fmt.Errorf("PPROF_ADDR %q: %w", addr, err)
	}
	if ip := net.ParseIP(host); host != "localhost" && (ip == nil || !ip.IsLoopback()) {
		return nil, fmt.Errorf("PPROF_ADDR %q: must be a loopback address (127.0.0.1:PORT): profiles show the process's memory", addr)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("PPROF_ADDR: %w", err)
	}
	// No write timeout: a CPU profile or a trace answers after the
	// seconds it was asked for.
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second, IdleTimeout: time.Minute}
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Warn("profiles: server stopped", "addr", addr, "err", err)
		}
	}()
	log.Info("serving runtime profiles (PPROF_ADDR)", "addr", ln.Addr().String())
	return srv, nil
}

// closeProfiler is a shutdown step of the profile server.
func closeProfiler(srv *http.Server) func(context.Context) error {
	return func(context.Context) error { return srv.Close() }
}
