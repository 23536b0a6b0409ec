package app

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"time"

	"github.com/huifang/huifang/pkg/config"
)

// Probe asks a running service's /readyz whether it is ready, at the
// HTTP_ADDR the lookup gives (an address without a host, such as ":8002",
// is asked on 127.0.0.1). It is the container health check: distroless
// images have no curl, so the service's own binary does it
// (`intake --healthcheck`).
func Probe(ctx context.Context, lookup config.Lookup) error {
	addr, ok := lookup("HTTP_ADDR")
	if !ok || addr == "" {
		return fmt.Errorf("healthcheck: HTTP_ADDR is not set")
	}
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("healthcheck: HTTP_ADDR=%q: %w", addr, err)
	}
	switch host {
	case "", "0.0.0.0", "::":
		host = "127.0.0.1"
	}
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	url := "http://" + net.JoinHostPort(host, port) + "/readyz"
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return fmt.Errorf("healthcheck: %w", err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("healthcheck: %w", err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("healthcheck: %s answered %s", url, resp.Status)
	}
	return nil
}
