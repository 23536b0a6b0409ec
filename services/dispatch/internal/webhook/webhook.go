// Package webhook serves the providers' delivery webhooks
// (POST /receipts/telnyx): it reads the provider's report (package sender)
// and records it with app.RecordReceipt.
package webhook

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"time"

	"github.com/huifang/huifang/pkg/httpserver"
	"github.com/huifang/huifang/services/dispatch/internal/app"
	"github.com/huifang/huifang/services/dispatch/internal/sender"
	"github.com/huifang/huifang/services/dispatch/internal/store"
)

// Receipts serves the delivery webhooks.
type Receipts struct {
	App *app.App
	Log *slog.Logger
}

// Handler returns the webhook mux.
func (r *Receipts) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /receipts/telnyx", func(w http.ResponseWriter, req *http.Request) {
		body, err := io.ReadAll(io.LimitReader(req.Body, 1<<20))
		if err != nil {
			http.Error(w, "read body", http.StatusBadRequest)
			return
		}
		rc, final, err := sender.ParseTelnyxWebhook(body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		if final {
			_, err = r.App.RecordReceipt(req.Context(), "telnyx", rc)
			if err != nil && !errors.Is(err, store.ErrMessageNotFound) {
				r.Log.ErrorContext(req.Context(), "receipt not recorded", "err", err)
				http.Error(w, "not recorded", http.StatusInternalServerError) // the provider retries
				return
			}
		}
		w.WriteHeader(http.StatusNoContent)
	})
	return mux
}

// Serve serves the webhooks on addr until ctx ends, bounded by limits
// (timeouts, requests at once: app.Base's HTTP_* variables).
func (r *Receipts) Serve(ctx context.Context, addr string, limits httpserver.Limits) error {
	srv := httpserver.New(r.Handler(), limits)
	srv.Addr = addr
	errc := make(chan error, 1)
	go func() { errc <- srv.ListenAndServe() }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
		shutCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(shutCtx)
		return ctx.Err()
	}
}
